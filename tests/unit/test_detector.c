/*
 * Unit tests for include/drdns/detector.h: the watchdog's pure failure detector
 * and state machine, driven with simulated rounds and simulated time.
 *
 * Every round goes through step(), which also checks the invariants that hold
 * for any round: state_changed is true exactly when the state changed, only
 * known alert bits are raised, and a PROMOTE/STEPDOWN carries a non-empty
 * one-line reason.  It counts the alerts raised and the actions returned so a
 * test can check that an edge-triggered alert was raised exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "drdns/detector.h"

/* ---- helpers ----------------------------------------------------------- */

#define T0   1700000000.0 /* simulated unix time of the first round */
#define MAXZ 4

static const struct drdns_detector_conf default_conf = {
    .fail_after = 3,
    .recover_after = 2,
    .auto_promote = true,
    .auto_demote = false,
    .promote_after = 60,
    .expire_margin = 3600,
    .block_after_failover = 3600,
    .retry_after = 30,
};

static const char *const zone_names[MAXZ] = {"example.edu.", "2.0.192.in-addr.arpa.",
                                             "example.org.", "campus.example."};

struct sim {
	struct drdns_detector d;
	struct drdns_detector_conf conf;
	struct drdns_round_zone z[MAXZ];
	struct drdns_round r;
	struct drdns_decision out;
	double t;  /* time of the next round */
	double dt; /* advance after each round */
	unsigned count[DRDNS_ALERT_N];
	int promotes;
	int stepdowns;
	int rounds;
	unsigned visited; /* bit (1u << state): states seen after a round */
};

static void sim_defaults(struct sim *s)
{
	memset(s->z, 0, sizeof(s->z));
	for (size_t i = 0; i < MAXZ; i++) {
		s->z[i].zone = zone_names[i];
		s->z[i].master = DRDNS_MASTER_OK;
		s->z[i].master_serial = 100;
		s->z[i].expire = 1209600; /* two weeks: the guard stays far away */
		s->z[i].refresh = 3600;
		s->z[i].has_published = false;
		s->z[i].published_serial = 0;
		s->z[i].secondaries_at_master = false;
	}
	memset(&s->r, 0, sizeof(s->r));
	s->r.zones = s->z;
	s->r.n_zones = 1;
	s->r.secondaries_total = 3;
	s->r.secondaries_answered = 3;
	s->r.promoted = false;
	s->r.busy = false;
	s->r.last_promotion_at = 0;
	s->t = T0;
	s->dt = 10;
	memset(s->count, 0, sizeof(s->count));
	s->promotes = 0;
	s->stepdowns = 0;
	s->rounds = 0;
	s->visited = 0;
}

static int setup(void **state)
{
	struct sim *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->conf = default_conf;
	drdns_detector_init(&s->d, &s->conf);
	sim_defaults(s);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sim *s = *state;
	drdns_detector_free(&s->d);
	free(s);
	return 0;
}

/* Start over with s->conf (after a test changed it). */
static void sim_restart(struct sim *s)
{
	drdns_detector_free(&s->d);
	drdns_detector_init(&s->d, &s->conf);
	sim_defaults(s);
}

static const char *sname(enum drdns_wd_state st)
{
	const char *n = drdns_wd_state_name(st);
	return n ? n : "(null)";
}

#define assert_state(s, want)                                                                      \
	do {                                                                                       \
		if ((s)->d.state != (want))                                                        \
			fail_msg("round %d (t=T0+%.0f): state %s, expected %s", (s)->rounds,       \
			         (s)->r.now - T0, sname((s)->d.state), sname(want));               \
	} while (0)

#define assert_action(s, want)                                                                     \
	do {                                                                                       \
		if ((s)->out.action != (want))                                                     \
			fail_msg("round %d (t=T0+%.0f): action %d, expected %d (state %s)",        \
			         (s)->rounds, (s)->r.now - T0, (int)(s)->out.action, (int)(want),  \
			         sname((s)->d.state));                                             \
	} while (0)

static bool raised(const struct sim *s, enum drdns_alert_kind k)
{
	return (s->out.raised >> k) & 1u;
}

static bool active(const struct sim *s, enum drdns_alert_kind k)
{
	return (s->d.active >> k) & 1u;
}

static void check_reason(const struct drdns_decision *out)
{
	const char *nul = memchr(out->reason, '\0', sizeof(out->reason));
	assert_non_null(nul);
	assert_true(out->reason[0] != '\0');
	assert_null(strchr(out->reason, '\n'));
	assert_null(strchr(out->reason, '\r'));
}

/* Feed s->r at time s->t, check the per-round invariants, advance the time. */
static enum drdns_wd_action step(struct sim *s)
{
	enum drdns_wd_state prev = s->d.state;
	memset(&s->out, 0xA5, sizeof(s->out)); /* the detector must fill every field */
	s->r.now = s->t;
	s->rounds++;
	drdns_detector_round(&s->d, &s->r, &s->out);
	s->visited |= 1u << s->d.state;

	if (s->out.state_changed != (s->d.state != prev))
		fail_msg("round %d: state %s -> %s but state_changed %d", s->rounds, sname(prev),
		         sname(s->d.state), (int)s->out.state_changed);
	assert_int_equal(s->out.raised & ~((1u << DRDNS_ALERT_N) - 1), 0);
	assert_true(s->out.action == DRDNS_WD_NONE || s->out.action == DRDNS_WD_PROMOTE ||
	            s->out.action == DRDNS_WD_STEPDOWN);
	assert_true(s->out.contact_changed == true || s->out.contact_changed == false);
	for (int k = 0; k < DRDNS_ALERT_N; k++)
		if ((s->out.raised >> k) & 1u)
			s->count[k]++;
	if (s->out.action != DRDNS_WD_NONE)
		check_reason(&s->out);
	if (s->out.action == DRDNS_WD_PROMOTE)
		s->promotes++;
	if (s->out.action == DRDNS_WD_STEPDOWN)
		s->stepdowns++;
	s->t += s->dt;
	return s->out.action;
}

static void set_master(struct sim *s, enum drdns_master_answer a)
{
	for (size_t i = 0; i < MAXZ; i++)
		s->z[i].master = a;
}

/* One round where every zone's master answers a, with answered secondaries. */
static enum drdns_wd_action round_master(struct sim *s, enum drdns_master_answer a, size_t answered)
{
	set_master(s, a);
	s->r.secondaries_answered = answered;
	return step(s);
}

static enum drdns_wd_action silent(struct sim *s)
{
	set_master(s, DRDNS_MASTER_SILENT);
	return step(s);
}

static enum drdns_wd_action ok(struct sim *s)
{
	set_master(s, DRDNS_MASTER_OK);
	return step(s);
}

static enum drdns_wd_action degraded(struct sim *s)
{
	set_master(s, DRDNS_MASTER_DEGRADED);
	return step(s);
}

/* Silent rounds until PROMOTE or max rounds; returns the time of the PROMOTE
 * round, or 0. */
static double silent_until_promote(struct sim *s, int max)
{
	for (int i = 0; i < max; i++) {
		double at = s->t;
		if (silent(s) == DRDNS_WD_PROMOTE)
			return at;
		assert_action(s, DRDNS_WD_NONE);
	}
	return 0;
}

/* Put the promoted controller's view in s->r: zone i published at pub[i]. */
static void set_promoted(struct sim *s, size_t n, const uint32_t *pub)
{
	s->r.promoted = true;
	s->r.n_zones = n;
	for (size_t i = 0; i < n; i++) {
		s->z[i].has_published = true;
		s->z[i].published_serial = pub[i];
	}
}

