/* HTTP for federation (internal.h): the token endpoint and the identity
 * sources that are URLs, through libcurl.
 *
 * libcurl is opened with dlopen when the first request is made, not
 * linked: linked, it cost about 6.5 ms at every latch start (33 shared
 * libraries bound under -z now, TLS and all), and `latch run` may add 3 ms
 * in all. Commands that never exchange a token never load it. Only
 * <curl/curl.h>'s types and constants are used at build time; the nine
 * functions are found with dlsym.
 *
 * What is allowed on the wire: https, or http only to the loopback
 * address (a test server) or, for gcp_metadata, to its fixed server; no
 * user name in the URL; no redirects; peer and host verification always
 * on. libcurl's own handling of the proxy variables (https_proxy,
 * HTTPS_PROXY, no_proxy) is kept: corporate networks need it, and a proxy
 * sees only TLS for https. Bodies are never printed; the response is
 * collected in secure memory (libcurl's own buffers are not, and cannot
 * be). Nothing of a URL but its scheme, host and port reaches a message. */
#include "internal.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIBCURL_SONAME "libcurl.so.4"
#define DEFAULT_CONNECT_S 10
#define DEFAULT_TIMEOUT_S 30

typedef CURLcode (*curl_global_init_fn)(long flags);
typedef CURL *(*curl_easy_init_fn)(void);
typedef CURLcode (*curl_easy_setopt_fn)(CURL *curl, CURLoption option, ...);
typedef CURLcode (*curl_easy_perform_fn)(CURL *curl);
typedef CURLcode (*curl_easy_getinfo_fn)(CURL *curl, CURLINFO info, ...);
typedef void (*curl_easy_cleanup_fn)(CURL *curl);
typedef const char *(*curl_easy_strerror_fn)(CURLcode code);
typedef struct curl_slist *(*curl_slist_append_fn)(struct curl_slist *list, const char *s);
typedef void (*curl_slist_free_all_fn)(struct curl_slist *list);

static struct {
	bool tried, ok;
	char why[256]; /* why loading failed, for every later request */
	curl_global_init_fn global_init;
	curl_easy_init_fn easy_init;
	curl_easy_setopt_fn setopt;
	curl_easy_perform_fn perform;
	curl_easy_getinfo_fn getinfo;
	curl_easy_cleanup_fn cleanup;
	curl_easy_strerror_fn strerror;
	curl_slist_append_fn slist_append;
	curl_slist_free_all_fn slist_free_all;
} curl;

/* dlopen and dlsym once; a failure is remembered and reported again. */
static int curl_load(void)
{
	if (curl.tried) {
		if (curl.ok)
			return 0;
		return latch_error(LATCH_OPERR, "cannot load libcurl (" LIBCURL_SONAME "): %s", curl.why);
	}
	curl.tried = true;
	void *h = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *e = h ? NULL : dlerror();
	if (h) {
		curl.global_init = (curl_global_init_fn)dlsym(h, "curl_global_init");
		curl.easy_init = (curl_easy_init_fn)dlsym(h, "curl_easy_init");
		curl.setopt = (curl_easy_setopt_fn)dlsym(h, "curl_easy_setopt");
		curl.perform = (curl_easy_perform_fn)dlsym(h, "curl_easy_perform");
		curl.getinfo = (curl_easy_getinfo_fn)dlsym(h, "curl_easy_getinfo");
		curl.cleanup = (curl_easy_cleanup_fn)dlsym(h, "curl_easy_cleanup");
		curl.strerror = (curl_easy_strerror_fn)dlsym(h, "curl_easy_strerror");
		curl.slist_append = (curl_slist_append_fn)dlsym(h, "curl_slist_append");
		curl.slist_free_all = (curl_slist_free_all_fn)dlsym(h, "curl_slist_free_all");
		if (!curl.global_init || !curl.easy_init || !curl.setopt || !curl.perform || !curl.getinfo ||
		    !curl.cleanup || !curl.strerror || !curl.slist_append || !curl.slist_free_all)
			e = "a function is missing from it";
		else if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			e = "curl_global_init failed";
	}
	if (e) {
		if (h)
			dlclose(h);
		/* dlerror's text is one line; keep it so even if it is not. */
		text_escape(e, curl.why, sizeof curl.why);
		return latch_error(LATCH_OPERR, "cannot load libcurl (" LIBCURL_SONAME "): %s", curl.why);
	}
	curl.ok = true;
	return 0;
}

/* ---- URLs ------------------------------------------------------------- */

struct url_parts {
	bool https;
	const char *origin; /* scheme://host[:port], `origin_len` bytes */
	size_t origin_len;
	const char *host; /* as written, brackets included for IPv6 */
	size_t host_len;
};

static bool host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_';
}

