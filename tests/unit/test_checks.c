/*
 * Unit tests for include/drdns/checks.h: the advisory checks on a DR zone set.
 * tests/unit/data/check-set makes each check fire exactly where expected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "drdns/checks.h"
#include "drdns/diag.h"
#include "drdns/zone.h"

static size_t count_with(const struct drdns_diag *d, const char *a, const char *b)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++)
		n += strstr(d->msgs[i], a) && (!b || strstr(d->msgs[i], b));
	return n;
}

static struct drdns_zoneset *load_set(void)
{
	char *dir = data_path("check-set");
	struct drdns_zoneset *set = NULL;
	struct drdns_diag d = {0};
	int rc = drdns_zoneset_load_dir(dir, &set, &d);
	for (size_t i = 0; i < d.n; i++)
		print_message("  %s\n", d.msgs[i]);
	assert_int_equal(rc, 0);
	drdns_diag_clear(&d);
	free(dir);
	return set;
}

static void test_every_check(void **state)
{
	(void)state;
	struct drdns_zoneset *set = load_set();
	const char *known[] = {"ns2.elsewhere.net."};
	struct drdns_check_input in = {
	    .dr_ttl = 600, .ns_name = "ns-dr.example.test.", .known_ns = known, .n_known = 1};
	struct drdns_diag d = {0};
	size_t n = drdns_zoneset_check(set, &in, &d);
	for (size_t i = 0; i < d.n; i++)
		print_message("  | %s\n", d.msgs[i]);
	assert_int_equal(n, d.n);
	assert_int_equal(d.n_errors, 0); /* advisory only */
	/* reverse: mail has no PTR, vpn's PTR names another host; www and the NS hosts
	 * are fine; ext is outside every DR reverse zone */
	assert_int_equal(count_with(&d, "no PTR", NULL), 2);
	assert_int_equal(count_with(&d, "mail.example.test.", "192.0.2.25"), 1);
	assert_int_equal(count_with(&d, "vpn.example.test.", "30.2.0.192.in-addr.arpa."), 1);
	assert_int_equal(count_with(&d, "ext.example.test.", NULL), 0);
	/* TTLs: one summary for example.test (mail 7200), none for the reverse zone */
	assert_int_equal(count_with(&d, "TTL above dr_ttl", NULL), 1);
	assert_int_equal(count_with(&d, "TTL above dr_ttl", "up to 7200"), 1);
	/* SOA: example.test's EXPIRE 3600 < 3600 + 600, and below a week */
	assert_int_equal(count_with(&d, "below REFRESH 3600 + RETRY 600", "example.test."), 1);
	assert_int_equal(count_with(&d, "below one week", NULL), 1);
	/* NS: only ns9 is unknown and without an address */
	assert_int_equal(count_with(&d, "NS ns9.elsewhere.net.", NULL), 1);
	assert_int_equal(count_with(&d, "NS ", "not a configured secondary"), 1);
	for (size_t i = 0; i < d.n; i++)
		assert_non_null(strstr(d.msgs[i], ": warning: zone "));
	assert_int_equal(d.n, 6);
	drdns_diag_clear(&d);
	drdns_zoneset_free(set);
}

/* The shipped zones-dr with its example configuration: only the deliberate TTLs. */
static void test_shipped_set(void **state)
{
	(void)state;
	char *dir = data_path("../../../zones-dr");
	struct drdns_zoneset *set = NULL;
	struct drdns_diag d = {0};
	assert_int_equal(drdns_zoneset_load_dir(dir, &set, &d), 0);
	const char *known[] = {"ns0.example.edu.", "ns1.example.edu.", "ns2.example.edu.",
	                       "ns3.example.edu.", "ns4.example.edu."};
	struct drdns_check_input in = {
	    .dr_ttl = 600, .ns_name = "ns-dr.example.edu.", .known_ns = known, .n_known = 5};
	drdns_zoneset_check(set, &in, &d);
	for (size_t i = 0; i < d.n; i++)
		print_message("  | %s\n", d.msgs[i]);
	assert_int_equal(count_with(&d, "no PTR", NULL), 0);
	assert_int_equal(count_with(&d, "SOA EXPIRE", NULL), 0);
	assert_int_equal(count_with(&d, "not a configured secondary", NULL), 0);
	assert_int_equal(d.n, count_with(&d, "TTL above dr_ttl", NULL));
	drdns_diag_clear(&d);
	drdns_zoneset_free(set);
	free(dir);
}

static void test_empty(void **state)
{
	(void)state;
	struct drdns_check_input in = {.dr_ttl = 600};
	struct drdns_diag d = {0};
	assert_int_equal(drdns_zoneset_check(NULL, &in, &d), 0);
	assert_int_equal(d.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_check),
	    cmocka_unit_test(test_shipped_set),
	    cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