/* ---- names --------------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	static const char *const want[] = {
	    [DRDNS_WD_NORMAL] = "NORMAL",           [DRDNS_WD_SUSPECT] = "SUSPECT",
	    [DRDNS_WD_MASTER_DOWN] = "MASTER_DOWN", [DRDNS_WD_ISOLATED] = "ISOLATED",
	    [DRDNS_WD_PROMOTING] = "PROMOTING",     [DRDNS_WD_PROMOTED] = "PROMOTED",
	    [DRDNS_WD_DEMOTING] = "DEMOTING",
	};
	for (int i = DRDNS_WD_NORMAL; i <= DRDNS_WD_DEMOTING; i++) {
		const char *n = drdns_wd_state_name((enum drdns_wd_state)i);
		assert_non_null(n);
		assert_string_equal(n, want[i]);
	}

	const char *names[DRDNS_ALERT_N];
	for (int i = 0; i < DRDNS_ALERT_N; i++) {
		names[i] = drdns_alert_kind_name((enum drdns_alert_kind)i);
		assert_non_null(names[i]);
		assert_true(names[i][0] != '\0');
		assert_null(strchr(names[i], ' '));
		for (int j = 0; j < i; j++)
			assert_string_not_equal(names[i], names[j]);
	}
	assert_string_equal(drdns_alert_kind_name(DRDNS_ALERT_MASTER_DOWN), "master_down");
}

/* ---- initial state ----------------------------------------------------- */

static void test_init_unzeroed(void **state)
{
	(void)state;
	struct drdns_detector *d = malloc(sizeof(*d));
	assert_non_null(d);
	memset(d, 0xA5, sizeof(*d)); /* "zeroed by the caller or not" */
	struct drdns_detector_conf conf = default_conf;
	conf.fail_after = 4;
	conf.promote_after = 123.5;
	drdns_detector_init(d, &conf);
	assert_int_equal(d->state, DRDNS_WD_NORMAL);
	assert_false(d->paused);
	assert_int_equal(d->conf.fail_after, 4);
	assert_int_equal(d->conf.recover_after, conf.recover_after);
	assert_true(d->conf.promote_after == 123.5);
	assert_true(d->conf.auto_promote);
	const char *z = "not set";
	assert_true(drdns_detector_deadline(d, &z) == 0);
	assert_true(drdns_detector_deadline(d, NULL) == 0);
	assert_true(drdns_detector_zone_deadline(d, "example.edu.") == 0);
	drdns_detector_free(d);
	free(d);
}

static void test_free_twice_and_empty(void **state)
{
	(void)state;
	struct drdns_detector d;
	drdns_detector_init(&d, &default_conf);
	drdns_detector_free(&d); /* nothing owned yet */
	drdns_detector_init(&d, &default_conf);
	assert_int_equal(drdns_detector_restore_zone(&d, "example.edu.", T0, 7200, 1800), 0);
	drdns_detector_free(&d);
}

/* ---- standby: NORMAL, SUSPECT, MASTER_DOWN, ISOLATED ------------------- */

static void test_normal_stays_normal(void **state)
{
	struct sim *s = *state;
	for (int i = 0; i < 50; i++) {
		assert_int_equal(ok(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_NORMAL);
		assert_int_equal(s->out.raised, 0);
		assert_false(s->out.state_changed);
	}
	assert_int_equal(s->d.active, 0);
	assert_int_equal(s->promotes, 0);
}

/* NORMAL -> SUSPECT -> MASTER_DOWN; MASTER_DOWN raised once. */
static void test_suspect_then_master_down(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 1e9; /* keep PROMOTE out of this test */
	sim_restart(s);
	ok(s);
	silent(s);
	assert_state(s, DRDNS_WD_SUSPECT);
	assert_true(s->out.state_changed);
	assert_int_equal(s->out.raised, 0);
	assert_action(s, DRDNS_WD_NONE);
	silent(s);
	assert_state(s, DRDNS_WD_SUSPECT);
	assert_false(s->out.state_changed);
	assert_int_equal(s->out.raised, 0);
	silent(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_true(s->out.state_changed);
	assert_true(raised(s, DRDNS_ALERT_MASTER_DOWN));
	assert_false(raised(s, DRDNS_ALERT_ISOLATED));
	assert_true(active(s, DRDNS_ALERT_MASTER_DOWN));
	for (int i = 0; i < 20; i++) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_MASTER_DOWN);
		assert_false(s->out.state_changed);
		assert_false(raised(s, DRDNS_ALERT_MASTER_DOWN));
		assert_true(active(s, DRDNS_ALERT_MASTER_DOWN));
	}
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 1);
	assert_int_equal(s->count[DRDNS_ALERT_ISOLATED], 0);
	assert_int_equal(s->promotes, 0);
}

/* fail_after = 1: NORMAL -> MASTER_DOWN directly. */
static void test_fail_after_one(void **state)
{
	struct sim *s = *state;
	s->conf.fail_after = 1;
	s->conf.promote_after = 1e9;
	sim_restart(s);
	ok(s);
	silent(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_true(raised(s, DRDNS_ALERT_MASTER_DOWN));
	ok(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN); /* recover_after = 2 */
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
}

/* Majority of the configured secondaries: answered * 2 > total. */
static void test_majority_rule(void **state)
{
	struct sim *s = *state;
	static const struct {
		size_t total, answered;
		enum drdns_wd_state want;
	} cases[] = {
	    {3, 3, DRDNS_WD_MASTER_DOWN}, {3, 2, DRDNS_WD_MASTER_DOWN},
	    {3, 1, DRDNS_WD_ISOLATED},    {3, 0, DRDNS_WD_ISOLATED},
	    {4, 3, DRDNS_WD_MASTER_DOWN}, {4, 2, DRDNS_WD_ISOLATED},
	    {2, 1, DRDNS_WD_ISOLATED},    {2, 2, DRDNS_WD_MASTER_DOWN},
	    {1, 1, DRDNS_WD_MASTER_DOWN}, {1, 0, DRDNS_WD_ISOLATED},
	    {0, 0, DRDNS_WD_ISOLATED},    {5, 3, DRDNS_WD_MASTER_DOWN},
	};
	s->conf.promote_after = 1e9;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sim_restart(s);
		s->r.secondaries_total = cases[i].total;
		round_master(s, DRDNS_MASTER_OK, cases[i].answered);
		for (int j = 0; j < 3; j++)
			round_master(s, DRDNS_MASTER_SILENT, cases[i].answered);
		if (s->d.state != cases[i].want)
			fail_msg("total %zu answered %zu: state %s, expected %s", cases[i].total,
			         cases[i].answered, sname(s->d.state), sname(cases[i].want));
		bool iso = cases[i].want == DRDNS_WD_ISOLATED;
		assert_int_equal(raised(s, DRDNS_ALERT_ISOLATED), iso);
		assert_int_equal(raised(s, DRDNS_ALERT_MASTER_DOWN), !iso);
	}
}

/* ISOLATED never promotes, not even with promote_after 0 and past a deadline. */
static void test_isolated_never_promotes(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 0;
	sim_restart(s);
	s->z[0].expire = 7200;
	s->z[0].refresh = 1800;
	s->r.secondaries_total = 3;
	round_master(s, DRDNS_MASTER_OK, 1);
	s->dt = 600;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(round_master(s, DRDNS_MASTER_SILENT, 1), DRDNS_WD_NONE);
		if (i >= 2)
			assert_state(s, DRDNS_WD_ISOLATED);
		if (i == 2)
			assert_true(raised(s, DRDNS_ALERT_ISOLATED));
	}
	/* well past the deadline (T0 + 5400) */
	assert_true(s->t > T0 + 60000);
	assert_int_equal(s->count[DRDNS_ALERT_ISOLATED], 1);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 0);
	assert_true(active(s, DRDNS_ALERT_ISOLATED));
	assert_int_equal(s->promotes, 0);
}

/* MASTER_DOWN -> ISOLATED when the secondaries go quiet, and back; the silent
 * streak (and down_since) is kept across the switch. */
