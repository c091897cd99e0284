/* Unit tests for src/tsig/tsig.c: BIND key files, signing and verifying. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/tsig.h"

static struct drdns_tsig_key *load_ok(const char *name)
{
	char *path = data_path(name);
	struct drdns_diag diag = {0};
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
	struct drdns_diag diag = {0};
	struct drdns_tsig_key *key = (struct drdns_tsig_key *)0x1;
	int rc = drdns_tsig_key_load(path, &key, &diag);
	assert_int_equal(rc, DRDNS_ETSIG);
	assert_null(key);
	assert_true(diag.n >= 1);
	assert_true(diag.n_errors >= 1);
	char *where = NULL;
	assert_true(asprintf(&where, "%s:%d: ", path, line) > 0);
	if (strncmp(diag.msgs[0], where, strlen(where)) != 0 || !strstr(diag.msgs[0], needle))
		fail_msg("%s: got '%s', want prefix '%s' and '%s'", name, diag.msgs[0], where,
		         needle);
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
	assert_int_equal(
	    ldns_pkt_query_new_frm_str(&q, "example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN, 0),
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
	struct drdns_tsig_key forged = {key->name, key->algorithm,
	                                "c2VjcmV0LWtleS1mb3ItZHJkbnMtdW5pdC10ZXN0cw=="};
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

/* ---------------------------------------------------------- wire signing */

/* wire form of pkt in a buffer with room for a TSIG record */
static uint8_t *wire_with_room(const ldns_pkt *pkt, size_t *len, size_t *cap)
{
	uint8_t *w;
	assert_int_equal(ldns_pkt2wire(&w, pkt, len), LDNS_STATUS_OK);
	*cap = *len + DRDNS_TSIG_RR_MAX;
	uint8_t *buf = malloc(*cap);
	assert_non_null(buf);
	memcpy(buf, w, *len);
	free(w);
	return buf;
}

/* a response with a few answer records (compressed names) */
static ldns_pkt *response(uint16_t id, int n)
{
	ldns_pkt *r = query();
	ldns_pkt_set_id(r, id);
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_aa(r, true);
	for (int i = 0; i < n; i++) {
		char buf[128];
		snprintf(buf, sizeof(buf), "h%d.example.edu. 300 IN A 192.0.2.%d", i, i % 250);
		ldns_rr *rr = NULL;
		assert_int_equal(ldns_rr_new_frm_str(&rr, buf, 0, NULL, NULL), LDNS_STATUS_OK);
		ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
	}
	return r;
}

static uint64_t tsig_time(const ldns_rr *tsig)
{
	const uint8_t *d = ldns_rdf_data(ldns_rr_rdf(tsig, 1));
	uint64_t v = 0;
	for (int i = 0; i < 6; i++)
		v = (v << 8) | d[i];
	return v;
}

