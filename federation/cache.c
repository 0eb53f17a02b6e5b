/* The model token's cache and its single flight (federation.h), and the
 * --fed-file directory a child reads its token from.
 *
 * <runtime>/fed/token-H.json holds one profile's access token, 0600,
 * replaced by rename so that a reader sees a whole file or the previous
 * one; H hashes everything the exchange depends on (base URL, ids, the
 * identity source), so two profiles that would mint different tokens
 * never share one. <runtime>/fed/lock-S is the single flight: S hashes
 * the identity source alone, because what must not happen twice is
 * presenting one identity token (a jti is single use), whichever profile
 * presents it. A reader that finds a token with more than
 * FED_REFRESH_BEFORE seconds left takes it without the lock: that is
 * every `latch run --fed` but one per refresh, and costs one small file
 * read (bench/fed.sh). */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* A cache file is a few hundred bytes; anything much larger is not one. */
#define CACHE_MAX (64 * 1024)

struct cached {
	struct secbuf *token;
	int64_t expires_at;
	unsigned char jwt_hash[32];
	bool has_hash;
};

static void cached_clear(struct cached *c)
{
	secbuf_free(c->token);
	memset(c, 0, sizeof *c);
}

static int fed_runtime(char out[PATH_MAX])
{
	char rt[PATH_MAX];
	if (latch_runtime_dir(rt, sizeof rt) != 0 || ensure_private_dir(rt) != 0)
		return -1;
	int n = snprintf(out, PATH_MAX, "%s/fed", rt);
	if (n < 0 || n >= PATH_MAX)
		return latch_error(LATCH_USAGE, "runtime directory path is too long");
	return ensure_private_dir(out);
}

static void hash_str(crypto_generichash_state *st, const char *s)
{
	s = s ? s : "";
	crypto_generichash_update(st, (const unsigned char *)s, strlen(s) + 1);
}

/* Hash the NUL-separated fields, then everything that picks the identity
 * token (the source's description names only the program of an exec
 * source and no URL header: two commands or header sets that differ are
 * different sources), into 16 hex digits: names, not secrets; a
 * collision would only share a cache between two profiles. */
static void name_hash(const char *const *fields, size_t n, const struct fed_source *s, char hex[17])
{
	crypto_generichash_state st;
	unsigned char h[8];
	crypto_generichash_init(&st, NULL, 0, sizeof h);
	for (size_t i = 0; i < n; i++)
		hash_str(&st, fields[i]);
	for (size_t i = 0; i < s->argc; i++)
		hash_str(&st, s->argv[i]);
	for (size_t i = 0; i < s->n_headers; i++)
		hash_str(&st, s->headers[i]);
	hash_str(&st, s->field);
	crypto_generichash_final(&st, h, sizeof h);
	sodium_bin2hex(hex, 17, h, sizeof h);
}

/* The cache file's and the lock's paths for a profile. */
static int cache_paths(const struct fed_profile *p, char cache[PATH_MAX], char lock[PATH_MAX])
{
	char dir[PATH_MAX], src[1024], hc[17], hl[17];
	if (fed_runtime(dir) != 0)
		return -1;
	fed_source_describe(&p->source, src, sizeof src);
	const char *all[] = {p->base_url ? p->base_url : FED_DEFAULT_BASE_URL,
			     p->rule_id,
			     p->org_id,
			     p->service_account_id,
			     p->workspace_id,
			     src};
	const char *one[] = {src};
	name_hash(all, sizeof all / sizeof all[0], &p->source, hc);
	name_hash(one, 1, &p->source, hl);
	if (snprintf(cache, PATH_MAX, "%s/token-%s.json", dir, hc) >= PATH_MAX ||
	    (lock && snprintf(lock, PATH_MAX, "%s/lock-%s", dir, hl) >= PATH_MAX))
		return latch_error(LATCH_USAGE, "runtime directory path is too long");
	return 0;
}

/* Read a cache file: 0 and *c filled, 1 if there is none, -1 reported.
 * A file that is not ours and private, or not a cache file, is an error:
 * something other than latch wrote it. With `with_token` false only the
 * expiry is read into *c (the token stays out of memory we keep). */
