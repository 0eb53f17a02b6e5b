/* The broker daemon's serve loop: grants in locked memory, enforced here
 * and only here. One thread, one poll loop: every connection is
 * non-blocking and has an absolute deadline, so expiry, revocation and
 * stop never wait for a client. What a request does is protocol.c's. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
/* At stop, how long runners that are exiting are waited for. */
#define STOP_REAP_MS 300

/* A client connection: a request comes in, its answer goes out, and so
 * on until the client closes it or its deadline passes. */
struct conn {
	int fd;
	int64_t deadline_ms;
	struct secbuf *in;
	struct secbuf *out; /* the answer being sent (wiped when freed) */
	size_t out_off;
	struct broker_peer peer;
};

/* The daemon: its state and its connections. */
struct daemon {
	struct broker b;
	struct conn conns[MAX_CONNS];
	size_t n_conns;
};

/* The signal flag. */
static volatile sig_atomic_t stopping;

static void conn_close(struct daemon *d, size_t i)
{
	struct conn *c = &d->conns[i];
	close(c->fd);
	for (size_t k = 0; k < c->peer.n_fds; k++)
		close(c->peer.fds[k]);
	secbuf_free(c->in);
	secbuf_free(c->out);
	sodium_memzero(&c->peer, sizeof c->peer);
	d->conns[i] = d->conns[--d->n_conns];
}

/* Sends what it can of the answer: 1 all sent, 0 more to send, -1 the
 * connection is done for. */
static int conn_send(struct conn *c)
{
	while (c->out_off < c->out->len) {
		ssize_t w = send(c->fd, c->out->data + c->out_off, c->out->len - c->out_off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w <= 0)
			return -1;
		c->out_off += (size_t)w;
	}
	secbuf_free(c->out);
	c->out = NULL;
	c->out_off = 0;
	return 1;
}

/* The first whole request in the buffer, answered: 1 answered, 0 none
 * whole yet, -1 close. */
static int conn_handle(struct daemon *d, struct conn *c)
{
	size_t used = 0;
	struct secbuf *answer = proto_answer(&d->b, &c->peer, c->in->data, c->in->len, &used);
	if (!used)
		return 0;
	/* The request is consumed; what follows it stays. */
	size_t rest = c->in->len - used;
	memmove(c->in->data, c->in->data + used, rest);
	sodium_memzero(c->in->data + rest, c->in->len - rest);
	c->in->len = rest;
	if (!answer)
		return -1;
	c->out = answer;
	c->out_off = 0;
	return conn_send(c) < 0 ? -1 : 1;
}

/* Keep the descriptors that came with a message: at most four, once
 * per connection (a run's); any others are closed and the run refused. */
static void take_fds(struct conn *c, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[8];
		memcpy(fds, CMSG_DATA(cm), (n < 8 ? n : 8) * sizeof(int));
		bool room = !c->peer.n_fds && n <= 4;
		for (size_t k = 0; k < n && k < 8; k++) {
			if (room)
				c->peer.fds[c->peer.n_fds++] = fds[k];
			else
				close(fds[k]);
		}
		c->peer.fds_bad = c->peer.fds_bad || !room;
	}
	if (mh->msg_flags & MSG_CTRUNC)
		c->peer.fds_bad = true;
}

