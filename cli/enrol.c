/* What only a passphrase holder can do for the broker: make its key,
 * start and enrol it, and check that what answers at its socket is it. */
#include "cli.h"

#include "../audit/audit.h"
#include "../run/run.h"

#include <sodium.h>
#include <string.h>
#include <unistd.h>

int cli_broker_key(void *vault, const unsigned char instance[BROKER_INSTANCE_BYTES], struct secbuf **key)
{
	return vault_derive_key(vault, "latchbrk", instance, BROKER_INSTANCE_BYTES, key);
}

/* A new broker's instance id and key, and its audit stream, opened in the
 * main chain with its pid. */
static int enrol(void *vault, pid_t broker_pid, unsigned char instance[BROKER_INSTANCE_BYTES], struct secbuf **key,
		 struct secbuf **stream_keys)
{
	struct vault *v = vault;
	struct secbuf *writer = NULL, *verifier = NULL;
	randombytes_buf(instance, BROKER_INSTANCE_BYTES);
	int rc = cli_broker_key(v, instance, key);
	if (rc == 0 && (vault_key(v, "audit-writer", false, &writer) != 0 ||
			vault_key(v, "audit-verifier", false, &verifier) != 0))
		rc = -1;
	if (rc == 0)
		rc = audit_stream_begin(vault_db(v), writer, verifier, vault_rows, v, broker_pid, stream_keys);
	secbuf_free(writer);
	secbuf_free(verifier);
	if (rc != 0) {
		secbuf_free(*key);
		*key = NULL;
	}
	return rc;
}

int cli_self_exe(char out[PATH_MAX])
{
	ssize_t len = readlink("/proc/self/exe", out, PATH_MAX - 1);
	if (len <= 0)
		return latch_error(LATCH_OPERR, "cannot find the latch executable");
	out[len] = '\0';
	return 0;
}

int cli_broker_may_start(void)
{
	/* A broker started inside would be in the agent's domain, and so
	 * would every runner and child it starts: P8 would be gone. */
	pid_t launcher = 0;
	if (run_in_session(&launcher))
		return latch_error(
			LATCH_OPERR,
			"cannot start a broker inside a latch session (launched by pid %d), where the agent could reach it: run 'latch grant' in a terminal outside the session",
			(int)launcher);
	return 0;
}

int cli_broker_start(struct vault *v, const char *dir, bool foreground, pid_t *pid)
{
	char self[PATH_MAX];
	if (cli_broker_may_start() != 0 || cli_self_exe(self) != 0)
		return -1;
	return broker_start(dir, self, foreground, enrol, v, pid);
}

int cli_broker_session(struct vault *v, const char *dir, struct broker_session *s)
{
	int rc = broker_connect_verified(dir, cli_broker_key, v, s);
	if (rc != 1)
		return rc;
	pid_t pid = 0;
	if (cli_broker_start(v, dir, false, &pid) != 0)
		return -1;
	rc = broker_connect_verified(dir, cli_broker_key, v, s);
	if (rc == 1)
		return latch_error(LATCH_OPERR, "the broker (pid %d) stopped before it took the grant", (int)pid);
	if (rc == 0 && s->pid != pid) {
		broker_session_close(s);
		return latch_error(LATCH_OPERR,
				   "another broker (pid %d) answers in place of the one just started (pid %d)",
				   (int)s->pid, (int)pid);
	}
	return rc;
}