static void test_down_isolated_switch(void **state)
{
	struct sim *s = *state;
	ok(s);                                   /* T0 */
	round_master(s, DRDNS_MASTER_SILENT, 3); /* T0+10: down_since */
	round_master(s, DRDNS_MASTER_SILENT, 3);
	round_master(s, DRDNS_MASTER_SILENT, 3); /* T0+30 */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_action(s, DRDNS_WD_NONE);
	round_master(s, DRDNS_MASTER_SILENT, 0); /* T0+40 */
	assert_state(s, DRDNS_WD_ISOLATED);
	assert_true(s->out.state_changed);
	assert_true(raised(s, DRDNS_ALERT_ISOLATED));
	for (int i = 0; i < 4; i++) { /* T0+50 .. T0+80: promote_after passed, but isolated */
		assert_int_equal(round_master(s, DRDNS_MASTER_SILENT, 1), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_ISOLATED);
		assert_false(raised(s, DRDNS_ALERT_ISOLATED));
	}
	s->conf.promote_after = 1e9;
	drdns_detector_set_conf(&s->d, &s->conf);
	round_master(s, DRDNS_MASTER_SILENT, 2); /* T0+90: majority again */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_false(active(s, DRDNS_ALERT_ISOLATED));
	/* 90 s of unbroken silence since T0+10 >= promote_after */
	s->conf.promote_after = 60;
	drdns_detector_set_conf(&s->d, &s->conf);
	assert_int_equal(round_master(s, DRDNS_MASTER_SILENT, 2), DRDNS_WD_PROMOTE);
	assert_int_equal(s->count[DRDNS_ALERT_ISOLATED], 1);
}

/* SUSPECT -> ISOLATED directly. */
static void test_suspect_to_isolated(void **state)
{
	struct sim *s = *state;
	round_master(s, DRDNS_MASTER_OK, 3);
	round_master(s, DRDNS_MASTER_SILENT, 3);
	round_master(s, DRDNS_MASTER_SILENT, 3);
	assert_state(s, DRDNS_WD_SUSPECT);
	round_master(s, DRDNS_MASTER_SILENT, 0);
	assert_state(s, DRDNS_WD_ISOLATED);
	assert_true(s->out.state_changed);
	assert_true(raised(s, DRDNS_ALERT_ISOLATED));
	assert_false(raised(s, DRDNS_ALERT_MASTER_DOWN));
}

/* A degraded master is alive: it resets the silent streak. */
static void test_degraded_is_alive(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 0;
	sim_restart(s);
	ok(s);
	silent(s);
	silent(s);
	assert_state(s, DRDNS_WD_SUSPECT);
	degraded(s);
	assert_state(s, DRDNS_WD_NORMAL);
	assert_true(s->out.state_changed);
	assert_true(raised(s, DRDNS_ALERT_MASTER_DEGRADED));
	assert_true(active(s, DRDNS_ALERT_MASTER_DEGRADED));
	for (int i = 0; i < 20; i++) {
		assert_int_equal(degraded(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_NORMAL);
		assert_false(raised(s, DRDNS_ALERT_MASTER_DEGRADED));
	}
	/* the streak restarted: two silent rounds are SUSPECT again, not MASTER_DOWN */
	silent(s);
	silent(s);
	assert_state(s, DRDNS_WD_SUSPECT);
	assert_action(s, DRDNS_WD_NONE);
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
	assert_false(active(s, DRDNS_ALERT_MASTER_DEGRADED));
	assert_int_equal(s->promotes, 0);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 0);
}

/* MASTER_DEGRADED is edge-triggered: once per degraded spell. */
static void test_degraded_alert_edges(void **state)
{
	struct sim *s = *state;
	ok(s);
	degraded(s);
	assert_true(raised(s, DRDNS_ALERT_MASTER_DEGRADED));
	degraded(s);
	assert_false(raised(s, DRDNS_ALERT_MASTER_DEGRADED));
	ok(s);
	assert_false(raised(s, DRDNS_ALERT_MASTER_DEGRADED));
	assert_false(active(s, DRDNS_ALERT_MASTER_DEGRADED));
	degraded(s);
	assert_true(raised(s, DRDNS_ALERT_MASTER_DEGRADED));
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DEGRADED], 2);
}

/* A round is silent only when every zone is silent. */
static void test_mixed_zones_alive(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 0;
	sim_restart(s);
	s->r.n_zones = 3;
	ok(s);
	for (int i = 0; i < 30; i++) {
		set_master(s, DRDNS_MASTER_SILENT);
		s->z[1].master = (i % 2) ? DRDNS_MASTER_OK : DRDNS_MASTER_DEGRADED;
		assert_int_equal(step(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_NORMAL);
	}
	/* all three silent: now it counts */
	s->conf.promote_after = 1e9;
	drdns_detector_set_conf(&s->d, &s->conf);
	silent(s);
	silent(s);
	assert_state(s, DRDNS_WD_SUSPECT);
	silent(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 1);
}

/* SUSPECT -> NORMAL on one answering round; the streak restarts. */
static void test_suspect_recovers(void **state)
{
	struct sim *s = *state;
	s->conf.recover_after = 5; /* does not apply to SUSPECT */
	sim_restart(s);
	ok(s);
	silent(s);
	silent(s);
	assert_state(s, DRDNS_WD_SUSPECT);
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
	assert_true(s->out.state_changed);
	silent(s);
	silent(s);
	assert_state(s, DRDNS_WD_SUSPECT);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 0);
}

/* MASTER_DOWN -> NORMAL takes recover_after answering rounds; an interrupted
 * recovery restarts the silent streak and down_since. */
static void test_master_down_recovery(void **state)
{
	struct sim *s = *state;
	s->conf.recover_after = 3;
	s->conf.promote_after = 60;
	sim_restart(s);
	ok(s);     /* T0 */
	silent(s); /* T0+10: down_since */
	silent(s);
	silent(s); /* T0+30 */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	ok(s); /* T0+40 */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_action(s, DRDNS_WD_NONE);
	ok(s); /* T0+50 */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_action(s, DRDNS_WD_NONE);
	/* silent again: the old streak would be 50-60 s old now, but it was broken */
	silent(s); /* T0+60: new down_since */
	assert_action(s, DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_MASTER_DOWN); /* not back to SUSPECT */
	assert_false(raised(s, DRDNS_ALERT_MASTER_DOWN));
	silent(s); /* T0+70 */
	assert_action(s, DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	silent(s); /* T0+80: streak back at fail_after, 20 s */
	assert_action(s, DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	for (int i = 0; i < 3; i++) { /* T0+90 .. T0+110 */
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_MASTER_DOWN);
	}
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+120 = new down_since + 60 */
}

/* MASTER_DOWN while the master answers again (fewer than recover_after rounds), or
 * is silent again for fewer than fail_after rounds: no PROMOTE, even with the
 * expiry guard due or promote_after passed. */
static void test_no_promote_while_recovering(void **state)
{
	struct sim *s = *state;
	s->conf.recover_after = 3;
	s->conf.promote_after = 0;
	s->conf.expire_margin = 1e6; /* the guard is due as soon as there is a deadline */
	sim_restart(s);
	drdns_detector_set_paused(&s->d, true);
	s->z[0].expire = 7200;
	s->z[0].refresh = 1800;
	ok(s);
	for (int i = 0; i < 5; i++)
		assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	degraded(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	drdns_detector_set_paused(&s->d, false);
	assert_int_equal(degraded(s), DRDNS_WD_NONE); /* answering: alive */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_int_equal(silent(s), DRDNS_WD_NONE);    /* streak 1 */
	assert_int_equal(silent(s), DRDNS_WD_NONE);    /* streak 2 */
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* streak 3 = fail_after */
}

static void test_master_down_to_normal(void **state)
{
	struct sim *s = *state;
	s->conf.recover_after = 3;
	s->conf.promote_after = 1e9;
	sim_restart(s);
	ok(s);
	for (int i = 0; i < 5; i++)
		silent(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	ok(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_false(s->out.state_changed);
	degraded(s); /* degraded answers count as answering */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
	assert_true(s->out.state_changed);
	assert_false(active(s, DRDNS_ALERT_MASTER_DOWN));
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 1);
	/* a new outage raises MASTER_DOWN again */
	for (int i = 0; i < 3; i++)
		silent(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_true(raised(s, DRDNS_ALERT_MASTER_DOWN));
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 2);
}

static void test_isolated_to_normal(void **state)
{
	struct sim *s = *state;
	s->conf.recover_after = 3;
	sim_restart(s);
	round_master(s, DRDNS_MASTER_OK, 3);
	for (int i = 0; i < 5; i++)
		round_master(s, DRDNS_MASTER_SILENT, 0);
	assert_state(s, DRDNS_WD_ISOLATED);
	round_master(s, DRDNS_MASTER_OK, 0);
	assert_state(s, DRDNS_WD_ISOLATED);
	round_master(s, DRDNS_MASTER_OK, 3);
	assert_state(s, DRDNS_WD_ISOLATED);
	round_master(s, DRDNS_MASTER_OK, 3);
	assert_state(s, DRDNS_WD_NORMAL);
	assert_true(s->out.state_changed);
	assert_false(active(s, DRDNS_ALERT_ISOLATED));
	assert_int_equal(s->promotes, 0);
}

/* Silent fail_after-1 rounds, one OK, over and over: never down, never PROMOTE. */
static void test_flapping(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 0;
	s->conf.fail_after = 3;
	sim_restart(s);
	ok(s);
	for (int i = 0; i < 300; i++) {
		for (int j = 0; j < 2; j++) {
			assert_int_equal(round_master(s, DRDNS_MASTER_SILENT, (size_t)(i % 4)),
			                 DRDNS_WD_NONE);
			assert_state(s, DRDNS_WD_SUSPECT);
		}
		assert_int_equal(ok(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_NORMAL);
	}
	assert_int_equal(s->promotes, 0);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 0);
	assert_int_equal(s->count[DRDNS_ALERT_ISOLATED], 0);
}

/* ---- PROMOTE ------------------------------------------------------------- */

/* promote_after counts from the first silent round of the streak. */
static void test_promote_after_timing(void **state)
{
	struct sim *s = *state;
	ok(s);     /* T0 */
	silent(s); /* T0+10: down_since */
	silent(s);
	silent(s); /* T0+30 */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	for (int i = 0; i < 2; i++) /* T0+40, T0+50 */
		assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_int_equal(silent(s), DRDNS_WD_NONE);    /* T0+60: 50 s */
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+70: 60 s */
	assert_int_equal(s->promotes, 1);
	/* the caller is promoting: busy */
	s->r.busy = true;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTING);
	}
	drdns_detector_promotion_done(&s->d, s->t, true);
	s->r.busy = false;
	s->r.promoted = true;
	s->r.last_promotion_at = s->t;
	s->t += 1;
	silent(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTED);
	}
	assert_int_equal(s->promotes, 1);
	assert_int_equal(s->count[DRDNS_ALERT_PROMOTE_FAILED], 0);
}