/* Reads what has arrived. -1: close (EOF, error, too long a request). */
static int conn_read(struct conn *c)
{
	for (;;) {
		if (c->in->len == c->in->cap && wire_grow(&c->in) != 0)
			return -1;
		union {
			char buf[CMSG_SPACE(8 * sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {c->in->data + c->in->len, c->in->cap - c->in->len};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof ctl};
		ssize_t r = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
		if (r >= 0)
			take_fds(c, &mh);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0)
			return -1;
		size_t before = c->in->len;
		c->in->len += (size_t)r;
		if (memchr(c->in->data + before, '\n', (size_t)r))
			return 0;
	}
}

static void accept_all(struct daemon *d, int lfd)
{
	while (d->n_conns < MAX_CONNS) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ucred peer;
		socklen_t len = sizeof peer;
		struct secbuf *in = NULL;
		/* Same user only; the 0700 directory already keeps others out. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != geteuid() ||
		    !(in = secbuf_new(2048))) {
			close(fd);
			continue;
		}
		d->conns[d->n_conns++] = (struct conn){.fd = fd,
						       .peer = {.cred = peer, .conn_fd = fd},
						       .in = in,
						       .deadline_ms = monotonic_ms() + BROKER_CONN_DEADLINE_MS};
	}
}

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* SIGCHLD: a runner ended. Blocked but while the loop waits (ppoll), so
 * the wait cannot miss one. */
static void on_child(int sig)
{
	(void)sig;
}

static int detach(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return latch_error(LATCH_OPERR, "cannot start the broker: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	setsid();
	pid = fork();
	if (pid < 0)
		_exit(LATCH_OPERR);
	if (pid > 0)
		_exit(0);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	if (chdir("/") != 0)
		return -1;
	return 0;
}

static int idle_seconds(void)
{
	const char *s = getenv("LATCH_BROKER_IDLE");
	int v = s ? atoi(s) : 0;
	return v > 0 ? v : 600;
}

int broker_detach(bool foreground, int keep)
{
	/* No inherited descriptor may keep a caller's pipe open (a test
	 * runner waits for its output to close). */
	if (keep > 3)
		return latch_error(LATCH_USAGE, "the enrolment descriptor must be 3");
	closefrom(keep == 3 ? 4 : 3);
	return foreground ? 0 : detach();
}

/* Reads the enrolment: instance id, key, audit stream keys. */
static int take_enrolment(struct broker *b, int fd)
{
	struct wire_msg m;
	struct secbuf *msg = wire_read(fd, &m);
	if (!msg)
		return latch_error(LATCH_OPERR, "no enrolment came");
	int rc = proto_enrol(b, &m);
	wire_msg_clear(&m);
	secbuf_free(msg);
	return rc;
}

static void say(int fd, json_t *msg)
{
	if (msg)
		wire_send_json(fd, msg, NULL, 0);
	json_decref(msg);
}

/* The socket and the lock, ready; -1 reported (and said on enrol_fd). */
static int listen_on(const char *sock, const char *lock, int enrol_fd, int *lfd_out)
{
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0) {
		say(enrol_fd, json_pack("{s:b, s:s}", "ok", 0, "message", "cannot open the broker's lock file"));
		return latch_error(LATCH_OPERR, "cannot open '%s': %s", lock, strerror(errno));
	}
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		char text[32] = "";
		ssize_t r = pread(lfd, text, sizeof text - 1, 0);
		text[r > 0 ? r : 0] = '\0';
		close(lfd);
		say(enrol_fd, json_pack("{s:b, s:s, s:i}", "ok", 0, "error", "busy", "pid", atoi(text)));
		return latch_error(LATCH_OPERR, "another process holds the broker lock '%s'", lock);
	}
	/* The lock is ours: a socket file left here is a dead broker's. */
	unlink(sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (fd < 0 || strlen(sock) >= sizeof addr.sun_path) {
		if (fd >= 0)
			close(fd);
		close(lfd);
		say(enrol_fd, json_pack("{s:b, s:s}", "ok", 0, "message", "cannot create the broker socket"));
		return latch_error(LATCH_OPERR, "cannot create the broker socket");
	}
	memcpy(addr.sun_path, sock, strlen(sock) + 1);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || chmod(sock, 0600) != 0 || listen(fd, 64) != 0) {
		int e = errno;
		close(fd);
		close(lfd);
		say(enrol_fd, json_pack("{s:b, s:s}", "ok", 0, "message", "cannot listen on the broker socket"));
		return latch_error(LATCH_OPERR, "cannot listen on '%s': %s", sock, strerror(e));
	}
	char pidtext[32];
	int n = snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid());
	if (ftruncate(lfd, 0) != 0 || pwrite(lfd, pidtext, (size_t)n, 0) != n)
		latch_error(LATCH_OPERR, "cannot write the broker's pid to '%s'", lock);
	*lfd_out = lfd;
	return fd;
}

/* One turn of the loop's wait: until the next deadline (a grant's, a
 * connection's, the exit queue's), at least 1 s apart for grants. */
static int wait_ms(struct daemon *d, int64_t last, int idle, bool *live)
{
	int64_t now = broker_now(), t = monotonic_ms(), next = last + idle;
	*live = false;
	for (struct grant *g = d->b.grants; g; g = g->next)
		if (policy_live(g, now)) {
			*live = true;
			if (g->deadline < next)
				next = g->deadline;
		}
	int64_t ms = (next - now) * 1000;
	if (ms < 1000)
		ms = 1000; /* deadlines are in seconds: recheck each one */
	if (*live && ms > 60000)
		ms = 60000;
	int64_t due = exits_wait_ms(&d->b, t);
	if (due >= 0 && due < ms)
		ms = due;
	for (size_t i = 0; i < d->n_conns; i++) {
		due = d->conns[i].deadline_ms - t;
		ms = due < ms ? (due < 0 ? 0 : due) : ms;
	}
	return (int)ms;
}

