/* common: errors, secure buffers, files and permissions, terminal input,
 * time and process hardening. Everything here is used by more than one
 * module; nothing here knows about vaults, grants or git. */
#ifndef LATCH_COMMON_H
#define LATCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* The version `latch --version` prints and the User-Agent names. */
#define LATCH_VERSION "0.1.0"

/* Exit statuses (docs/design.md). Modules record one of these with
 * latch_error(); only cli/ turns it into an exit. */
enum latch_status {
	LATCH_OK = 0,
	LATCH_FINDINGS = 1, /* scan found a value, verify failed */
	LATCH_USAGE = 2,    /* bad command line or bad input */
	LATCH_OPERR = 3,    /* I/O, corrupt or tampered data, network */
	LATCH_DENIED = 4,   /* wrong passphrase, no live grant, policy */
};

/* Print "latch: <message>" on stderr as one line, remember `status` as the
 * reason for the failure and return -1, so that callers can write
 * `return latch_error(LATCH_OPERR, "cannot open '%s': %s", p, strerror(e));`.
 * Never pass a secret value in the arguments. */
int latch_error(enum latch_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The longest message latch_error prints whole (longer ones are cut). */
#define LATCH_ERROR_MAX 1023
/* The status of the most recent latch_error() (LATCH_OPERR if none). */
enum latch_status latch_last_status(void);
/* The most recent latch_error()'s message, escaped, without "latch: "
 * ("" if none), printed or not: for a caller that reports it differently,
 * such as a warning after a fallback. */
const char *latch_last_message(void);
/* Suppress (quiet=true) or restore printing; the status and the message
 * are still kept. */
bool latch_error_quiet(bool quiet); /* returns the previous setting */
/* Print the most recent message now (unless quiet): for a caller that
 * held a failure back while it might still retry, and then gave up. */
void latch_error_print_last(void);

/* Secure buffer: sodium_malloc'd (guard pages, mlock where allowed),
 * zeroed when freed. Keys, passphrases and plaintext live only in these. */
struct secbuf {
	unsigned char *data;
	size_t len;
	size_t cap;
};
struct secbuf *secbuf_new(size_t cap);
void secbuf_free(struct secbuf *b); /* NULL-safe, wipes */
/* Small freed buffers kept (wiped, locked) for reuse: a leak check that
 * counts sodium_malloc blocks subtracts these. */
size_t secbuf_cached(void);

/* Hardening done first thing in main(): no core dumps, not dumpable or
 * traceable by the same user, umask 077, fds 0-2 guaranteed open (so that
 * a file we open can never become someone's stdout), and jansson's blocks
 * wiped when freed (json_use_wiping_allocator). Returns -1 on failure. */
int harden_process(void);

/* Filesystem checks. latch refuses a path that is a symlink, is owned by
 * another user, or is accessible by group or others. The error message says
 * how to fix it. */
int check_private_dir(const char *path);
int check_private_file(const char *path); /* ENOENT is not an error: 1 */
/* Create `path` (and missing parents, 0700) if needed, then check it. */
int ensure_private_dir(const char *path);

/* latch's directories (common/paths.c), without a trailing '/':
 * data: $LATCH_HOME, else $XDG_DATA_HOME/latch, else ~/.local/share/latch
 *   (the vault);
 * config: $XDG_CONFIG_HOME/latch, else ~/.config/latch (federation
 *   profiles);
 * runtime: $XDG_RUNTIME_DIR/latch, else <data>/run (sockets, the model
 *   token's cache; a tmpfs where XDG_RUNTIME_DIR is one).
 * Only relative or unset variables fall through to the next. Nothing is
 * created, except the data directory that the runtime fallback lives in. */
int latch_data_dir(char *buf, size_t n);
int latch_config_dir(char *buf, size_t n);
int latch_runtime_dir(char *buf, size_t n);

/* fsync a directory, so that a rename or link in it is durable. */
int fsync_dir(const char *dir);
/* The first half of replacing a file atomically: a new file named from
 * `tmpl` (a path ending in "XXXXXX", filled in place; in the directory
 * of the file it will replace), mode `mode`, holding the `len` bytes of
 * `data`, synced and closed. The caller renames or links it into place.
 * 0, or -1 reported, with no file left behind. */
int file_write_temp(char *tmpl, mode_t mode, const void *data, size_t len);

/* Read at most `max` bytes from fd into a new secbuf. If more than `max`
 * bytes are available it fails: with `*too_big` set and nothing reported
 * when too_big is non-NULL (the caller names the input), else reported. */
int read_fd_secret(int fd, size_t max, struct secbuf **out, bool *too_big);
/* Read one line (without its newline) of at most `max` bytes from fd,
 * byte by byte so nothing past the line is consumed or copied. */
int read_fd_line_secret(int fd, size_t max, struct secbuf **out);
/* Read one line from /dev/tty with echo off, after writing `prompt` to it.
 * Restores the terminal on every path, including signals. A stop at the
 * prompt (^Z, kill -STOP, a read in the background) hands the terminal
 * back; once continued in the foreground, echo is off again and the prompt
 * is repeated. Fails with LATCH_DENIED if there is no terminal. */
int tty_read_hidden(const char *prompt, size_t max, struct secbuf **out);
/* True if this process has a controlling terminal it can open. */
bool tty_available(void);

/* Text for a terminal. text_is_plain: UTF-8 with no control character
 * (C0, DEL, or C1). text_escape: `s` with each control character written as
 * \xNN (\u00NN for C1), cut to fit `n` bytes; everything else as it is
 * (a backslash too: a shell line shown in a message must stay exact). Use
 * it on anything printed for people that came from a file, the log or
 * another process. */
bool text_is_plain(const char *s);
void text_escape(const char *s, char *out, size_t n);

/* The one rule for names of secrets (and of named keys, and grant ids):
 * [A-Za-z0-9][A-Za-z0-9_./-]{0,127}, so that a name needs no quoting in a
 * message, a terminal, JSON or an environment file. LATCH_NAME_RULE is how
 * messages state it. */
#define LATCH_NAME_MAX 128
#define LATCH_NAME_RULE "1-128 of [A-Za-z0-9_./-], starting with a letter or digit"
bool latch_name_valid(const char *name);

/* Milliseconds of CLOCK_MONOTONIC: for timeouts and schedules, which a
 * change of the wall clock must not move. */
int64_t monotonic_ms(void);
/* Format a UNIX time as RFC 3339 UTC ("2026-11-23T15:42:09Z"). */
void format_time_utc(int64_t t, char buf[32]);
/* Parse a decimal file descriptor number >= 0. */
int parse_fd(const char *s, int *fd);

/* A duration: 1 to 11 digits and one unit s, m, h, d or w ("90s", "30m",
 * "24h", "2w"), in seconds; false (nothing reported) for anything else. */
bool duration_seconds(const char *s, int64_t *seconds);
/* The same for an option: fails (LATCH_USAGE, naming `what`) on anything
 * else or above `max`. */
int parse_duration(const char *s, int64_t max, const char *what, int64_t *seconds);

/* Make jansson allocate through a wrapper that wipes every block when it
 * is freed. No value is JSON any more (values travel as binary frames in
 * secure memory); this is a backstop for what JSON still carries, such as
 * a broker's nonces and the grant's sealed box. Call once, before any
 * JSON is built. */
void json_use_wiping_allocator(void);
/* --json output (common/jout.c), so that cli/ needs no JSON library:
 * build an object or array, set members (`key` NULL appends to an
 * array; a NULL string becomes null), then print it to stdout with a
 * newline (pretty: indented by 2) and free it. A failed allocation is
 * remembered and reported by jout_print (-1). jout_add takes `child`. */
struct jout;
struct jout *jout_object(void);
struct jout *jout_array(void);
void jout_str(struct jout *j, const char *key, const char *s);
void jout_int(struct jout *j, const char *key, int64_t n);
void jout_bool(struct jout *j, const char *key, bool b);
void jout_add(struct jout *j, const char *key, struct jout *child);
int jout_print(struct jout *j, bool pretty);
void jout_free(struct jout *j);

/* Start a helper process: argv[0] a path (`search`: looked up along PATH,
 * as execvp), stdin from `in` and stdout to `out` (-1: /dev/null), stderr
 * inherited, no other descriptor, an empty signal mask and default
 * dispositions, in a process group of its own when `own_group`. No shell.
 * 0 with *pid, or the errno value (nothing reported). (common/spawn.c) */
int spawn_plain(char *const argv[], bool search, int in, int out, bool own_group, pid_t *pid);

/* write(2) until done, across EINTR and short writes; -1 on error. */
int write_all(int fd, const void *buf, size_t n);

/* Free text from json_dumps() with jansson's current allocator (plain
 * free() would be wrong once the wiping allocator is in use). NULL-safe. */
void json_free_text(char *text);

#endif
