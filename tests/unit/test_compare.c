/*
 * Unit tests for src/zone/compare.c: what a DR zone leaves out of the campus
 * zone.  The DR zone is loaded from text as drdnsd loads it; the campus zone
 * is a record list as an AXFR brings it (SOA first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <ldns/ldns.h>

#include "drdns/compare.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/fsutil.h"
#include "drdns/zone.h"

#define SOA_DR "@ IN SOA ns0.example.net. hostmaster.example.edu. 1 3600 600 1209600 3600\n"
#define SOA_CAMPUS                                                                                 \
	"example.edu. 86400 IN SOA ns0.example.net. h.example.edu. 9 3600 600 1209600 3600"

/* A DR zone example.edu. from master-file text (records after the SOA). */
static struct drdns_zone *dr_zone(const char *records)
{
	char dir[] = "/tmp/drdns-test-compare-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = NULL;
	assert_true(asprintf(&path, "%s/example.edu.zone", dir) > 0);
	char *text = NULL;
	assert_true(asprintf(&text, "$ORIGIN example.edu.\n$TTL 600\n" SOA_DR "%s", records) > 0);
	assert_int_equal(drdns_write_atomic(path, text, strlen(text), 0644), 0);
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	int rc = drdns_zone_load(path, "example.edu.", &z, &diag);
	for (size_t i = 0; rc && i < diag.n; i++)
		print_message("  %s\n", diag.msgs[i]);
	assert_int_equal(rc, 0);
	drdns_diag_clear(&diag);
	drdns_rm_rf(dir);
	free(text);
	free(path);
	return z;
}

/* The campus zone: the SOA, then one record per NULL-terminated argument. */
static ldns_rr_list *campus(const char *first, ...)
{
	ldns_rr_list *l = ldns_rr_list_new();
	ldns_rr *rr = NULL;
	assert_int_equal(ldns_rr_new_frm_str(&rr, SOA_CAMPUS, 3600, NULL, NULL), LDNS_STATUS_OK);
	ldns_rr_list_push_rr(l, rr);
	va_list ap;
	va_start(ap, first);
	for (const char *s = first; s; s = va_arg(ap, const char *)) {
		rr = NULL;
		if (ldns_rr_new_frm_str(&rr, s, 3600, NULL, NULL) != LDNS_STATUS_OK)
			fail_msg("cannot parse \"%s\"", s);
		ldns_rr_list_push_rr(l, rr);
	}
	va_end(ap);
	return l;
}

static void assert_side(const struct drdns_compare_side *s, size_t names, size_t rrsets,
                        size_t records)
{
	assert_int_equal(s->names, names);
	assert_int_equal(s->rrsets, rrsets);
	assert_int_equal(s->records, records);
}