static void serve_loop(struct daemon *d, int fd)
{
	int64_t last = broker_now();
	int idle = idle_seconds();
	struct pollfd pfds[MAX_CONNS + 1];
	sigset_t chld, waiting;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &waiting);
	sigdelset(&waiting, SIGCHLD);
	while (!stopping && !d->b.stop_asked) {
		runner_reap(&d->b);
		policy_sweep(d->b.grants, broker_now());
		int64_t t = monotonic_ms();
		for (size_t i = 0; i < d->n_conns;)
			if (d->conns[i].deadline_ms <= t)
				conn_close(d, i);
			else
				i++;
		bool live;
		int ms = wait_ms(d, last, idle, &live);
		if (!live && !d->b.pending && !d->n_conns && !d->b.n_runners && broker_now() - last >= idle)
			break;
		size_t np = 0;
		pfds[np++] = (struct pollfd){fd, d->n_conns < MAX_CONNS ? POLLIN : 0, 0};
		for (size_t i = 0; i < d->n_conns; i++)
			pfds[np++] = (struct pollfd){d->conns[i].fd, d->conns[i].out ? POLLOUT : POLLIN, 0};
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		int r = ppoll(pfds, np, &ts, &waiting);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0) {
			/* Connections first (by their fd, as accept moves the array). */
			for (size_t k = 1; k < np; k++) {
				if (!pfds[k].revents)
					continue;
				size_t i = 0;
				while (i < d->n_conns && d->conns[i].fd != pfds[k].fd)
					i++;
				if (i == d->n_conns)
					continue;
				struct conn *c = &d->conns[i];
				int st = 0;
				if (c->out)
					st = conn_send(c);
				else if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR))
					st = conn_read(c);
				while (st >= 0 && !c->out && (st = conn_handle(d, c)) > 0)
					;
				if (st < 0)
					conn_close(d, i);
				last = broker_now();
			}
			if (pfds[0].revents & POLLIN)
				accept_all(d, fd);
		}
		if (exits_due(&d->b, monotonic_ms()))
			exits_record(&d->b, NULL);
	}
}

int broker_serve(const char *vault_dir, int enrol_fd, const struct broker_recorder *rec, broker_run_fn run,
		 const struct broker_prep *prep)
{
	char sock[PATH_MAX], lock[PATH_MAX];
	if (broker_paths(vault_dir, sock, lock) != 0)
		return -1;
	struct timeval tv = {30, 0};
	setsockopt(enrol_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	int lfd = -1, fd = listen_on(sock, lock, enrol_fd, &lfd);
	if (fd < 0)
		return -1;
	static struct daemon d;
	state_init(&d.b, rec);
	d.b.run = run;
	d.b.prep = prep;
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_child;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Ready: the passphrase holder that started us opens our audit stream
	 * with our pid and sends the keys. Nothing is served before. */
	say(enrol_fd, json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid()));
	int rc = take_enrolment(&d.b, enrol_fd);
	say(enrol_fd, json_pack("{s:b}", "ok", rc == 0));
	close(enrol_fd);
	if (rc == 0) {
		serve_loop(&d, fd);
		/* Its last record: what it still holds, and that it stopped,
		 * which ends its stream. A runner has told its caller the exit
		 * a moment before it exits itself: those are waited for, a
		 * little (a stop right after a run must record its exit).
		 * Runners whose child still runs go on; their exits go
		 * unrecorded (docs/audit.md). */
		runner_reap(&d.b);
		for (int64_t until = monotonic_ms() + STOP_REAP_MS; d.b.n_runners && monotonic_ms() < until;) {
			struct timespec nap = {0, 5 * 1000000L};
			nanosleep(&nap, NULL);
			runner_reap(&d.b);
		}
		struct broker_event ev = {.event = "stop", .pid = d.b.pid, .uid = getuid(), .exit_status = -1};
		exits_record(&d.b, &ev);
	}
	/* Forget everything before the socket goes away. */
	for (struct grant *g = d.b.grants; g; g = g->next)
		policy_end(g, "broker stopped");
	while (d.n_conns)
		conn_close(&d, d.n_conns - 1);
	state_free(&d.b);
	unlink(sock);
	close(fd);
	close(lfd);
	return rc;
}