static void test_sign_wire(void **state)
{
	(void)state;
	struct drdns_tsig_key *key = load_ok("tsig-good.key");
	struct drdns_tsig_key *other = load_ok("tsig-comments.key");
	uint64_t now = (uint64_t)time(NULL);

	/* a request: verifies with ldns and drdns_tsig_verify */
	ldns_pkt *q = query();
	size_t len, cap, slen, mlen;
	uint8_t *w = wire_with_room(q, &len, &cap);
	uint8_t qmac[DRDNS_TSIG_MAC_MAX];
	assert_int_equal(
	    drdns_tsig_sign_wire(w, len, cap, &slen, key, NULL, 0, false, now, qmac, &mlen), 0);
	assert_int_equal(mlen, 32);
	assert_true(slen > len);
	ldns_pkt *bq = NULL;
	assert_int_equal(ldns_wire2pkt(&bq, w, slen), LDNS_STATUS_OK);
	ldns_rr *t = ldns_pkt_tsig(bq);
	assert_non_null(t);
	assert_int_equal(ldns_pkt_arcount(bq), 0); /* the TSIG is not counted by ldns */
	assert_int_equal(w[11], 1);                /* but is on the wire */
	char *owner = ldns_rdf2str(ldns_rr_owner(t));
	assert_string_equal(owner, "drdns-test.");
	free(owner);
	char *alg = ldns_rdf2str(ldns_rr_rdf(t, 0));
	assert_string_equal(alg, "hmac-sha256.");
	free(alg);
	assert_int_equal(tsig_time(t), now);
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(t, 2)), 300);
	assert_int_equal(ldns_rdf_size(ldns_rr_rdf(t, 3)), 2 + 32);
	assert_memory_equal(ldns_rdf_data(ldns_rr_rdf(t, 3)) + 2, qmac, 32);
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(t, 4)), 4242);
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(t, 5)), 0);
	assert_true(ldns_pkt_tsig_verify(bq, w, slen, key->name, key->secret, NULL));
	assert_int_equal(drdns_tsig_verify(bq, w, slen, key, NULL), 0);
	assert_int_equal(drdns_tsig_verify(bq, w, slen, other, NULL), DRDNS_ETSIG);
	struct drdns_tsig_key forged = {key->name, key->algorithm,
	                                "c2VjcmV0LWtleS1mb3ItZHJkbnMtdW5pdC10ZXN0cw=="};
	assert_int_equal(drdns_tsig_verify(bq, w, slen, &forged, NULL), DRDNS_ETSIG);
	/* tampered after signing */
	w[len - 1] ^= 0x01;
	ldns_pkt *tq = NULL;
	assert_int_equal(ldns_wire2pkt(&tq, w, slen), LDNS_STATUS_OK);
	assert_int_equal(drdns_tsig_verify(tq, w, slen, key, NULL), DRDNS_ETSIG);
	ldns_pkt_free(tq);
	w[len - 1] ^= 0x01;
	ldns_rdf *req_mac = ldns_rdf_clone(ldns_rr_rdf(t, 3));

	/* a multi-message response: the first with the request MAC, the rest
	 * timers-only with the previous MAC, as a secondary verifies an AXFR */
	uint8_t prev[DRDNS_TSIG_MAC_MAX];
	size_t prev_len = mlen;
	memcpy(prev, qmac, mlen);
	ldns_rdf *chain = ldns_rdf_clone(req_mac);
	for (int i = 0; i < 4; i++) {
		ldns_pkt *r = response(4242, 10 * (i + 1));
		size_t rl, rc, rs, ml;
		uint8_t *rw = wire_with_room(r, &rl, &rc);
		uint8_t m[DRDNS_TSIG_MAC_MAX];
		assert_int_equal(
		    drdns_tsig_sign_wire(rw, rl, rc, &rs, key, prev, prev_len, i > 0, now, m, &ml),
		    0);
		ldns_pkt *b = NULL;
		assert_int_equal(ldns_wire2pkt(&b, rw, rs), LDNS_STATUS_OK);
		assert_int_equal(ldns_pkt_ancount(b), 10 * (i + 1));
		if (!ldns_pkt_tsig_verify_next(b, rw, rs, key->name, key->secret, chain, i > 0))
			fail_msg("message %d does not verify", i);
		if (i == 0) {
			assert_int_equal(drdns_tsig_verify(b, rw, rs, key, req_mac), 0);
			assert_int_equal(drdns_tsig_verify(b, rw, rs, key, NULL), DRDNS_ETSIG);
		} else {
			/* not with the request MAC, nor as a full (non-timers) signature */
			assert_false(ldns_pkt_tsig_verify_next(b, rw, rs, key->name, key->secret,
			                                       req_mac, 1));
			assert_false(
			    ldns_pkt_tsig_verify_next(b, rw, rs, key->name, key->secret, chain, 0));
		}
		ldns_rdf_deep_free(chain);
		chain = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(b), 3));
		memcpy(prev, m, ml);
		prev_len = ml;
		ldns_pkt_free(b);
		ldns_pkt_free(r);
		free(rw);
	}
	ldns_rdf_deep_free(chain);

	/* errors: no room (message unchanged), no key, timers-only without a MAC */
	uint8_t *copy = malloc(len);
	memcpy(copy, w, len);
	assert_int_equal(
	    drdns_tsig_sign_wire(w, len, len + 20, &slen, key, NULL, 0, false, now, qmac, &mlen),
	    DRDNS_EINVAL);
	assert_memory_equal(w, copy, len);
	assert_int_equal(
	    drdns_tsig_sign_wire(w, len, cap, &slen, NULL, NULL, 0, false, now, qmac, &mlen),
	    DRDNS_ETSIG);
	assert_int_equal(
	    drdns_tsig_sign_wire(w, len, cap, &slen, key, NULL, 0, true, now, qmac, &mlen),
	    DRDNS_EINVAL);
	struct drdns_tsig_key badsecret = {key->name, key->algorithm, "%%%%"};
	assert_int_equal(
	    drdns_tsig_sign_wire(w, len, cap, &slen, &badsecret, NULL, 0, false, now, qmac, &mlen),
	    DRDNS_ETSIG);
	struct drdns_tsig_key badalg = {key->name, "hmac-md5.", key->secret};
	assert_int_equal(
	    drdns_tsig_sign_wire(w, len, cap, &slen, &badalg, NULL, 0, false, now, qmac, &mlen),
	    DRDNS_ETSIG);
	assert_memory_equal(w, copy, len);
	/* never more than 65535 bytes */
	uint8_t *huge = calloc(1, 65535 + DRDNS_TSIG_RR_MAX);
	memcpy(huge, w, 12);
	assert_int_equal(drdns_tsig_sign_wire(huge, 65500, 65535 + DRDNS_TSIG_RR_MAX, &slen, key,
	                                      NULL, 0, false, now, qmac, &mlen),
	                 DRDNS_EINVAL);
	free(huge);
	free(copy);

	ldns_rdf_deep_free(req_mac);
	ldns_pkt_free(bq);
	ldns_pkt_free(q);
	free(w);
	drdns_tsig_key_free(key);
	drdns_tsig_key_free(other);
}

