/*
 * Unit tests for include/drdns/expiry.h: the pure parts (src/watchdog/expiry.c)
 * with simulated time, and the scan (src/net/rrsig_scan.c) on a real libuv
 * loop against drdns's own server.
 *
 * The scan's sandbox runs on 127.0.0.8x with random ports:
 *   127.0.0.81  the scanner's source address (allowed to transfer)
 *   127.0.0.82  a drdns_server serving example.edu. signed with the ecdsa
 *               key fixture (data/keys/ecdsa) and other.test. unsigned
 *   127.0.0.83  nothing listens (connection refused)
 *   127.0.0.84-86  stalled masters: the kernel accepts, nobody answers
 * What is checked: the summaries against the signer's own statistics, the
 * per-target reasons, cancellation, that cb runs once and never before
 * drdns_rrsig_scan_start returns, and (valgrind, ASan) that nothing leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>
#include <uv.h>

#include "testutil.h"

#include "drdns/conf.h"
#include "drdns/diag.h"
#include "drdns/dnssec.h"
#include "drdns/error.h"
#include "drdns/expiry.h"
#include "drdns/fsutil.h"
#include "drdns/log.h"
#include "drdns/server.h"
#include "drdns/zone.h"

#define DAY      86400
#define HOUR     3600
#define TWO_32   INT64_C(0x100000000)
#define SRC_ADDR "127.0.0.81"
#define NS_ADDR  "127.0.0.82"
#define DEAD     "127.0.0.83"

/* 2026-11-23 12:01:00 UTC, and three days less a minute later. */
#define NOW       INT64_C(1795435260)
#define NOW_PLUS3 INT64_C(1795694400) /* 2026-11-26 12:00:00 UTC */

/* ---- drdns_rrsig_time ---- */

static void test_rrsig_time(void **state)
{
	(void)state;
	/* today: the field is the time */
	assert_int_equal(drdns_rrsig_time(1795694400u, NOW), 1795694400);
	assert_int_equal(drdns_rrsig_time(1790000000u, NOW), 1790000000);
	assert_int_equal(drdns_rrsig_time((uint32_t)NOW, NOW), NOW);
	/* far from now (within 68 years): still the same */
	assert_int_equal(drdns_rrsig_time(16, NOW), 16);
	assert_int_equal(drdns_rrsig_time(0xC0000000u, NOW), 0xC0000000);
	/* farther ahead than 2^31: the nearest is 16 seconds before 1970 */
	assert_int_equal(drdns_rrsig_time(0xFFFFFFF0u, NOW), -16);

	/* year 2106: the 32 bits wrap */
	int64_t before_wrap = TWO_32 - 10;
	assert_int_equal(drdns_rrsig_time(5, before_wrap), TWO_32 + 5);
	assert_int_equal(drdns_rrsig_time(0xFFFFFFFFu, before_wrap), TWO_32 - 1);
	assert_int_equal(drdns_rrsig_time(30 * DAY, before_wrap), TWO_32 + 30 * DAY);
	int64_t after_wrap = TWO_32 + 100;
	assert_int_equal(drdns_rrsig_time(0xFFFFFF00u, after_wrap), TWO_32 - 256);
	assert_int_equal(drdns_rrsig_time(200, after_wrap), TWO_32 + 200);
	/* the next wraps too */
	assert_int_equal(drdns_rrsig_time(1, 2 * TWO_32 + 3), 2 * TWO_32 + 1);
	/* the nearest: 2^31 - 1 ahead is ahead, 2^31 + 1 ahead is behind */
	assert_int_equal(drdns_rrsig_time(0x7FFFFFFFu, 0), 0x7FFFFFFF);
	assert_int_equal(drdns_rrsig_time(0x80000001u, 0), -INT64_C(0x7FFFFFFF));
}

/* ---- drdns_rrsig_summarize ---- */

static ldns_rr *rr(const char *text)
{
	ldns_rr *r = NULL;
	ldns_status st = ldns_rr_new_frm_str(&r, text, 3600, NULL, NULL);
	if (st != LDNS_STATUS_OK)
		fail_msg("%s: %s", text, ldns_get_errorstr_by_id(st));
	return r;
}

static ldns_rr_list *list_of(const char *const *texts, size_t n)
{
	ldns_rr_list *l = ldns_rr_list_new();
	assert_non_null(l);
	for (size_t i = 0; i < n; i++)
		assert_true(ldns_rr_list_push_rr(l, rr(texts[i])));
	return l;
}

#define SOA_RR                                                                                     \
	"example.edu. 3600 IN SOA ns1.example.edu. hostmaster.example.edu. 2026112301 3600 600 "   \
	"1209600 300"
#define SIG(owner, type, exp, tag)                                                                 \
	owner " 3600 IN RRSIG " type " 13 3 3600 " exp " 20261101000000 " tag " example.edu. AAAA"