/* Split an http(s) URL and check its shape: ASCII without white space or
 * control characters; a host of [A-Za-z0-9._-] or a bracketed IPv6
 * literal; an optional port of 1-65535; no user information; the path,
 * query or fragment after it, if any. Strict on purpose: what passes is
 * read the same way by latch and libcurl. */
static bool url_split(const char *url, struct url_parts *u)
{
	if (!url)
		return false;
	for (const unsigned char *c = (const unsigned char *)url; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return false;
	size_t skip;
	if (!strncasecmp(url, "https://", 8)) {
		u->https = true;
		skip = 8;
	} else if (!strncasecmp(url, "http://", 7)) {
		u->https = false;
		skip = 7;
	} else {
		return false;
	}
	const char *a = url + skip;
	size_t alen = strcspn(a, "/?#");
	const char *p = a, *end = a + alen;
	if (*p == '[') {
		const char *close = memchr(p, ']', alen);
		if (!close || close == p + 1)
			return false;
		for (const char *c = p + 1; c < close; c++)
			if (!strchr("0123456789abcdefABCDEF:.", *c))
				return false;
		p = close + 1;
	} else {
		while (p < end && host_char((unsigned char)*p))
			p++;
		if (p == a)
			return false;
	}
	u->host = a;
	u->host_len = (size_t)(p - a);
	if (p < end) {
		/* Only a port may follow the host: this refuses '@', '\' and the rest. */
		if (*p != ':' || p + 1 == end || end - (p + 1) > 5)
			return false;
		long port = 0;
		for (const char *c = p + 1; c < end; c++) {
			if (*c < '0' || *c > '9')
				return false;
			port = port * 10 + (*c - '0');
		}
		if (port < 1 || port > 65535)
			return false;
	}
	u->origin = url;
	u->origin_len = (size_t)(end - url);
	return true;
}

static bool host_is_loopback(const struct url_parts *u)
{
	static const char *const loopback[] = {"127.0.0.1", "[::1]", "localhost"};
	for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++)
		if (u->host_len == strlen(loopback[i]) && !strncasecmp(u->host, loopback[i], u->host_len))
			return true;
	return false;
}

#define NOT_HTTPS "%s '%.200s' is not https (plain http only to 127.0.0.1, ::1 or localhost)"

bool fed_url_allowed(const char *url)
{
	struct url_parts u;
	return url_split(url, &u) && (u.https || host_is_loopback(&u));
}

int fed_url_check(const char *url, const char *what)
{
	if (fed_url_allowed(url))
		return 0;
	return latch_error(LATCH_USAGE, NOT_HTTPS, what, url ? url : "");
}

/* ---- One request ------------------------------------------------------ */

struct transfer {
	struct secbuf *body;
	bool too_big, no_memory;
	struct fed_http_resp *r;
};

/* The body, into secure memory that doubles as it fills (each old buffer
 * wiped as it is replaced), with room for a terminating NUL. */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct transfer *x = arg;
	size_t got = size * n, len = x->body->len;
	if (got > FED_RESPONSE_MAX - len) {
		x->too_big = true;
		return 0; /* libcurl stops with CURLE_WRITE_ERROR */
	}
	if (len + got + 1 > x->body->cap) {
		size_t cap = x->body->cap;
		while (cap < len + got + 1)
			cap *= 2;
		if (cap > FED_RESPONSE_MAX + 1)
			cap = FED_RESPONSE_MAX + 1;
		struct secbuf *bigger = secbuf_new(cap);
		if (!bigger) {
			x->no_memory = true;
			return 0;
		}
		memcpy(bigger->data, x->body->data, len);
		bigger->len = len;
		secbuf_free(x->body);
		x->body = bigger;
	}
	memcpy(x->body->data + len, data, got);
	x->body->len = len + got;
	return got;
}

/* A header's value, trimmed, into out (n bytes) if it is plain text; cut
 * at a character boundary to fit. */
