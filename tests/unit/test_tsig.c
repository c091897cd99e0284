/* Unit tests for src/tsig/tsig.c: BIND key files, signing and verifying. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/tsig.h"

static char *data_path(const char *name)
{
	const char *dir = getenv("DRDNS_TEST_DATA");
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", dir ? dir : "tests/unit/data", name) > 0);
	return p;
}

static struct drdns_tsig_key *load_ok(const char *name)
{
	char *path = data_path(name);
	struct drdns_diag diag = { 0 };
	struct drdns_tsig_key *key = NULL;
	int rc = drdns_tsig_key_load(path, &key, &diag);
	if (rc != 0) {
		char *all = drdns_diag_join(&diag);
		print_error("%s: %s\n", path, all);
		free(all);
	}
	assert_int_equal(rc, 0);
	assert_non_null(key);
	assert_int_equal(diag.n, 0);
	free(path);
	return key;
}

static void test_good_key(void **state)
{
	(void)state;
	struct drdns_tsig_key *key = load_ok("tsig-good.key");
	assert_string_equal(key->name, "drdns-test.");
	assert_string_equal(key->algorithm, "hmac-sha256.");
	assert_string_equal(key->secret, "4Ruy+pi9G1b8Xu4PHw2xaV83lZqHnT74OU6pcjsSSLg=");
	drdns_tsig_key_free(key);
}

static void test_comments_and_whitespace(void **state)
{
	(void)state;
	struct drdns_tsig_key *key = load_ok("tsig-comments.key");
	assert_string_equal(key->name, "drdns-other.example.");
	assert_string_equal(key->algorithm, "hmac-sha256.");
	assert_string_equal(key->secret, "c2VjcmV0LWtleS1mb3ItZHJkbnMtdW5pdC10ZXN0cw==");
	drdns_tsig_key_free(key);
}

/* Each malformed file fails with DRDNS_ETSIG and one "file:line: ..." message. */
static void expect_bad(const char *name, int line, const char *needle)
{
	char *path = data_path(name);
	struct drdns_diag diag = { 0 };
	struct drdns_tsig_key *key = (struct drdns_tsig_key *)0x1;
	int rc = drdns_tsig_key_load(path, &key, &diag);
	assert_int_equal(rc, DRDNS_ETSIG);
	assert_null(key);
	assert_true(diag.n >= 1);
	assert_true(diag.n_errors >= 1);
	char *where = NULL;
	assert_true(asprintf(&where, "%s:%d: ", path, line) > 0);
	if (strncmp(diag.msgs[0], where, strlen(where)) != 0 || !strstr(diag.msgs[0], needle))
		fail_msg("%s: got '%s', want prefix '%s' and '%s'", name, diag.msgs[0], where, needle);
	free(where);
	free(path);
	drdns_diag_clear(&diag);
}

static void test_bad_keys(void **state)
{
	(void)state;
	expect_bad("tsig-nosecret.key", 1, "no secret");
	expect_bad("tsig-noalgorithm.key", 1, "no algorithm");
	expect_bad("tsig-badbase64.key", 3, "base64");
	expect_bad("tsig-badalgorithm.key", 2, "unsupported TSIG algorithm 'hmac-md5'");
	expect_bad("tsig-twokeys.key", 6, "more than one key");
	expect_bad("tsig-nosemicolon.key", 3, "expected ';'");
	expect_bad("tsig-unterminated.key", 3, "unterminated comment");
	expect_bad("tsig-empty.key", 1, "no key statement");
	expect_bad("tsig-unknownoption.key", 4, "unknown key option 'flavour'");
	expect_bad("tsig-truncated.key", 3, "end of file");
	expect_bad("tsig-does-not-exist.key", 0, "cannot read key file");
}

static void test_diag_null(void **state)
{
	(void)state;
	char *path = data_path("tsig-nosecret.key");
	struct drdns_tsig_key *key = NULL;
	assert_int_equal(drdns_tsig_key_load(path, &key, NULL), DRDNS_ETSIG);
	assert_null(key);
	free(path);
}

static ldns_pkt *query(void)
{
	ldns_pkt *q = NULL;
	assert_int_equal(ldns_pkt_query_new_frm_str(&q, "example.edu.", LDNS_RR_TYPE_SOA,
	                                            LDNS_RR_CLASS_IN, 0),
	                 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, 4242);
	return q;
}

/* wire form of pkt, parsed back as a receiver would */
static ldns_pkt *roundtrip(const ldns_pkt *pkt, uint8_t **wire, size_t *len)
{
	assert_int_equal(ldns_pkt2wire(wire, pkt, len), LDNS_STATUS_OK);
	ldns_pkt *back = NULL;
	assert_int_equal(ldns_wire2pkt(&back, *wire, *len), LDNS_STATUS_OK);
	return back;
}