static int cache_read(const char *path, bool with_token, struct cached *c)
{
	memset(c, 0, sizeof *c);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0)
		return latch_error(LATCH_OPERR, "cannot open the token cache '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return latch_error(LATCH_OPERR, "the token cache '%s' is not a private file of this user; remove it",
				   path);
	}
	struct secbuf *raw = NULL;
	bool too_big = false;
	int rc = read_fd_secret(fd, CACHE_MAX, &raw, &too_big);
	close(fd);
	if (rc != 0)
		return too_big ? latch_error(LATCH_OPERR, "the token cache '%s' is too large", path) : -1;
	json_error_t err;
	json_t *o = json_loadb((const char *)raw->data, raw->len, JSON_REJECT_DUPLICATES, &err);
	secbuf_free(raw);
	json_t *tok = json_object_get(o, "access_token"), *exp = json_object_get(o, "expires_at");
	const char *hash = json_string_value(json_object_get(o, "jwt_hash"));
	size_t tlen = json_string_length(tok);
	rc = 0;
	if (!json_is_object(o) || !json_is_string(tok) || tlen == 0 || !json_is_integer(exp)) {
		rc = latch_error(LATCH_OPERR, "the token cache '%s' is damaged; run 'latch fed logout' for its profile",
				 path);
	} else {
		c->expires_at = json_integer_value(exp);
		size_t got = 0;
		c->has_hash = hash &&
			      sodium_hex2bin(c->jwt_hash, sizeof c->jwt_hash, hash, strlen(hash), NULL, &got, NULL) ==
				      0 &&
			      got == sizeof c->jwt_hash;
		if (with_token) {
			if (!(c->token = secbuf_new(tlen + 1))) {
				rc = latch_error(LATCH_OPERR, "out of memory");
			} else {
				memcpy(c->token->data, json_string_value(tok), tlen + 1);
				c->token->len = tlen;
			}
		}
	}
	json_decref(o);
	if (rc != 0)
		cached_clear(c);
	return rc;
}

/* Write `len` bytes to `path` by way of a private temporary file in the
 * same directory, renamed over it: readers see the old file or the new,
 * never a part. */
static int write_atomic(const char *path, const unsigned char *data, size_t len)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
		return latch_error(LATCH_USAGE, "path '%s' is too long", path);
	if (file_write_temp(tmp, 0600, data, len) != 0)
		return -1;
	if (rename(tmp, path) != 0) {
		int rc = latch_error(LATCH_OPERR, "cannot replace '%s': %s", path, strerror(errno));
		unlink(tmp);
		return rc;
	}
	return 0;
}

/* A JSON object's text in secure memory (the object holds a token):
 * json_dumps' own copy is wiped by the wiping allocator when freed. */
static int write_json_atomic(const char *path, json_t *o)
{
	if (!o)
		return latch_error(LATCH_OPERR, "out of memory");
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return latch_error(LATCH_OPERR, "out of memory");
	int rc = write_atomic(path, (const unsigned char *)text, strlen(text));
	json_free_text(text);
	return rc;
}

/* The credentials file format Anthropic's SDKs read (and latch's cache
 * uses too): version, type, access_token, expires_at. */