/* When promote_after has passed by the time the streak reaches fail_after, the
 * round that enters MASTER_DOWN promotes. */
static void test_promote_on_down_round(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 20;
	sim_restart(s);
	ok(s);
	assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* 20 s after the first silent round */
	assert_true(raised(s, DRDNS_ALERT_MASTER_DOWN));
}

/* The detector does not need an OK round first: silence from the start. */
static void test_promote_without_prior_contact(void **state)
{
	struct sim *s = *state;
	double at = silent_until_promote(s, 100);
	assert_true(at == T0 + 60);
	assert_true(drdns_detector_deadline(&s->d, NULL) == 0);
}

/* After PROMOTE, no second PROMOTE until promotion_done, even while the caller is
 * not busy yet (pre_promote running): PROMOTING. */
static void test_no_second_promote_before_done(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 0;
	sim_restart(s);
	ok(s);
	assert_true(silent_until_promote(s, 10) > 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTING);
	}
	/* vetoed by pre_promote */
	drdns_detector_promotion_done(&s->d, s->t - 5, false);
	silent(s);
	assert_action(s, DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_true(raised(s, DRDNS_ALERT_PROMOTE_FAILED));
	assert_int_equal(s->promotes, 1);
}

/* While busy (e.g. drdnsctl promote), no PROMOTE. */
static void test_no_promote_while_busy(void **state)
{
	struct sim *s = *state;
	ok(s);
	for (int i = 0; i < 3; i++)
		silent(s);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	s->r.busy = true; /* an operator promote started */
	for (int i = 0; i < 30; i++) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTING);
	}
	/* it failed before its commit point: back to standby */
	s->r.busy = false;
	assert_int_equal(s->promotes, 0);
	silent(s);
	/* the automatic promotion is due now; the state is MASTER_DOWN, or already
	 * PROMOTING for the promotion just asked for */
	assert_action(s, DRDNS_WD_PROMOTE);
	assert_true(s->d.state == DRDNS_WD_MASTER_DOWN || s->d.state == DRDNS_WD_PROMOTING);
}

/* NORMAL -> PROMOTING (operator promote while the master answers) -> NORMAL when it
 * fails, or -> PROMOTED when it commits. */
static void test_manual_promote_states(void **state)
{
	struct sim *s = *state;
	ok(s);
	s->r.busy = true;
	ok(s);
	assert_state(s, DRDNS_WD_PROMOTING);
	assert_action(s, DRDNS_WD_NONE);
	s->r.busy = false;
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
	s->r.busy = true;
	ok(s);
	assert_state(s, DRDNS_WD_PROMOTING);
	s->r.busy = false;
	s->r.promoted = true;
	ok(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	assert_int_equal(s->promotes, 0);
}

/* NORMAL -> PROMOTED: state.json says primary at start-up. */
static void test_promoted_at_start(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {200};
	set_promoted(s, 1, pub);
	silent(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	assert_true(s->out.state_changed);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTED);
		assert_false(s->out.state_changed);
	}
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_RETURNED], 0);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_AHEAD], 0);
	assert_int_equal(s->promotes + s->stepdowns, 0);
}

static void test_no_auto_promote(void **state)
{
	struct sim *s = *state;
	s->conf.auto_promote = false;
	s->conf.expire_margin = 600;
	sim_restart(s);
	s->z[0].expire = 7200;
	s->z[0].refresh = 1800;
	ok(s); /* deadline T0 + 5400, guard due T0 + 4800 */
	s->dt = 60;
	for (int i = 0; i < 150; i++) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		if (i >= 2)
			assert_state(s, DRDNS_WD_MASTER_DOWN);
	}
	assert_true(s->t > T0 + 5400);
	assert_int_equal(s->promotes, 0);
	assert_int_equal(s->count[DRDNS_ALERT_MANUAL_NEEDED], 1);
	assert_true(active(s, DRDNS_ALERT_MANUAL_NEEDED));
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 1);
	assert_int_equal(s->count[DRDNS_ALERT_EXPIRY], 1);
	assert_int_equal(s->count[DRDNS_ALERT_PAUSED_WHILE_DOWN], 0);
	assert_int_equal(s->count[DRDNS_ALERT_BLOCKED], 0);
}

/* Paused: keeps detecting (MASTER_DOWN), never acts; resuming acts. */
static void test_paused(void **state)
{
	struct sim *s = *state;
	s->conf.expire_margin = 600;
	sim_restart(s);
	drdns_detector_set_paused(&s->d, true);
	assert_true(s->d.paused);
	drdns_detector_set_paused(&s->d, false);
	assert_false(s->d.paused);
	drdns_detector_set_paused(&s->d, true);
	assert_true(s->d.paused);
	s->z[0].expire = 7200;
	s->z[0].refresh = 1800;
	ok(s);
	s->dt = 60;
	for (int i = 0; i < 150; i++) { /* past promote_after and past the expiry guard */
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		if (i >= 2)
			assert_state(s, DRDNS_WD_MASTER_DOWN);
		if (i == 2)
			assert_true(raised(s, DRDNS_ALERT_MASTER_DOWN));
	}
	assert_int_equal(s->promotes, 0);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 1);
	assert_int_equal(s->count[DRDNS_ALERT_PAUSED_WHILE_DOWN], 1);
	assert_true(active(s, DRDNS_ALERT_PAUSED_WHILE_DOWN));
	assert_int_equal(s->count[DRDNS_ALERT_MANUAL_NEEDED], 0);
	drdns_detector_set_paused(&s->d, false);
	assert_false(s->d.paused);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE);
}

/* Paused before the outage with the guard far away: plain promote_after. */
static void test_paused_then_resumed_promotes(void **state)
{
	struct sim *s = *state;
	drdns_detector_set_paused(&s->d, true);
	ok(s);
	for (int i = 0; i < 20; i++)
		assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_int_equal(s->count[DRDNS_ALERT_PAUSED_WHILE_DOWN], 1);
	drdns_detector_set_paused(&s->d, false);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE);
	assert_false(active(s, DRDNS_ALERT_PAUSED_WHILE_DOWN));
}