static void test_sign_verify(void **state)
{
	(void)state;
	struct drdns_tsig_key *key = load_ok("tsig-good.key");
	struct drdns_tsig_key *other = load_ok("tsig-comments.key");

	/* request */
	ldns_pkt *q = query();
	assert_int_equal(drdns_tsig_sign(q, key, NULL), 0);
	assert_non_null(ldns_pkt_tsig(q));
	uint8_t *wire;
	size_t len;
	ldns_pkt *rq = roundtrip(q, &wire, &len);
	assert_int_equal(drdns_tsig_verify(rq, wire, len, key, NULL), 0);
	/* the packet is intact after verification */
	assert_non_null(ldns_pkt_tsig(rq));
	assert_int_equal(ldns_pkt_id(rq), 4242);
	/* wrong key: different name */
	assert_int_equal(drdns_tsig_verify(rq, wire, len, other, NULL), DRDNS_ETSIG);
	/* wrong key: same name, other secret */
	struct drdns_tsig_key forged = { key->name, key->algorithm,
		                         "c2VjcmV0LWtleS1mb3ItZHJkbnMtdW5pdC10ZXN0cw==" };
	assert_int_equal(drdns_tsig_verify(rq, wire, len, &forged, NULL), DRDNS_ETSIG);
	assert_non_null(ldns_pkt_tsig(rq));

	/* tampered: flip a bit in the question name */
	uint8_t *bad = malloc(len);
	memcpy(bad, wire, len);
	bad[14] ^= 0x20;
	ldns_pkt *tq = NULL;
	assert_int_equal(ldns_wire2pkt(&tq, bad, len), LDNS_STATUS_OK);
	assert_int_equal(drdns_tsig_verify(tq, bad, len, key, NULL), DRDNS_ETSIG);
	ldns_pkt_free(tq);
	/* tampered: change the id */
	memcpy(bad, wire, len);
	bad[0] ^= 0xff;
	assert_int_equal(ldns_wire2pkt(&tq, bad, len), LDNS_STATUS_OK);
	assert_int_equal(drdns_tsig_verify(tq, bad, len, key, NULL), DRDNS_ETSIG);
	ldns_pkt_free(tq);
	free(bad);

	/* unsigned packet */
	ldns_pkt *plain = query();
	uint8_t *pw;
	size_t pl;
	assert_int_equal(ldns_pkt2wire(&pw, plain, &pl), LDNS_STATUS_OK);
	assert_int_equal(drdns_tsig_verify(plain, pw, pl, key, NULL), DRDNS_ETSIG);
	free(pw);
	ldns_pkt_free(plain);

	/* response chain: first with the request MAC, then with the previous MAC */
	const ldns_rdf *req_mac = ldns_rr_rdf(ldns_pkt_tsig(rq), 3);
	ldns_pkt *r1 = query();
	ldns_pkt_set_qr(r1, true);
	assert_int_equal(drdns_tsig_sign(r1, key, req_mac), 0);
	uint8_t *w1;
	size_t l1;
	ldns_pkt *b1 = roundtrip(r1, &w1, &l1);
	assert_int_equal(drdns_tsig_verify(b1, w1, l1, key, req_mac), 0);
	/* without the request MAC it does not verify */
	assert_int_equal(drdns_tsig_verify(b1, w1, l1, key, NULL), DRDNS_ETSIG);

	ldns_rdf *mac1 = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(b1), 3));
	ldns_pkt *r2 = query();
	ldns_pkt_set_qr(r2, true);
	assert_int_equal(drdns_tsig_sign_next(r2, key, mac1), 0);
	uint8_t *w2;
	size_t l2;
	ldns_pkt *b2 = roundtrip(r2, &w2, &l2);
	assert_true(ldns_pkt_tsig_verify_next(b2, w2, l2, key->name, key->secret, mac1, 1));
	assert_false(ldns_pkt_tsig_verify_next(b2, w2, l2, key->name, key->secret, req_mac, 1));
	/* re-signing replaces the old record */
	assert_int_equal(drdns_tsig_sign(r2, key, NULL), 0);

	assert_int_equal(drdns_tsig_sign(q, NULL, NULL), DRDNS_ETSIG);
	assert_int_equal(drdns_tsig_sign_next(q, key, NULL), DRDNS_ETSIG);

	ldns_rdf_deep_free(mac1);
	free(w1);
	free(w2);
	free(wire);
	ldns_pkt_free(b1);
	ldns_pkt_free(b2);
	ldns_pkt_free(r1);
	ldns_pkt_free(r2);
	ldns_pkt_free(rq);
	ldns_pkt_free(q);
	drdns_tsig_key_free(key);
	drdns_tsig_key_free(other);
}

static void test_time_window(void **state)
{
	(void)state;
	struct drdns_tsig_key *key = load_ok("tsig-good.key");
	ldns_pkt *q = query();
	assert_int_equal(drdns_tsig_sign(q, key, NULL), 0);
	/* move the signing time an hour back: the MAC no longer matters */
	ldns_rdf *t = ldns_rr_rdf(ldns_pkt_tsig(q), 1);
	uint8_t *d = ldns_rdf_data(t);
	uint64_t v = 0;
	for (int i = 0; i < 6; i++)
		v = (v << 8) | d[i];
	v -= 3600;
	for (int i = 5; i >= 0; i--, v >>= 8)
		d[i] = (uint8_t)v;
	uint8_t *wire;
	size_t len;
	ldns_pkt *back = roundtrip(q, &wire, &len);
	assert_int_equal(drdns_tsig_verify(back, wire, len, key, NULL), DRDNS_ETSIG);
	free(wire);
	ldns_pkt_free(back);
	ldns_pkt_free(q);
	drdns_tsig_key_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_key),
		cmocka_unit_test(test_comments_and_whitespace),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_diag_null),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_time_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