/* Same input, same signing time: exactly the MAC ldns computes, for a first
 * response (request MAC, all variables) and a follow-on (timers only). */
static void test_sign_wire_matches_ldns(void **state)
{
	(void)state;
	struct drdns_tsig_key *key = load_ok("tsig-good.key");
	ldns_pkt *q = query();
	assert_int_equal(drdns_tsig_sign(q, key, NULL), 0);
	ldns_rdf *req_mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(q), 3));
	for (int next = 0; next < 2; next++) {
		ldns_pkt *r = response(777, 25);
		size_t len, cap, slen, mlen;
		uint8_t *w = wire_with_room(r, &len, &cap); /* unsigned */
		if (next)
			assert_int_equal(drdns_tsig_sign_next(r, key, req_mac), 0);
		else
			assert_int_equal(drdns_tsig_sign(r, key, req_mac), 0);
		const ldns_rr *lt = ldns_pkt_tsig(r);
		uint8_t mac[DRDNS_TSIG_MAC_MAX];
		assert_int_equal(drdns_tsig_sign_wire(
		                     w, len, cap, &slen, key, ldns_rdf_data(req_mac) + 2,
		                     ldns_rdf_size(req_mac) - 2, next, tsig_time(lt), mac, &mlen),
		                 0);
		const ldns_rdf *lmac = ldns_rr_rdf(lt, 3);
		assert_int_equal(ldns_rdf_size(lmac), mlen + 2);
		assert_memory_equal(ldns_rdf_data(lmac) + 2, mac, mlen);
		/* and the whole signed message is what ldns writes (no compression
		 * applies to this key name) */
		uint8_t *lw;
		size_t ll;
		assert_int_equal(ldns_pkt2wire(&lw, r, &ll), LDNS_STATUS_OK);
		assert_int_equal(ll, slen);
		assert_memory_equal(lw, w, ll);
		free(lw);
		free(w);
		ldns_pkt_free(r);
	}
	ldns_rdf_deep_free(req_mac);
	ldns_pkt_free(q);
	drdns_tsig_key_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_key),    cmocka_unit_test(test_comments_and_whitespace),
	    cmocka_unit_test(test_bad_keys),    cmocka_unit_test(test_diag_null),
	    cmocka_unit_test(test_sign_verify), cmocka_unit_test(test_time_window),
	    cmocka_unit_test(test_sign_wire),   cmocka_unit_test(test_sign_wire_matches_ldns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
