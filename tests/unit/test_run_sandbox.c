/* Unit test: entering a Landlock domain (run/sandbox.c). Each probe runs
 * in a child process, as an ordinary uid (65534 when the test runs as
 * root, since Landlock does not hold root back), and reports through a
 * pipe; only the parent asserts. A "victim" started before the domain
 * stands for the broker's child, holding a memory file as a --file value
 * does: the same reads, signals, traces and socket connections are first
 * shown to work against it (so the test can fail), then to be refused
 * from inside, while a process the domain started itself stays within
 * reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534

static int kernel_abi;
/* The probe's end of its report pipe: closed in the processes it starts,
 * so that the parent sees end-of-file when the probe dies. */
static int report_fd = -1;

/* What a child saw: 0 for "it worked", else the errno. */
struct probe {
	int dropped; /* 0 if the child runs as an ordinary uid */
	int rc;      /* run_sandbox_enter */
	int status;  /* latch_last_status after it */
	char message[256];
	struct run_sandbox sb;
	int nnp_after;
	/* Against the victim, before and after entering. */
	int environ_before, mem_before, fd_before, kill_before, trace_before, connect_before;
	int environ_after, mem_after, fd_after, kill_after, trace_after, connect_after;
	/* Against a process the domain started, and a socket bound inside. */
	int environ_own, mem_own, fd_own, kill_own, trace_own, connect_own;
	/* Files and the network still work inside. */
	int file_read, file_write, inet_bind;
	int kill_parent; /* after a refusal: the parent can still be signalled */
};

/* A process that waits to be killed. PDEATHSIG is only a backstop: a
 * parent inside a domain that dies cannot signal a child outside it (the
 * signal scope covers the parent-death signal too); run_probe kills the
 * whole process group. */
static pid_t start_sleeper(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (report_fd >= 0)
			close(report_fd);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	return pid;
}

/* Become uid/gid 65534 if root. Changing uid makes the process
 * non-dumpable, which would hide its /proc files from its own uid and
 * spoil the positive controls: dumpable again, as after an exec. */
static int drop_privileges(void)
{
	if (geteuid() != 0)
		return 0;
	if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 || setresuid(NOBODY, NOBODY, NOBODY) != 0)
		return errno ? errno : -1;
	if (geteuid() == 0)
		return -1;
	return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0 ? 0 : errno;
}

static int open_proc(pid_t pid, const char *file)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	char buf[64];
	int e = 0;
	if (strcmp(file, "environ") == 0 && read(fd, buf, sizeof buf) < 0)
		e = errno;
	close(fd);
	return e;
}

/* A sleeper holding a memory file at descriptor *fd, as a child holds a
 * --file value; this process keeps no copy. */
static pid_t start_holder(int *fd)
{
	*fd = memfd_create("latch-test-file", MFD_CLOEXEC);
	if (*fd < 0 || write(*fd, "value", 5) != 5)
		return -1;
	pid_t pid = start_sleeper();
	close(*fd);
	return pid;
}

/* Read the holder's memory file through /proc/PID/fd/N. */
static int read_fd(pid_t pid, int n)
{
	char path[64], buf[8] = "";
	snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, n);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = pread(fd, buf, 5, 0) == 5 && memcmp(buf, "value", 5) == 0 ? 0 : EIO;
	close(fd);
	return e;
}

static int try_kill(pid_t pid)
{
	return kill(pid, 0) == 0 ? 0 : errno;
}

/* Kill and reap a process started here, if it can still be signalled
 * (else run_probe does). */
static void end(pid_t pid)
{
	if (pid > 0 && kill(pid, SIGKILL) == 0)
		waitpid(pid, NULL, 0);
}

/* Attach, wait for the stop, detach. */
static int try_trace(pid_t pid)
{
	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0)
		return errno;
	int st;
	waitpid(pid, &st, __WALL);
	ptrace(PTRACE_DETACH, pid, NULL, NULL);
	return 0;
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *tag)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "latch-test-sandbox-%d-%s", (int)getpid(), tag);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int listen_abstract(const char *tag)
{
	struct sockaddr_un a;
	socklen_t len = abstract_addr(&a, tag);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 8) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int try_connect(const char *tag)
{
	struct sockaddr_un a;
	socklen_t len = abstract_addr(&a, tag);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	int e = connect(fd, (struct sockaddr *)&a, len) == 0 ? 0 : errno;
	close(fd);
	return e;
}