static void test_summarize(void **state)
{
	(void)state;
	/* any order: the SOA is not first */
	static const char *const texts[] = {
	    "www.example.edu. 3600 IN A 192.0.2.80",
	    SIG("www.example.edu.", "A", "20261210000000", "12345"),
	    SOA_RR,
	    SIG("example.edu.", "SOA", "20261215000000", "12345"),
	    "mail.example.edu. 3600 IN A 192.0.2.25",
	    SIG("mail.example.edu.", "A", "20261201000000", "23456"),
	    SIG("example.edu.", "DNSKEY", "20261220000000", "54321"),
	};
	ldns_rr_list *l = list_of(texts, sizeof(texts) / sizeof(texts[0]));
	struct drdns_rrsig_summary s;
	memset(&s, 0xAA, sizeof(s)); /* everything is written */
	drdns_rrsig_summarize(l, NOW, &s);
	assert_int_equal(s.signatures, 4);
	assert_int_equal(s.earliest, 1796083200); /* 2026-12-01 00:00:00 UTC */
	assert_string_equal(s.earliest_what, "mail.example.edu. A (key 23456)");
	assert_true(s.has_soa);
	assert_int_equal(s.serial, 2026112301u);

	/* the same records held as a zone */
	struct drdns_zone z = {.soa = NULL, .rrs = ldns_rr_list_new()};
	for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++) {
		ldns_rr *r = ldns_rr_list_rr(l, i);
		if (ldns_rr_get_type(r) == LDNS_RR_TYPE_SOA)
			z.soa = r;
		else
			ldns_rr_list_push_rr(z.rrs, r);
	}
	struct drdns_rrsig_summary zs;
	drdns_zone_rrsig_summarize(&z, NOW, &zs);
	assert_int_equal(zs.signatures, s.signatures);
	assert_int_equal(zs.earliest, s.earliest);
	assert_string_equal(zs.earliest_what, s.earliest_what);
	assert_true(zs.has_soa);
	assert_int_equal(zs.serial, s.serial);
	ldns_rr_list_free(z.rrs); /* shallow: the records are l's */
	ldns_rr_list_deep_free(l);

	drdns_zone_rrsig_summarize(NULL, NOW, &zs);
	assert_int_equal(zs.signatures, 0);
	assert_false(zs.has_soa);
}

/* Signatures that expire in the same second: the lowest in canonical order is
 * named, whatever the order of the records. */
static void test_summarize_tie(void **state)
{
	(void)state;
	static const char *const texts[] = {
	    SIG("zzz.example.edu.", "A", "20261201000000", "1"),
	    SIG("aaa.example.edu.", "MX", "20261201000000", "3"),
	    SIG("aaa.example.edu.", "TXT", "20261201000000", "2"),
	    SIG("aaa.example.edu.", "MX", "20261201000000", "2"),
	    SIG("aaa.example.edu.", "A", "20261205000000", "1"),
	};
	for (int reverse = 0; reverse < 2; reverse++) {
		ldns_rr_list *l = ldns_rr_list_new();
		for (size_t i = 0; i < 5; i++)
			ldns_rr_list_push_rr(l, rr(texts[reverse ? 4 - i : i]));
		struct drdns_rrsig_summary s;
		drdns_rrsig_summarize(l, NOW, &s);
		assert_int_equal(s.signatures, 5);
		assert_string_equal(s.earliest_what, "aaa.example.edu. MX (key 2)");
		assert_false(s.has_soa);
		assert_int_equal(s.serial, 0);
		ldns_rr_list_deep_free(l);
	}
}

static void test_summarize_unsigned_and_empty(void **state)
{
	(void)state;
	static const char *const texts[] = {SOA_RR, "www.example.edu. 3600 IN A 192.0.2.80"};
	ldns_rr_list *l = list_of(texts, 2);
	struct drdns_rrsig_summary s;
	memset(&s, 0xAA, sizeof(s));
	drdns_rrsig_summarize(l, NOW, &s);
	assert_int_equal(s.signatures, 0);
	assert_int_equal(s.earliest, 0);
	assert_string_equal(s.earliest_what, "");
	assert_true(s.has_soa);
	assert_int_equal(s.serial, 2026112301u);
	ldns_rr_list_deep_free(l);

	/* no SOA, signed */
	static const char *const sigs[] = {SIG("www.example.edu.", "A", "20261210000000", "7")};
	l = list_of(sigs, 1);
	drdns_rrsig_summarize(l, NOW, &s);
	assert_int_equal(s.signatures, 1);
	assert_false(s.has_soa);
	assert_int_equal(s.serial, 0);
	assert_string_equal(s.earliest_what, "www.example.edu. A (key 7)");
	ldns_rr_list_deep_free(l);

	/* empty and NULL */
	l = ldns_rr_list_new();
	drdns_rrsig_summarize(l, NOW, &s);
	assert_int_equal(s.signatures, 0);
	assert_false(s.has_soa);
	ldns_rr_list_deep_free(l);
	drdns_rrsig_summarize(NULL, NOW, &s);
	assert_int_equal(s.signatures, 0);
}

/* Around 2106 the expiration fields wrap: the smaller field is the later time. */
static void test_summarize_wrap(void **state)
{
	(void)state;
	static const char *const texts[] = {
	    SIG("after.example.edu.", "A", "20261201000000", "1"),
	    SIG("before.example.edu.", "A", "20261201000000", "2"),
	};
	ldns_rr_list *l = list_of(texts, 2);
	ldns_rr_rrsig_set_expiration(ldns_rr_list_rr(l, 0),
	                             ldns_native2rdf_int32(LDNS_RDF_TYPE_TIME, 1000));
	ldns_rr_rrsig_set_expiration(ldns_rr_list_rr(l, 1),
	                             ldns_native2rdf_int32(LDNS_RDF_TYPE_TIME, 0xFFFFFF00u));
	struct drdns_rrsig_summary s;
	drdns_rrsig_summarize(l, TWO_32 - 100, &s);
	assert_int_equal(s.signatures, 2);
	assert_int_equal(s.earliest, TWO_32 - 256);
	assert_string_equal(s.earliest_what, "before.example.edu. A (key 2)");
	/* seen after the wrap, the same */
	drdns_rrsig_summarize(l, TWO_32 + 100, &s);
	assert_int_equal(s.earliest, TWO_32 - 256);
	ldns_rr_list_deep_free(l);
}

/* ---- drdns_duration_label ---- */