/* No automatic promotion within block_after_failover of the last one. */
static void test_blocked(void **state)
{
	struct sim *s = *state;
	s->dt = 60;
	s->r.last_promotion_at = T0 - 630; /* the block ends at T0 + 2970 */
	ok(s);                             /* T0 */
	for (int i = 1; i <= 49; i++) {    /* T0+60 .. T0+2940 */
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		if (i >= 3)
			assert_state(s, DRDNS_WD_MASTER_DOWN);
	}
	assert_int_equal(s->count[DRDNS_ALERT_BLOCKED], 1);
	assert_true(active(s, DRDNS_ALERT_BLOCKED));
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+3000 */
	assert_int_equal(s->count[DRDNS_ALERT_BLOCKED], 1);
	assert_int_equal(s->count[DRDNS_ALERT_MANUAL_NEEDED], 0);
}

/* The block applies to the expiry guard too. */
static void test_blocked_expiry_guard(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 1e9;
	s->conf.expire_margin = 600;
	s->conf.block_after_failover = 7200;
	sim_restart(s);
	s->z[0].expire = 7200;
	s->z[0].refresh = 1800;
	s->r.last_promotion_at = T0 - 30; /* the block ends at T0 + 7170 */
	s->dt = 60;
	ok(s);                         /* T0: guard due at T0 + 4800 */
	for (int i = 1; i <= 119; i++) /* T0+60 .. T0+7140 */
		assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_int_equal(s->count[DRDNS_ALERT_BLOCKED], 1);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+7200 */
}

/* last_promotion_at 0 means never, even with small simulated clocks. */
static void test_last_promotion_zero_is_never(void **state)
{
	struct sim *s = *state;
	s->conf.block_after_failover = 1e6;
	sim_restart(s);
	s->t = 1000;
	s->r.last_promotion_at = 0;
	ok(s);
	assert_true(silent_until_promote(s, 20) == 1070);
	assert_int_equal(s->count[DRDNS_ALERT_BLOCKED], 0);
}

/* A failed automatic promotion: PROMOTE_FAILED, retry after retry_after,
 * doubling, capped at 16x. */
static void test_promote_failed_retry(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 0;
	s->conf.retry_after = 30;
	sim_restart(s);
	ok(s);
	silent(s);
	silent(s);
	double at = s->t;
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE);
	static const double gaps[] = {30, 60, 120, 240, 480, 480, 480};
	for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
		drdns_detector_promotion_done(&s->d, at, false);
		silent(s);
		assert_action(s, DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_MASTER_DOWN);
		/* raised again after every failure */
		assert_true(raised(s, DRDNS_ALERT_PROMOTE_FAILED));
		assert_true(active(s, DRDNS_ALERT_PROMOTE_FAILED));
		double again = silent_until_promote(s, 100);
		if (again - at != gaps[i])
			fail_msg("failure %zu: next PROMOTE %.0f s later, expected %.0f", i + 1,
			         again - at, gaps[i]);
		at = again;
	}
	assert_int_equal(s->count[DRDNS_ALERT_PROMOTE_FAILED], sizeof(gaps) / sizeof(gaps[0]));
	/* and a success clears the failure */
	drdns_detector_promotion_done(&s->d, at, true);
	s->r.promoted = true;
	silent(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	assert_false(active(s, DRDNS_ALERT_PROMOTE_FAILED));
}

/* The back-off restarts after a committed promotion and after the master
 * recovered (a new outage starts with a clean slate). */
static void test_retry_backoff_resets(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {101};
	s->conf.promote_after = 0;
	s->conf.retry_after = 30;
	s->conf.recover_after = 1;
	s->conf.auto_demote = true;
	sim_restart(s);
	ok(s);
	double at = silent_until_promote(s, 10);
	for (int i = 0; i < 3; i++) { /* three failures: the next wait would be 240 s */
		drdns_detector_promotion_done(&s->d, at, false);
		at = silent_until_promote(s, 100);
		assert_true(at > 0);
	}
	/* the master answers again before the fourth attempt reports */
	drdns_detector_promotion_done(&s->d, at, false);
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
	ok(s);
	at = silent_until_promote(s, 100);
	drdns_detector_promotion_done(&s->d, at, false);
	double again = silent_until_promote(s, 100);
	if (again - at != 30)
		fail_msg("after a recovery: next PROMOTE %.0f s after the failure, expected 30",
		         again - at);

	/* this one commits; the controller later steps down; the next failure
	 * waits retry_after again */
	drdns_detector_promotion_done(&s->d, again, true);
	set_promoted(s, 1, pub);
	silent(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	s->z[0].master_serial = 102;
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
	drdns_detector_stepdown_done(&s->d, s->t - 5, true);
	s->r.promoted = false;
	s->z[0].has_published = false;
	/* and the master dies right away (no NORMAL round in between) */
	at = silent_until_promote(s, 100);
	assert_true(at > 0);
	drdns_detector_promotion_done(&s->d, at, false);
	again = silent_until_promote(s, 100);
	if (again - at != 30)
		fail_msg("after a success: next PROMOTE %.0f s after the failure, expected 30",
		         again - at);
}

/* Retry counts from the failure, and a busy round in between does not PROMOTE. */
static void test_promote_failed_after_busy(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 0;
	s->conf.retry_after = 45;
	sim_restart(s);
	ok(s);
	assert_true(silent_until_promote(s, 10) > 0);
	s->r.busy = true;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTING);
	}
	double failed = s->t - 5;
	drdns_detector_promotion_done(&s->d, failed, false);
	s->r.busy = false;
	double again = silent_until_promote(s, 100);
	assert_true(again >= failed + 45);
	assert_true(again < failed + 45 + s->dt);
	assert_int_equal(s->count[DRDNS_ALERT_PROMOTE_FAILED], 1);
}

/* ---- expiry guard ---------------------------------------------------------- */

static void test_deadline_tracking(void **state)
{
	struct sim *s = *state;
	const char *z = NULL;
	s->r.n_zones = 2;
	s->z[0].expire = 7200; /* deadline last_ok + 5400 */
	s->z[0].refresh = 1800;
	s->z[1].expire = 3600; /* deadline last_ok + 3000 */
	s->z[1].refresh = 600;
	ok(s); /* T0 */
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == T0 + 5400);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[1]) == T0 + 3000);
	assert_true(drdns_detector_zone_deadline(&s->d, "unknown.example.") == 0);
	assert_true(drdns_detector_deadline(&s->d, &z) == T0 + 3000);
	assert_non_null(z);
	assert_string_equal(z, zone_names[1]);
	assert_true(drdns_detector_deadline(&s->d, NULL) == T0 + 3000);

	/* zone 1 silent, zone 0 OK: only zone 0 moves */
	s->z[0].master = DRDNS_MASTER_OK;
	s->z[1].master = DRDNS_MASTER_SILENT;
	step(s); /* T0+10 */
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == T0 + 10 + 5400);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[1]) == T0 + 3000);

	/* degraded is not OK: last_ok does not move */
	degraded(s); /* T0+20 */
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == T0 + 10 + 5400);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[1]) == T0 + 3000);

	/* zone 1 OK much later: now zone 0 is the earliest */
	s->t = T0 + 5000;
	ok(s);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[1]) == T0 + 5000 + 3000);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == T0 + 5000 + 5400);
	assert_true(drdns_detector_deadline(&s->d, &z) == T0 + 5000 + 3000);
	assert_string_equal(z, zone_names[1]);

	/* the master changes zone 1's timers: the new ones count */
	s->z[1].expire = 86400;
	s->z[1].refresh = 3600;
	ok(s); /* T0+5010 */
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[1]) == T0 + 5010 + 82800);
	assert_true(drdns_detector_deadline(&s->d, &z) == T0 + 5010 + 5400);
	assert_string_equal(z, zone_names[0]);

	/* silent rounds do not move any deadline */
	for (int i = 0; i < 10; i++)
		silent(s);
	assert_true(drdns_detector_deadline(&s->d, &z) == T0 + 5010 + 5400);
}