static int try_files(int *wrote)
{
	char buf[16];
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	int e = fd < 0 ? errno : (read(fd, buf, sizeof buf) > 0 ? 0 : EIO);
	if (fd >= 0)
		close(fd);
	char path[] = "/tmp/latch-test-sandbox-XXXXXX";
	int w = mkstemp(path);
	if (w < 0) {
		*wrote = errno;
	} else {
		*wrote = write(w, "x", 1) == 1 ? 0 : EIO;
		close(w);
		if (unlink(path) != 0)
			*wrote = errno;
	}
	return e;
}

static int try_inet(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int e = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
	close(fd);
	return e;
}

static void enter(struct probe *r)
{
	r->rc = run_sandbox_enter(&r->sb);
	r->status = (int)latch_last_status();
	snprintf(r->message, sizeof r->message, "%s", r->rc ? latch_last_message() : "");
	r->nnp_after = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
}

/* The real thing: before, enter, after, and the positive controls. */
static void probe_domain(struct probe *r)
{
	r->dropped = drop_privileges();
	if (r->dropped)
		return;
	int vfd;
	pid_t victim = start_holder(&vfd);
	int lfd = listen_abstract("out");
	r->environ_before = open_proc(victim, "environ");
	r->mem_before = open_proc(victim, "mem");
	r->fd_before = read_fd(victim, vfd);
	r->kill_before = try_kill(victim);
	r->trace_before = try_trace(victim);
	r->connect_before = lfd < 0 ? EBADF : try_connect("out");

	enter(r);
	if (r->rc != 0)
		return;
	r->environ_after = open_proc(victim, "environ");
	r->mem_after = open_proc(victim, "mem");
	r->fd_after = read_fd(victim, vfd);
	r->kill_after = try_kill(victim);
	r->trace_after = try_trace(victim);
	r->connect_after = try_connect("out");

	int ofd;
	pid_t own = start_holder(&ofd);
	int ifd = listen_abstract("in");
	r->environ_own = open_proc(own, "environ");
	r->mem_own = open_proc(own, "mem");
	r->fd_own = read_fd(own, ofd);
	r->kill_own = try_kill(own);
	r->trace_own = try_trace(own);
	r->connect_own = ifd < 0 ? EBADF : try_connect("in");
	r->file_read = try_files(&r->file_write);
	r->inet_bind = try_inet();
	/* The domain's own child can be ended from inside; the victim can
	 * not, run_probe ends it. */
	end(own);
}

/* A kernel too old (simulated): refused, and nothing changed. */
static void probe_old_abi(struct probe *r)
{
	r->dropped = drop_privileges();
	if (r->dropped)
		return;
	pid_t victim = start_sleeper();
	setenv("LATCH_LANDLOCK_ABI_MAX", "5", 1);
	enter(r);
	r->environ_after = open_proc(victim, "environ");
	r->kill_after = try_kill(victim);
	r->trace_after = try_trace(victim);
	r->kill_parent = try_kill(getppid());
	end(victim);
}

/* As root: refused, and nothing changed. */
static void probe_root(struct probe *r)
{
	pid_t victim = start_sleeper();
	enter(r);
	r->kill_after = try_kill(victim);
	r->environ_after = open_proc(victim, "environ");
	r->kill_parent = try_kill(getppid());
	end(victim);
}

/* Run `fn` in a child in a process group of its own; fill *r from what
 * it reports. Every process it started is killed and reaped (this
 * process is a subreaper, so orphans come back here). */
