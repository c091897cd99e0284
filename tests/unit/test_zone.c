/*
 * Unit tests for include/drdns/zone.h: loading and validating DR zone files,
 * zone sets, writing and the small accessors.
 *
 * Fixtures live in $DRDNS_TEST_DATA/zone-<case>/<origin>.zone (one directory per
 * case so the file name gives the origin).  Expected line numbers are checked
 * against the fixture itself (fixture_line_has) so an edited fixture fails loudly
 * instead of silently testing something else.
 */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include <ldns/ldns.h>

#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/fsutil.h"
#include "drdns/zone.h"

/* ---- helpers ----------------------------------------------------------- */

/* The fixture's line `line` (1-based) contains `needle`. */
static void fixture_line_has(const char *path, int line, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open fixture %s", path);
	char buf[1024];
	int n = 0;
	bool found = false;
	while (fgets(buf, sizeof(buf), f)) {
		if (++n == line) {
			found = strstr(buf, needle) != NULL;
			break;
		}
	}
	fclose(f);
	if (!found)
		fail_msg("fixture %s line %d does not contain \"%s\" (fixture edited?)", path, line,
		         needle);
}

static bool icontains(const char *hay, const char *needle)
{
	size_t nl = strlen(needle);
	for (const char *h = hay; *h; h++)
		if (strncasecmp(h, needle, nl) == 0)
			return true;
	return false;
}

static void dump_diag(const struct drdns_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		print_message("  diag[%zu]: %s\n", i, d->msgs[i]);
}

/* Index of the message that starts with "path:line: " (and has text after it), or -1. */
static int diag_find_line(const struct drdns_diag *d, const char *path, int line)
{
	char prefix[1200];
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	for (size_t i = 0; i < d->n; i++)
		if (strncmp(d->msgs[i], prefix, strlen(prefix)) == 0 &&
		    strlen(d->msgs[i]) > strlen(prefix))
			return (int)i;
	return -1;
}

static void expect_diag_line(const struct drdns_diag *d, const char *path, int line,
                             const char *kw1, const char *kw2)
{
	int i = diag_find_line(d, path, line);
	if (i < 0) {
		dump_diag(d);
		fail_msg("no diagnostic \"%s:%d: ...\"", path, line);
	}
	if (kw1 && !icontains(d->msgs[i], kw1) && !(kw2 && icontains(d->msgs[i], kw2))) {
		dump_diag(d);
		fail_msg("diagnostic for line %d mentions neither \"%s\" nor \"%s\": %s", line, kw1,
		         kw2 ? kw2 : "", d->msgs[i]);
	}
}

/* Every message of d is located in path ("path:" prefix). */
static void expect_all_located(const struct drdns_diag *d, const char *path)
{
	size_t pl = strlen(path);
	for (size_t i = 0; i < d->n; i++)
		if (strncmp(d->msgs[i], path, pl) != 0 || d->msgs[i][pl] != ':') {
			dump_diag(d);
			fail_msg("diagnostic not prefixed with \"%s:\": %s", path, d->msgs[i]);
		}
}

/* Load case/<origin>.zone expecting DRDNS_EZONE; returns the path (caller frees),
 * diag is filled. */
static char *load_fail(const char *casedir, const char *origin, struct drdns_diag *diag)
{
	char rel[256];
	snprintf(rel, sizeof(rel), "%s/%s.zone", casedir, origin);
	char *path = data_path(rel);
	struct drdns_zone *z = NULL;
	int rc = drdns_zone_load(path, origin, &z, diag);
	if (rc != DRDNS_EZONE) {
		dump_diag(diag);
		fail_msg("%s: expected DRDNS_EZONE (%d), got %d", path, DRDNS_EZONE, rc);
	}
	assert_null(z);
	assert_true(diag->n_errors >= 1);
	expect_all_located(diag, path);
	return path;
}

static char *rr_owner_str(const ldns_rr *rr)
{
	return ldns_rdf2str(ldns_rr_owner(rr));
}