static void test_duration_label(void **state)
{
	(void)state;
	static const struct {
		uint32_t s;
		const char *want;
	} cases[] = {
	    {0, "0s"},      {1, "1s"},         {45, "45s"},
	    {60, "1m"},     {61, "61s"},       {5400, "90m"},
	    {3600, "1h"},   {3660, "61m"},     {129600, "36h"},
	    {86400, "1d"},  {259200, "3d"},    {604800, "7d"},
	    {90000, "25h"}, {86401, "86401s"}, {4294967295u, "4294967295s"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];
		drdns_duration_label(cases[i].s, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
	char small[3];
	drdns_duration_label(604800, small, sizeof(small));
	assert_string_equal(small, "7d");
	drdns_duration_label(129600, small, sizeof(small));
	assert_string_equal(small, "36"); /* truncated, terminated */
}

/* ---- drdns_expiry_evaluate ---- */

static const uint32_t THRESHOLDS[] = {604800, 259200, 86400};
static const struct drdns_expiry_conf THREE = {
    .thresholds = THRESHOLDS, .n_thresholds = 3, .refresh = 2 * DAY};

static struct drdns_expiry_copy copy(const char *server, int64_t earliest, const char *what)
{
	return (struct drdns_expiry_copy){.server = server,
	                                  .known = true,
	                                  .signatures = earliest ? 100 : 0,
	                                  .earliest = earliest,
	                                  .earliest_what = what};
}

static struct drdns_expiry_out eval1(const struct drdns_expiry_conf *conf,
                                     const struct drdns_expiry_zone *z, double now)
{
	struct drdns_expiry_out o;
	memset(&o, 0x5A, sizeof(o)); /* everything is written */
	drdns_expiry_evaluate(conf, z, 1, now, &o);
	return o;
}

static void test_evaluate_unsigned(void **state)
{
	(void)state;
	struct drdns_expiry_copy c[] = {copy("ns1.example.edu.", 0, NULL),
	                                copy("ns2.example.edu.", 0, NULL)};
	struct drdns_expiry_zone z = {.zone = "example.edu.", .copies = c, .n_copies = 2};
	struct drdns_expiry_out o = eval1(&THREE, &z, NOW);
	assert_false(o.is_signed);
	assert_int_equal(o.rrsig_dark, 0);
	assert_null(o.rrsig_at);
	assert_true(o.time_to_dark == 0);
	assert_null(o.dark_cause);
	assert_int_equal(o.next_resign, 0);
	assert_false(o.resign_due);
	assert_int_equal(o.level, -1);

	/* unsigned, standby: the SOA EXPIRE is all there is */
	z.soa_deadline = (double)NOW + 5 * DAY;
	o = eval1(&THREE, &z, NOW);
	assert_int_equal(o.level, -1);
	assert_true(o.time_to_dark == (double)NOW + 5 * DAY);
	assert_string_equal(o.dark_cause, "expire");

	/* nothing known at all */
	struct drdns_expiry_zone none = {.zone = "example.edu."};
	o = eval1(&THREE, &none, NOW);
	assert_false(o.is_signed);
	assert_int_equal(o.level, -1);
	assert_null(o.dark_cause);
}

static void test_evaluate_levels(void **state)
{
	(void)state;
	static const struct {
		int64_t left;
		int level;
		const char *id;
	} cases[] = {
	    {8 * DAY, -1, NULL},
	    {7 * DAY + 1, -1, NULL},
	    {7 * DAY, 0, "rrsig:example.edu:7d"}, /* the threshold itself is reached */
	    {6 * DAY, 0, "rrsig:example.edu:7d"},
	    {3 * DAY + 1, 0, "rrsig:example.edu:7d"},
	    {2 * DAY, 1, "rrsig:example.edu:3d"},
	    {DAY / 2, 2, "rrsig:example.edu:1d"},
	    {0, 2, "rrsig:example.edu:1d"},
	    {-HOUR, 2, "rrsig:example.edu:1d"}, /* expired: the smallest threshold */
	};
	struct drdns_expiry_zone zones[sizeof(cases) / sizeof(cases[0])];
	struct drdns_expiry_copy copies[sizeof(cases) / sizeof(cases[0])];
	struct drdns_expiry_out out[sizeof(cases) / sizeof(cases[0])];
	size_t n = sizeof(cases) / sizeof(cases[0]);
	for (size_t i = 0; i < n; i++) {
		copies[i] =
		    copy("ns1.example.edu.", NOW + cases[i].left, "www.example.edu. A (key 1)");
		zones[i] = (struct drdns_expiry_zone){
		    .zone = "example.edu.", .copies = &copies[i], .n_copies = 1};
	}
	drdns_expiry_evaluate(&THREE, zones, n, (double)NOW, out);
	for (size_t i = 0; i < n; i++) {
		print_message("left %lld\n", (long long)cases[i].left);
		assert_true(out[i].is_signed);
		assert_int_equal(out[i].rrsig_dark, NOW + cases[i].left);
		assert_string_equal(out[i].rrsig_at, "ns1.example.edu.");
		assert_string_equal(out[i].dark_cause, "rrsig");
		assert_true(out[i].time_to_dark == (double)(NOW + cases[i].left));
		assert_int_equal(out[i].level, cases[i].level);
		if (cases[i].id)
			assert_string_equal(out[i].alert_id, cases[i].id);
		assert_int_equal(out[i].next_resign, 0);
		assert_false(out[i].resign_due);
	}

	/* thresholds in any order: the index into the caller's array */
	static const uint32_t unsorted[] = {86400, 604800, 259200};
	struct drdns_expiry_conf c2 = {.thresholds = unsorted, .n_thresholds = 3};
	assert_int_equal(eval1(&c2, &zones[5], NOW).level, 2); /* 2 days left: 3d */
	assert_int_equal(eval1(&c2, &zones[3], NOW).level, 1); /* 6 days left: 7d */
	assert_int_equal(eval1(&c2, &zones[8], NOW).level, 0); /* expired: 1d */
	assert_int_equal(eval1(&c2, &zones[0], NOW).level, -1);

	/* no thresholds: never an alert, expired or not */
	struct drdns_expiry_conf c3 = {.thresholds = NULL, .n_thresholds = 0};
	assert_int_equal(eval1(&c3, &zones[8], NOW).level, -1);

	/* thresholds that are not whole days */
	static const uint32_t odd[] = {129600, 5400};
	struct drdns_expiry_conf c4 = {.thresholds = odd, .n_thresholds = 2};
	struct drdns_expiry_out o = eval1(&c4, &zones[6], NOW); /* 12 h left */
	assert_int_equal(o.level, 0);
	assert_string_equal(o.alert_id, "rrsig:example.edu:36h");
	o = eval1(&c4, &zones[8], NOW);
	assert_string_equal(o.alert_id, "rrsig:example.edu:90m");
}

static void test_evaluate_message(void **state)
{
	(void)state;
	struct drdns_expiry_copy c[] = {
	    copy("ns1.example.edu.", NOW_PLUS3, "www.example.edu. A (key 12345)"),
	    copy("ns2.example.edu.", NOW_PLUS3 + 30, "mail.example.edu. A (key 12345)"),
	    copy("ns3.example.edu.", NOW + 5 * DAY, "example.edu. SOA (key 12345)"),
	    /* never fetched: its fields are garbage and must be ignored */
	    {.server = "ns4.example.edu.",
	     .known = false,
	     .signatures = 9,
	     .earliest = NOW - DAY,
	     .earliest_what = "bogus"},
	    copy("ns5.example.edu.", 0, NULL), /* unsigned copy */
	};
	struct drdns_expiry_zone z = {.zone = "example.edu.", .copies = c, .n_copies = 5};
	struct drdns_expiry_out o = eval1(&THREE, &z, (double)NOW);
	assert_int_equal(o.level, 1);
	assert_int_equal(o.rrsig_dark, NOW_PLUS3);
	assert_string_equal(o.rrsig_at, "ns1.example.edu.");
	assert_string_equal(o.alert_id, "rrsig:example.edu:3d");
	assert_string_equal(o.alert_msg,
	                    "example.edu: RRSIGs expire in 2d 23h 59m (2026-11-26 12:00:00 UTC) on "
	                    "ns1.example.edu., ns2.example.edu. (first: www.example.edu. A (key "
	                    "12345)); threshold 3d");

	/* a second past the threshold: ns2 is not named */
	c[1].earliest = NOW + 3 * DAY + 1;
	o = eval1(&THREE, &z, (double)NOW);
	assert_null(strstr(o.alert_msg, "ns2"));
	assert_non_null(strstr(o.alert_msg, " on ns1.example.edu. (first:"));

	/* expired */
	c[0].earliest = NOW - 2 * HOUR - 3 * 60;
	o = eval1(&THREE, &z, (double)NOW);
	assert_int_equal(o.level, 2);
	assert_string_equal(o.alert_id, "rrsig:example.edu:1d");
	assert_string_equal(
	    o.alert_msg, "example.edu: RRSIGs have EXPIRED 2h 3m ago (2026-11-23 09:58:00 UTC) "
	                 "on ns1.example.edu. (first: www.example.edu. A (key 12345)); threshold "
	                 "1d");

	/* under a minute: seconds; a copy without earliest_what: no "(first: ...)" */
	c[0].earliest = NOW + 42;
	c[0].earliest_what = NULL;
	o = eval1(&THREE, &z, (double)NOW);
	assert_string_equal(o.alert_msg, "example.edu: RRSIGs expire in 42s (2026-11-23 12:01:42 "
	                                 "UTC) on ns1.example.edu.; threshold 1d");
}

static void test_evaluate_many_servers(void **state)
{
	(void)state;
	const char *names[] = {"a.", "b.", "c.", "d.", "e.", "f.", "g."};
	struct drdns_expiry_copy c[7];
	for (size_t i = 0; i < 7; i++)
		c[i] = copy(names[i], NOW + DAY + HOUR + (int64_t)i * 60, NULL);
	c[6].earliest = NOW + 6 * DAY; /* outside 3d: not counted */
	struct drdns_expiry_zone z = {.zone = "example.org", .copies = c, .n_copies = 7};
	struct drdns_expiry_out o = eval1(&THREE, &z, (double)NOW);
	assert_int_equal(o.level, 1);
	assert_string_equal(o.alert_id, "rrsig:example.org:3d"); /* no dot to drop */
	assert_non_null(strstr(o.alert_msg, " on a., b., c., d. and 2 more; threshold 3d"));

	/* the root zone keeps its name */
	struct drdns_expiry_zone root = {.zone = ".", .copies = c, .n_copies = 1};
	o = eval1(&THREE, &root, (double)NOW);
	assert_string_equal(o.alert_id, "rrsig:.:3d");
}

static void test_evaluate_own(void **state)
{
	(void)state;
	struct drdns_expiry_copy c[] = {copy("ns1.example.edu.", NOW + 5 * DAY, "x. A (key 1)")};
	struct drdns_expiry_zone z = {.zone = "example.edu.",
	                              .own = true,
	                              .own_signatures = 50,
	                              .own_earliest = NOW + 2 * DAY,
	                              .copies = c,
	                              .n_copies = 1};
	struct drdns_expiry_out o = eval1(&THREE, &z, (double)NOW);
	assert_true(o.is_signed);
	assert_int_equal(o.rrsig_dark, NOW + 2 * DAY);
	assert_string_equal(o.rrsig_at, "drdns");
	assert_string_equal(o.dark_cause, "rrsig");
	assert_int_equal(o.level, 1);
	assert_string_equal(o.alert_msg, "example.edu: RRSIGs expire in 2d (2026-11-25 12:01:00 "
	                                 "UTC) on drdns; threshold 3d");
	/* refresh 2d: re-sign now */
	assert_int_equal(o.next_resign, NOW);
	assert_true(o.resign_due);

	/* a copy expires first: it is named, drdns too, within the same threshold */
	c[0].earliest = NOW + DAY + HOUR;
	o = eval1(&THREE, &z, (double)NOW);
	assert_string_equal(o.rrsig_at, "ns1.example.edu.");
	assert_non_null(strstr(o.alert_msg, " on ns1.example.edu., drdns (first: x. A (key 1))"));
	assert_int_equal(o.next_resign, NOW); /* own, whatever the copies */

	/* a tie: the copy is named */
	c[0].earliest = NOW + 2 * DAY;
	o = eval1(&THREE, &z, (double)NOW);
	assert_string_equal(o.rrsig_at, "ns1.example.edu.");

	/* own without signatures: not signed by drdns, no re-signing */
	z.own_signatures = 0;
	z.n_copies = 0;
	o = eval1(&THREE, &z, (double)NOW);
	assert_false(o.is_signed);
	assert_int_equal(o.level, -1);
	assert_int_equal(o.next_resign, 0);
	assert_false(o.resign_due);

	/* not own: own_* are ignored */
	z.own = false;
	z.own_signatures = 50;
	o = eval1(&THREE, &z, (double)NOW);
	assert_false(o.is_signed);
	assert_int_equal(o.next_resign, 0);
	assert_null(o.rrsig_at);
}

static void test_evaluate_time_to_dark(void **state)
{
	(void)state;
	struct drdns_expiry_copy c[] = {copy("ns1.example.edu.", NOW + 10 * DAY, "x. A (key 1)")};
	struct drdns_expiry_zone z = {.zone = "example.edu.",
	                              .soa_deadline = (double)NOW + 4 * DAY,
	                              .copies = c,
	                              .n_copies = 1};
	struct drdns_expiry_out o = eval1(&THREE, &z, (double)NOW);
	assert_true(o.time_to_dark == (double)NOW + 4 * DAY);
	assert_string_equal(o.dark_cause, "expire");
	assert_int_equal(o.rrsig_dark, NOW + 10 * DAY);
	assert_int_equal(o.level, -1); /* the SOA EXPIRE raises no rrsig alert */

	z.soa_deadline = (double)NOW + 12 * DAY;
	o = eval1(&THREE, &z, (double)NOW);
	assert_true(o.time_to_dark == (double)NOW + 10 * DAY);
	assert_string_equal(o.dark_cause, "rrsig");

	z.soa_deadline = (double)NOW + 10 * DAY; /* a tie: rrsig */
	o = eval1(&THREE, &z, (double)NOW);
	assert_string_equal(o.dark_cause, "rrsig");

	z.soa_deadline = (double)NOW + 10 * DAY - 0.5; /* fractional deadlines count */
	o = eval1(&THREE, &z, (double)NOW);
	assert_string_equal(o.dark_cause, "expire");
	assert_true(o.time_to_dark == (double)NOW + 10 * DAY - 0.5);

	z.soa_deadline = 0; /* promoted: rrsig only */
	o = eval1(&THREE, &z, (double)NOW);
	assert_string_equal(o.dark_cause, "rrsig");
}

static void test_evaluate_resign_boundary(void **state)
{
	(void)state;
	struct drdns_expiry_conf conf = {
	    .thresholds = THRESHOLDS, .n_thresholds = 3, .refresh = 5 * DAY};
	int64_t earliest = NOW + 20 * DAY;
	struct drdns_expiry_zone z = {
	    .zone = "example.edu.", .own = true, .own_signatures = 1, .own_earliest = earliest};
	int64_t at = earliest - 5 * DAY;
	struct drdns_expiry_out o = eval1(&conf, &z, (double)at - 1);
	assert_int_equal(o.next_resign, at);
	assert_false(o.resign_due);
	o = eval1(&conf, &z, (double)at - 0.001);
	assert_false(o.resign_due);
	o = eval1(&conf, &z, (double)at);
	assert_int_equal(o.next_resign, at);
	assert_true(o.resign_due);
	o = eval1(&conf, &z, (double)at + DAY);
	assert_true(o.resign_due);
	assert_int_equal(o.level, 0); /* 4 days left: 7d */

	/* the level boundary, exactly */
	o = eval1(&conf, &z, (double)(earliest - 7 * DAY) - 1);
	assert_int_equal(o.level, -1);
	o = eval1(&conf, &z, (double)(earliest - 7 * DAY));
	assert_int_equal(o.level, 0);
}

/* ---- the scan ---- */

static const char *ZONE_TEXT = "$ORIGIN example.edu.\n"
                               "$TTL 3600\n"
                               "@ IN SOA ns1.example.edu. hostmaster.example.edu. 2026112301 "
                               "3600 600 1209600 300\n"
                               "@ IN NS ns1\n"
                               "ns1 IN A 192.0.2.53\n"
                               "www IN A 192.0.2.80\n"
                               "www IN AAAA 2001:db8::80\n"
                               "mail IN A 192.0.2.25\n"
                               "@ IN MX 10 mail\n"
                               "txt IN TXT \"hello\"\n";

static const char *OTHER_TEXT = "$ORIGIN other.test.\n"
                                "$TTL 600\n"
                                "@ IN SOA ns1.example.edu. hostmaster.other.test. 7 3600 600 "
                                "1209600 600\n"
                                "@ IN NS ns1.example.edu.\n"
                                "www IN A 192.0.2.1\n";

struct sandbox {
	char *dir;
	uv_loop_t loop;
	struct drdns_conf conf;
	char *allow[1];
	struct drdns_server *ns;
	uint16_t port;
	struct drdns_sign_stats stats;
	struct drdns_rrsig_summary want; /* the signed zone, summarized in place */
	int64_t signed_at;
	int stalled[3];
	uint16_t stalled_port[3];
};

static uint16_t random_port(void)
{
	return (uint16_t)(20000 + rand() % 40000);
}

static struct drdns_zone *load_text(struct sandbox *s, const char *zone, const char *text)
{
	char *path = NULL;
	assert_true(asprintf(&path, "%s/%s.zone", s->dir, zone) > 0);
	assert_int_equal(drdns_write_atomic(path, text, strlen(text), 0644), 0);
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	int rc = drdns_zone_load(path, zone, &z, &diag);
	for (size_t i = 0; rc && i < diag.n; i++)
		print_message("  %s\n", diag.msgs[i]);
	assert_int_equal(rc, 0);
	drdns_diag_clear(&diag);
	free(path);
	return z;
}

static struct drdns_zone *signed_zone(struct sandbox *s)
{
	struct drdns_zone *in = load_text(s, "example.edu.", ZONE_TEXT);
	char *dir = data_path("keys/ecdsa");
	struct drdns_keyset *ks = NULL;
	struct drdns_diag diag = {0};
	assert_int_equal(drdns_keyset_load(dir, "example.edu", &ks, &diag), 0);
	assert_non_null(ks);
	drdns_diag_clear(&diag);
	free(dir);
	s->signed_at = (int64_t)time(NULL);
	struct drdns_sign_params p = {.now = (uint64_t)s->signed_at,
	                              .validity = 30 * DAY,
	                              .inception_offset = HOUR,
	                              .jitter = 3 * DAY,
	                              .threads = 1};
	struct drdns_zone *out = NULL;
	char err[256] = "";
	int rc = drdns_zone_sign(in, ks, &p, &out, &s->stats, err, sizeof(err));
	if (rc)
		fail_msg("sign: %s", err);
	drdns_keyset_free(ks);
	drdns_zone_free(in);
	drdns_zone_rrsig_summarize(out, s->signed_at, &s->want);
	return out;
}

/* A listener the kernel completes handshakes for, that never answers. */
static int stalled_master(const char *addr, uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, addr, &sa.sin_addr);
	*port = 0;
	for (int tries = 0; tries < 50 && !*port; tries++) {
		sa.sin_port = htons(random_port());
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			*port = ntohs(sa.sin_port);
	}
	assert_true(*port != 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static int setup(void **state)
{
	struct sandbox *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->dir = strdup("/tmp/drdns-test-expiry-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	assert_int_equal(uv_loop_init(&s->loop), 0);

	struct drdns_zoneset *set = calloc(1, sizeof(*set));
	assert_non_null(set);
	set->zones = calloc(2, sizeof(*set->zones));
	set->n = 2;
	set->zones[0] = signed_zone(s); /* sorted by name */
	set->zones[1] = load_text(s, "other.test.", OTHER_TEXT);

	s->conf.controller.address = NS_ADDR;
	s->allow[0] = SRC_ADDR;
	s->conf.controller.allow_transfer = s->allow;
	s->conf.controller.n_allow_transfer = 1;
	for (int tries = 0; tries < 50 && !s->ns; tries++) {
		s->port = random_port();
		s->conf.controller.port = s->port;
		if (drdns_server_new(&s->loop, &s->conf, &s->ns) < 0)
			s->ns = NULL;
	}
	assert_non_null(s->ns);
	drdns_server_set_zones(s->ns, set);

	static const char *const stalled_addr[3] = {"127.0.0.84", "127.0.0.85", "127.0.0.86"};
	for (int i = 0; i < 3; i++)
		s->stalled[i] = stalled_master(stalled_addr[i], &s->stalled_port[i]);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sandbox *s = *state;
	for (int i = 0; i < 3; i++)
		close(s->stalled[i]);
	drdns_server_close(s->ns, NULL, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&s->loop), 0);
	drdns_rm_rf(s->dir);
	free(s->dir);
	free(s);
	return 0;
}

struct outcome {
	bool started; /* drdns_rrsig_scan_start has returned */
	int calls;
	struct drdns_rrsig_result *r;
	size_t n;
};

static void on_scan(struct drdns_rrsig_result *results, size_t n, void *arg)
{
	struct outcome *o = arg;
	assert_true(o->started); /* never before start returned */
	o->calls++;
	o->r = results;
	o->n = n;
}

static void wait_scan(struct sandbox *s, struct outcome *o)
{
	while (o->calls == 0)
		uv_run(&s->loop, UV_RUN_ONCE);
	/* nothing more comes: run what is left without a server to keep it busy */
	assert_int_equal(o->calls, 1);
}

static struct drdns_rrsig_target target(const char *label, const char *addr, uint16_t port,
                                        const char *zone)
{
	return (struct drdns_rrsig_target){
	    .label = label, .address = addr, .port = port, .zone = zone};
}

static void test_scan(void **state)
{
	struct sandbox *s = *state;
	uint16_t dead_port = random_port();
	struct drdns_rrsig_target t[] = {
	    target("ns-a.example.edu.", NS_ADDR, s->port, "example.edu."),
	    target("ns-dead.example.edu.", DEAD, dead_port, "example.edu."),
	    target("ns-a.example.edu.", NS_ADDR, s->port, "other.test."),
	    target("ns-a.example.edu.", NS_ADDR, s->port, "missing.test."),
	    target(NULL, DEAD, dead_port, "other.test."),
	};
	struct outcome o = {0};
	struct drdns_rrsig_scan *h = NULL;
	int64_t t0 = (int64_t)time(NULL);
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, SRC_ADDR, t, 5, 5.0, 2, on_scan, &o, &h),
	                 0);
	o.started = true;
	assert_non_null(h);
	assert_int_equal(o.calls, 0);
	wait_scan(s, &o);
	assert_int_equal(o.n, 5);
	struct drdns_rrsig_result *r = o.r;
	for (size_t i = 0; i < 5; i++) { /* owned copies, in target order */
		assert_string_equal(r[i].label, t[i].label ? t[i].label : t[i].address);
		assert_string_equal(r[i].address, t[i].address);
		assert_string_equal(r[i].zone, t[i].zone);
		assert_int_equal(r[i].port, t[i].port);
		assert_ptr_not_equal(r[i].zone, t[i].zone);
	}

	/* the signed zone: what the signer made */
	assert_true(r[0].fetched);
	assert_string_equal(r[0].detail, "ok");
	assert_int_equal(r[0].summary.signatures, s->stats.signatures);
	assert_true(s->stats.signatures > 10);
	assert_int_equal(r[0].summary.earliest, drdns_rrsig_time(s->stats.earliest_expiration, t0));
	assert_true(r[0].summary.earliest > t0 + 26 * DAY);
	assert_true(r[0].summary.earliest <= t0 + 30 * DAY + 5);
	assert_string_equal(r[0].summary.earliest_what, s->want.earliest_what);
	assert_true(r[0].summary.has_soa);
	assert_int_equal(r[0].summary.serial, 2026112301u);
	print_message("earliest: %s\n", r[0].summary.earliest_what);
	/* the key tag is one of the fixture's */
	assert_true(strstr(r[0].summary.earliest_what, "(key 10680)") ||
	            strstr(r[0].summary.earliest_what, "(key 16588)"));

	/* unsigned */
	assert_true(r[2].fetched);
	assert_int_equal(r[2].summary.signatures, 0);
	assert_int_equal(r[2].summary.earliest, 0);
	assert_string_equal(r[2].summary.earliest_what, "");
	assert_int_equal(r[2].summary.serial, 7);

	/* refused, and nobody listening */
	assert_false(r[3].fetched);
	assert_string_equal(r[3].detail, "REFUSED");
	for (size_t i = 1; i < 5; i += 3) {
		assert_false(r[i].fetched);
		print_message("%s: %s\n", r[i].label, r[i].detail);
		assert_non_null(strstr(r[i].detail, "Connection refused"));
	}
	drdns_rrsig_results_free(o.r, o.n);

	/* the same, one at a time */
	memset(&o, 0, sizeof(o));
	assert_int_equal(
	    drdns_rrsig_scan_start(&s->loop, SRC_ADDR, t, 3, 5.0, 1, on_scan, &o, NULL), 0);
	o.started = true;
	wait_scan(s, &o);
	assert_true(o.r[0].fetched && !o.r[1].fetched && o.r[2].fetched);
	drdns_rrsig_results_free(o.r, o.n);

	/* without the source address the server does not allow the transfer */
	memset(&o, 0, sizeof(o));
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, t, 1, 5.0, 1, on_scan, &o, NULL),
	                 0);
	o.started = true;
	wait_scan(s, &o);
	assert_false(o.r[0].fetched);
	assert_string_equal(o.r[0].detail, "REFUSED");
	drdns_rrsig_results_free(o.r, o.n);
}

