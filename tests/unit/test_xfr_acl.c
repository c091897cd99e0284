/*
 * Unit tests for include/drdns/xfr_acl.h (src/server/acl.c): prefixes, the
 * transfer ACL, the refusal record and how a refusal is explained.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/tsig.h"
#include "drdns/xfr_acl.h"

static struct sockaddr_storage sa(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(40000);
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(40000);
	}
	return ss;
}
/* The socket address of text, in a static slot (one call per expression). */
static const struct sockaddr *SA(const char *text)
{
	static struct sockaddr_storage slot;
	slot = sa(text);
	return (const struct sockaddr *)&slot;
}

static bool contains(const char *prefix, const char *addr)
{
	struct drdns_prefix p;
	char err[160];
	if (drdns_prefix_parse(prefix, &p, err, sizeof(err)) != 0)
		fail_msg("prefix %s: %s", prefix, err);
	struct sockaddr_storage s = sa(addr);
	bool by_sa = drdns_prefix_contains(&p, (const struct sockaddr *)&s);
	assert_int_equal(by_sa, drdns_prefix_contains_text(&p, addr));
	return by_sa;
}

static void test_prefix_match(void **state)
{
	(void)state;
	assert_true(contains("192.0.2.0/24", "192.0.2.0"));
	assert_true(contains("192.0.2.0/24", "192.0.2.255"));
	assert_false(contains("192.0.2.0/24", "192.0.3.1"));
	assert_true(contains("192.0.2.128/25", "192.0.2.200"));
	assert_false(contains("192.0.2.128/25", "192.0.2.127"));
	assert_true(contains("127.0.0.110/31", "127.0.0.111"));
	assert_false(contains("127.0.0.110/31", "127.0.0.112"));
	assert_true(contains("192.0.2.7", "192.0.2.7")); /* an address is a /32 */
	assert_false(contains("192.0.2.7", "192.0.2.8"));
	assert_true(contains("0.0.0.0/0", "203.0.113.9"));
	assert_false(contains("0.0.0.0/0", "2001:db8::1")); /* families never mix */
	assert_true(contains("2001:db8::/48", "2001:db8:0:ffff::1"));
	assert_false(contains("2001:db8::/48", "2001:db8:1::1"));
	assert_true(contains("2001:db8::/35", "2001:db8:1fff::1"));
	assert_false(contains("2001:db8::/35", "2001:db8:2000::1"));
	assert_true(contains("2001:db8::53", "2001:DB8::53"));
	assert_false(contains("2001:db8::/32", "192.0.2.1"));
	/* IPv4-mapped IPv6 is IPv4, on either side */
	assert_true(contains("192.0.2.0/24", "::ffff:192.0.2.9"));
	assert_true(contains("::ffff:192.0.2.0/120", "192.0.2.9"));
	assert_false(contains("::ffff:192.0.2.0/120", "192.0.3.9"));
}

static void expect_bad(const char *text, const char *why)
{
	struct drdns_prefix p = {.family = 99};
	char err[160] = "";
	assert_int_equal(drdns_prefix_parse(text, &p, err, sizeof(err)), DRDNS_EINVAL);
	assert_int_equal(p.family, 99); /* untouched */
	if (!strstr(err, why))
		fail_msg("%s: \"%s\" lacks \"%s\"", text, err, why);
}

static void test_prefix_bad(void **state)
{
	(void)state;
	expect_bad("192.0.2.1/24", "bits set below /24 (did you mean 192.0.2.0/24?)");
	expect_bad("2001:db8::1/48", "did you mean 2001:db8::/48?");
	expect_bad("192.0.2.0/33", "prefix length '33' is not 0 to 32");
	expect_bad("2001:db8::/129", "0 to 128");
	expect_bad("192.0.2.0/", "prefix length");
	expect_bad("192.0.2.0/-1", "prefix length");
	expect_bad("192.0.2.0/24x", "prefix length");
	expect_bad("ns1.example.edu", "not an IPv4 or IPv6 address");
	expect_bad("ns1.example.edu/24", "before the '/'");
	expect_bad("", "not an IPv4");
	expect_bad("::ffff:192.0.2.0/64", "96 or more");
	assert_int_equal(drdns_prefix_parse(NULL, NULL, NULL, 0), DRDNS_EINVAL);
	/* no err buffer: still refused, nothing written */
	assert_int_equal(drdns_prefix_parse("10.0.0.1/8", NULL, NULL, 0), DRDNS_EINVAL);
	assert_int_equal(drdns_prefix_parse("10.0.0.0/8", NULL, NULL, 0), 0);
}