static void header_value(const char *v, size_t len, char *out, size_t n)
{
	while (len > 0 && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len >= n) {
		len = n - 1;
		while (len > 0 && ((unsigned char)v[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(out, v, len);
	out[len] = '\0';
	if (!text_is_plain(out))
		out[0] = '\0';
}

/* Each header line of each response (a proxy's CONNECT answer or a 100
 * Continue comes first: a status line starts the headers afresh). */
static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
	struct transfer *x = arg;
	size_t len = size * n;
	if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
		x->r->request_id[0] = '\0';
		x->r->retry_after_s = -1;
		return len;
	}
	const char *colon = memchr(line, ':', len);
	if (!colon)
		return len;
	size_t name_len = (size_t)(colon - line);
	const char *v = colon + 1;
	size_t vlen = len - name_len - 1;
	if ((name_len == 10 && !strncasecmp(line, "request-id", 10)) ||
	    (name_len == 12 && !strncasecmp(line, "x-request-id", 12))) {
		header_value(v, vlen, x->r->request_id, sizeof x->r->request_id);
	} else if (name_len == 11 && !strncasecmp(line, "retry-after", 11)) {
		/* Seconds only; an HTTP date is left for the default backoff. */
		char s[16];
		header_value(v, vlen, s, sizeof s);
		size_t digits = strspn(s, "0123456789");
		if (digits > 0 && digits <= 9 && s[digits] == '\0')
			x->r->retry_after_s = atoi(s);
	}
	return len;
}

/* The list may hold a credential (a url source's header): wiped, then freed. */
static void headers_free(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l; l = l->next)
		if (l->data)
			sodium_memzero(l->data, strlen(l->data));
	curl.slist_free_all(list);
}

static CURLcode set_long(CURL *h, CURLoption o, long v)
{
	return curl.setopt(h, o, v);
}

static CURLcode set_ptr(CURL *h, CURLoption o, const void *v)
{
	return curl.setopt(h, o, v);
}

static CURLcode set_off(CURL *h, CURLoption o, curl_off_t v)
{
	return curl.setopt(h, o, v);
}

static CURLcode set_fn(CURL *h, CURLoption o, curl_write_callback f)
{
	return curl.setopt(h, o, f);
}

/* Only http and https, even if a URL check were ever bypassed. The old
 * bitmask is for a libcurl older than 7.85, which has no _STR form. */
static CURLcode set_protocols(CURL *h)
{
#if LIBCURL_VERSION_NUM >= 0x075500
	CURLcode rc = set_ptr(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (rc != CURLE_UNKNOWN_OPTION)
		return rc;
#endif
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	return set_long(h, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#pragma GCC diagnostic pop
}

static CURLcode set_up(CURL *h, const struct fed_http_req *q, struct curl_slist *headers, struct transfer *x,
		       int connect_s, int timeout_s)
{
	CURLcode rc = CURLE_OK;
#define SET(call)                    \
	do {                         \
		if (rc == CURLE_OK)  \
			rc = (call); \
	} while (0)
	SET(set_ptr(h, CURLOPT_URL, q->url));
	SET(set_protocols(h));
	SET(set_long(h, CURLOPT_FOLLOWLOCATION, 0L));
	SET(set_long(h, CURLOPT_NOSIGNAL, 1L));
	SET(set_long(h, CURLOPT_CONNECTTIMEOUT, (long)connect_s));
	SET(set_long(h, CURLOPT_TIMEOUT, (long)timeout_s));
	SET(set_long(h, CURLOPT_SSL_VERIFYPEER, 1L));
	SET(set_long(h, CURLOPT_SSL_VERIFYHOST, 2L));
	if (q->ca_file)
		SET(set_ptr(h, CURLOPT_CAINFO, q->ca_file));
	SET(set_ptr(h, CURLOPT_USERAGENT, "latch/" LATCH_VERSION));
	SET(set_ptr(h, CURLOPT_HTTPHEADER, headers));
	/* A Content-Length above the cap stops the transfer before the body. */
	SET(set_off(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)FED_RESPONSE_MAX));
	SET(set_fn(h, CURLOPT_WRITEFUNCTION, on_body));
	SET(set_ptr(h, CURLOPT_WRITEDATA, x));
	SET(set_fn(h, CURLOPT_HEADERFUNCTION, on_header));
	SET(set_ptr(h, CURLOPT_HEADERDATA, x));
	if (!strcmp(q->method, "POST")) {
		/* Not COPYPOSTFIELDS: the body stays in the caller's secure memory. */
		SET(set_long(h, CURLOPT_POST, 1L));
		SET(set_ptr(h, CURLOPT_POSTFIELDS, q->body ? (const void *)q->body : (const void *)""));
		SET(set_off(h, CURLOPT_POSTFIELDSIZE_LARGE, q->body ? (curl_off_t)q->body_len : 0));
	} else {
		SET(set_long(h, CURLOPT_HTTPGET, 1L));
	}
#undef SET
	return rc;
}

/* What to say, and how the request failed, for a libcurl error. */
static int report(CURL *h, CURLcode rc, const struct fed_http_req *q, const struct url_parts *u, int connect_s,
		  int timeout_s, const struct transfer *x, struct fed_http_resp *r)
{
	const char *what = q->what;
	int on = (int)u->origin_len;
	const char *why = curl.strerror(rc);
	if (x->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		r->net = FED_NET_TOO_BIG;
		return latch_error(LATCH_OPERR, "%s sent more than 1 MiB", what);
	}
	if (x->no_memory) {
		r->net = FED_NET_SENT;
		return -1; /* secbuf_new reported it */
	}
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		r->net = FED_NET_REFUSED;
		return latch_error(LATCH_OPERR, "cannot use %s at '%.*s': %s", what, on, u->origin, why);
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		r->net = FED_NET_UNSENT;
		return latch_error(LATCH_OPERR, "cannot reach %s at '%.*s': %s", what, on, u->origin, why);
	case CURLE_OPERATION_TIMEDOUT: {
		/* Nothing was sent unless the transfer itself began: until then
		 * it is the connection (TCP and TLS) that timed out. */
		curl_off_t pre = 0;
		if (curl.getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pre) != CURLE_OK)
			pre = 1;
		r->net = pre == 0 ? FED_NET_UNSENT : FED_NET_SENT;
		if (pre == 0)
			return latch_error(LATCH_OPERR, "cannot reach %s at '%.*s': no connection within %d s", what,
					   on, u->origin, connect_s < timeout_s ? connect_s : timeout_s);
		return latch_error(LATCH_OPERR, "%s at '%.*s' did not answer within %d s", what, on, u->origin,
				   timeout_s);
	}
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		r->net = FED_NET_TLS;
		return latch_error(LATCH_OPERR,
				   "%s's certificate is not trusted: %s (set \"ca_file\" in the profile for a "
				   "private CA)",
				   what, why);
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
		r->net = FED_NET_TLS;
		return latch_error(LATCH_OPERR, "cannot use the CA bundle%s%.200s%s for %s: %s", q->ca_file ? " '" : "",
				   q->ca_file ? q->ca_file : "", q->ca_file ? "'" : "", what, why);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CLIENTCERT:
		r->net = FED_NET_TLS;
		return latch_error(LATCH_OPERR, "the TLS handshake with %s at '%.*s' failed: %s", what, on, u->origin,
				   why);
	default:
		/* The request may have reached the server: reset, nothing back, cut short. */
		r->net = FED_NET_SENT;
		return latch_error(LATCH_OPERR, "the request to %s at '%.*s' failed: %s", what, on, u->origin, why);
	}
}

