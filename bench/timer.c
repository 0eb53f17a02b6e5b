/* bench/timer: wall-clock statistics for bench/run.sh.
 *
 *   timer [-n RUNS] [-w WARMUP] [-e LOG] [--fd N=FILE]... -- COMMAND [ARG...]
 *       Run COMMAND (no shell) RUNS times after WARMUP untimed runs, each
 *       with fd N opened read-only on FILE (N=0 for stdin; fd 0 is
 *       /dev/null if not given), stdout to /dev/null, stderr appended to
 *       LOG (inherited without -e).
 *       Any run that does not exit 0 stops the measurement with status 1.
 *   timer --hyperfine-json FILE
 *       Read the per-run times of the first result in a `hyperfine
 *       --export-json` file, so both timing paths print the same figures.
 *   timer --stats
 *       Read times in ms, one per line, from stdin (e.g. bench/kdf's
 *       samples from runs before and after a measurement).
 *
 * Output, one line on stdout:
 *   runs=N median_ms=X p90_ms=X mean_ms=X min_ms=X max_ms=X
 * p90 is the nearest-rank 90th percentile. This is the fallback when
 * hyperfine is not installed, and the statistics step when it is. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 10000
#define MAX_FDS 8

struct redirect {
	int fd;
	const char *path;
};

static double samples[MAX_RUNS];

static int report(int n)
{
	if (n < 1) {
		fputs("timer: no samples\n", stderr);
		return 1;
	}
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += samples[i];
	double mid = median(samples, n); /* sorts samples */
	int rank = (9 * n + 9) / 10;     /* nearest rank: ceil(0.9 n), 1-based */
	printf("runs=%d median_ms=%.2f p90_ms=%.2f mean_ms=%.2f min_ms=%.2f max_ms=%.2f\n", n, mid, samples[rank - 1],
	       sum / n, samples[0], samples[n - 1]);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int from_stdin(void)
{
	int n = 0;
	double t;
	while (n < MAX_RUNS && scanf("%lf", &t) == 1)
		samples[n++] = t;
	if (!feof(stdin) && n < MAX_RUNS) {
		fputs("timer: --stats reads numbers, one per line\n", stderr);
		return 1;
	}
	return report(n);
}

static int from_hyperfine(const char *path)
{
	json_error_t err;
	json_t *root = json_load_file(path, 0, &err);
	if (!root) {
		fprintf(stderr, "timer: cannot read '%s': %s\n", path, err.text);
		return 1;
	}
	json_t *times = json_object_get(json_array_get(json_object_get(root, "results"), 0), "times");
	int n = 0;
	if (json_is_array(times)) {
		size_t i;
		json_t *t;
		json_array_foreach(times, i, t)
		{
			if (!json_is_number(t) || n == MAX_RUNS)
				break;
			samples[n++] = json_number_value(t) * 1e3; /* seconds -> ms */
		}
	}
	json_decref(root);
	if (n == 0) {
		fprintf(stderr, "timer: no times in '%s'\n", path);
		return 1;
	}
	return report(n);
}

/* In the child: set up fds, then exec. Never returns. */
static void child(char **argv, const struct redirect *r, int nr, const char *log)
{
	int devnull = open("/dev/null", O_RDWR);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0)
		_exit(126);
	if (log) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		if (fd != 2)
			close(fd);
	}
	if (devnull > 2)
		close(devnull);
	for (int i = 0; i < nr; i++) {
		int fd = open(r[i].path, O_RDONLY);
		if (fd < 0 || dup2(fd, r[i].fd) < 0) {
			fprintf(stderr, "timer: cannot open '%s': %s\n", r[i].path, strerror(errno));
			_exit(126);
		}
		if (fd != r[i].fd)
			close(fd);
	}
	execvp(argv[0], argv);
	fprintf(stderr, "timer: cannot run '%s': %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* One run: its wall time in ms, or a negative value if it failed. */
static double run_once(char **argv, const struct redirect *r, int nr, const char *log)
{
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		perror("timer: fork");
		return -1;
	}
	if (pid == 0)
		child(argv, r, nr, log);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("timer: waitpid");
			return -1;
		}
	}
	double t = now_ms() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFSIGNALED(status))
			fprintf(stderr, "timer: '%s' died of signal %d\n", argv[0], WTERMSIG(status));
		else
			fprintf(stderr, "timer: '%s' exited with status %d\n", argv[0], WEXITSTATUS(status));
		return -1;
	}
	return t;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int usage(void)
{
	fputs("usage: timer [-n RUNS] [-w WARMUP] [-e LOG] [--fd N=FILE]... -- COMMAND [ARG...]\n"
	      "       timer --hyperfine-json FILE\n"
	      "       timer --stats\n",
	      stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--hyperfine-json"))
		return from_hyperfine(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "--stats"))
		return from_stdin();
	int runs = 10, warmup = 1, nr = 0, i;
	const char *log = NULL;
	struct redirect r[MAX_FDS];
	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (i + 1 == argc)
			return usage();
		if (!strcmp(argv[i], "-n")) {
			if (parse_int(argv[++i], 1, MAX_RUNS, &runs) != 0)
				return usage();
		} else if (!strcmp(argv[i], "-w")) {
			if (parse_int(argv[++i], 0, MAX_RUNS, &warmup) != 0)
				return usage();
		} else if (!strcmp(argv[i], "-e")) {
			log = argv[++i];
		} else if (!strcmp(argv[i], "--fd") && nr < MAX_FDS) {
			char spec[32];
			const char *arg = argv[++i], *eq = strchr(arg, '=');
			if (!eq || (size_t)(eq - arg) >= sizeof spec)
				return usage();
			memcpy(spec, arg, (size_t)(eq - arg));
			spec[eq - arg] = '\0';
			if (parse_int(spec, 0, 63, &r[nr].fd) != 0 || r[nr].fd == 1)
				return usage();
			r[nr++].path = eq + 1;
		} else {
			return usage();
		}
	}
	if (i + 1 >= argc)
		return usage();
	char **cmd = argv + i + 1;
	for (int k = 0; k < warmup; k++)
		if (run_once(cmd, r, nr, log) < 0)
			return 1;
	for (int k = 0; k < runs; k++) {
		double t = run_once(cmd, r, nr, log);
		if (t < 0)
			return 1;
		samples[k] = t;
	}
	return report(runs);
}