static size_t count_rrs(const struct drdns_zone *z, const char *owner, ldns_rr_type type)
{
	size_t n = 0;
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
		ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		char *o = rr_owner_str(rr);
		if (strcmp(o, owner) == 0 && ldns_rr_get_type(rr) == type)
			n++;
		free(o);
	}
	return n;
}

static char *make_tmpdir(void)
{
	char *t = strdup("/tmp/drdns-test-zone-XXXXXX");
	assert_non_null(t);
	assert_non_null(mkdtemp(t));
	return t;
}

/* ---- valid zones -------------------------------------------------------- */

static void test_load_valid(void **state)
{
	(void)state;
	char *path = data_path("zone-valid/example.edu.zone");
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	int rc = drdns_zone_load(path, "example.edu", &z, &diag);
	if (rc != 0)
		dump_diag(&diag);
	assert_int_equal(rc, 0);
	assert_int_equal(diag.n_errors, 0);
	assert_non_null(z);
	assert_string_equal(z->name, "example.edu.");
	assert_non_null(z->path);
	assert_string_equal(z->path, path);
	char *o = ldns_rdf2str(z->origin);
	assert_string_equal(o, "example.edu.");
	free(o);
	assert_non_null(z->soa);
	assert_int_equal(ldns_rr_get_type(z->soa), LDNS_RR_TYPE_SOA);

	assert_int_equal(drdns_zone_serial(z), 2024010101u);
	/* 13 records in the file, one an exact duplicate: 12 including the SOA */
	assert_int_equal(drdns_zone_rr_count(z), 12);
	assert_int_equal(ldns_rr_list_rr_count(z->rrs), 11);

	/* no SOA in rrs; every owner lowercase and inside the zone */
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
		ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		assert_int_not_equal(ldns_rr_get_type(rr), LDNS_RR_TYPE_SOA);
		char *own = rr_owner_str(rr);
		for (const char *c = own; *c; c++)
			if (isupper((unsigned char)*c))
				fail_msg("owner not lowercase: %s", own);
		size_t ol = strlen(own);
		assert_true(ol >= strlen("example.edu."));
		assert_string_equal(own + ol - strlen("example.edu."), "example.edu.");
		free(own);
	}
	/* WWW and www collapse to one A record; Mail is lowercased */
	assert_int_equal(count_rrs(z, "www.example.edu.", LDNS_RR_TYPE_A), 1);
	assert_int_equal(count_rrs(z, "www.example.edu.", LDNS_RR_TYPE_AAAA), 1);
	assert_int_equal(count_rrs(z, "ns-dr.example.edu.", LDNS_RR_TYPE_A), 1);
	assert_int_equal(count_rrs(z, "mail.example.edu.", LDNS_RR_TYPE_A), 1);
	assert_int_equal(count_rrs(z, "example.edu.", LDNS_RR_TYPE_NS), 2);
	assert_int_equal(count_rrs(z, "portal.example.edu.", LDNS_RR_TYPE_CNAME), 1);

	/* file order (zone.h), with the duplicate on line 13 removed and owners
	 * lowercased */
	static const struct {
		int line;
		const char *owner;
		ldns_rr_type type;
		const char *rdata;
	} want[] = {
	    {7, "example.edu.", LDNS_RR_TYPE_NS, "ns-dr.example.edu."},
	    {8, "example.edu.", LDNS_RR_TYPE_NS, "NS1.Example.EDU."},
	    {9, "ns-dr.example.edu.", LDNS_RR_TYPE_A, "192.0.2.53"},
	    {10, "ns1.example.edu.", LDNS_RR_TYPE_A, "192.0.2.11"},
	    {11, "ns1.example.edu.", LDNS_RR_TYPE_AAAA, "2001:db8::11"},
	    {12, "www.example.edu.", LDNS_RR_TYPE_A, "192.0.2.80"},
	    {14, "www.example.edu.", LDNS_RR_TYPE_AAAA, "2001:db8::80"},
	    {15, "portal.example.edu.", LDNS_RR_TYPE_CNAME, "www.example.edu."},
	    {16, "example.edu.", LDNS_RR_TYPE_MX, "mail.example.edu."},
	    {17, "mail.example.edu.", LDNS_RR_TYPE_A, "192.0.2.25"},
	    {18, "v6only.example.edu.", LDNS_RR_TYPE_AAAA, "2001:db8::66"},
	};
	assert_int_equal(ldns_rr_list_rr_count(z->rrs), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		char *own = rr_owner_str(rr);
		/* the last rdata field: the address, the target, the MX exchange */
		char *rd = ldns_rdf2str(ldns_rr_rdf(rr, ldns_rr_rd_count(rr) - 1));
		bool ok = !strcmp(own, want[i].owner) && ldns_rr_get_type(rr) == want[i].type &&
		          !strcasecmp(rd, want[i].rdata);
		if (!ok)
			print_message("rrs[%zu]: got %s type %d %s, want line %d: %s type %d %s\n",
			              i, own, ldns_rr_get_type(rr), rd, want[i].line, want[i].owner,
			              want[i].type, want[i].rdata);
		free(own);
		free(rd);
		if (!ok) {
			drdns_zone_free(z);
			drdns_diag_clear(&diag);
			free(path);
			fail_msg("rrs not in file order");
		}
	}

	drdns_zone_free(z);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_load_origin_text_forms(void **state)
{
	(void)state;
	char *path = data_path("zone-valid/example.edu.zone");
	const char *forms[] = {"example.edu.", "Example.EDU", "EXAMPLE.EDU."};
	for (size_t i = 0; i < 3; i++) {
		struct drdns_diag diag = {0};
		struct drdns_zone *z = NULL;
		assert_int_equal(drdns_zone_load(path, forms[i], &z, &diag), 0);
		assert_string_equal(z->name, "example.edu.");
		assert_int_equal(drdns_zone_rr_count(z), 12);
		drdns_zone_free(z);
		drdns_diag_clear(&diag);
	}
	free(path);
}