/* ns1: keyless, transfer_sources 127.0.0.111 and 198.51.100.0/24;
 * ns2: keyed (key "ns2-key."), transfer_sources 203.0.113.0/24;
 * ns3: keyless, nothing else; allow_transfer 192.0.2.60 and 2001:db8:60::/48. */
struct fixture {
	struct drdns_conf conf;
	struct drdns_secondary secs[3];
	struct drdns_tsig_key key;
	char *src1[2], *src2[1], *allow[2];
};

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof(f));
	f.key = (struct drdns_tsig_key){"ns2-key.", "hmac-sha256.", "c2VjcmV0"};
	f.src1[0] = "127.0.0.111";
	f.src1[1] = "198.51.100.0/24";
	f.src2[0] = "203.0.113.0/24";
	f.allow[0] = "192.0.2.60";
	f.allow[1] = "2001:db8:60::/48";
	f.secs[0] = (struct drdns_secondary){.name = "ns1.example.edu.",
	                                     .address = "127.0.0.11",
	                                     .port = 53,
	                                     .transfer_sources = f.src1,
	                                     .n_transfer_sources = 2};
	f.secs[1] = (struct drdns_secondary){.name = "ns2.example.edu.",
	                                     .address = "127.0.0.12",
	                                     .port = 53,
	                                     .tsig_key_file = "/k",
	                                     .key = &f.key,
	                                     .transfer_sources = f.src2,
	                                     .n_transfer_sources = 1};
	f.secs[2] = (struct drdns_secondary){
	    .name = "ns3.example.edu.", .address = "2001:db8:3::53", .port = 53};
	f.conf.secondaries = f.secs;
	f.conf.n_secondaries = 3;
	f.conf.controller.allow_transfer = f.allow;
	f.conf.controller.n_allow_transfer = 2;
	*state = &f;
	return 0;
}

static void test_acl(void **state)
{
	struct fixture *f = *state;
	const struct drdns_conf *c = &f->conf;
	assert_int_equal(drdns_xfr_acl(c, SA("127.0.0.11"), false), DRDNS_XFR_OK_SECONDARY);
	assert_int_equal(drdns_xfr_acl(c, SA("::ffff:127.0.0.11"), false), DRDNS_XFR_OK_SECONDARY);
	assert_int_equal(drdns_xfr_acl(c, SA("2001:db8:3::53"), false), DRDNS_XFR_OK_SECONDARY);
	/* transfer_sources of a keyless secondary: address and prefix */
	assert_int_equal(drdns_xfr_acl(c, SA("127.0.0.111"), false), DRDNS_XFR_OK_SOURCE);
	assert_int_equal(drdns_xfr_acl(c, SA("198.51.100.77"), false), DRDNS_XFR_OK_SOURCE);
	assert_int_equal(drdns_xfr_acl(c, SA("198.51.101.77"), false), DRDNS_XFR_NOT_ALLOWED);
	/* a keyed secondary: unsigned is refused from its address and its sources */
	assert_int_equal(drdns_xfr_acl(c, SA("127.0.0.12"), false), DRDNS_XFR_NOT_ALLOWED);
	assert_int_equal(drdns_xfr_acl(c, SA("203.0.113.5"), false), DRDNS_XFR_NOT_ALLOWED);
	/* ... and signed is allowed from anywhere */
	assert_int_equal(drdns_xfr_acl(c, SA("203.0.113.5"), true), DRDNS_XFR_OK_KEY);
	assert_int_equal(drdns_xfr_acl(c, SA("10.9.9.9"), true), DRDNS_XFR_OK_KEY);
	/* allow_transfer: an address and an IPv6 prefix */
	assert_int_equal(drdns_xfr_acl(c, SA("192.0.2.60"), false), DRDNS_XFR_OK_ACL);
	assert_int_equal(drdns_xfr_acl(c, SA("192.0.2.61"), false), DRDNS_XFR_NOT_ALLOWED);
	assert_int_equal(drdns_xfr_acl(c, SA("2001:db8:60:1::9"), false), DRDNS_XFR_OK_ACL);
	assert_int_equal(drdns_xfr_acl(c, SA("2001:db8:61::9"), false), DRDNS_XFR_NOT_ALLOWED);
	assert_int_equal(drdns_xfr_acl(NULL, SA("127.0.0.11"), false), DRDNS_XFR_NOT_ALLOWED);
	assert_int_equal(drdns_xfr_acl(c, NULL, false), DRDNS_XFR_NOT_ALLOWED);
}

static void note(struct drdns_xfr_refusals *r, time_t t, const char *zone, const char *src,
                 const char *key, const char *reason)
{
	struct sockaddr_storage s = sa(src);
	drdns_xfr_refusals_note(r, t, zone, (const struct sockaddr *)&s, key, reason);
}