static void run_probe(void (*fn)(struct probe *), struct probe *r)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		report_fd = p[1];
		setpgid(0, 0);
		alarm(20); /* a hung probe dies, and the parent sees a short read */
		struct probe mine;
		memset(&mine, 0, sizeof mine);
		fn(&mine);
		ssize_t n = write(p[1], &mine, sizeof mine);
		_exit(n == (ssize_t)sizeof mine ? 0 : 1);
	}
	setpgid(pid, pid);
	close(p[1]);
	memset(r, 0, sizeof *r);
	size_t got = 0;
	struct pollfd pfd = {.fd = p[0], .events = POLLIN};
	while (got < sizeof *r && poll(&pfd, 1, 30000) > 0) {
		ssize_t n = read(p[0], (char *)r + got, sizeof *r - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	kill(-pid, SIGKILL);
	int st;
	while (waitpid(-1, &st, 0) > 0 || errno == EINTR)
		;
	assert_int_equal(got, sizeof *r);
}

static void abi_is_probed(void **state)
{
	(void)state;
	unsetenv("LATCH_LANDLOCK_ABI_MAX");
	kernel_abi = run_landlock_abi();
	print_message("Landlock ABI offered by this kernel: %d\n", kernel_abi);
	if (kernel_abi == 0) {
		print_message("skipping: no Landlock in this kernel (or disabled at boot)\n");
		skip();
	}
	assert_true(kernel_abi > 0);
	/* The knob caps, only downwards; nonsense caps at 0. */
	setenv("LATCH_LANDLOCK_ABI_MAX", "5", 1);
	assert_int_equal(run_landlock_abi(), kernel_abi < 5 ? kernel_abi : 5);
	setenv("LATCH_LANDLOCK_ABI_MAX", "99", 1);
	assert_int_equal(run_landlock_abi(), kernel_abi);
	setenv("LATCH_LANDLOCK_ABI_MAX", "0", 1);
	assert_int_equal(run_landlock_abi(), 0);
	setenv("LATCH_LANDLOCK_ABI_MAX", "7x", 1);
	assert_int_equal(run_landlock_abi(), 0);
	setenv("LATCH_LANDLOCK_ABI_MAX", "-1", 1);
	assert_int_equal(run_landlock_abi(), 0);
	setenv("LATCH_LANDLOCK_ABI_MAX", "", 1);
	assert_int_equal(run_landlock_abi(), 0);
	unsetenv("LATCH_LANDLOCK_ABI_MAX");
	assert_int_equal(run_landlock_abi(), kernel_abi);
}

static void old_abi_is_refused(void **state)
{
	(void)state;
	if (kernel_abi == 0)
		skip();
	struct probe r;
	run_probe(probe_old_abi, &r);
	assert_int_equal(r.dropped, 0);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.status, LATCH_OPERR);
	assert_non_null(strstr(r.message, "ABI 5"));
	assert_null(strchr(r.message, '\n'));
	/* Nothing changed: no no_new_privs, and others are in reach. */
	assert_int_equal(r.nnp_after, 0);
	assert_int_equal(r.environ_after, 0);
	assert_int_equal(r.kill_after, 0);
	assert_int_equal(r.trace_after, 0);
}

static void root_is_refused(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		print_message("skipping: not running as root\n");
		skip();
	}
	struct probe r;
	run_probe(probe_root, &r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.status, LATCH_OPERR);
	assert_non_null(strstr(r.message, "root"));
	assert_int_equal(r.nnp_after, 0);
	assert_int_equal(r.kill_after, 0);
	assert_int_equal(r.environ_after, 0);
	assert_int_equal(r.kill_parent, 0);
}

static void domain_cannot_reach_outside(void **state)
{
	(void)state;
	if (kernel_abi < 6) {
		print_message("skipping: Landlock ABI %d has no signal scoping\n", kernel_abi);
		skip();
	}
	struct probe r;
	run_probe(probe_domain, &r);
	assert_int_equal(r.dropped, 0);
	/* Before entering, every attack works: the test can fail. */
	assert_int_equal(r.environ_before, 0);
	assert_int_equal(r.mem_before, 0);
	assert_int_equal(r.fd_before, 0);
	assert_int_equal(r.kill_before, 0);
	assert_int_equal(r.trace_before, 0);
	assert_int_equal(r.connect_before, 0);

	if (r.rc != 0)
		print_message("run_sandbox_enter: %s\n", r.message);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.sb.abi, kernel_abi);
	assert_true(r.sb.ptrace);
	assert_true(r.sb.signals);
	assert_true(r.sb.abstract_unix);
	assert_int_equal(r.nnp_after, 1);

	/* Inside, the victim is out of reach. */
	print_message("inside: environ %s, mem %s, fd %s, kill %s, ptrace %s, connect %s\n", strerror(r.environ_after),
		      strerror(r.mem_after), strerror(r.fd_after), strerror(r.kill_after), strerror(r.trace_after),
		      strerror(r.connect_after));
	assert_true(r.environ_after == EACCES || r.environ_after == EPERM);
	assert_true(r.mem_after == EACCES || r.mem_after == EPERM);
	assert_true(r.fd_after == EACCES || r.fd_after == EPERM);
	assert_int_equal(r.kill_after, EPERM);
	assert_int_equal(r.trace_after, EPERM);
	assert_int_equal(r.connect_after, EPERM);

	/* What the domain started itself is not. */
	assert_int_equal(r.environ_own, 0);
	assert_int_equal(r.mem_own, 0);
	assert_int_equal(r.fd_own, 0);
	assert_int_equal(r.kill_own, 0);
	assert_int_equal(r.trace_own, 0);
	assert_int_equal(r.connect_own, 0);

	/* Files and the network work as before. */
	assert_int_equal(r.file_read, 0);
	assert_int_equal(r.file_write, 0);
	assert_int_equal(r.inet_bind, 0);
}

int main(void)
{
	latch_error_quiet(true);
	/* Orphaned probe processes come back here to be reaped. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(abi_is_probed),
		cmocka_unit_test(old_abi_is_refused),
		cmocka_unit_test(root_is_refused),
		cmocka_unit_test(domain_cannot_reach_outside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
