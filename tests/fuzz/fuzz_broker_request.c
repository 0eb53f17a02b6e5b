/* Fuzz target: the broker's request parser and dispatcher
 * (broker/protocol.c, broker/wire.c), without a socket or a daemon.
 *
 * Each input is what one client sends on one connection: proto_answer is
 * called until it has no whole request left. The state is fresh for each
 * input: enrolled with a fixed key, holding one live grant made directly
 * (db = "fuzz-db-value", api = "fuzz-api-value", for /bin/true, 3 uses)
 * and a recorder that records nothing but counts. The connection brought
 * no descriptors and the state has no runner function, so a run is
 * refused before any fork. Checked on every answer:
 *   - it is one whole message (wire_parse), a JSON object with "ok";
 *   - it carries no frame, and no granted value anywhere in its bytes:
 *     no operation hands a value back (P8);
 * and after the input: every value and buffer is freed (LeakSanitizer,
 * and secmem.h for secure memory). */
#include "fuzz.h"

#include "../../broker/state.h"
#include "secmem.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_broker_request: %s\n", what);
	abort();
}

static size_t n_recorded;

static int rec_enrol(void *ctx, const struct secbuf *keys)
{
	(void)ctx;
	(void)keys;
	return 0;
}

static int rec_record(void *ctx, const struct broker_event *evs, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++)
		if (!evs[i].event || (evs[i].n > 0 && !evs[i].names))
			fail("an event without its name or names");
	n_recorded += n;
	return 0;
}

static const struct broker_recorder recorder = {rec_enrol, rec_record, NULL};

static const char *const NAMES[] = {"db", "api"};
static const char *const VALUES[] = {"fuzz-db-value", "fuzz-api-value"};

static void grant_in(struct broker *b)
{
	struct grant *g = calloc(1, sizeof *g);
	if (!g || !(g->store = secbuf_new(64)))
		fail("out of memory");
	snprintf(g->id, sizeof g->id, "g-f00000000001");
	for (size_t i = 0; i < 2; i++) {
		size_t len = strlen(VALUES[i]);
		unsigned char *v = g->store->data + g->store->len;
		memcpy(v, VALUES[i], len);
		g->store->len += len;
		if (!(g->items[i].name = strdup(NAMES[i])))
			fail("out of memory");
		g->items[i].value = (struct secbuf){v, len, len};
	}
	g->n = 2;
	if (!(g->cmds[0] = strdup("/bin/true")))
		fail("out of memory");
	g->n_cmds = 1;
	g->deadline = broker_now() + 3600;
	g->uses_left = 3;
	b->grants = g;
}

static void enrol(struct broker *b)
{
	unsigned char key[BROKER_KEY_BYTES], stream[16];
	memset(key, 0x5a, sizeof key);
	memset(stream, 0x33, sizeof stream);
	struct secbuf frames[2] = {{key, sizeof key, sizeof key}, {stream, sizeof stream, sizeof stream}};
	json_t *head = json_pack("{s:s}", "instance", "0f0e0d0c0b0a09080706050403020100");
	struct secbuf *msg = head ? wire_build(head, frames, 2) : NULL;
	json_decref(head);
	struct wire_msg m;
	size_t end;
	if (!msg || wire_parse(msg->data, msg->len, &m, &end) != 1 || proto_enrol(b, &m) != 0)
		fail("cannot enrol");
	wire_msg_clear(&m);
	secbuf_free(msg);
}

static bool holds_value(const struct secbuf *a)
{
	for (size_t i = 0; i < 2; i++)
		if (memmem(a->data, a->len, VALUES[i], strlen(VALUES[i])))
			return true;
	return false;
}

static void check_answer(const struct secbuf *a)
{
	struct wire_msg m;
	size_t end = 0;
	if (wire_parse(a->data, a->len, &m, &end) != 1 || end != a->len)
		fail("an answer is not one whole message");
	json_t *ok = json_object_get(m.head, "ok");
	if (!json_is_boolean(ok))
		fail("an answer without \"ok\"");
	if (m.n > 0)
		fail("an answer that carries frames");
	if (holds_value(a))
		fail("an answer that holds a granted value");
	wire_msg_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("cannot initialise libsodium");
		latch_error_quiet(true);
		ready = true;
	}
	long before = secmem_in_use();
	struct broker b;
	state_init(&b, &recorder);
	enrol(&b);
	grant_in(&b);
	struct broker_peer peer = {.cred = {.pid = 1234, .uid = 1000, .gid = 1000}};
	size_t off = 0;
	while (off < size) {
		size_t used = 0;
		struct secbuf *a = proto_answer(&b, &peer, data + off, size - off, &used);
		if (used > size - off)
			fail("proto_answer used more than it was given");
		if (!used) {
			if (a)
				fail("an answer to an incomplete request");
			break;
		}
		if (!a)
			fail("no answer (out of memory?)");
		check_answer(a);
		secbuf_free(a);
		off += used;
	}
	state_free(&b);
	secmem_check(before, "an input");
	return 0;
}