static void test_load_no_origin_directive(void **state)
{
	(void)state;
	char *path = data_path("zone-no-origin/2.0.192.in-addr.arpa.zone");
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	int rc = drdns_zone_load(path, "2.0.192.in-addr.arpa", &z, &diag);
	if (rc)
		dump_diag(&diag);
	assert_int_equal(rc, 0);
	assert_string_equal(z->name, "2.0.192.in-addr.arpa.");
	assert_int_equal(drdns_zone_serial(z), 7);
	assert_int_equal(drdns_zone_rr_count(z), 3);
	assert_int_equal(count_rrs(z, "53.2.0.192.in-addr.arpa.", LDNS_RR_TYPE_PTR), 1);
	/* an out-of-zone NS target needs no glue */
	char **names = NULL;
	assert_int_equal(drdns_zone_ns_names(z, &names), 1);
	assert_string_equal(names[0], "ns-dr.example.edu.");
	free(names[0]);
	free(names);
	drdns_zone_free(z);
	drdns_diag_clear(&diag);
	free(path);
}

/* ---- validation rules --------------------------------------------------- */

static void test_bad_rdata(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-bad-rdata", "example.edu", &diag);
	fixture_line_has(path, 9, "192.0.2.999");
	expect_diag_line(&diag, path, 9, NULL, NULL);
	drdns_diag_clear(&diag);
	free(path);
}

/*
 * REGRESSION test: this bug was found by this test and has since been fixed.
 * Was in src/zone/zone.c, drdns_zone_load: the line of a record is taken as
 * "line - 1" on the assumption that ldns has counted the newline ending it.  On a
 * last line without a trailing newline ldns stops at EOF without counting one, so
 * the problem on line 9 is reported as line 8.  Fix: remember the line counter
 * before each ldns_rr_new_frm_fp_l call (first line of the record) or check
 * whether the record ended at EOF.
 */