static void test_record_bounded_ordered(void **state)
{
	(void)state;
	static struct drdns_xfr_refusals r; /* zero: empty */
	memset(&r, 0, sizeof(r));
	static struct drdns_xfr_refusal out[DRDNS_XFR_REFUSALS_MAX + 4];
	assert_int_equal(drdns_xfr_refusals_mark(&r), 0);
	assert_int_equal(drdns_xfr_refusals_since(&r, 0, out, 8), 0);

	note(&r, 100, "example.edu.", "127.0.0.111", NULL, "not-allowed");
	note(&r, 101, "other.test.", "::ffff:127.0.0.5", "k.", "tsig-badkey");
	uint64_t mark = drdns_xfr_refusals_mark(&r);
	assert_int_equal(mark, 2);
	assert_int_equal(drdns_xfr_refusals_since(&r, 0, out, 8), 2);
	assert_string_equal(out[0].zone, "example.edu.");
	assert_string_equal(out[0].source, "127.0.0.111"); /* no port */
	assert_false(out[0].is_signed);
	assert_string_equal(out[0].key, "");
	assert_string_equal(out[0].reason, "not-allowed");
	assert_int_equal(out[0].count, 1);
	assert_string_equal(out[1].source, "127.0.0.5"); /* mapped: folded */
	assert_true(out[1].is_signed);
	assert_string_equal(out[1].key, "k.");
	assert_true(out[0].seq < out[1].seq);
	assert_int_equal(drdns_xfr_refusals_since(&r, mark, out, 8), 0);

	/* the first again (a secondary retrying): merged, counted, now the newest */
	note(&r, 105, "EXAMPLE.edu.", "127.0.0.111", NULL, "not-allowed");
	assert_int_equal(drdns_xfr_refusals_since(&r, 0, out, 8), 2);
	assert_string_equal(out[0].zone, "other.test.");
	assert_string_equal(out[1].source, "127.0.0.111");
	assert_int_equal(out[1].count, 2);
	assert_int_equal(out[1].first, 100);
	assert_int_equal(out[1].last, 105);
	assert_int_equal(drdns_xfr_refusals_since(&r, mark, out, 8), 1);
	assert_string_equal(out[0].source, "127.0.0.111");

	/* bounded: the oldest go, the order holds */
	char src[32];
	for (int i = 0; i < DRDNS_XFR_REFUSALS_MAX + 10; i++) {
		snprintf(src, sizeof(src), "10.0.%d.%d", i / 250, i % 250 + 1);
		note(&r, 200 + i, "example.edu.", src, NULL, "not-allowed");
	}
	size_t n = drdns_xfr_refusals_since(&r, 0, out, DRDNS_XFR_REFUSALS_MAX + 4);
	assert_int_equal(n, DRDNS_XFR_REFUSALS_MAX);
	for (size_t i = 1; i < n; i++)
		assert_true(out[i - 1].seq < out[i].seq);
	snprintf(src, sizeof(src), "10.0.0.%d", DRDNS_XFR_REFUSALS_MAX + 10);
	assert_string_equal(out[n - 1].source, src);
	assert_string_equal(out[0].source, "10.0.0.11"); /* the 11th of the loop */
	/* max smaller than what is there: the newest max, oldest first */
	assert_int_equal(drdns_xfr_refusals_since(&r, 0, out, 3), 3);
	assert_string_equal(out[2].source, src);
	assert_int_equal(drdns_xfr_refusals_since(NULL, 0, out, 3), 0);
	assert_int_equal(drdns_xfr_refusals_mark(NULL), 0);
	drdns_xfr_refusals_note(NULL, 0, "x.", NULL, NULL, "not-allowed"); /* harmless */
}

static struct drdns_xfr_refusal mk(uint64_t seq, const char *zone, const char *src, const char *key,
                                   const char *reason)
{
	struct drdns_xfr_refusal r = {.seq = seq, .count = 1, .is_signed = key != NULL};
	snprintf(r.zone, sizeof(r.zone), "%s", zone);
	snprintf(r.source, sizeof(r.source), "%s", src);
	snprintf(r.key, sizeof(r.key), "%s", key ? key : "");
	snprintf(r.reason, sizeof(r.reason), "%s", reason);
	return r;
}