/* promote_after huge: the expiry guard still promotes at deadline - margin. */
static void test_expiry_guard_promotes(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 1e9;
	s->conf.expire_margin = 600;
	sim_restart(s);
	s->z[0].expire = 7200;
	s->z[0].refresh = 1800;
	s->dt = 60;
	ok(s);                         /* T0: deadline T0 + 5400, due at T0 + 4800 */
	for (int i = 1; i < 80; i++) { /* T0+60 .. T0+4740 */
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_false(raised(s, DRDNS_ALERT_EXPIRY));
	}
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_int_equal(s->count[DRDNS_ALERT_EXPIRY], 0);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+4800 */
	assert_true(raised(s, DRDNS_ALERT_EXPIRY));
	assert_int_equal(s->count[DRDNS_ALERT_EXPIRY], 1);
	/* the promotion fails: still retried (after retry_after), EXPIRY not re-raised */
	drdns_detector_promotion_done(&s->d, T0 + 4800, false);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+4860 >= retry_at T0+4830 */
	assert_int_equal(s->count[DRDNS_ALERT_EXPIRY], 1);
}

/* A signed zone drdns can re-sign goes dark when its RRSIGs expire: that
 * counts as a deadline like EXPIRE, whichever is first; the EXPIRE part alone
 * stays what it was.  No RRSIG deadline (0): the EXPIRE one rules again. */
static void test_expiry_guard_rrsig(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 1e9;
	s->conf.expire_margin = 600;
	sim_restart(s);
	s->z[0].expire = 1209600; /* EXPIRE: two weeks away */
	s->z[0].refresh = 3600;
	s->z[0].rrsig_dark = T0 + 3000; /* the signatures: 3000 s */
	s->dt = 60;
	ok(s); /* T0: due at T0 + 2400 */
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == T0 + 3000);
	assert_true(drdns_detector_zone_expire_deadline(&s->d, zone_names[0]) ==
	            T0 - 3600 + 1209600);
	for (int i = 1; i < 40; i++) { /* T0+60 .. T0+2340 */
		assert_int_equal(silent(s), DRDNS_WD_NONE);
		assert_false(raised(s, DRDNS_ALERT_EXPIRY));
	}
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+2400 */
	assert_true(raised(s, DRDNS_ALERT_EXPIRY));
	assert_non_null(strstr(s->d.alert_msg[DRDNS_ALERT_EXPIRY], "RRSIGs expire"));
	assert_non_null(strstr(s->out.reason, "expiry guard"));

	/* the same zone without signatures drdns could renew: the EXPIRE deadline */
	sim_restart(s);
	s->z[0].expire = 7200;
	s->z[0].refresh = 1800;
	s->z[0].rrsig_dark = 0;
	ok(s);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == T0 + 5400);
	/* RRSIGs later than EXPIRE: EXPIRE first */
	s->z[0].rrsig_dark = T0 + 90000;
	ok(s);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == T0 + 10 + 5400);
}

/* The guard still needs fail_after silent rounds (one lost round is no outage). */
static void test_expiry_guard_needs_fail_after(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 1e9;
	s->conf.expire_margin = 600;
	sim_restart(s);
	/* restored from state: deadline T0 + 100, already within the margin */
	assert_int_equal(drdns_detector_restore_zone(&s->d, zone_names[0], T0 - 5300, 7200, 1800),
	                 0);
	assert_true(drdns_detector_deadline(&s->d, NULL) == T0 + 100);
	assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_SUSPECT);
	assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_SUSPECT);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE);
	assert_int_equal(s->count[DRDNS_ALERT_EXPIRY], 1);
}

/* restore_zone: what a previous run persisted sets the deadline. */
static void test_restore_zone(void **state)
{
	struct sim *s = *state;
	const char *z = NULL;
	s->conf.promote_after = 1e9;
	s->conf.expire_margin = 600;
	sim_restart(s);
	assert_int_equal(drdns_detector_restore_zone(&s->d, zone_names[0], T0, 7200, 1800), 0);
	assert_int_equal(drdns_detector_restore_zone(&s->d, zone_names[1], T0, 86400, 3600), 0);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == T0 + 5400);
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[1]) == T0 + 82800);
	assert_true(drdns_detector_deadline(&s->d, &z) == T0 + 5400);
	assert_non_null(z);
	assert_string_equal(z, zone_names[0]);

	/* the controller restarts during the outage: silent from the first round */
	s->r.n_zones = 2;
	s->t = T0 + 3000;
	s->dt = 60;
	for (int i = 0; i < 30; i++) /* T0+3000 .. T0+4740 */
		assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+4800 */
	assert_int_equal(s->count[DRDNS_ALERT_EXPIRY], 1);
	/* silent rounds do not forget the restored contact */
	assert_true(drdns_detector_deadline(&s->d, NULL) == T0 + 5400);
}

/* contact_changed: first OK round of a zone, first silent round after OK rounds,
 * expire/refresh changes; not on every OK round. */
static void test_contact_changed(void **state)
{
	struct sim *s = *state;
	ok(s);
	assert_true(s->out.contact_changed);
	for (int i = 0; i < 5; i++) {
		ok(s);
		assert_false(s->out.contact_changed);
	}
	s->z[0].expire = 86400;
	ok(s);
	assert_true(s->out.contact_changed);
	ok(s);
	assert_false(s->out.contact_changed);
	s->z[0].refresh = 1200;
	ok(s);
	assert_true(s->out.contact_changed);
	ok(s);
	assert_false(s->out.contact_changed);
	silent(s);
	assert_true(s->out.contact_changed);
	for (int i = 0; i < 5; i++) {
		silent(s);
		assert_false(s->out.contact_changed);
	}
	/* a new zone appears in the configuration */
	ok(s);
	s->r.n_zones = 2;
	ok(s);
	assert_true(s->out.contact_changed);
	ok(s);
	assert_false(s->out.contact_changed);
}

static void test_contact_changed_silent_start(void **state)
{
	struct sim *s = *state;
	for (int i = 0; i < 5; i++) {
		silent(s);
		assert_false(s->out.contact_changed); /* nothing known, nothing to persist */
	}
	degraded(s);
	assert_false(s->out.contact_changed);
	ok(s);
	assert_true(s->out.contact_changed);
}

/* ---- promoted: master returned / ahead, STEPDOWN --------------------------- */

static void test_master_returned(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {200};
	set_promoted(s, 1, pub);
	s->conf.auto_demote = true;
	drdns_detector_set_conf(&s->d, &s->conf);
	silent(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	s->z[0].master_serial = 150; /* behind */
	s->z[0].secondaries_at_master = true;
	ok(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	assert_true(raised(s, DRDNS_ALERT_MASTER_RETURNED));
	assert_false(raised(s, DRDNS_ALERT_MASTER_AHEAD));
	assert_action(s, DRDNS_WD_NONE);
	for (int i = 0; i < 20; i++) {
		s->z[0].master_serial = (i % 2) ? 200 : 199; /* equal is not ahead either */
		assert_int_equal(ok(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTED);
		assert_false(raised(s, DRDNS_ALERT_MASTER_RETURNED));
	}
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_RETURNED], 1);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_AHEAD], 0);
	assert_int_equal(s->stepdowns + s->promotes, 0);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_DOWN], 0);
}

/* RFC 1982: published 4294967290, master 5 is ahead; the reverse is behind. */
static void test_master_ahead_serial_wrap(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub_high[] = {4294967290u};
	static const uint32_t pub_low[] = {5};
	set_promoted(s, 1, pub_high);
	s->z[0].master_serial = 5;
	s->z[0].secondaries_at_master = true;
	ok(s);
	assert_true(raised(s, DRDNS_ALERT_MASTER_AHEAD));
	assert_false(raised(s, DRDNS_ALERT_MASTER_RETURNED));
	assert_action(s, DRDNS_WD_NONE);
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN); /* recover_after = 2 */

	sim_restart(s);
	set_promoted(s, 1, pub_low);
	s->z[0].master_serial = 4294967290u;
	s->z[0].secondaries_at_master = true;
	for (int i = 0; i < 10; i++)
		assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_RETURNED], 1);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_AHEAD], 0);
}

/* auto_demote: STEPDOWN after recover_after rounds ahead, then DEMOTING, then NORMAL
 * once state.json says standby; no PROMOTE while the master answers. */
