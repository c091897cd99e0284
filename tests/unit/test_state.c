/*
 * Unit tests for include/drdns/state.h: state.json and the gen-<N> directories.
 * Every test works in its own mkdtemp directory and removes it.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/fsutil.h"
#include "drdns/state.h"
#include "drdns/zone.h"

/* ---- helpers ----------------------------------------------------------- */

static int setup_dir(void **state)
{
	char *t = strdup("/tmp/drdns-test-state-XXXXXX");
	if (!t || !mkdtemp(t)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown_dir(void **state)
{
	char *t = *state;
	int rc = drdns_rm_rf(t);
	free(t);
	return rc == 0 ? 0 : -1;
}

static char *join(const char *dir, const char *name)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static bool exists(const char *dir, const char *name)
{
	char *p = join(dir, name);
	struct stat st;
	bool ok = stat(p, &st) == 0;
	free(p);
	return ok;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *p = join(dir, name);
	assert_int_equal(drdns_write_atomic(p, text, strlen(text), 0644), 0);
	free(p);
}

static void make_dir(const char *dir, const char *name)
{
	char *p = join(dir, name);
	assert_int_equal(drdns_mkdir_p(p, 0755), 0);
	free(p);
}

static struct drdns_state *load_ok(const char *dir)
{
	struct drdns_state *st = NULL;
	char err[256] = "";
	int rc = drdns_state_load(dir, &st, err, sizeof(err));
	if (rc)
		fail_msg("state_load: %d %s", rc, err);
	assert_non_null(st);
	return st;
}

static struct drdns_zoneset *load_set_good(void)
{
	char *dir = data_path("zone-set-good");
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	int rc = drdns_zoneset_load_dir(dir, &set, &diag);
	if (rc)
		fail_msg("fixture zone-set-good does not load: %d", rc);
	drdns_diag_clear(&diag);
	free(dir);
	assert_int_equal(set->n, 3);
	return set;
}

static uint32_t seen_of(const struct drdns_state *st, const char *zone)
{
	for (size_t i = 0; i < st->n_seen; i++)
		if (strcmp(st->seen[i].zone, zone) == 0)
			return st->seen[i].serial;
	fail_msg("no seen entry for %s", zone);
	return 0;
}

/* ---- state.json ----------------------------------------------------------- */

static void test_fresh_dir(void **state)
{
	const char *dir = *state;
	struct drdns_state *st = load_ok(dir);
	assert_false(st->promoted);
	assert_int_equal(st->generation, 0);
	assert_int_equal(st->n_zones, 0);
	assert_int_equal(st->n_seen, 0);
	uint32_t s = 0;
	assert_false(drdns_state_published(st, "example.edu.", &s));
	drdns_state_free(st);
	/* loading does not create anything */
	assert_int_equal(dir_entries(dir), 0);
}

static void test_save_load_round_trip(void **state)
{
	const char *dir = *state;
	struct drdns_state *st = calloc(1, sizeof(*st));
	assert_non_null(st);
	st->promoted = true;
	st->generation = 7;
	st->changed_at = 1735689600;
	st->reason = strdup("campus \"uplink\" down\nticket #42 \xc3\xa9t\xc3\xa9");
	st->who = strdup("uid=1000 alice via 198.51.100.7");
	st->n_zones = 2;
	st->zones = calloc(2, sizeof(*st->zones));
	st->zones[0].zone = strdup("2.0.192.in-addr.arpa.");
	st->zones[0].serial = 42;
	st->zones[1].zone = strdup("example.edu.");
	st->zones[1].serial = 0xFFFFFFFFu;
	st->n_seen = 1;
	st->seen = calloc(1, sizeof(*st->seen));
	st->seen[0].zone = strdup("example.edu.");
	st->seen[0].serial = 0x80000001u;

	assert_int_equal(drdns_state_save(dir, st), 0);
	assert_true(exists(dir, "state.json"));
	assert_int_equal(dir_entries(dir), 1); /* no temp file left behind */

	struct drdns_state *ld = load_ok(dir);
	assert_true(ld->promoted);
	assert_int_equal(ld->generation, 7);
	assert_int_equal(ld->changed_at, 1735689600);
	assert_non_null(ld->reason);
	assert_string_equal(ld->reason, st->reason);
	assert_non_null(ld->who);
	assert_string_equal(ld->who, st->who);
	assert_int_equal(ld->n_zones, 2);
	uint32_t s = 0;
	assert_true(drdns_state_published(ld, "example.edu.", &s));
	assert_int_equal(s, 0xFFFFFFFFu);
	assert_true(drdns_state_published(ld, "2.0.192.in-addr.arpa.", &s));
	assert_int_equal(s, 42);
	assert_false(drdns_state_published(ld, "other.example.", &s));
	assert_int_equal(ld->n_seen, 1);
	assert_int_equal(seen_of(ld, "example.edu."), 0x80000001u);
	drdns_state_free(ld);

	/* back to not promoted (reason and who kept: see test_save_load_null_strings) */
	st->promoted = false;
	st->generation = 0;
	st->changed_at = 1735700000;
	assert_int_equal(drdns_state_save(dir, st), 0);
	ld = load_ok(dir);
	assert_false(ld->promoted);
	assert_int_equal(ld->generation, 0);
	assert_int_equal(ld->changed_at, 1735700000);
	assert_int_equal(ld->n_zones, 2);
	drdns_state_free(ld);
	drdns_state_free(st);
	assert_int_equal(dir_entries(dir), 1);
}

/*
 * REGRESSION test: this bug was found by this test and has since been fixed.
 * Was in src/state/state.c: drdns_state_save packs reason/who with "s:s?", which
 * writes "reason": null / "who": null when they are NULL (state.h: "may be NULL"),
 * but drdns_state_load unpacks them with "s?s", which only makes the key optional:
 * a null value fails with "Expected string, got null" -> DRDNS_ESTATE.  So a
 * state saved before any promotion (e.g. after note_seen) or after a role change
 * without a reason makes the next start fail.
 * Fix: unpack with "s?o" and accept json_is_null / json_is_string, or omit the
 * keys when NULL on save.
 */
static void test_save_load_null_strings(void **state)
{
	const char *dir = *state;
	struct drdns_state *st = load_ok(dir); /* fresh: reason and who are NULL */
	assert_null(st->reason);
	assert_null(st->who);
	st->changed_at = 1735700000;
	assert_int_equal(drdns_state_save(dir, st), 0);
	drdns_state_free(st);

	struct drdns_state *ld = NULL;
	char err[256] = "";
	int rc = drdns_state_load(dir, &ld, err, sizeof(err));
	if (rc != 0)
		fail_msg("a state saved with reason/who NULL does not load: %d %s", rc, err);
	assert_false(ld->promoted);
	assert_int_equal(ld->changed_at, 1735700000);
	assert_null(ld->reason);
	assert_null(ld->who);
	drdns_state_free(ld);
}

static void expect_corrupt(const char *dir, const char *text)
{
	write_file(dir, "state.json", text);
	struct drdns_state *st = NULL;
	char err[256] = "";
	int rc = drdns_state_load(dir, &st, err, sizeof(err));
	if (rc != DRDNS_ESTATE)
		fail_msg("state.json \"%s\": expected DRDNS_ESTATE, got %d", text, rc);
	assert_null(st);
	assert_true(strlen(err) > 0);
}

static void test_corrupt(void **state)
{
	const char *dir = *state;
	expect_corrupt(dir, "{not json");
	expect_corrupt(dir, "");
	expect_corrupt(dir, "[1, 2, 3]");
	expect_corrupt(dir, "{\"promoted\": true, \"generation\": 3, \"zones\": ");
}

/* The alert book survives a restart: ids, counts and acknowledgements. */
static void test_alerts_round_trip(void **state)
{
	const char *dir = *state;
	struct drdns_state *st = calloc(1, sizeof(*st));
	assert_non_null(st);
	struct drdns_alert list[2] = {
	    {.id = "rrsig:example.edu:3d",
	     .message = "example.edu: RRSIGs expire in 2d",
	     .raised_at = 1700000000.5,
	     .last_sent = 1700003600.5,
	     .sent = 2,
	     .acked = true,
	     .acked_by = "uid 1000 (alice)",
	     .ack_reason = "re-signing on campus, ticket 42",
	     .acked_at = 1700001000.25},
	    {.id = "resign-failed",
	     .message = "m",
	     .raised_at = 1,
	     .last_sent = 2,
	     .sent = 4,
	     .escalated = true,
	     .restored = true},
	};
	assert_int_equal(drdns_state_set_alerts(st, list, 2), 0);
	assert_false(st->alerts[1].restored); /* not a saved property */
	assert_int_equal(drdns_state_save(dir, st), 0);
	drdns_state_free(st);

	struct drdns_state *back = NULL;
	char err[256];
	assert_int_equal(drdns_state_load(dir, &back, err, sizeof(err)), 0);
	assert_int_equal(back->n_alerts, 2);
	assert_string_equal(back->alerts[0].id, "rrsig:example.edu:3d");
	assert_string_equal(back->alerts[0].message, "example.edu: RRSIGs expire in 2d");
	assert_true(back->alerts[0].raised_at == 1700000000.5);
	assert_true(back->alerts[0].last_sent == 1700003600.5);
	assert_int_equal(back->alerts[0].sent, 2);
	assert_true(back->alerts[0].acked);
	assert_string_equal(back->alerts[0].acked_by, "uid 1000 (alice)");
	assert_string_equal(back->alerts[0].ack_reason, "re-signing on campus, ticket 42");
	assert_true(back->alerts[0].acked_at == 1700001000.25);
	assert_false(back->alerts[1].acked);
	assert_null(back->alerts[1].acked_by);
	assert_true(back->alerts[1].escalated);
	assert_int_equal(back->alerts[1].sent, 4);
	/* an empty list empties it */
	assert_int_equal(drdns_state_set_alerts(back, NULL, 0), 0);
	assert_int_equal(back->n_alerts, 0);
	drdns_state_free(back);

	/* a malformed entry: corrupt, with a message */
	expect_corrupt(dir, "{\"version\": 1, \"promoted\": false, \"generation\": 0, "
	                    "\"changed_at\": 0, \"alerts\": [{\"id\": 3}]}");
	expect_corrupt(dir, "{\"version\": 1, \"promoted\": false, \"generation\": 0, "
	                    "\"changed_at\": 0, \"alerts\": {}}");
}

/* ---- generations ---------------------------------------------------------- */

static void test_write_and_load_generation(void **state)
{
	const char *dir = *state;
	struct drdns_zoneset *set = load_set_good();
	unsigned long gen = 0;
	assert_int_equal(drdns_state_write_generation(dir, set, &gen), 0);
	assert_int_equal(gen, 1);
	assert_true(exists(dir, "gen-1"));
	assert_true(exists(dir, "gen-1/aa.example.zone"));
	assert_true(exists(dir, "gen-1/mm.example.zone"));
	assert_true(exists(dir, "gen-1/zz.example.zone"));
	char *g1 = join(dir, "gen-1");
	assert_int_equal(dir_entries(g1), 3);
	free(g1);

	assert_int_equal(drdns_state_write_generation(dir, set, &gen), 0);
	assert_int_equal(gen, 2);
	assert_true(exists(dir, "gen-2/zz.example.zone"));
	assert_true(exists(dir, "gen-1")); /* writing does not collect */

	struct drdns_diag diag = {0};
	struct drdns_zoneset *back = NULL;
	int rc = drdns_state_load_generation(dir, 2, &back, &diag);
	for (size_t i = 0; rc && i < diag.n; i++)
		print_message("  %s\n", diag.msgs[i]);
	assert_int_equal(rc, 0);
	assert_non_null(back);
	assert_int_equal(back->n, set->n);
	for (size_t i = 0; i < set->n; i++) {
		assert_string_equal(back->zones[i]->name, set->zones[i]->name);
		assert_int_equal(drdns_zone_serial(back->zones[i]),
		                 drdns_zone_serial(set->zones[i]));
		assert_int_equal(drdns_zone_rr_count(back->zones[i]),
		                 drdns_zone_rr_count(set->zones[i]));
		char *a = drdns_zone_to_text(back->zones[i]);
		char *b = drdns_zone_to_text(set->zones[i]);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	drdns_zoneset_free(back);
	drdns_diag_clear(&diag);

	/* a generation that does not exist */
	back = NULL;
	rc = drdns_state_load_generation(dir, 99, &back, &diag);
	assert_true(rc < 0);
	assert_null(back);
	drdns_diag_clear(&diag);
	drdns_zoneset_free(set);
}

static void test_generation_numbering(void **state)
{
	const char *dir = *state;
	struct drdns_zoneset *set = load_set_good();
	/* the next generation follows the highest existing one, numerically (gen-10
	 * sorts before gen-9 as text), whatever order readdir returns them in */
	make_dir(dir, "gen-9");
	make_dir(dir, "gen-10");
	make_dir(dir, "gen-2");
	unsigned long gen = 0;
	assert_int_equal(drdns_state_write_generation(dir, set, &gen), 0);
	assert_int_equal(gen, 11);
	assert_true(exists(dir, "gen-11/mm.example.zone"));
	/* many generations created out of order */
	static const int order[] = {17, 3, 12, 20, 5, 14, 1, 19, 8, 15, 4, 13, 18, 6, 16, 7};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		char name[32];
		snprintf(name, sizeof(name), "gen-%d", order[i]);
		make_dir(dir, name);
	}
	assert_int_equal(drdns_state_write_generation(dir, set, &gen), 0);
	assert_int_equal(gen, 21);
	assert_true(exists(dir, "gen-21/aa.example.zone"));
	drdns_zoneset_free(set);
}

static void test_gc(void **state)
{
	const char *dir = *state;
	struct drdns_zoneset *set = load_set_good();
	unsigned long gen = 0;
	for (unsigned long want = 1; want <= 3; want++) {
		assert_int_equal(drdns_state_write_generation(dir, set, &gen), 0);
		assert_int_equal(gen, want);
	}
	write_file(dir, "state.json", "{}");
	write_file(dir, "unrelated.txt", "keep me\n");

	drdns_state_gc(dir, 2);
	assert_false(exists(dir, "gen-1"));
	assert_true(exists(dir, "gen-2"));
	assert_true(exists(dir, "gen-2/aa.example.zone"));
	assert_false(exists(dir, "gen-3"));
	assert_true(exists(dir, "state.json"));
	assert_true(exists(dir, "unrelated.txt"));
	assert_int_equal(dir_entries(dir), 3);

	/* the kept generation still loads */
	struct drdns_diag diag = {0};
	struct drdns_zoneset *back = NULL;
	assert_int_equal(drdns_state_load_generation(dir, 2, &back, &diag), 0);
	assert_int_equal(back->n, 3);
	drdns_zoneset_free(back);
	drdns_diag_clear(&diag);

	/* the next one is still above every generation ever kept */
	assert_int_equal(drdns_state_write_generation(dir, set, &gen), 0);
	assert_int_equal(gen, 3);

	drdns_state_gc(dir, 0);
	assert_false(exists(dir, "gen-2"));
	assert_false(exists(dir, "gen-3"));
	assert_true(exists(dir, "state.json"));
	assert_true(exists(dir, "unrelated.txt"));
	assert_int_equal(dir_entries(dir), 2);
	drdns_zoneset_free(set);
}

/* ---- crash points (what drdnsd does at start-up: load, then gc) ------------ */

static struct drdns_state *restart(const char *dir)
{
	struct drdns_state *st = load_ok(dir);
	drdns_state_gc(dir, st->promoted ? st->generation : 0);
	return st;
}

static void test_crash_points(void **state)
{
	const char *dir = *state;
	struct drdns_zoneset *set = load_set_good();
	unsigned long gen = 0;

	/* crash after the generation was written, before state.json: rolled back */
	assert_int_equal(drdns_state_write_generation(dir, set, &gen), 0);
	struct drdns_state *st = restart(dir);
	assert_false(st->promoted);
	assert_false(exists(dir, "gen-1"));
	assert_int_equal(dir_entries(dir), 0);

	/* crash after the commit, before the swap: resumes from the committed set */
	assert_int_equal(drdns_state_write_generation(dir, set, &gen), 0);
	st->promoted = true;
	st->generation = gen;
	st->changed_at = 1735689600;
	st->zones = calloc(1, sizeof(*st->zones));
	st->zones[0].zone = strdup("aa.example.");
	st->zones[0].serial = 7;
	st->n_zones = 1;
	assert_int_equal(drdns_state_save(dir, st), 0);
	drdns_state_free(st);
	/* ... and a later, uncommitted generation is dropped at the restart */
	unsigned long later = 0;
	assert_int_equal(drdns_state_write_generation(dir, set, &later), 0);
	assert_true(later > gen);
	st = restart(dir);
	assert_true(st->promoted);
	assert_int_equal(st->generation, gen);
	char name[32];
	snprintf(name, sizeof(name), "gen-%lu", later);
	assert_false(exists(dir, name));
	struct drdns_diag diag = {0};
	struct drdns_zoneset *back = NULL;
	assert_int_equal(drdns_state_load_generation(dir, st->generation, &back, &diag), 0);
	assert_int_equal(back->n, set->n);
	drdns_zoneset_free(back);
	drdns_diag_clear(&diag);
	drdns_state_free(st);
	drdns_zoneset_free(set);
}

/* gc never follows a gen-* symlink out of state_dir */
static void test_gc_symlink(void **state)
{
	const char *dir = *state;
	make_dir(dir, "outside");
	write_file(dir, "outside/precious", "keep\n");
	char *target = join(dir, "outside");
	char *link = join(dir, "gen-5");
	assert_int_equal(symlink(target, link), 0);
	drdns_state_gc(dir, 0);
	struct stat st;
	assert_true(lstat(link, &st) < 0);
	assert_true(exists(dir, "outside/precious"));
	free(target);
	free(link);
	assert_true(drdns_mkdir_p("", 0755) < 0);
}

/* ---- seen serials --------------------------------------------------------- */

static void test_note_seen(void **state)
{
	const char *dir = *state;
	struct drdns_state *st = load_ok(dir);
	drdns_state_note_seen(st, "example.edu.", 100);
	assert_int_equal(st->n_seen, 1);
	assert_int_equal(seen_of(st, "example.edu."), 100);
	drdns_state_note_seen(st, "example.edu.", 50);
	assert_int_equal(seen_of(st, "example.edu."), 100);
	drdns_state_note_seen(st, "example.edu.", 200);
	assert_int_equal(seen_of(st, "example.edu."), 200);
	assert_int_equal(st->n_seen, 1);

	/* across the wrap: 5 is greater than 0xFFFFFFF0 */
	drdns_state_note_seen(st, "2.0.192.in-addr.arpa.", 0xFFFFFFF0u);
	assert_int_equal(st->n_seen, 2);
	drdns_state_note_seen(st, "2.0.192.in-addr.arpa.", 5);
	assert_int_equal(seen_of(st, "2.0.192.in-addr.arpa."), 5);
	/* and 0xFFFFFFF5 is now the older one */
	drdns_state_note_seen(st, "2.0.192.in-addr.arpa.", 0xFFFFFFF5u);
	assert_int_equal(seen_of(st, "2.0.192.in-addr.arpa."), 5);
	/* 0x7FFFFFFF above is still newer */
	drdns_state_note_seen(st, "2.0.192.in-addr.arpa.", 5u + 0x7FFFFFFFu);
	assert_int_equal(seen_of(st, "2.0.192.in-addr.arpa."), 5u + 0x7FFFFFFFu);
	assert_int_equal(seen_of(st, "example.edu."), 200);
	assert_int_equal(st->n_seen, 2);

	/* seen serials persist (reason/who set to avoid the NULL bug, tested in
	 * test_save_load_null_strings) */
	st->reason = strdup("test");
	st->who = strdup("test");
	assert_int_equal(drdns_state_save(dir, st), 0);
	struct drdns_state *ld = load_ok(dir);
	assert_int_equal(ld->n_seen, 2);
	assert_int_equal(seen_of(ld, "example.edu."), 200);
	assert_int_equal(seen_of(ld, "2.0.192.in-addr.arpa."), 5u + 0x7FFFFFFFu);
	assert_false(ld->promoted);
	drdns_state_free(ld);
	drdns_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fresh_dir, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_save_load_null_strings, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_corrupt, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_alerts_round_trip, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_write_and_load_generation, setup_dir,
	                                    teardown_dir),
	    cmocka_unit_test_setup_teardown(test_generation_numbering, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_gc, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_crash_points, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_gc_symlink, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_note_seen, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