int fed_http(const struct fed_http_req *q, struct fed_http_resp *r)
{
	memset(r, 0, sizeof *r);
	r->retry_after_s = -1;
	r->net = FED_NET_REFUSED;
	struct url_parts u;
	/* Refused before anything is loaded or sent. A URL is configuration,
	 * so this is LATCH_USAGE, with fed_url_check's words. */
	if (!url_split(q->url, &u) || (!u.https && !q->plain_http_ok && !host_is_loopback(&u)))
		return latch_error(LATCH_USAGE, NOT_HTTPS, q->what, q->url ? q->url : "");
	if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "POST") != 0)
		return latch_error(LATCH_OPERR, "cannot send a %.16s request to %s", q->method, q->what);
	if (curl_load() != 0)
		return -1;

	int connect_s = q->connect_timeout_s > 0 ? q->connect_timeout_s : DEFAULT_CONNECT_S;
	int timeout_s = q->timeout_s > 0 ? q->timeout_s : DEFAULT_TIMEOUT_S;
	struct transfer x = {.body = secbuf_new(2048), .r = r};
	if (!x.body)
		return -1;
	struct curl_slist *headers = NULL;
	for (size_t i = 0; i < q->n_headers; i++) {
		struct curl_slist *more = curl.slist_append(headers, q->headers[i]);
		if (!more) {
			headers_free(headers);
			secbuf_free(x.body);
			return latch_error(LATCH_OPERR, "cannot allocate the request's headers");
		}
		headers = more;
	}
	CURL *h = curl.easy_init();
	CURLcode rc = h ? set_up(h, q, headers, &x, connect_s, timeout_s) : CURLE_FAILED_INIT;
	if (rc != CURLE_OK) {
		if (h)
			curl.cleanup(h);
		headers_free(headers);
		secbuf_free(x.body);
		return latch_error(LATCH_OPERR, "cannot set up the request to %s: %s", q->what, curl.strerror(rc));
	}
	rc = curl.perform(h);
	int ret = 0;
	if (rc == CURLE_OK) {
		long status = 0;
		curl.getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		r->status = status;
		r->net = FED_NET_OK;
		x.body->data[x.body->len] = '\0';
		r->body = x.body;
		x.body = NULL;
	} else {
		ret = report(h, rc, q, &u, connect_s, timeout_s, &x, r);
		r->request_id[0] = '\0';
		r->retry_after_s = -1;
	}
	curl.cleanup(h);
	headers_free(headers);
	secbuf_free(x.body);
	return ret;
}

void fed_http_resp_free(struct fed_http_resp *r)
{
	if (!r)
		return;
	secbuf_free(r->body);
	memset(r, 0, sizeof *r);
	r->retry_after_s = -1;
}