static void test_stepdown_auto_demote(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {200, 7};
	s->conf.auto_demote = true;
	s->conf.recover_after = 3;
	s->conf.promote_after = 0;
	sim_restart(s);
	set_promoted(s, 2, pub);
	silent(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	s->z[0].master_serial = 201;
	s->z[1].master_serial = 8;
	s->z[0].secondaries_at_master = false;
	s->z[1].secondaries_at_master = false;
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_true(raised(s, DRDNS_ALERT_MASTER_AHEAD));
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_false(raised(s, DRDNS_ALERT_MASTER_AHEAD));
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_AHEAD], 1);
	/* the caller steps down */
	s->r.busy = true;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(ok(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_DEMOTING);
	}
	drdns_detector_stepdown_done(&s->d, s->t - 5, true);
	s->r.busy = false;
	s->r.promoted = false;
	s->r.last_promotion_at = T0 - 100;
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
	for (int i = 0; i < 30; i++) {
		assert_int_equal(ok(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_NORMAL);
	}
	assert_int_equal(s->promotes, 0);
	assert_int_equal(s->stepdowns, 1);
}

/* Without auto_demote, STEPDOWN waits for the secondaries to follow the master. */
static void test_stepdown_waits_for_secondaries(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {200, 7};
	set_promoted(s, 2, pub);
	s->z[0].master_serial = 201;
	s->z[1].master_serial = 8;
	s->z[0].secondaries_at_master = true;
	s->z[1].secondaries_at_master = false;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(ok(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTED);
	}
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_AHEAD], 1);
	s->z[1].secondaries_at_master = true;
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_AHEAD], 1);
}

/* Ahead on one zone only is not ahead: MASTER_RETURNED, no STEPDOWN. */
static void test_ahead_on_some_zones_only(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {200, 7};
	s->conf.auto_demote = true;
	sim_restart(s);
	set_promoted(s, 2, pub);
	s->z[0].master_serial = 201;
	s->z[1].master_serial = 7;
	s->z[0].secondaries_at_master = true;
	s->z[1].secondaries_at_master = true;
	for (int i = 0; i < 10; i++)
		assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_RETURNED], 1);
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_AHEAD], 0);
	assert_int_equal(s->stepdowns, 0);
}

/* The rounds ahead must be consecutive: silence or a behind round restarts. */
static void test_ahead_streak_consecutive(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {200};
	s->conf.auto_demote = true;
	s->conf.recover_after = 3;
	sim_restart(s);
	set_promoted(s, 1, pub);
	s->z[0].master_serial = 201;
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_state(s, DRDNS_WD_PROMOTED);
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	s->z[0].master_serial = 200;
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	s->z[0].master_serial = 202;
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
}

/* Paused: never STEPDOWN; resuming steps down. */
static void test_paused_never_steps_down(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {200};
	s->conf.auto_demote = true;
	sim_restart(s);
	drdns_detector_set_paused(&s->d, true);
	set_promoted(s, 1, pub);
	s->z[0].master_serial = 300;
	s->z[0].secondaries_at_master = true;
	for (int i = 0; i < 30; i++) {
		assert_int_equal(ok(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_PROMOTED);
	}
	assert_int_equal(s->count[DRDNS_ALERT_MASTER_AHEAD], 1);
	drdns_detector_set_paused(&s->d, false);
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
}

/* DEMOTING -> PROMOTED when the step-down fails (state.json still primary). */
static void test_stepdown_fails(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {200};
	s->conf.auto_demote = true;
	sim_restart(s);
	set_promoted(s, 1, pub);
	s->z[0].master_serial = 201;
	ok(s);
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
	s->r.busy = true;
	for (int i = 0; i < 5; i++) { /* no second STEPDOWN while one is in flight */
		assert_int_equal(ok(s), DRDNS_WD_NONE);
		assert_state(s, DRDNS_WD_DEMOTING);
	}
	drdns_detector_stepdown_done(&s->d, s->t - 5, false);
	s->r.busy = false;
	silent(s); /* the master died again meanwhile */
	assert_state(s, DRDNS_WD_PROMOTED);
	assert_action(s, DRDNS_WD_NONE);
	/* it answers and is ahead again: a new STEPDOWN after recover_after rounds */
	assert_int_equal(ok(s), DRDNS_WD_NONE);
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
}

/* The whole cycle: outage, promotion, master back ahead, step-down, a second
 * outage within block_after_failover (BLOCKED), then after it (PROMOTE). */
static void test_full_cycle(void **state)
{
	struct sim *s = *state;
	s->conf.auto_demote = true;
	s->conf.block_after_failover = 3600;
	sim_restart(s);
	s->dt = 60;
	ok(s);
	double at = silent_until_promote(s, 10);
	assert_true(at == T0 + 180); /* first silent T0+60, MASTER_DOWN at T0+180 */
	s->r.busy = true;
	silent(s);
	assert_state(s, DRDNS_WD_PROMOTING);
	drdns_detector_promotion_done(&s->d, s->t, true);
	s->r.busy = false;
	s->r.promoted = true;
	s->r.last_promotion_at = at + 30;
	s->z[0].has_published = true;
	s->z[0].published_serial = 101;
	silent(s);
	assert_state(s, DRDNS_WD_PROMOTED);
	/* the master comes back behind, then ahead */
	ok(s);
	assert_true(raised(s, DRDNS_ALERT_MASTER_RETURNED));
	s->z[0].master_serial = 102;
	ok(s);
	assert_true(raised(s, DRDNS_ALERT_MASTER_AHEAD));
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
	s->r.busy = true;
	ok(s);
	assert_state(s, DRDNS_WD_DEMOTING);
	drdns_detector_stepdown_done(&s->d, s->t - 5, true);
	s->r.busy = false;
	s->r.promoted = false;
	s->z[0].has_published = false;
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ok(s), DRDNS_WD_NONE);
	/* second outage, still within the block */
	assert_true(s->t < at + 30 + 3600 - 600);
	int before = (int)s->count[DRDNS_ALERT_BLOCKED];
	while (s->t < at + 30 + 3600) {
		assert_int_equal(silent(s), DRDNS_WD_NONE);
	}
	assert_int_equal(s->count[DRDNS_ALERT_BLOCKED], before + 1);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE);
	assert_int_equal(s->promotes, 2);
	assert_int_equal(s->stepdowns, 1);
}

/* ---- configuration ---------------------------------------------------------- */

/* set_conf keeps the streaks and down_since. */
static void test_set_conf_keeps_streaks(void **state)
{
	struct sim *s = *state;
	s->conf.fail_after = 10;
	s->conf.promote_after = 1e9;
	sim_restart(s);
	ok(s);                      /* T0 */
	for (int i = 0; i < 4; i++) /* T0+10 .. T0+40 */
		silent(s);
	assert_state(s, DRDNS_WD_SUSPECT);
	struct drdns_detector_conf c = s->conf;
	c.fail_after = 3;
	drdns_detector_set_conf(&s->d, &c);
	assert_int_equal(s->d.conf.fail_after, 3);
	silent(s); /* T0+50: the fifth silent round */
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_action(s, DRDNS_WD_NONE);
	c.promote_after = 60;
	drdns_detector_set_conf(&s->d, &c);
	assert_int_equal(silent(s), DRDNS_WD_NONE);    /* T0+60: 50 s */
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* T0+70: 60 s since T0+10 */
}

/* set_conf keeps what is known about the zones. */
static void test_set_conf_keeps_contacts(void **state)
{
	struct sim *s = *state;
	s->z[0].expire = 7200;
	s->z[0].refresh = 1800;
	ok(s);
	struct drdns_detector_conf c = s->conf;
	c.expire_margin = 10;
	drdns_detector_set_conf(&s->d, &c);
	assert_true(drdns_detector_deadline(&s->d, NULL) == T0 + 5400);
	ok(s);
	assert_false(s->out.contact_changed);
}

/* state_changed is true exactly on the rounds where the state changed (step()
 * checks it on every round); this drives the detector through every state,
 * three times over. */
