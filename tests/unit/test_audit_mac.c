/* Unit test: the audit log's HMAC-SHA-256 is the same whether libcrypto
 * (the fast path) or libsodium computes it, so a log written by either
 * verifies with the other, and a tampered record fails under both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit_fixture.h"

#include <sodium.h>

static void written_by_one_verified_by_the_other(void **state)
{
	struct afx *f = *state;
	audit_mac_use_openssl(true);
	afx_fill(f, 20);
	audit_mac_use_openssl(false);
	afx_expect_ok(f, NULL, afx_count(f->db), "clean log");
	afx_fill(f, 40); /* libsodium continues the chain */
	audit_mac_use_openssl(true);
	afx_expect_ok(f, NULL, afx_count(f->db), "clean log");
	/* and a flipped record byte fails under both */
	size_t len;
	unsigned char *rec = afx_blob(f->db, "record", 7, &len);
	rec[len / 2] ^= 1;
	afx_set_blob(f->db, "record", 7, rec, len);
	free(rec);
	afx_expect(f, NULL, AUDIT_TAMPERED, 7, "flipped record");
	audit_mac_use_openssl(false);
	afx_expect(f, NULL, AUDIT_TAMPERED, 7, "flipped record");
	audit_mac_use_openssl(true);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(written_by_one_verified_by_the_other, afx_setup, afx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