static void test_bad_rdata_last_line_without_newline(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-bad-rdata-noeol", "example.edu", &diag);
	fixture_line_has(path, 9, "192.0.2.999");
	bool ok = diag_find_line(&diag, path, 9) >= 0;
	if (!ok)
		dump_diag(&diag);
	drdns_diag_clear(&diag); /* free before failing: keep valgrind output about the library */
	free(path);
	if (!ok)
		fail_msg("no diagnostic for line 9 (the last line, without a newline)");
}

static void test_out_of_zone(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-out-of-zone", "example.edu", &diag);
	fixture_line_has(path, 9, "www.example.com.");
	expect_diag_line(&diag, path, 9, "www.example.com", "zone");
	assert_int_equal(diag.n_errors, 1);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_out_of_zone_textual_suffix(void **state)
{
	(void)state;
	/* "www.notexample.edu." ends with the string "example.edu." but is not in it */
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-out-of-zone-suffix", "example.edu", &diag);
	fixture_line_has(path, 10, "www.notexample.edu.");
	expect_diag_line(&diag, path, 10, "notexample", "zone");
	drdns_diag_clear(&diag);
	free(path);
}

static void test_two_soa(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-two-soa", "example.edu", &diag);
	fixture_line_has(path, 10, "SOA");
	expect_diag_line(&diag, path, 10, "SOA", NULL);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_soa_not_apex(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-soa-not-apex", "example.edu", &diag);
	fixture_line_has(path, 4, "sub IN SOA");
	expect_diag_line(&diag, path, 4, "SOA", NULL);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_no_soa(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-no-soa", "example.edu", &diag);
	bool found = false;
	for (size_t i = 0; i < diag.n; i++)
		if (strstr(diag.msgs[i], "SOA"))
			found = true;
	if (!found)
		dump_diag(&diag);
	assert_true(found);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_no_apex_ns(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-no-apex-ns", "example.edu", &diag);
	bool found = false;
	for (size_t i = 0; i < diag.n; i++)
		if (strstr(diag.msgs[i], "NS"))
			found = true;
	if (!found)
		dump_diag(&diag);
	assert_true(found);
	assert_int_equal(diag.n_errors, 1);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_ns_without_glue(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-ns-no-glue", "example.edu", &diag);
	fixture_line_has(path, 10, "@   IN NS ns1");
	expect_diag_line(&diag, path, 10, "glue", "ns1.example.edu");
	assert_int_equal(diag.n_errors, 1);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_cname_beside_data(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-bad-cname", "example.edu", &diag);
	fixture_line_has(path, 10, "CNAME");
	expect_diag_line(&diag, path, 10, "CNAME", NULL);
	assert_int_equal(diag.n_errors, 1);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_cname_at_apex(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-cname-apex", "example.edu", &diag);
	fixture_line_has(path, 9, "CNAME");
	expect_diag_line(&diag, path, 9, "CNAME", NULL);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_origin_mismatch(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-origin-mismatch", "example.edu", &diag);
	fixture_line_has(path, 2, "$ORIGIN example.com.");
	expect_diag_line(&diag, path, 2, "ORIGIN", NULL);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_include_refused(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-include", "example.edu", &diag);
	fixture_line_has(path, 9, "$INCLUDE");
	expect_diag_line(&diag, path, 9, "INCLUDE", NULL);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_class_not_in(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-class-ch", "example.edu", &diag);
	fixture_line_has(path, 10, "CH TXT");
	expect_diag_line(&diag, path, 10, "class", "CH");
	assert_int_equal(diag.n_errors, 1);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_multiple_problems_all_reported(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	char *path = load_fail("zone-multi", "example.edu", &diag);
	fixture_line_has(path, 9, "www.example.com.");
	fixture_line_has(path, 12, "CNAME");
	fixture_line_has(path, 13, "CH TXT");
	fixture_line_has(path, 14, "192.0.2.300");
	expect_diag_line(&diag, path, 9, "www.example.com", "zone");
	expect_diag_line(&diag, path, 12, "CNAME", NULL);
	expect_diag_line(&diag, path, 13, "class", "CH");
	expect_diag_line(&diag, path, 14, NULL, NULL);
	assert_true(diag.n_errors >= 4);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_missing_file(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	char *path = data_path("zone-valid/nonexistent.example.zone");
	int rc = drdns_zone_load(path, "nonexistent.example", &z, &diag);
	assert_true(rc < 0);
	assert_null(z);
	assert_true(diag.n >= 1);
	drdns_diag_clear(&diag);
	free(path);
}

/* ---- zone sets ----------------------------------------------------------- */

static void test_zoneset_good(void **state)
{
	(void)state;
	char *dir = data_path("zone-set-good");
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	int rc = drdns_zoneset_load_dir(dir, &set, &diag);
	if (rc)
		dump_diag(&diag);
	assert_int_equal(rc, 0);
	assert_non_null(set);
	/* README.txt and mm.example.zone.bak are ignored */
	assert_int_equal(set->n, 3);
	assert_string_equal(set->zones[0]->name, "aa.example.");
	assert_string_equal(set->zones[1]->name, "mm.example.");
	assert_string_equal(set->zones[2]->name, "zz.example.");
	assert_int_equal(drdns_zone_serial(set->zones[0]), 10);
	assert_int_equal(drdns_zone_serial(set->zones[1]), 20);
	assert_int_equal(drdns_zone_serial(set->zones[2]), 30);
	assert_int_equal(drdns_zone_rr_count(set->zones[1]), 3);

	assert_ptr_equal(drdns_zoneset_find(set, "mm.example"), set->zones[1]);
	assert_ptr_equal(drdns_zoneset_find(set, "mm.example."), set->zones[1]);
	assert_ptr_equal(drdns_zoneset_find(set, "MM.Example"), set->zones[1]);
	assert_ptr_equal(drdns_zoneset_find(set, "ZZ.EXAMPLE."), set->zones[2]);
	assert_ptr_equal(drdns_zoneset_find(set, "aa.example"), set->zones[0]);
	assert_null(drdns_zoneset_find(set, "nope.example"));
	assert_null(drdns_zoneset_find(set, "example"));
	assert_null(drdns_zoneset_find(set, "a.example"));
	assert_null(drdns_zoneset_find(set, "www.aa.example."));

	drdns_zoneset_free(set);
	drdns_diag_clear(&diag);
	free(dir);
}

static void test_zoneset_all_or_nothing(void **state)
{
	(void)state;
	char *dir = data_path("zone-set-mixed");
	char *bad = data_path("zone-set-mixed/bad.example.zone");
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	int rc = drdns_zoneset_load_dir(dir, &set, &diag);
	assert_int_equal(rc, DRDNS_EZONE);
	assert_null(set);
	assert_true(diag.n_errors >= 1);
	fixture_line_has(bad, 7, "not-an-address");
	/* the message names the file; the path is dir + "/" + file name */
	bool found = false;
	for (size_t i = 0; i < diag.n; i++)
		if (strstr(diag.msgs[i], "bad.example.zone:7: "))
			found = true;
	if (!found)
		dump_diag(&diag);
	assert_true(found);
	drdns_diag_clear(&diag);
	free(dir);
	free(bad);
}

static void test_zoneset_empty_dir(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	/* a non-.zone file does not make it non-empty */
	char *junk = NULL;
	assert_true(asprintf(&junk, "%s/notes.txt", dir) > 0);
	assert_int_equal(drdns_write_atomic(junk, "x\n", 2, 0644), 0);
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	int rc = drdns_zoneset_load_dir(dir, &set, &diag);
	assert_true(rc < 0);
	assert_null(set);
	assert_true(diag.n >= 1);
	drdns_diag_clear(&diag);
	assert_int_equal(drdns_rm_rf(dir), 0);
	free(junk);
	free(dir);
}

/*
 * REGRESSION test: this bug was found by this test and has since been fixed.
 * Was in src/zone/zone.c, drdns_zone_load: `while (!feof(fp))` never ends when
 * reading fails (ferror set, EOF never reached).  A directory named "*.zone" in the
 * DR zone directory opens fine with fopen() but every read fails with EISDIR, so
 * drdns_zoneset_load_dir (and `drdnsd --check`, and promotion) hangs forever.
 * Fix: stop on ferror(fp) and report "path: read error", and/or skip or report
 * non-regular files in drdns_zoneset_load_dir.
 * Either outcome is accepted here: the directory ignored (one zone loaded) or an
 * all-or-nothing error with a diagnostic.  A hang (10 s) fails.
 */
static void test_zoneset_dir_named_zone(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *src = data_path("zone-set-good/aa.example.zone");
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(drdns_read_file(src, &text, &len), 0);
	char *dst = NULL, *sub = NULL;
	assert_true(asprintf(&dst, "%s/aa.example.zone", dir) > 0);
	assert_true(asprintf(&sub, "%s/bb.example.zone", dir) > 0);
	assert_int_equal(drdns_write_atomic(dst, text, len, 0644), 0);
	assert_int_equal(drdns_mkdir_p(sub, 0755), 0);

	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(10);
		struct drdns_diag diag = {0};
		struct drdns_zoneset *set = NULL;
		int rc = drdns_zoneset_load_dir(dir, &set, &diag);
		int ok = (rc == 0 && set && set->n == 1) || (rc < 0 && !set && diag.n_errors >= 1);
		drdns_zoneset_free(set);
		drdns_diag_clear(&diag);
		free(text); /* the parent's copies: keep the child valgrind-clean too */
		free(src);
		free(dst);
		free(sub);
		free(dir);
		_exit(ok ? 0 : 2);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(drdns_rm_rf(dir), 0);
	free(text);
	free(src);
	free(dst);
	free(sub);
	free(dir);
	if (WIFSIGNALED(status))
		fail_msg("zoneset_load_dir with a directory named *.zone: killed by signal %d "
		         "(SIGALRM = hung for 10 s)",
		         WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_zoneset_missing_dir(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	int rc = drdns_zoneset_load_dir("/nonexistent/drdns/zones-dr", &set, &diag);
	assert_true(rc < 0);
	assert_null(set);
	drdns_diag_clear(&diag);
}

/* ---- writing, cloning, accessors ---------------------------------------- */

static void assert_zones_equal(const struct drdns_zone *a, const struct drdns_zone *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(drdns_zone_serial(a), drdns_zone_serial(b));
	assert_int_equal(drdns_zone_rr_count(a), drdns_zone_rr_count(b));
	assert_int_equal(ldns_rr_compare(a->soa, b->soa), 0);
	assert_int_equal(ldns_rr_ttl(a->soa), ldns_rr_ttl(b->soa));
	size_t n = ldns_rr_list_rr_count(a->rrs);
	assert_int_equal(n, ldns_rr_list_rr_count(b->rrs));
	for (size_t i = 0; i < n; i++) {
		ldns_rr *x = ldns_rr_list_rr(a->rrs, i), *y = ldns_rr_list_rr(b->rrs, i);
		if (ldns_rr_compare(x, y) != 0 || ldns_rr_ttl(x) != ldns_rr_ttl(y)) {
			char *sx = ldns_rr2str(x), *sy = ldns_rr2str(y);
			print_message("differ at %zu:\n  %s  %s", i, sx, sy);
			free(sx);
			free(sy);
			fail();
		}
	}
}

static void test_round_trip(void **state)
{
	(void)state;
	char *path = data_path("zone-valid/example.edu.zone");
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	assert_int_equal(drdns_zone_load(path, "example.edu", &z, &diag), 0);

	char *text = drdns_zone_to_text(z);
	assert_non_null(text);
	/* $ORIGIN first, then the SOA as the first record */
	assert_true(strncmp(text, "$ORIGIN example.edu.", 20) == 0);
	const char *first_rr = NULL;
	for (const char *line = text; line && *line && !first_rr;) {
		if (*line != '$' && *line != ';' && *line != '\n')
			first_rr = line;
		const char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	assert_non_null(first_rr);
	const char *eol = strchr(first_rr, '\n');
	char *l1 = strndup(first_rr, eol ? (size_t)(eol - first_rr) : strlen(first_rr));
	if (!strstr(l1, "SOA"))
		fail_msg("first record is not the SOA: %s", l1);
	free(l1);

	char *dir = make_tmpdir();
	char *out = NULL;
	assert_true(asprintf(&out, "%s/example.edu.zone", dir) > 0);
	assert_int_equal(drdns_zone_write(z, out), 0);
	/* written atomically: no temp file left behind */
	assert_int_equal(dir_entries(dir), 1);
	/* writing again replaces the file */
	assert_int_equal(drdns_zone_write(z, out), 0);
	assert_int_equal(dir_entries(dir), 1);

	struct drdns_zone *z2 = NULL;
	int rc = drdns_zone_load(out, "example.edu.", &z2, &diag);
	if (rc)
		dump_diag(&diag);
	assert_int_equal(rc, 0);
	assert_zones_equal(z, z2);
	char *text2 = drdns_zone_to_text(z2);
	assert_string_equal(text, text2);
	/* the file on disk is exactly zone_to_text */
	char *disk = NULL;
	size_t len = 0;
	assert_int_equal(drdns_read_file(out, &disk, &len), 0);
	assert_string_equal(disk, text);

	/* a zone without the NS-order / duplicate quirks round-trips too */
	char *rp = data_path("zone-no-origin/2.0.192.in-addr.arpa.zone");
	struct drdns_zone *r = NULL, *r2 = NULL;
	assert_int_equal(drdns_zone_load(rp, "2.0.192.in-addr.arpa", &r, &diag), 0);
	char *rout = NULL;
	assert_true(asprintf(&rout, "%s/2.0.192.in-addr.arpa.zone", dir) > 0);
	assert_int_equal(drdns_zone_write(r, rout), 0);
	assert_int_equal(drdns_zone_load(rout, "2.0.192.in-addr.arpa", &r2, &diag), 0);
	assert_zones_equal(r, r2);

	drdns_zone_free(r);
	drdns_zone_free(r2);
	free(rout);
	free(rp);
	free(disk);
	free(text2);
	drdns_zone_free(z2);
	free(text);
	drdns_zone_free(z);
	assert_int_equal(drdns_rm_rf(dir), 0);
	free(out);
	free(dir);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_clone(void **state)
{
	(void)state;
	char *path = data_path("zone-valid/example.edu.zone");
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	assert_int_equal(drdns_zone_load(path, "example.edu", &z, &diag), 0);
	char *t1 = drdns_zone_to_text(z);
	struct drdns_zone *c = drdns_zone_clone(z);
	assert_non_null(c);
	assert_ptr_not_equal(c->rrs, z->rrs);
	assert_ptr_not_equal(c->soa, z->soa);
	assert_ptr_not_equal(c->name, z->name);
	assert_zones_equal(z, c);
	drdns_zone_free(z); /* the clone is deep: it must survive this */
	char *t2 = drdns_zone_to_text(c);
	assert_string_equal(t1, t2);
	assert_int_equal(drdns_zone_serial(c), 2024010101u);
	drdns_zone_free(c);
	free(t1);
	free(t2);
	drdns_diag_clear(&diag);
	free(path);
}

static void test_ns_names_and_glue(void **state)
{
	(void)state;
	char *path = data_path("zone-valid/example.edu.zone");
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	assert_int_equal(drdns_zone_load(path, "example.edu", &z, &diag), 0);

	/* both names, lowercase with a trailing dot (order: test_ns_names_file_order) */
	char **names = NULL;
	size_t n = drdns_zone_ns_names(z, &names);
	assert_int_equal(n, 2);
	bool dr = false, one = false;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(names[i], "ns-dr.example.edu."))
			dr = true;
		if (!strcmp(names[i], "ns1.example.edu."))
			one = true;
		free(names[i]);
	}
	free(names);
	assert_true(dr);
	assert_true(one);

	char *a = drdns_zone_glue_address(z, "ns1.example.edu.");
	assert_non_null(a);
	assert_string_equal(a, "192.0.2.11"); /* A on line 10 comes before the AAAA */
	free(a);
	a = drdns_zone_glue_address(z, "ns-dr.example.edu.");
	assert_non_null(a);
	assert_string_equal(a, "192.0.2.53");
	free(a);
	a = drdns_zone_glue_address(z, "v6only.example.edu.");
	assert_non_null(a);
	assert_string_equal(a, "2001:db8::66");
	free(a);
	a = drdns_zone_glue_address(z, "mail.example.edu.");
	assert_non_null(a);
	assert_string_equal(a, "192.0.2.25");
	free(a);
	assert_null(drdns_zone_glue_address(z, "portal.example.edu.")); /* CNAME only */
	assert_null(drdns_zone_glue_address(z, "nothere.example.edu."));
	assert_null(drdns_zone_glue_address(z, "ns1.example.com."));

	drdns_zone_free(z);
	drdns_diag_clear(&diag);
	free(path);
}

/*
 * REGRESSION test: this bug was found by this test and has since been fixed.
 * Was in src/zone/zone.c, drdns_zone_ns_names: zone.h promises the apex NS names
 * "in file order", but the loader sorts the records canonically (sort_unique) and
 * ns_names walks the sorted list, so the result is in canonical RDATA order, where
 * ns1 (3-octet first label) sorts before ns-dr (5 octets) although the file lists
 * ns-dr first.  rewrite.c relies on this order to restore NS "in file order" for
 * min_ns (see test_rewrite.c test_min_ns_file_order).
 */
static void test_ns_names_file_order(void **state)
{
	(void)state;
	char *path = data_path("zone-valid/example.edu.zone");
	fixture_line_has(path, 7, "NS ns-dr");
	fixture_line_has(path, 8, "NS NS1.Example.EDU.");
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	assert_int_equal(drdns_zone_load(path, "example.edu", &z, &diag), 0);
	char **names = NULL;
	size_t n = drdns_zone_ns_names(z, &names);
	bool ok = n == 2 && !strcmp(names[0], "ns-dr.example.edu.") &&
	          !strcmp(names[1], "ns1.example.edu.");
	if (!ok)
		for (size_t i = 0; i < n; i++)
			print_message("  ns_names[%zu] = %s\n", i, names[i]);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	drdns_zone_free(z);
	drdns_diag_clear(&diag);
	free(path);
	if (!ok)
		fail_msg("ns_names not in file order (ns-dr line 7, then ns1 line 8)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_valid),
	    cmocka_unit_test(test_load_origin_text_forms),
	    cmocka_unit_test(test_load_no_origin_directive),
	    cmocka_unit_test(test_bad_rdata),
	    cmocka_unit_test(test_bad_rdata_last_line_without_newline),
	    cmocka_unit_test(test_out_of_zone),
	    cmocka_unit_test(test_out_of_zone_textual_suffix),
	    cmocka_unit_test(test_two_soa),
	    cmocka_unit_test(test_soa_not_apex),
	    cmocka_unit_test(test_no_soa),
	    cmocka_unit_test(test_no_apex_ns),
	    cmocka_unit_test(test_ns_without_glue),
	    cmocka_unit_test(test_cname_beside_data),
	    cmocka_unit_test(test_cname_at_apex),
	    cmocka_unit_test(test_origin_mismatch),
	    cmocka_unit_test(test_include_refused),
	    cmocka_unit_test(test_class_not_in),
	    cmocka_unit_test(test_multiple_problems_all_reported),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_zoneset_good),
	    cmocka_unit_test(test_zoneset_all_or_nothing),
	    cmocka_unit_test(test_zoneset_empty_dir),
	    cmocka_unit_test(test_zoneset_dir_named_zone),
	    cmocka_unit_test(test_zoneset_missing_dir),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_clone),
	    cmocka_unit_test(test_ns_names_and_glue),
	    cmocka_unit_test(test_ns_names_file_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