static void test_every_state(void **state)
{
	struct sim *s = *state;
	static const uint32_t pub[] = {100};
	s->conf.auto_demote = true;
	s->conf.fail_after = 2;
	s->conf.recover_after = 1;
	s->conf.promote_after = 25;
	sim_restart(s);
	for (int lap = 0; lap < 3; lap++) {
		ok(s);
		assert_state(s, DRDNS_WD_NORMAL);
		silent(s); /* t+10: down_since */
		assert_state(s, DRDNS_WD_SUSPECT);
		round_master(s, DRDNS_MASTER_SILENT, 0);
		assert_state(s, DRDNS_WD_ISOLATED);
		round_master(s, DRDNS_MASTER_SILENT, 3); /* 20 s */
		assert_state(s, DRDNS_WD_MASTER_DOWN);
		assert_action(s, DRDNS_WD_NONE);
		assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* 30 s */
		s->r.busy = true;
		silent(s);
		assert_state(s, DRDNS_WD_PROMOTING);
		drdns_detector_promotion_done(&s->d, s->t, true);
		s->r.busy = false;
		set_promoted(s, 1, pub);
		silent(s);
		assert_state(s, DRDNS_WD_PROMOTED);
		s->z[0].master_serial = 101;
		assert_int_equal(ok(s), DRDNS_WD_STEPDOWN); /* recover_after 1 */
		s->r.busy = true;
		ok(s);
		assert_state(s, DRDNS_WD_DEMOTING);
		drdns_detector_stepdown_done(&s->d, s->t - 5, true);
		s->r.busy = false;
		s->r.promoted = false;
		s->z[0].master_serial = 100;
		s->z[0].has_published = false;
		ok(s);
		assert_state(s, DRDNS_WD_NORMAL);
	}
	assert_int_equal(s->visited, (1u << (DRDNS_WD_DEMOTING + 1)) - 1);
	assert_int_equal(s->promotes, 3);
	assert_int_equal(s->stepdowns, 3);
}

/* A DEGRADED master that still serves its SOA (contact) keeps last_ok moving:
 * the secondaries refresh, so the expiry deadline must not freeze. */
static void test_degraded_contact_moves_last_ok(void **state)
{
	struct sim *s = *state;
	ok(s);
	double first = drdns_detector_zone_deadline(&s->d, zone_names[0]);
	for (int i = 0; i < 5; i++) {
		set_master(s, DRDNS_MASTER_DEGRADED);
		s->z[0].contact = true;
		step(s);
	}
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == first + 50);
	/* without contact (REFUSED, say) it freezes */
	for (int i = 0; i < 3; i++) {
		set_master(s, DRDNS_MASTER_DEGRADED);
		s->z[0].contact = false;
		step(s);
	}
	assert_true(drdns_detector_zone_deadline(&s->d, zone_names[0]) == first + 50);
}

/* last_ok is reported for saving every DRDNS_CONTACT_SAVE seconds of progress, so
 * a restart never restores a stale one. */
static void test_contact_saved_periodically(void **state)
{
	struct sim *s = *state;
	assert_true(ok(s) == DRDNS_WD_NONE && s->out.contact_changed);
	int reported = 0;
	int rounds = (int)(3 * DRDNS_CONTACT_SAVE / s->dt);
	for (int i = 0; i < rounds; i++) {
		ok(s);
		reported += s->out.contact_changed;
	}
	assert_int_equal(reported, 3);
}

/* Only the zones of the last round count for the deadline: a zone dropped from
 * zones-dr/ with an old deadline must not trigger the expiry guard. */
static void test_removed_zone_forgotten(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 1e9;
	sim_restart(s);
	assert_int_equal(
	    drdns_detector_restore_zone(&s->d, "old.example.", T0 - 2e6, 1209600, 3600), 0);
	const char *z = NULL;
	assert_true(drdns_detector_deadline(&s->d, &z) > 0);
	assert_string_equal(z, "old.example.");
	ok(s); /* the round names only zone_names[0] */
	assert_true(drdns_detector_deadline(&s->d, &z) == T0 - 3600 + 1209600);
	assert_string_equal(z, zone_names[0]);
	for (int i = 0; i < 10; i++)
		assert_int_equal(silent(s), DRDNS_WD_NONE);
	assert_int_equal(s->count[DRDNS_ALERT_EXPIRY], 0);
}

/* An abandoned PROMOTE (pre_promote ran, then the master answered or an operator
 * paused) is not a failure: no backoff, no promote_failed. */
static void test_promotion_abandoned(void **state)
{
	struct sim *s = *state;
	s->conf.promote_after = 0;
	sim_restart(s);
	assert_true(silent_until_promote(s, 5) > 0);
	assert_state(s, DRDNS_WD_PROMOTING);
	drdns_detector_promotion_abandoned(&s->d);
	assert_state(s, DRDNS_WD_MASTER_DOWN);
	assert_int_equal(s->d.failures, 0);
	assert_int_equal(silent(s), DRDNS_WD_PROMOTE); /* at once: no retry_after */
	assert_int_equal(s->count[DRDNS_ALERT_PROMOTE_FAILED], 0);
}

/* After a step-down commits, the role is standby but NOTIFY still runs (busy):
 * DEMOTING, not PROMOTING. */
static void test_demoting_while_notifying(void **state)
{
	struct sim *s = *state;
	s->conf.auto_demote = true;
	sim_restart(s);
	s->r.promoted = true;
	s->z[0].has_published = true;
	s->z[0].published_serial = 100;
	s->z[0].master_serial = 200;
	ok(s);
	assert_int_equal(ok(s), DRDNS_WD_STEPDOWN);
	s->r.promoted = false; /* committed */
	s->r.busy = true;      /* notifying */
	ok(s);
	assert_state(s, DRDNS_WD_DEMOTING);
	drdns_detector_stepdown_done(&s->d, s->t, true);
	s->r.busy = false;
	ok(s);
	assert_state(s, DRDNS_WD_NORMAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_init_unzeroed),
	    cmocka_unit_test(test_free_twice_and_empty),
	    T(test_normal_stays_normal),
	    T(test_suspect_then_master_down),
	    T(test_fail_after_one),
	    T(test_majority_rule),
	    T(test_isolated_never_promotes),
	    T(test_down_isolated_switch),
	    T(test_suspect_to_isolated),
	    T(test_degraded_is_alive),
	    T(test_degraded_alert_edges),
	    T(test_mixed_zones_alive),
	    T(test_suspect_recovers),
	    T(test_master_down_recovery),
	    T(test_no_promote_while_recovering),
	    T(test_master_down_to_normal),
	    T(test_isolated_to_normal),
	    T(test_flapping),
	    T(test_promote_after_timing),
	    T(test_promote_on_down_round),
	    T(test_promote_without_prior_contact),
	    T(test_no_second_promote_before_done),
	    T(test_no_promote_while_busy),
	    T(test_manual_promote_states),
	    T(test_promoted_at_start),
	    T(test_no_auto_promote),
	    T(test_paused),
	    T(test_paused_then_resumed_promotes),
	    T(test_blocked),
	    T(test_blocked_expiry_guard),
	    T(test_last_promotion_zero_is_never),
	    T(test_promote_failed_retry),
	    T(test_retry_backoff_resets),
	    T(test_promote_failed_after_busy),
	    T(test_deadline_tracking),
	    T(test_expiry_guard_promotes),
	    T(test_expiry_guard_needs_fail_after),
	    T(test_expiry_guard_rrsig),
	    T(test_restore_zone),
	    T(test_contact_changed),
	    T(test_contact_changed_silent_start),
	    T(test_master_returned),
	    T(test_master_ahead_serial_wrap),
	    T(test_stepdown_auto_demote),
	    T(test_stepdown_waits_for_secondaries),
	    T(test_ahead_on_some_zones_only),
	    T(test_ahead_streak_consecutive),
	    T(test_paused_never_steps_down),
	    T(test_stepdown_fails),
	    T(test_full_cycle),
	    T(test_set_conf_keeps_streaks),
	    T(test_set_conf_keeps_contacts),
	    T(test_degraded_contact_moves_last_ok),
	    T(test_contact_saved_periodically),
	    T(test_removed_zone_forgotten),
	    T(test_promotion_abandoned),
	    T(test_demoting_while_notifying),
	    T(test_every_state),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