static void assert_examples(const struct drdns_compare_side *s, const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	assert_int_equal(s->n_examples, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(s->examples[i], want[i]);
}

/* The same records, other TTLs, other case, SOA differs: nothing to report. */
static void test_identical_ignores_ttl_case_and_soa(void **state)
{
	(void)state;
	struct drdns_zone *z = dr_zone("@ IN NS ns1\n"
	                               "ns1 IN A 192.0.2.1\n"
	                               "www 60 IN A 192.0.2.80\n"
	                               "@ IN MX 10 mail.example.edu.\n"
	                               "mail IN CNAME host.example.edu.\n");
	ldns_rr_list *c = campus(
	    "Example.EDU. 86400 IN NS NS1.example.edu.", "NS1.EXAMPLE.EDU. 86400 IN A 192.0.2.1",
	    "WWW.example.edu. 7200 IN A 192.0.2.80", "example.edu. 300 IN MX 10 Mail.Example.Edu.",
	    "Mail.example.edu. 1 IN CNAME HOST.example.edu.",
	    /* duplicates count once */
	    "www.example.edu. 5 IN A 192.0.2.80", NULL);
	struct drdns_compare_result r;
	assert_int_equal(drdns_zone_compare(z, c, &r), 0);
	assert_int_equal(r.dr_records, 5);
	assert_int_equal(r.campus_records, 5);
	assert_side(&r.left_out, 0, 0, 0);
	assert_side(&r.dr_only, 0, 0, 0);
	assert_int_equal(r.left_out.n_examples, 0);
	assert_int_equal(r.dr_only.n_examples, 0);
	drdns_compare_result_clear(&r);
	ldns_rr_list_deep_free(c);
	drdns_zone_free(z);
}

/* A signed campus zone: RRSIG, NSEC, NSEC3 and NSEC3PARAM are the signer's,
 * not left out; DNSKEY is data an operator must know the DR set lacks. */
static void test_signer_records_ignored(void **state)
{
	(void)state;
	struct drdns_zone *z = dr_zone("@ IN NS ns1\n"
	                               "ns1 IN A 192.0.2.1\n");
	ldns_rr_list *c =
	    campus("example.edu. IN NS ns1.example.edu.", "ns1.example.edu. IN A 192.0.2.1",
	           "ns1.example.edu. IN RRSIG A 13 3 3600 20261231000000 20261201000000 12345 "
	           "example.edu. AAAA",
	           "ns1.example.edu. IN NSEC example.edu. A RRSIG NSEC",
	           "example.edu. IN NSEC3PARAM 1 0 0 -",
	           "1avvqn74sg75ukfvf25dgcethgq638ek.example.edu. IN NSEC3 1 0 0 - "
	           "1avvqn74sg75ukfvf25dgcethgq638el A RRSIG",
	           "example.edu. IN DNSKEY 257 3 13 "
	           "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+"
	           "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==",
	           NULL);
	struct drdns_compare_result r;
	assert_int_equal(drdns_zone_compare(z, c, &r), 0);
	assert_side(&r.left_out, 0, 1, 1);
	const char *want[] = {"example.edu. DNSKEY", NULL};
	assert_examples(&r.left_out, want);
	assert_side(&r.dr_only, 0, 0, 0);
	drdns_compare_result_clear(&r);
	ldns_rr_list_deep_free(c);
	drdns_zone_free(z);
}

/* Whole names, whole RRsets, single records; both directions. */
static void test_left_out_and_dr_only(void **state)
{
	(void)state;
	struct drdns_zone *z = dr_zone("@ IN NS ns-dr\n"
	                               "@ IN NS ns1\n"
	                               "ns-dr IN A 192.0.2.53\n"
	                               "ns1 IN A 192.0.2.1\n"
	                               "www IN A 192.0.2.80\n"
	                               "MAIL IN A 192.0.2.25\n");
	ldns_rr_list *c = campus(
	    "example.edu. IN NS ns0.example.net.", "example.edu. IN NS ns1.example.edu.",
	    "ns1.example.edu. IN A 192.0.2.1", "www.example.edu. IN A 192.0.2.80",
	    "www.example.edu. IN A 192.0.2.81", "www.example.edu. IN AAAA 2001:db8::80",
	    "mail.example.edu. IN A 192.0.2.25", "intranet.example.edu. IN TXT \"staff only\"",
	    "intranet.example.edu. IN A 192.0.2.90", NULL);
	struct drdns_compare_result r;
	assert_int_equal(drdns_zone_compare(z, c, &r), 0);
	assert_int_equal(r.dr_records, 6);
	assert_int_equal(r.campus_records, 9);
	/* intranet (A, TXT); www AAAA; www A .81 and NS ns0 within shared RRsets */
	assert_side(&r.left_out, 1, 3, 5);
	assert_examples(&r.left_out,
	                (const char *const[]){"example.edu. NS", "intranet.example.edu. A",
	                                      "intranet.example.edu. TXT", "www.example.edu. A",
	                                      "www.example.edu. AAAA", NULL});
	/* ns-dr A (a whole name); NS ns-dr within the apex NS RRset */
	assert_side(&r.dr_only, 1, 1, 2);
	assert_examples(&r.dr_only,
	                (const char *const[]){"example.edu. NS", "ns-dr.example.edu. A", NULL});
	drdns_compare_result_clear(&r);
	ldns_rr_list_deep_free(c);
	drdns_zone_free(z);
}

/* Different RDATA at the same RRset: one record each way, no RRset, no name. */
static void test_rdata_differs(void **state)
{
	(void)state;
	struct drdns_zone *z = dr_zone("@ IN NS ns1\n"
	                               "ns1 IN A 192.0.2.1\n"
	                               "www IN A 198.51.100.80\n"
	                               "txt IN TXT \"DR copy\"\n");
	ldns_rr_list *c =
	    campus("example.edu. IN NS ns1.example.edu.", "ns1.example.edu. IN A 192.0.2.1",
	           "www.example.edu. IN A 192.0.2.80", "txt.example.edu. IN TXT \"dr copy\"", NULL);
	struct drdns_compare_result r;
	assert_int_equal(drdns_zone_compare(z, c, &r), 0);
	/* TXT data is compared exactly: case matters there */
	assert_side(&r.left_out, 0, 0, 2);
	assert_side(&r.dr_only, 0, 0, 2);
	assert_examples(&r.left_out,
	                (const char *const[]){"txt.example.edu. TXT", "www.example.edu. A", NULL});
	assert_examples(&r.dr_only,
	                (const char *const[]){"txt.example.edu. TXT", "www.example.edu. A", NULL});
	drdns_compare_result_clear(&r);
	ldns_rr_list_deep_free(c);
	drdns_zone_free(z);
}

/* At most 10 examples, the first ones in canonical (RFC 4034) order. */
static void test_examples_capped_in_canonical_order(void **state)
{
	(void)state;
	struct drdns_zone *z = dr_zone("@ IN NS ns1\nns1 IN A 192.0.2.1\n");
	ldns_rr_list *c =
	    campus("example.edu. IN NS ns1.example.edu.", "ns1.example.edu. IN A 192.0.2.1", NULL);
	/* 14 names, pushed out of order; 2 RRsets at z.example.edu.  Canonical
	 * order: a name's labels from the right, a parent before its children. */
	const char *names[] = {"z",   "a.b", "b",   "a",   "h09", "h02", "h05",
	                       "h01", "h08", "h03", "h07", "h04", "h06", "Zz"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "%s.example.edu. IN A 192.0.2.%zu", names[i], i + 10);
		ldns_rr *rr = NULL;
		assert_int_equal(ldns_rr_new_frm_str(&rr, text, 60, NULL, NULL), LDNS_STATUS_OK);
		ldns_rr_list_push_rr(c, rr);
	}
	ldns_rr *rr = NULL;
	assert_int_equal(ldns_rr_new_frm_str(&rr, "z.example.edu. IN MX 0 .", 60, NULL, NULL),
	                 LDNS_STATUS_OK);
	ldns_rr_list_push_rr(c, rr);

	struct drdns_compare_result r;
	assert_int_equal(drdns_zone_compare(z, c, &r), 0);
	assert_side(&r.left_out, 14, 15, 15);
	assert_examples(&r.left_out,
	                (const char *const[]){"a.example.edu. A", "b.example.edu. A",
	                                      "a.b.example.edu. A", "h01.example.edu. A",
	                                      "h02.example.edu. A", "h03.example.edu. A",
	                                      "h04.example.edu. A", "h05.example.edu. A",
	                                      "h06.example.edu. A", "h07.example.edu. A", NULL});
	assert_side(&r.dr_only, 0, 0, 0);
	drdns_compare_result_clear(&r);
	assert_int_equal(r.left_out.n_examples, 0);
	drdns_compare_result_clear(&r); /* twice is harmless */
	ldns_rr_list_deep_free(c);
	drdns_zone_free(z);
}