static void test_explain(void **state)
{
	struct fixture *f = *state;
	const struct drdns_conf *c = &f->conf;
	const char *zones[] = {"example.edu."};
	struct drdns_xfr_explained x;

	/* an unknown source: "possibly", for any secondary that asks */
	struct drdns_xfr_refusal l1[] = {mk(1, "example.edu.", "127.0.0.222", NULL, "not-allowed")};
	assert_true(drdns_xfr_explain(c, l1, 1, "ns3.example.edu.", zones, 1, &x));
	assert_true(x.possibly);
	assert_string_equal(x.refusal.source, "127.0.0.222");
	assert_string_equal(x.text,
	                    "possibly this secondary: transfer of example.edu. from 127.0.0.222 "
	                    "refused (not an allowed address): add it to "
	                    "secondaries[ns3].transfer_sources or controller.allow_transfer, or "
	                    "give the secondary a TSIG key");
	assert_true(drdns_xfr_explain(c, l1, 1, "ns1.example.edu", zones, 1, &x));
	assert_true(x.possibly);
	/* another zone: nothing */
	const char *other[] = {"other.test."};
	assert_false(drdns_xfr_explain(c, l1, 1, "ns3.example.edu.", other, 1, &x));
	/* every zone */
	assert_true(drdns_xfr_explain(c, l1, 1, "ns3.example.edu.", NULL, 0, &x));

	/* by address and by a transfer_sources prefix: that secondary, certainly; the
	 * newest of its own wins over a newer unknown one */
	struct drdns_xfr_refusal l2[] = {
	    mk(1, "example.edu.", "198.51.100.9", NULL, "not-allowed"),
	    mk(3, "example.edu.", "127.0.0.222", NULL, "not-allowed"),
	    mk(2, "example.edu.", "2001:db8:3::53", NULL, "not-allowed"),
	};
	assert_true(drdns_xfr_explain(c, l2, 3, "ns1.example.edu.", zones, 1, &x));
	assert_false(x.possibly);
	assert_string_equal(x.refusal.source, "198.51.100.9");
	assert_non_null(strstr(x.text, "transfer of example.edu. from 198.51.100.9 refused (not an "
	                               "allowed address): add it to secondaries[ns1]"));
	assert_null(strstr(x.text, "possibly"));
	assert_true(drdns_xfr_explain(c, l2, 3, "ns3.example.edu.", zones, 1, &x));
	assert_false(x.possibly);
	assert_string_equal(x.refusal.source, "2001:db8:3::53");
	/* ns2 has none of its own: only the unknown one, possibly */
	assert_true(drdns_xfr_explain(c, l2, 3, "ns2.example.edu.", zones, 1, &x));
	assert_true(x.possibly);
	assert_string_equal(x.refusal.source, "127.0.0.222");
	/* a refusal known to be another secondary's is never given to this one */
	assert_false(drdns_xfr_explain(c, l2, 1, "ns3.example.edu.", zones, 1, &x));

	/* keyed ns2: unsigned from its prefix, then a bad signature with its key name */
	struct drdns_xfr_refusal l3[] = {
	    mk(1, "example.edu.", "203.0.113.5", NULL, "not-allowed"),
	};
	assert_true(drdns_xfr_explain(c, l3, 1, "ns2.example.edu.", zones, 1, &x));
	assert_false(x.possibly);
	assert_non_null(strstr(x.text, "refused (unsigned, but secondaries[ns2] has a TSIG key): "
	                               "configure that key for transfers on the secondary"));
	struct drdns_xfr_refusal l4[] = {
	    mk(1, "example.edu.", "10.1.1.1", "NS2-key", "tsig-badsig"),
	};
	assert_true(drdns_xfr_explain(c, l4, 1, "ns2.example.edu.", zones, 1, &x));
	assert_false(x.possibly); /* by its key name, from an address nobody listed */
	assert_true(x.refusal.is_signed);
	assert_non_null(strstr(x.text, "transfer of example.edu. from 10.1.1.1 refused (TSIG key "
	                               "NS2-key, BADSIG: the secrets differ): give the "
	                               "secondary and drdns the same key "
	                               "(secondaries[ns2].tsig_key)"));
	/* an unknown key from an unknown address: possibly anyone's */
	struct drdns_xfr_refusal l5[] = {
	    mk(1, "example.edu.", "10.1.1.1", "stranger.", "tsig-badkey"),
	};
	assert_true(drdns_xfr_explain(c, l5, 1, "ns3.example.edu.", zones, 1, &x));
	assert_true(x.possibly);
	assert_non_null(strstr(x.text, "BADKEY"));

	/* nothing to explain with */
	assert_false(drdns_xfr_explain(c, NULL, 0, "ns1.example.edu.", zones, 1, &x));
	assert_false(drdns_xfr_explain(NULL, l1, 1, "ns1.example.edu.", zones, 1, &x));
	assert_false(drdns_xfr_explain(c, l1, 0, "ns1.example.edu.", zones, 1, &x));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prefix_match),
	    cmocka_unit_test(test_prefix_bad),
	    cmocka_unit_test_setup(test_acl, setup),
	    cmocka_unit_test(test_record_bounded_ordered),
	    cmocka_unit_test_setup(test_explain, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