/* Connections waiting in a stalled listener's accept queue (Linux reports it
 * as tcpi_unacked for a listening socket).  A transfer that gave up stays
 * queued, so callers compare with a count taken before. */
static unsigned backlog(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	return ti.tcpi_unacked;
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

/* Run the loop for about ms milliseconds. */
static void run_for(struct sandbox *s, uint64_t ms)
{
	uv_timer_t tick;
	assert_int_equal(uv_timer_init(&s->loop, &tick), 0);
	uint64_t until = uv_now(&s->loop) + ms;
	uv_timer_start(&tick, on_tick, 10, 10);
	while (uv_now(&s->loop) < until)
		uv_run(&s->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&s->loop, UV_RUN_NOWAIT);
}

/* Run until the listeners' queues grew by want0 and want1 (or the scan ended). */
static void wait_queued(struct sandbox *s, struct outcome *o, unsigned want0, unsigned want1)
{
	while (o->calls == 0 && (backlog(s->stalled[0]) < want0 || backlog(s->stalled[1]) < want1))
		run_for(s, 10);
}

/* Targets at one address run one after the other, different addresses side
 * by side up to `parallel`: seen from the stalled listeners' accept queues
 * (no clock involved: each transfer would wait 30 s, and is cancelled once
 * the queues have shown what they show).  A timeout is reported per target. */
static void test_scan_grouping(void **state)
{
	struct sandbox *s = *state;
	struct drdns_rrsig_target same[] = {
	    target("x", "127.0.0.84", s->stalled_port[0], "example.edu."),
	    target("x", "127.0.0.84", s->stalled_port[0], "other.test."),
	};
	struct drdns_rrsig_target apart[] = {
	    target("x", "127.0.0.84", s->stalled_port[0], "example.edu."),
	    target("y", "127.0.0.85", s->stalled_port[1], "example.edu."),
	};
	static const struct {
		unsigned parallel;
		unsigned side_by_side; /* connections expected at once */
	} cases[] = {{4, 1}, {2, 2}, {1, 1}};
	for (size_t c = 0; c < 3; c++) {
		struct drdns_rrsig_target *t = c == 0 ? same : apart;
		unsigned b0 = backlog(s->stalled[0]), b1 = backlog(s->stalled[1]);
		struct outcome o = {0};
		struct drdns_rrsig_scan *h = NULL;
		assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, t, 2, 30.0,
		                                        cases[c].parallel, on_scan, &o, &h),
		                 0);
		o.started = true;
		if (cases[c].side_by_side == 2) {
			wait_queued(s, &o, b0 + 1, b1 + 1);
		} else {
			wait_queued(s, &o, b0 + 1, 0);
			run_for(s, 300); /* a second connection would show up by now */
		}
		assert_int_equal(o.calls, 0);
		unsigned queued = backlog(s->stalled[0]) - b0 + backlog(s->stalled[1]) - b1;
		print_message("parallel %u, %s: %u connection(s) at once\n", cases[c].parallel,
		              c == 0 ? "one address" : "two addresses", queued);
		assert_int_equal(queued, cases[c].side_by_side);
		drdns_rrsig_scan_cancel(h);
		wait_scan(s, &o);
		for (size_t i = 0; i < 2; i++)
			assert_string_equal(o.r[i].detail, "cancelled");
		drdns_rrsig_results_free(o.r, o.n);
	}

	/* timeouts, per target */
	struct outcome o = {0};
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, same, 2, 0.3, 4, on_scan, &o, NULL),
	                 0);
	o.started = true;
	wait_scan(s, &o);
	for (size_t i = 0; i < 2; i++) {
		assert_false(o.r[i].fetched);
		assert_string_equal(o.r[i].detail, "timed out after 0.3 s");
	}
	drdns_rrsig_results_free(o.r, o.n);
}