/* An empty campus list (or only its SOA): everything is DR-only. */
static void test_empty_campus(void **state)
{
	(void)state;
	struct drdns_zone *z =
	    dr_zone("@ IN NS ns1\nns1 IN A 192.0.2.1\nns1 IN AAAA 2001:db8::1\n");
	ldns_rr_list *c = campus(NULL);
	struct drdns_compare_result r;
	assert_int_equal(drdns_zone_compare(z, c, &r), 0);
	assert_int_equal(r.campus_records, 0);
	assert_side(&r.left_out, 0, 0, 0);
	assert_side(&r.dr_only, 2, 3, 3);
	assert_examples(&r.dr_only, (const char *const[]){"example.edu. NS", "ns1.example.edu. A",
	                                                  "ns1.example.edu. AAAA", NULL});
	drdns_compare_result_clear(&r);
	ldns_rr_list_deep_free(c);
	c = ldns_rr_list_new();
	assert_int_equal(drdns_zone_compare(z, c, &r), 0);
	assert_side(&r.dr_only, 2, 3, 3);
	drdns_compare_result_clear(&r);
	ldns_rr_list_deep_free(c);
	drdns_zone_free(z);
}

static void test_side_json(void **state)
{
	(void)state;
	struct drdns_compare_side s = {.names = 1, .rrsets = 2, .records = 3, .n_examples = 2};
	s.examples[0] = "a.example.edu. A";
	s.examples[1] = "b.example.edu. TXT";
	json_t *j = drdns_compare_side_json(&s);
	assert_non_null(j);
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(text, "{\"names\":1,\"rrsets\":2,\"records\":3,\"examples\":"
	                          "[\"a.example.edu. A\",\"b.example.edu. TXT\"]}");
	free(text);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_identical_ignores_ttl_case_and_soa),
	    cmocka_unit_test(test_left_out_and_dr_only),
	    cmocka_unit_test(test_signer_records_ignored),
	    cmocka_unit_test(test_rdata_differs),
	    cmocka_unit_test(test_examples_capped_in_canonical_order),
	    cmocka_unit_test(test_empty_campus),
	    cmocka_unit_test(test_side_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