static json_t *credentials_json(const struct fed_token *t)
{
	json_t *o = json_object();
	if (o &&
	    (json_object_set_new(o, "version", json_string("1.0")) != 0 ||
	     json_object_set_new(o, "type", json_string("oauth_token")) != 0 ||
	     json_object_set_new(o, "access_token", json_stringn((const char *)t->token->data, t->token->len)) != 0 ||
	     json_object_set_new(o, "expires_at", json_integer(t->expires_at)) != 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int cache_write(const char *path, const struct fed_token *t, const unsigned char jwt_hash[32])
{
	char hex[65];
	sodium_bin2hex(hex, sizeof hex, jwt_hash, 32);
	json_t *o = credentials_json(t);
	if (o && json_object_set_new(o, "jwt_hash", json_string(hex)) != 0) {
		json_decref(o);
		o = NULL;
	}
	return write_json_atomic(path, o);
}

/* Hand a cached token over: t takes c's buffer. */
static void take(struct cached *c, struct fed_token *t)
{
	fed_token_clear(t);
	t->token = c->token;
	t->expires_at = c->expires_at;
	c->token = NULL;
	cached_clear(c);
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

int fed_token_get(const struct fed_profile *p, struct fed_token *t)
{
	memset(t, 0, sizeof *t);
	if (fed_profile_complete(p) != 0)
		return -1;
	char path[PATH_MAX], lock[PATH_MAX];
	if (cache_paths(p, path, lock) != 0)
		return -1;
	struct cached c;
	int rc = cache_read(path, true, &c);
	if (rc < 0)
		return -1;
	if (rc == 0 && c.expires_at - now_s() > FED_REFRESH_BEFORE) {
		take(&c, t);
		return 0;
	}
	cached_clear(&c);

	/* Someone must exchange: one process at a time per identity source.
	 * The others wait here and then find the fresh token. The holder's
	 * exchange is bounded by its timeouts, so the wait is too. */
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0)
		return latch_error(LATCH_OPERR, "cannot open the lock '%s': %s", lock, strerror(errno));
	while (flock(lfd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			int e = errno;
			close(lfd);
			return latch_error(LATCH_OPERR, "cannot lock '%s': %s", lock, strerror(e));
		}
	}
	rc = cache_read(path, true, &c);
	if (rc < 0)
		goto out;
	int64_t left = rc == 0 ? c.expires_at - now_s() : 0;
	if (rc == 0 && left > FED_REFRESH_BEFORE) {
		take(&c, t);
		rc = 0;
		goto out;
	}
	unsigned char hash[32];
	/* In the refresh window the old token still serves if this fails:
	 * say why once, as a warning, and go on. */
	bool fallback = rc == 0 && left > FED_EXP_SKEW;
	if (fallback)
		latch_error_quiet(true);
	int ex = fed_exchange(p, c.has_hash ? c.jwt_hash : NULL, t, hash);
	if (fallback)
		latch_error_quiet(false);
	if (ex == 0) {
		/* A token we cannot cache is still a token: the next run
		 * exchanges again, which the message explains. */
		cache_write(path, t, hash);
		rc = 0;
	} else if (fallback) {
		fprintf(stderr, "latch: warning: %s; using the cached model token, valid for %lld s more\n",
			latch_last_message(), (long long)(c.expires_at - now_s()));
		take(&c, t);
		rc = 0;
	} else {
		rc = -1;
	}
out:
	cached_clear(&c);
	close(lfd); /* releases the lock */
	return rc;
}

void fed_token_clear(struct fed_token *t)
{
	if (!t)
		return;
	secbuf_free(t->token);
	memset(t, 0, sizeof *t);
}

int fed_cache_expiry(const struct fed_profile *p, int64_t *expires_at)
{
	char path[PATH_MAX];
	struct cached c;
	if (cache_paths(p, path, NULL) != 0)
		return -1;
	int rc = cache_read(path, false, &c);
	if (rc == 0)
		*expires_at = c.expires_at;
	cached_clear(&c);
	return rc;
}

int fed_cache_remove(const struct fed_profile *p)
{
	char path[PATH_MAX];
	if (cache_paths(p, path, NULL) != 0)
		return -1;
	if (unlink(path) == 0)
		return 0;
	if (errno == ENOENT)
		return 1;
	return latch_error(LATCH_OPERR, "cannot remove the token cache '%s': %s", path, strerror(errno));
}

/* --fed-file ------------------------------------------------------------ */

static int sub_path(char out[PATH_MAX], const char *dir, const char *sub, const char *name)
{
	int n = name ? snprintf(out, PATH_MAX, "%s/%s/%s.json", dir, sub, name)
		     : snprintf(out, PATH_MAX, "%s/%s", dir, sub);
	if (n < 0 || n >= PATH_MAX)
		return latch_error(LATCH_USAGE, "runtime directory path is too long");
	return 0;
}

int fed_file_update(const char *dir, const struct fed_profile *p, const struct fed_token *t)
{
	char path[PATH_MAX];
	if (sub_path(path, dir, "credentials", p->name) != 0)
		return -1;
	return write_json_atomic(path, credentials_json(t));
}

int fed_file_create(const struct fed_profile *p, const struct fed_token *t, char dir[PATH_MAX])
{
	char base[PATH_MAX], path[PATH_MAX];
	dir[0] = '\0';
	if (fed_runtime(base) != 0)
		return -1;
	if (snprintf(dir, PATH_MAX, "%s/child-XXXXXX", base) >= PATH_MAX) {
		dir[0] = '\0';
		return latch_error(LATCH_USAGE, "runtime directory path is too long");
	}
	if (!mkdtemp(dir)) {
		int e = errno;
		dir[0] = '\0';
		return latch_error(LATCH_OPERR, "cannot create a directory in '%s': %s", base, strerror(e));
	}
	/* A profile of type user_oauth without client_id: the SDK reads the
	 * token from credentials/ and never refreshes it itself (latch does). */
	json_t *auth = json_object(), *cfg = json_object();
	int rc = 0;
	if (!auth || !cfg || json_object_set_new(auth, "type", json_string("user_oauth")) != 0 ||
	    json_object_set_new(cfg, "version", json_string("1.0")) != 0 ||
	    json_object_set(cfg, "authentication", auth) != 0 ||
	    (p->base_url && json_object_set_new(cfg, "base_url", json_string(p->base_url)) != 0) ||
	    (p->workspace_id && json_object_set_new(cfg, "workspace_id", json_string(p->workspace_id)) != 0))
		rc = latch_error(LATCH_OPERR, "out of memory");
	json_decref(auth);
	if (rc == 0 && (sub_path(path, dir, "configs", NULL) != 0 || mkdir(path, 0700) != 0 ||
			sub_path(path, dir, "credentials", NULL) != 0 || mkdir(path, 0700) != 0))
		rc = latch_error(LATCH_OPERR, "cannot create '%s': %s", path, strerror(errno));
	if (rc == 0 && sub_path(path, dir, "configs", p->name) == 0) {
		rc = write_json_atomic(path, cfg);
		cfg = NULL;
	}
	json_decref(cfg);
	if (rc == 0)
		rc = fed_file_update(dir, p, t);
	if (rc != 0) {
		fed_file_remove(dir);
		dir[0] = '\0';
	}
	return rc;
}

/* The directory holds two known subdirectories and the files latch
 * wrote (and a temporary file a killed update may have left). */
void fed_file_remove(const char *dir)
{
	static const char *const subs[] = {"configs", "credentials"};
	if (!dir || !dir[0])
		return;
	for (size_t i = 0; i < 2; i++) {
		char sub[PATH_MAX];
		if (sub_path(sub, dir, subs[i], NULL) != 0)
			continue;
		int dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (dfd >= 0) {
			DIR *d = fdopendir(dfd);
			struct dirent *e;
			while (d && (e = readdir(d)))
				if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
					unlinkat(dfd, e->d_name, 0);
			if (d)
				closedir(d);
			else
				close(dfd);
		}
		rmdir(sub);
	}
	rmdir(dir);
}