static void on_timer(uv_timer_t *t)
{
	drdns_rrsig_scan_cancel(t->data);
	uv_close((uv_handle_t *)t, NULL);
}

/* Cancelled at once, or in the middle of a transfer: every target not done
 * says "cancelled", cb runs once and soon. */
static void test_scan_cancel(void **state)
{
	struct sandbox *s = *state;
	struct drdns_rrsig_target t[] = {
	    target("a", "127.0.0.84", s->stalled_port[0], "example.edu."),
	    target("a", "127.0.0.84", s->stalled_port[0], "other.test."),
	    target("b", "127.0.0.85", s->stalled_port[1], "example.edu."),
	    target("c", "127.0.0.86", s->stalled_port[2], "example.edu."),
	    target("ns", NS_ADDR, s->port, "example.edu."),
	};
	size_t n = sizeof(t) / sizeof(t[0]);
	for (int later = 0; later < 2; later++) {
		struct outcome o = {0};
		struct drdns_rrsig_scan *h = NULL;
		uint64_t t0 = uv_hrtime();
		assert_int_equal(
		    drdns_rrsig_scan_start(&s->loop, SRC_ADDR, t, n, 30.0, 2, on_scan, &o, &h), 0);
		o.started = true;
		uv_timer_t timer;
		if (later) { /* once the first transfers are stuck */
			assert_int_equal(uv_timer_init(&s->loop, &timer), 0);
			timer.data = h;
			assert_int_equal(uv_timer_start(&timer, on_timer, 300, 0), 0);
		} else {
			drdns_rrsig_scan_cancel(h);
			assert_int_equal(o.calls, 0); /* not from cancel either */
		}
		wait_scan(s, &o);
		/* (the transfers' own timeout is 30 s: "cancelled" below shows they
		 * did not run out) */
		print_message("cancel %s: cb after %.2f s\n", later ? "later" : "at once",
		              (double)(uv_hrtime() - t0) / 1e9);
		assert_int_equal(o.n, n);
		for (size_t i = 0; i < n; i++) {
			print_message("  %s %s: %s\n", o.r[i].label, o.r[i].zone, o.r[i].detail);
			assert_false(o.r[i].fetched);
			assert_string_equal(o.r[i].detail, "cancelled");
		}
		drdns_rrsig_results_free(o.r, o.n);
		uv_run(&s->loop, UV_RUN_NOWAIT); /* the timer's close */
	}
}

static void test_scan_empty_and_invalid(void **state)
{
	struct sandbox *s = *state;
	struct outcome o = {0};
	struct drdns_rrsig_scan *h = NULL;
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, NULL, 0, 1.0, 1, on_scan, &o, &h),
	                 0);
	o.started = true;
	assert_non_null(h);
	wait_scan(s, &o);
	assert_int_equal(o.n, 0);
	drdns_rrsig_results_free(o.r, o.n);

	struct drdns_rrsig_target t[] = {target("a", NS_ADDR, s->port, "example.edu.")};
	struct drdns_rrsig_target bad[] = {target("a", NULL, s->port, "example.edu."),
	                                   target("a", NS_ADDR, s->port, NULL)};
	memset(&o, 0, sizeof(o));
	h = (struct drdns_rrsig_scan *)&o; /* overwritten with NULL on failure */
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, t, 1, 1.0, 0, on_scan, &o, &h),
	                 DRDNS_EINVAL);
	assert_null(h);
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, t, 1, 0, 1, on_scan, &o, &h),
	                 DRDNS_EINVAL);
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, t, 1, 1.0, 1, NULL, &o, &h),
	                 DRDNS_EINVAL);
	assert_int_equal(drdns_rrsig_scan_start(NULL, NULL, t, 1, 1.0, 1, on_scan, &o, &h),
	                 DRDNS_EINVAL);
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, NULL, 1, 1.0, 1, on_scan, &o, &h),
	                 DRDNS_EINVAL);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(
		    drdns_rrsig_scan_start(&s->loop, NULL, &bad[i], 1, 1.0, 1, on_scan, &o, &h),
		    DRDNS_EINVAL);
	uv_run(&s->loop, UV_RUN_NOWAIT);
	assert_int_equal(o.calls, 0);
	drdns_rrsig_scan_cancel(NULL); /* harmless */

	/* a bad address literal is the target's problem, not the scan's */
	struct drdns_rrsig_target odd[] = {target("a", "not-an-address", 53, "example.edu.")};
	o.started = false;
	assert_int_equal(drdns_rrsig_scan_start(&s->loop, NULL, odd, 1, 1.0, 1, on_scan, &o, NULL),
	                 0);
	o.started = true;
	wait_scan(s, &o);
	assert_false(o.r[0].fetched);
	assert_non_null(strstr(o.r[0].detail, "not-an-address"));
	drdns_rrsig_results_free(o.r, o.n);
	drdns_rrsig_results_free(NULL, 0);
}

int main(void)
{
	srand((unsigned)getpid());
	drdns_log_init("test_expiry", false, DRDNS_LOG_ERR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rrsig_time),
	    cmocka_unit_test(test_summarize),
	    cmocka_unit_test(test_summarize_tie),
	    cmocka_unit_test(test_summarize_unsigned_and_empty),
	    cmocka_unit_test(test_summarize_wrap),
	    cmocka_unit_test(test_duration_label),
	    cmocka_unit_test(test_evaluate_unsigned),
	    cmocka_unit_test(test_evaluate_levels),
	    cmocka_unit_test(test_evaluate_message),
	    cmocka_unit_test(test_evaluate_many_servers),
	    cmocka_unit_test(test_evaluate_own),
	    cmocka_unit_test(test_evaluate_time_to_dark),
	    cmocka_unit_test(test_evaluate_resign_boundary),
	    cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_grouping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_empty_and_invalid, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
