/*
 * Unit tests for include/drdns/alerts.h: the alert book, driven with
 * simulated time.
 *
 * Every sync goes through sync_at(), which also checks what holds after any
 * sync: the actions come CLEARED first, then in id order with an alert's RUN
 * before its ESCALATE, *out is NULL exactly when there are none, and the book
 * stays sorted by id with well-formed alerts.
 *
 * Out of memory: outside ASan this file interposes malloc, calloc, realloc and
 * free (passing through to glibc's allocator) so a test can make the k-th
 * allocation fail, for every k, and check that the book is left untouched and
 * that nothing leaked (the wrappers count live blocks).  ASan and valgrind
 * bring their own allocators, which take precedence, so under them that one
 * test is skipped (it finds out by probing); the plain build runs it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "drdns/alerts.h"
#include "drdns/error.h"

/* ---- fault injection --------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_FAULTS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_FAULTS 0
#endif
#endif
#ifndef HAVE_FAULTS
#define HAVE_FAULTS 1
#endif

static long fail_in; /* > 0: the fail_in-th allocation from now on fails */
static long live;    /* blocks allocated minus blocks freed, through the wrappers */

#if HAVE_FAULTS
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static bool alloc_fails(void)
{
	return fail_in > 0 && --fail_in == 0;
}

void *malloc(size_t n)
{
	void *p = alloc_fails() ? NULL : __libc_malloc(n);
	live += p != NULL;
	return p;
}

void *calloc(size_t n, size_t size)
{
	void *p = alloc_fails() ? NULL : __libc_calloc(n, size);
	live += p != NULL;
	return p;
}

void *realloc(void *p, size_t n)
{
	if (alloc_fails())
		return NULL;
	void *q = __libc_realloc(p, n);
	if (!p && q)
		live++;
	else if (p && n == 0 && !q) /* glibc: realloc(p, 0) frees p */
		live--;
	return q;
}

void free(void *p)
{
	live -= p != NULL;
	__libc_free(p);
}
#endif

/* Whether making an allocation fail works here (not under ASan or valgrind). */
static bool faults_work(void)
{
	if (!HAVE_FAULTS)
		return false;
	void *(*volatile alloc)(size_t) = malloc; /* volatile: no elided malloc/free pair */
	fail_in = 1;
	void *p = alloc(16);
	fail_in = 0;
	free(p);
	return p == NULL;
}

/* ---- helpers ----------------------------------------------------------- */

#define T0   1700000000.0 /* simulated unix time of the first sync */
#define HOUR 3600.0

static const struct drdns_alertbook_conf default_conf = {
    .repeat = HOUR,
    .escalate_after = 3,
};

struct fx {
	struct drdns_alertbook b;
	struct drdns_alert_action *out;
	size_t n_out;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	drdns_alertbook_init(&f->b, &default_conf);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	drdns_alert_actions_free(f->out, f->n_out);
	drdns_alertbook_free(&f->b);
	free(f);
	return 0;
}

static const char *kname(enum drdns_alert_action_kind k)
{
	switch (k) {
	case DRDNS_ALERT_RUN: return "RUN";
	case DRDNS_ALERT_ESCALATE: return "ESCALATE";
	case DRDNS_ALERT_CLEARED: return "CLEARED";
	}
	return "?";
}

static void check_book(const struct drdns_alertbook *b)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct drdns_alert *a = &b->alerts[i];
		assert_non_null(a->id);
		assert_true(a->id[0] != '\0');
		assert_true(strlen(a->id) <= DRDNS_ALERT_ID_MAX);
		assert_non_null(a->message);
		if (i > 0 && strcmp(b->alerts[i - 1].id, a->id) >= 0)
			fail_msg("book not sorted: %s before %s", b->alerts[i - 1].id, a->id);
		if (a->acked) {
			assert_non_null(a->acked_by);
			assert_non_null(a->ack_reason);
		} else {
			assert_null(a->acked_by);
			assert_null(a->ack_reason);
		}
		assert_ptr_equal(drdns_alertbook_find(b, a->id), a);
	}
}

static void check_actions(const struct drdns_alert_action *out, size_t n)
{
	assert_true((out == NULL) == (n == 0));
	for (size_t i = 0; i < n; i++) {
		const struct drdns_alert_action *x = &out[i];
		assert_non_null(x->id);
		assert_non_null(x->message);
		assert_true(x->kind == DRDNS_ALERT_RUN || x->kind == DRDNS_ALERT_ESCALATE ||
		            x->kind == DRDNS_ALERT_CLEARED);
		if (x->kind == DRDNS_ALERT_CLEARED)
			assert_int_equal(x->repeat, 0);
		else
			assert_false(x->acked);
		if (i == 0)
			continue;
		const struct drdns_alert_action *p = &out[i - 1];
		bool pc = p->kind == DRDNS_ALERT_CLEARED, xc = x->kind == DRDNS_ALERT_CLEARED;
		int c = strcmp(p->id, x->id);
		bool ordered;
		if (pc != xc)
			ordered = pc; /* CLEARED ones first */
		else if (xc)
			ordered = c < 0;
		else
			ordered =
			    c < 0 || (c == 0 && p->kind == DRDNS_ALERT_RUN &&
			              x->kind == DRDNS_ALERT_ESCALATE && p->repeat == x->repeat);
		if (!ordered)
			fail_msg("action %zu (%s %s) after (%s %s)", i, kname(x->kind), x->id,
			         kname(p->kind), p->id);
	}
}

/* Sync the conditions at time t (the previous actions are freed); returns the
 * number of actions, in f->out. */
static size_t sync_at(struct fx *f, double t, const struct drdns_alert_cond *c, size_t n)
{
	drdns_alert_actions_free(f->out, f->n_out);
	f->out = NULL;
	f->n_out = 0;
	struct drdns_alert_action *out =
	    (struct drdns_alert_action *)(uintptr_t)1; /* overwritten */
	size_t n_out = 12345;
	assert_int_equal(drdns_alertbook_sync(&f->b, c, n, t, &out, &n_out), 0);
	f->out = out;
	f->n_out = n_out;
	check_actions(f->out, f->n_out);
	check_book(&f->b);
	return f->n_out;
}

#define CONDS(...)                                                                                 \
	((const struct drdns_alert_cond[]){__VA_ARGS__}),                                          \
	    sizeof((const struct drdns_alert_cond[]){__VA_ARGS__}) /                               \
	        sizeof(struct drdns_alert_cond)

/* Hold one condition. */
static size_t hold1(struct fx *f, double t, const char *id, const char *msg)
{
	return sync_at(f, t, CONDS({id, msg}));
}

static size_t count(const struct fx *f, enum drdns_alert_action_kind k, const char *id)
{
	size_t c = 0;
	for (size_t i = 0; i < f->n_out; i++)
		if (f->out[i].kind == k && (!id || !strcmp(f->out[i].id, id)))
			c++;
	return c;
}

static void assert_act(const struct fx *f, size_t i, enum drdns_alert_action_kind k, const char *id,
                       unsigned repeat)
{
	if (i >= f->n_out)
		fail_msg("no action %zu (%zu actions), expected %s %s", i, f->n_out, kname(k), id);
	const struct drdns_alert_action *x = &f->out[i];
	if (x->kind != k || strcmp(x->id, id) || x->repeat != repeat)
		fail_msg("action %zu: %s %s %u, expected %s %s %u", i, kname(x->kind), x->id,
		         x->repeat, kname(k), id, repeat);
}

static const struct drdns_alert *find(const struct fx *f, const char *id)
{
	const struct drdns_alert *a = drdns_alertbook_find(&f->b, id);
	assert_non_null(a);
	return a;
}

static int ack(struct fx *f, const char *id, const char *who, const char *why, double t, char *err,
               size_t errlen)
{
	return drdns_alertbook_ack(&f->b, id, who, why, t, err, errlen);
}

/* ---- basics ------------------------------------------------------------ */

static void test_empty(void **state)
{
	(void)state;
	struct drdns_alertbook b;
	struct drdns_alert_action *out = (struct drdns_alert_action *)(uintptr_t)1;
	size_t n_out = 7;
	drdns_alertbook_init(&b, &default_conf);
	assert_int_equal(drdns_alertbook_sync(&b, NULL, 0, T0, &out, &n_out), 0);
	assert_null(out);
	assert_int_equal(n_out, 0);
	struct drdns_alert_cond none[1] = {{"unused", "x"}};
	assert_int_equal(drdns_alertbook_sync(&b, none, 0, T0 + 1, &out, &n_out), 0);
	assert_null(out);
	assert_int_equal(n_out, 0);
	assert_int_equal(b.n, 0);
	assert_null(drdns_alertbook_find(&b, "unused"));
	assert_null(drdns_alertbook_find(&b, NULL));
	drdns_alert_actions_free(NULL, 0);
	drdns_alertbook_free(&b);
	drdns_alertbook_free(&b); /* twice is harmless */
	assert_int_equal(b.n, 0);
}

static void test_raise_runs_once(void **state)
{
	struct fx *f = *state;
	assert_int_equal(hold1(f, T0, "master_down", "master is silent"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "master_down", 0);
	assert_string_equal(f->out[0].message, "master is silent");
	const struct drdns_alert *a = find(f, "master_down");
	assert_string_equal(a->message, "master is silent");
	assert_true(a->raised_at == T0);
	assert_true(a->last_sent == T0);
	assert_int_equal(a->sent, 1);
	assert_false(a->escalated);
	assert_false(a->acked);
	assert_false(a->restored);
	/* Held on, well within the repeat period: silent. */
	for (double t = T0 + 10; t < T0 + HOUR; t += 60)
		assert_int_equal(hold1(f, t, "master_down", "master is silent"), 0);
	assert_int_equal(find(f, "master_down")->sent, 1);
}

static void test_repeat_boundary(void **state)
{
	struct fx *f = *state;
	const struct drdns_alertbook_conf conf = {.repeat = HOUR, .escalate_after = 0};
	drdns_alertbook_set_conf(&f->b, &conf); /* only the runs here */
	hold1(f, T0, "a", "m");
	assert_int_equal(hold1(f, T0 + HOUR - 0.001, "a", "m"), 0);
	assert_int_equal(hold1(f, T0 + HOUR, "a", "m"), 1); /* >=: exactly at the boundary */
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 1);
	assert_true(find(f, "a")->last_sent == T0 + HOUR);
	assert_int_equal(hold1(f, T0 + 2 * HOUR - 1, "a", "m"), 0);
	assert_int_equal(hold1(f, T0 + 2 * HOUR, "a", "m"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 2);
	/* A late round gets one RUN, and the next is due a period after it. */
	assert_int_equal(hold1(f, T0 + 5.5 * HOUR, "a", "m"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 3);
	assert_int_equal(hold1(f, T0 + 6.5 * HOUR - 1, "a", "m"), 0);
	assert_int_equal(hold1(f, T0 + 6.5 * HOUR, "a", "m"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 4);
	const struct drdns_alert *a = find(f, "a");
	assert_int_equal(a->sent, 5);
	assert_true(a->raised_at == T0);
	/* A clock that went back is not a reason to run. */
	assert_int_equal(hold1(f, T0, "a", "m"), 0);
}

/* ---- acknowledgement --------------------------------------------------- */

static void test_ack_stops_repeats(void **state)
{
	struct fx *f = *state;
	char err[256];
	hold1(f, T0, "a", "m");
	hold1(f, T0 + HOUR, "a", "m");
	assert_int_equal(
	    ack(f, "a", "alice", "known, working on it", T0 + HOUR + 5, err, sizeof(err)), 0);
	const struct drdns_alert *a = find(f, "a");
	assert_true(a->acked);
	assert_string_equal(a->acked_by, "alice");
	assert_string_equal(a->ack_reason, "known, working on it");
	assert_true(a->acked_at == T0 + HOUR + 5);
	for (int h = 2; h < 30; h++)
		assert_int_equal(hold1(f, T0 + h * HOUR, "a", "m"), 0);
	a = find(f, "a"); /* still listed, with who acknowledged it */
	assert_true(a->acked);
	assert_string_equal(a->acked_by, "alice");
	assert_int_equal(a->sent, 2);
}

static void test_reack_replaces(void **state)
{
	struct fx *f = *state;
	hold1(f, T0, "a", "m");
	assert_int_equal(ack(f, "a", "alice", "first", T0 + 10, NULL, 0), 0);
	assert_int_equal(ack(f, "a", "bob", "second", T0 + 20, NULL, 0), 0);
	const struct drdns_alert *a = find(f, "a");
	assert_true(a->acked);
	assert_string_equal(a->acked_by, "bob");
	assert_string_equal(a->ack_reason, "second");
	assert_true(a->acked_at == T0 + 20);
}

static void test_ack_unknown(void **state)
{
	struct fx *f = *state;
	char err[256];

	memset(err, 'x', sizeof(err));
	assert_int_equal(ack(f, "a", "alice", "r", T0, err, sizeof(err)), DRDNS_EINVAL);
	assert_string_equal(err, "no active alert a (none is active)");

	sync_at(f, T0, CONDS({"zone:c", "m"}, {"zone:a", "m"}, {"zone:b", "m"}));
	memset(err, 'x', sizeof(err));
	assert_int_equal(ack(f, "zone:d", "alice", "r", T0, err, sizeof(err)), DRDNS_EINVAL);
	assert_string_equal(err, "no active alert zone:d (active: zone:a, zone:b, zone:c)");
	/* Exact comparison: a prefix or another case is not the alert. */
	assert_int_equal(ack(f, "zone:", "alice", "r", T0, err, sizeof(err)), DRDNS_EINVAL);
	assert_int_equal(ack(f, "ZONE:a", "alice", "r", T0, err, sizeof(err)), DRDNS_EINVAL);
	assert_int_equal(ack(f, NULL, "alice", "r", T0, err, sizeof(err)), DRDNS_EINVAL);
	/* err may be NULL, or too short (then cut, but terminated). */
	assert_int_equal(ack(f, "zone:d", "alice", "r", T0, NULL, 0), DRDNS_EINVAL);
	char small[12];
	memset(small, 'x', sizeof(small));
	assert_int_equal(ack(f, "zone:d", "alice", "r", T0, small, sizeof(small)), DRDNS_EINVAL);
	assert_non_null(memchr(small, '\0', sizeof(small)));
	assert_true(strncmp(small, "no active", 9) == 0);
	for (size_t i = 0; i < f->b.n; i++)
		assert_false(f->b.alerts[i].acked);
}

static void test_ack_needs_who_and_reason(void **state)
{
	struct fx *f = *state;
	char err[128];
	hold1(f, T0, "a", "m");
	const char *who[] = {"", NULL, "alice", "alice"};
	const char *why[] = {"r", "r", "", NULL};
	for (size_t i = 0; i < 4; i++) {
		err[0] = '\0';
		assert_int_equal(ack(f, "a", who[i], why[i], T0, err, sizeof(err)), DRDNS_EINVAL);
		assert_string_equal(err, "who and reason are required");
		assert_false(find(f, "a")->acked);
	}
	/* Refused re-ack keeps the earlier acknowledgement. */
	assert_int_equal(ack(f, "a", "alice", "r", T0 + 1, err, sizeof(err)), 0);
	assert_int_equal(ack(f, "a", "bob", "", T0 + 2, err, sizeof(err)), DRDNS_EINVAL);
	assert_string_equal(find(f, "a")->acked_by, "alice");
	assert_true(find(f, "a")->acked_at == T0 + 1);
	/* The valid acknowledgement stands: no more runs. */
	assert_int_equal(hold1(f, T0 + HOUR, "a", "m"), 0);
}

/* ---- escalation -------------------------------------------------------- */

static void test_escalate_once(void **state)
{
	struct fx *f = *state; /* escalate_after 3 */
	assert_int_equal(hold1(f, T0, "a", "m"), 1);
	assert_int_equal(hold1(f, T0 + HOUR, "a", "m"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 1);
	assert_int_equal(hold1(f, T0 + 2 * HOUR, "a", "m"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 2);
	assert_false(find(f, "a")->escalated);
	/* Between runs: nothing, not even the escalation. */
	assert_int_equal(hold1(f, T0 + 3 * HOUR - 1, "a", "m"), 0);
	assert_int_equal(hold1(f, T0 + 3 * HOUR, "a", "m"), 2);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 3);
	assert_act(f, 1, DRDNS_ALERT_ESCALATE, "a", 3);
	assert_string_equal(f->out[1].message, "m");
	assert_true(find(f, "a")->escalated);
	size_t escalations = 0, runs = 0;
	for (int h = 4; h < 40; h++) {
		hold1(f, T0 + h * HOUR, "a", "m");
		escalations += count(f, DRDNS_ALERT_ESCALATE, NULL);
		runs += count(f, DRDNS_ALERT_RUN, "a");
	}
	assert_int_equal(escalations, 0);
	assert_int_equal(runs, 36);
}

static void test_no_escalate_when_acked(void **state)
{
	struct fx *f = *state;
	hold1(f, T0, "a", "m");
	hold1(f, T0 + HOUR, "a", "m");
	hold1(f, T0 + 2 * HOUR, "a", "m"); /* repeat 2: one short of escalating */
	assert_int_equal(ack(f, "a", "alice", "r", T0 + 2 * HOUR + 1, NULL, 0), 0);
	for (int h = 3; h < 40; h++)
		assert_int_equal(hold1(f, T0 + h * HOUR, "a", "m"), 0);
	assert_false(find(f, "a")->escalated);
}

static void test_escalate_after_zero(void **state)
{
	struct fx *f = *state;
	const struct drdns_alertbook_conf conf = {.repeat = HOUR, .escalate_after = 0};
	drdns_alertbook_set_conf(&f->b, &conf);
	for (int h = 0; h < 30; h++) {
		assert_int_equal(hold1(f, T0 + h * HOUR, "a", "m"), 1);
		assert_act(f, 0, DRDNS_ALERT_RUN, "a", (unsigned)h);
	}
	assert_false(find(f, "a")->escalated);
}

static void test_escalate_after_one(void **state)
{
	struct fx *f = *state;
	const struct drdns_alertbook_conf conf = {.repeat = 60, .escalate_after = 1};
	drdns_alertbook_set_conf(&f->b, &conf);
	assert_int_equal(hold1(f, T0, "a", "m"), 1); /* the raise is repeat 0: no escalation */
	assert_int_equal(hold1(f, T0 + 60, "a", "m"), 2);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 1);
	assert_act(f, 1, DRDNS_ALERT_ESCALATE, "a", 1);
	assert_int_equal(hold1(f, T0 + 120, "a", "m"), 1);
}

/* ---- clearing, worse ids, messages ------------------------------------- */

static void test_clear_then_new_alert(void **state)
{
	struct fx *f = *state;
	hold1(f, T0, "a", "first");
	hold1(f, T0 + 10, "a", "latest");
	assert_int_equal(ack(f, "a", "alice", "r", T0 + 20, NULL, 0), 0);
	/* The condition ends. */
	assert_int_equal(sync_at(f, T0 + 30, NULL, 0), 1);
	assert_act(f, 0, DRDNS_ALERT_CLEARED, "a", 0);
	assert_true(f->out[0].acked);
	assert_string_equal(f->out[0].message, "latest");
	assert_null(drdns_alertbook_find(&f->b, "a"));
	assert_int_equal(f->b.n, 0);
	assert_int_equal(sync_at(f, T0 + 40, NULL, 0), 0);
	/* Held again: a new alert, raised again, needing a new ack. */
	assert_int_equal(hold1(f, T0 + 50, "a", "again"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 0);
	const struct drdns_alert *a = find(f, "a");
	assert_false(a->acked);
	assert_null(a->acked_by);
	assert_true(a->raised_at == T0 + 50);
	assert_int_equal(a->sent, 1);
	assert_int_equal(hold1(f, T0 + 50 + HOUR, "a", "again"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 1);
	/* Cleared unacknowledged. */
	assert_int_equal(sync_at(f, T0 + 60 + HOUR, CONDS({"b", "other"})), 2);
	assert_act(f, 0, DRDNS_ALERT_CLEARED, "a", 0);
	assert_false(f->out[0].acked);
	assert_act(f, 1, DRDNS_ALERT_RUN, "b", 0);
}

static void test_worse_id(void **state)
{
	struct fx *f = *state;
	hold1(f, T0, "rrsig:x:7d", "RRSIG of x expire in 7 days");
	assert_int_equal(ack(f, "rrsig:x:7d", "alice", "resign planned", T0 + 1, NULL, 0), 0);
	assert_int_equal(hold1(f, T0 + 2, "rrsig:x:7d", "RRSIG of x expire in 7 days"), 0);
	/* Worse: a new id, which the old acknowledgement does not cover. */
	assert_int_equal(hold1(f, T0 + 3, "rrsig:x:3d", "RRSIG of x expire in 3 days"), 2);
	assert_act(f, 0, DRDNS_ALERT_CLEARED, "rrsig:x:7d", 0);
	assert_true(f->out[0].acked);
	assert_act(f, 1, DRDNS_ALERT_RUN, "rrsig:x:3d", 0);
	assert_string_equal(f->out[1].message, "RRSIG of x expire in 3 days");
	assert_null(drdns_alertbook_find(&f->b, "rrsig:x:7d"));
	assert_false(find(f, "rrsig:x:3d")->acked);
	assert_int_equal(hold1(f, T0 + 3 + HOUR, "rrsig:x:3d", "RRSIG of x expire in 3 days"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "rrsig:x:3d", 1);
}

static void test_message_update(void **state)
{
	struct fx *f = *state;
	hold1(f, T0, "a", "lag 10 s");
	assert_int_equal(hold1(f, T0 + 10, "a", "lag 20 s"), 0); /* no run for a new text */
	assert_string_equal(find(f, "a")->message, "lag 20 s");
	assert_int_equal(hold1(f, T0 + HOUR, "a", "lag 30 s"), 1);
	assert_string_equal(f->out[0].message, "lag 30 s");
	assert_int_equal(hold1(f, T0 + HOUR + 1, "a", NULL), 0); /* NULL is "" */
	assert_string_equal(find(f, "a")->message, "");
	hold1(f, T0 + HOUR + 2, "a", "lag 40 s");
	assert_int_equal(sync_at(f, T0 + HOUR + 3, NULL, 0), 1);
	assert_string_equal(f->out[0].message, "lag 40 s");
}

static void test_set_conf_keeps_counts(void **state)
{
	struct fx *f = *state;
	hold1(f, T0, "a", "m");
	hold1(f, T0 + HOUR, "a", "m");
	hold1(f, T0 + 2 * HOUR, "a", "m");
	/* Escalate later: the counts go on from where they are. */
	struct drdns_alertbook_conf conf = {.repeat = 600, .escalate_after = 5};
	drdns_alertbook_set_conf(&f->b, &conf);
	assert_true(f->b.conf.repeat == 600);
	const struct drdns_alert *a = find(f, "a");
	assert_int_equal(a->sent, 3);
	assert_true(a->raised_at == T0);
	double t = T0 + 2 * HOUR;
	assert_int_equal(hold1(f, t + 599, "a", "m"), 0);
	assert_int_equal(hold1(f, t + 600, "a", "m"), 1); /* the new period counts */
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 3);
	assert_int_equal(hold1(f, t + 1200, "a", "m"), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 4);
	assert_int_equal(hold1(f, t + 1800, "a", "m"), 2);
	assert_act(f, 1, DRDNS_ALERT_ESCALATE, "a", 5);

	/* Lowered below what an alert has already seen: it escalates at its next run. */
	double t2 = t + 2000;
	assert_int_equal(hold1(f, t2, "b", "m"), 2); /* CLEARED a, RUN b */
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(hold1(f, t2 + i * 600, "b", "m"), 1);
		assert_act(f, 0, DRDNS_ALERT_RUN, "b", (unsigned)i);
	}
	assert_int_equal(find(f, "b")->sent, 4);
	assert_false(find(f, "b")->escalated);
	conf.escalate_after = 2;
	conf.repeat = HOUR;
	drdns_alertbook_set_conf(&f->b, &conf);
	assert_int_equal(find(f, "b")->sent, 4);
	assert_int_equal(hold1(f, t2 + 1800 + HOUR - 1, "b", "m"), 0);
	assert_int_equal(hold1(f, t2 + 1800 + HOUR, "b", "m"), 2);
	assert_act(f, 0, DRDNS_ALERT_RUN, "b", 4);
	assert_act(f, 1, DRDNS_ALERT_ESCALATE, "b", 4);
}

/* ---- restore ----------------------------------------------------------- */

static struct drdns_alert stored(const char *id, unsigned sent, double last_sent, bool acked)
{
	struct drdns_alert a;
	memset(&a, 0, sizeof(a));
	a.id = (char *)id;
	a.message = (char *)"from state.json";
	a.raised_at = T0 - 10 * HOUR;
	a.last_sent = last_sent;
	a.sent = sent;
	a.acked = acked;
	if (acked) {
		a.acked_by = (char *)"alice";
		a.ack_reason = (char *)"known";
		a.acked_at = T0 - 5 * HOUR;
	}
	return a;
}

static void test_restore_acked_stays_silent(void **state)
{
	struct fx *f = *state;
	struct drdns_alert s = stored("a", 4, T0 - 6 * HOUR, true);
	s.escalated = true;
	assert_int_equal(drdns_alertbook_restore(&f->b, &s), 0);
	check_book(&f->b);
	const struct drdns_alert *a = find(f, "a");
	assert_true(a->restored);
	assert_ptr_not_equal(a->id, s.id);             /* copied */
	assert_int_equal(hold1(f, T0, "a", "now"), 0); /* no second raise */
	a = find(f, "a");
	assert_false(a->restored);
	assert_true(a->acked);
	assert_string_equal(a->acked_by, "alice");
	assert_string_equal(a->ack_reason, "known");
	assert_true(a->acked_at == T0 - 5 * HOUR);
	assert_true(a->raised_at == T0 - 10 * HOUR);
	assert_int_equal(a->sent, 4);
	assert_true(a->escalated);
	assert_string_equal(a->message, "now");
	for (int h = 1; h < 20; h++)
		assert_int_equal(hold1(f, T0 + h * HOUR, "a", "now"), 0);
}

static void test_restore_unacked_counts_on(void **state)
{
	struct fx *f = *state; /* escalate_after 3 */
	struct drdns_alert s = stored("a", 3, T0 - 3000, false);
	assert_int_equal(drdns_alertbook_restore(&f->b, &s), 0);
	assert_int_equal(hold1(f, T0, "a", "m"), 0); /* 3000 s since the last run: wait */
	assert_int_equal(find(f, "a")->sent, 3);
	assert_int_equal(hold1(f, T0 + 599, "a", "m"), 0);
	assert_int_equal(hold1(f, T0 + 600, "a", "m"), 2);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 3);
	assert_act(f, 1, DRDNS_ALERT_ESCALATE, "a", 3);
	assert_int_equal(find(f, "a")->sent, 4);
	assert_true(find(f, "a")->raised_at == T0 - 10 * HOUR);

	/* Already escalated before the restart: not again.  Overdue: runs at once. */
	struct drdns_alert e = stored("b", 6, T0 - 2 * HOUR, false);
	e.escalated = true;
	assert_int_equal(drdns_alertbook_restore(&f->b, &e), 0);
	assert_int_equal(sync_at(f, T0 + 601, CONDS({"b", "m"}, {"a", "m"})), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "b", 6);
	/* It can still be acknowledged. */
	assert_int_equal(ack(f, "b", "bob", "r", T0 + 602, NULL, 0), 0);
	assert_int_equal(sync_at(f, T0 + 601 + HOUR, CONDS({"b", "m"}, {"a", "m"})), 1);
	assert_act(f, 0, DRDNS_ALERT_RUN, "a", 4);
}

static void test_restore_not_held_cleared(void **state)
{
	struct fx *f = *state;
	struct drdns_alert s1 = stored("a", 2, T0 - 100, true);
	struct drdns_alert s2 = stored("b", 2, T0 - 100, false);
	struct drdns_alert s3 = stored("c", 1, T0 - 100, false);
	assert_int_equal(drdns_alertbook_restore(&f->b, &s3), 0);
	assert_int_equal(drdns_alertbook_restore(&f->b, &s1), 0);
	assert_int_equal(drdns_alertbook_restore(&f->b, &s2), 0);
	check_book(&f->b);
	assert_int_equal(f->b.n, 3);
	assert_int_equal(hold1(f, T0, "b", "m"), 2);
	assert_act(f, 0, DRDNS_ALERT_CLEARED, "a", 0);
	assert_true(f->out[0].acked);
	assert_string_equal(f->out[0].message, "from state.json");
	assert_act(f, 1, DRDNS_ALERT_CLEARED, "c", 0);
	assert_false(f->out[1].acked);
	assert_int_equal(f->b.n, 1);
	assert_false(find(f, "b")->restored);
	/* An empty first sync clears every restored alert. */
	assert_int_equal(drdns_alertbook_restore(&f->b, &s1), 0);
	assert_int_equal(sync_at(f, T0 + 1, NULL, 0), 2);
	assert_act(f, 0, DRDNS_ALERT_CLEARED, "a", 0);
	assert_act(f, 1, DRDNS_ALERT_CLEARED, "b", 0);
	assert_int_equal(f->b.n, 0);
	assert_null(f->b.alerts);
}

static void test_restore_replace_and_invalid(void **state)
{
	struct fx *f = *state;
	struct drdns_alert s = stored("a", 2, T0 - 100, true);
	assert_int_equal(drdns_alertbook_restore(&f->b, &s), 0);
	s = stored("a", 5, T0 - 50, false);
	s.acked_by = (char *)"ignored"; /* not acked: no who */
	assert_int_equal(drdns_alertbook_restore(&f->b, &s), 0);
	check_book(&f->b);
	assert_int_equal(f->b.n, 1);
	const struct drdns_alert *a = find(f, "a");
	assert_int_equal(a->sent, 5);
	assert_false(a->acked);
	assert_null(a->acked_by);

	/* Acked without who or reason: the acknowledgement is kept. */
	s = stored("b", 1, T0, true);
	s.acked_by = NULL;
	s.ack_reason = NULL;
	s.message = NULL;
	assert_int_equal(drdns_alertbook_restore(&f->b, &s), 0);
	check_book(&f->b);
	assert_true(find(f, "b")->acked);
	assert_string_equal(find(f, "b")->acked_by, "");
	assert_string_equal(find(f, "b")->message, "");

	char longid[DRDNS_ALERT_ID_MAX + 2];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0'; /* one byte too long */
	const char *bad[] = {"", NULL, longid};
	for (size_t i = 0; i < 3; i++) {
		s = stored(bad[i], 1, T0, false);
		assert_int_equal(drdns_alertbook_restore(&f->b, &s), DRDNS_EINVAL);
	}
	assert_int_equal(f->b.n, 2);
	longid[DRDNS_ALERT_ID_MAX] = '\0'; /* the longest accepted */
	s = stored(longid, 1, T0, false);
	assert_int_equal(drdns_alertbook_restore(&f->b, &s), 0);
	assert_int_equal(f->b.n, 3);
	check_book(&f->b);
}

/* ---- ids and ordering -------------------------------------------------- */

static void test_invalid_ids_skipped(void **state)
{
	struct fx *f = *state;
	char longid[DRDNS_ALERT_ID_MAX + 2], maxid[DRDNS_ALERT_ID_MAX + 1];
	memset(longid, 'y', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	memset(maxid, 'z', sizeof(maxid) - 1);
	maxid[sizeof(maxid) - 1] = '\0';
	assert_int_equal(
	    sync_at(f, T0,
	            CONDS({"", "empty"}, {NULL, "null"}, {longid, "long"}, {"dup", "first"},
	                  {maxid, "max"}, {"dup", "second"}, {"dup", "third"})),
	    2);
	assert_act(f, 0, DRDNS_ALERT_RUN, "dup", 0);
	assert_string_equal(f->out[0].message, "first");
	assert_act(f, 1, DRDNS_ALERT_RUN, maxid, 0);
	assert_int_equal(f->b.n, 2);
	assert_null(drdns_alertbook_find(&f->b, longid));
	assert_null(drdns_alertbook_find(&f->b, ""));
	/* Held as a duplicate only: still held, not cleared. */
	assert_int_equal(sync_at(f, T0 + 1, CONDS({"dup", "again"}, {"dup", "x"}, {maxid, "max"})),
	                 0);
	assert_string_equal(find(f, "dup")->message, "again");
	/* An invalid cond does not hold anything: maxid's absence clears it. */
	assert_int_equal(sync_at(f, T0 + 2, CONDS({"dup", "m"}, {longid, "long"})), 1);
	assert_act(f, 0, DRDNS_ALERT_CLEARED, maxid, 0);
}

static void test_action_order(void **state)
{
	struct fx *f = *state;
	const struct drdns_alertbook_conf conf = {.repeat = HOUR, .escalate_after = 1};
	drdns_alertbook_set_conf(&f->b, &conf);
	assert_int_equal(sync_at(f, T0, CONDS({"e", "m"}, {"b", "m"}, {"d", "m"}, {"f", "m"})), 4);
	assert_act(f, 0, DRDNS_ALERT_RUN, "b", 0);
	assert_act(f, 1, DRDNS_ALERT_RUN, "d", 0);
	assert_act(f, 2, DRDNS_ALERT_RUN, "e", 0);
	assert_act(f, 3, DRDNS_ALERT_RUN, "f", 0);
	assert_int_equal(ack(f, "e", "alice", "r", T0 + 1, NULL, 0), 0);
	/* b due (and escalating), d and f gone, a and c new, e acked. */
	assert_int_equal(
	    sync_at(f, T0 + HOUR, CONDS({"e", "m"}, {"c", "m"}, {"b", "m"}, {"a", "m"})), 6);
	assert_act(f, 0, DRDNS_ALERT_CLEARED, "d", 0);
	assert_act(f, 1, DRDNS_ALERT_CLEARED, "f", 0);
	assert_act(f, 2, DRDNS_ALERT_RUN, "a", 0);
	assert_act(f, 3, DRDNS_ALERT_RUN, "b", 1);
	assert_act(f, 4, DRDNS_ALERT_ESCALATE, "b", 1);
	assert_act(f, 5, DRDNS_ALERT_RUN, "c", 0);
	assert_int_equal(f->b.n, 4);
}

static void test_many_sorted(void **state)
{
	struct fx *f = *state;
	enum {
		N = 64
	};
	char ids[N][16];
	struct drdns_alert_cond c[N];
	for (unsigned i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "id:%02u", (i * 37u) % N); /* a shuffle */
		c[i].id = ids[i];
		c[i].message = ids[i];
	}
	assert_int_equal(sync_at(f, T0, c, N), N);
	assert_int_equal(f->b.n, N);
	for (unsigned i = 0; i < N; i++)
		assert_string_equal(find(f, ids[i])->message, ids[i]);
	/* Keep the even half. */
	size_t m = 0;
	for (unsigned i = 0; i < N; i++)
		if ((i * 37u) % N % 2 == 0)
			c[m++] = c[i];
	assert_int_equal(sync_at(f, T0 + 1, c, m), N / 2);
	assert_int_equal(count(f, DRDNS_ALERT_CLEARED, NULL), N / 2);
	assert_int_equal(f->b.n, N / 2);
}

/* ---- out of memory ----------------------------------------------------- */

struct snap {
	struct drdns_alert *alerts;
	size_t n;
	struct drdns_alert copy[8];
};

static void snap_take(const struct drdns_alertbook *b, struct snap *s)
{
	assert_true(b->n <= 8);
	s->alerts = b->alerts;
	s->n = b->n;
	for (size_t i = 0; i < b->n; i++)
		s->copy[i] = b->alerts[i];
}

/* The book is the very same: same array, same strings, same values. */
static void snap_check(const struct drdns_alertbook *b, const struct snap *s)
{
	assert_ptr_equal(b->alerts, s->alerts);
	assert_int_equal(b->n, s->n);
	for (size_t i = 0; i < s->n; i++) {
		const struct drdns_alert *x = &b->alerts[i], *y = &s->copy[i];
		assert_ptr_equal(x->id, y->id);
		assert_ptr_equal(x->message, y->message);
		assert_ptr_equal(x->acked_by, y->acked_by);
		assert_ptr_equal(x->ack_reason, y->ack_reason);
		assert_true(x->raised_at == y->raised_at && x->last_sent == y->last_sent);
		assert_true(x->acked_at == y->acked_at);
		assert_int_equal(x->sent, y->sent);
		assert_int_equal(x->escalated, y->escalated);
		assert_int_equal(x->acked, y->acked);
		assert_int_equal(x->restored, y->restored);
	}
	check_book(b);
}

/* A book in which the next sync does a bit of everything. */
static void oom_book(struct drdns_alertbook *b)
{
	const struct drdns_alertbook_conf conf = {.repeat = HOUR, .escalate_after = 1};
	drdns_alertbook_init(b, &conf);
	struct drdns_alert_cond c[] = {{"b", "m"}, {"c", "m"}, {"d", "m"}, {"e", "m"}};
	struct drdns_alert_action *out;
	size_t n_out;
	assert_int_equal(drdns_alertbook_sync(b, c, 4, T0, &out, &n_out), 0);
	drdns_alert_actions_free(out, n_out);
	assert_int_equal(drdns_alertbook_ack(b, "e", "alice", "r", T0, NULL, 0), 0);
	struct drdns_alert r = stored("f", 2, T0 - HOUR, false);
	assert_int_equal(drdns_alertbook_restore(b, &r), 0);
}

static void test_oom(void **state)
{
	(void)state;
	if (!faults_work())
		skip();
	/* Clears c, raises a and g, runs and escalates b, d and f, changes d's text;
	 * e is acknowledged. */
	const struct drdns_alert_cond c[] = {{"g", "m"},   {"f", "m"}, {"e", "m"},
	                                     {"d", "new"}, {"b", "m"}, {"a", "m"}};
	const double t = T0 + HOUR;
	struct drdns_alertbook b;
	struct snap s;
	size_t failures = 0;
	for (long k = 1;; k++) {
		long base = live;
		oom_book(&b);
		snap_take(&b, &s);
		struct drdns_alert_action *out = NULL;
		size_t n_out = 0;
		fail_in = k;
		int rc = drdns_alertbook_sync(&b, c, 6, t, &out, &n_out);
		bool injected = fail_in == 0;
		fail_in = 0;
		if (rc) {
			assert_int_equal(rc, DRDNS_ENOMEM);
			assert_true(injected);
			assert_null(out);
			assert_int_equal(n_out, 0);
			snap_check(&b, &s);
			failures++;
		} else {
			/* Done (or only the shrinking realloc failed): the full result. */
			check_actions(out, n_out);
			check_book(&b);
			assert_int_equal(n_out, 9); /* CLEARED c, RUN a, RUN+ESC b d f, RUN g */
			assert_int_equal(b.n, 6);
			assert_string_equal(drdns_alertbook_find(&b, "d")->message, "new");
		}
		drdns_alert_actions_free(out, n_out);
		drdns_alertbook_free(&b);
		assert_int_equal(live, base); /* nothing leaked */
		if (!injected)
			break;
		assert_true(k < 1000);
	}
	assert_true(failures >= 10); /* allocations were really made to fail */

	/* ack: the earlier acknowledgement stays as it was. */
	failures = 0;
	for (long k = 1;; k++) {
		long base = live;
		oom_book(&b);
		snap_take(&b, &s);
		fail_in = k;
		int rc = drdns_alertbook_ack(&b, "e", "bob", "again", t, NULL, 0);
		bool injected = fail_in == 0;
		fail_in = 0;
		if (rc) {
			assert_int_equal(rc, DRDNS_ENOMEM);
			snap_check(&b, &s);
			assert_string_equal(drdns_alertbook_find(&b, "e")->acked_by, "alice");
			failures++;
		} else {
			assert_false(injected);
			assert_string_equal(drdns_alertbook_find(&b, "e")->acked_by, "bob");
		}
		drdns_alertbook_free(&b);
		assert_int_equal(live, base);
		if (!injected)
			break;
	}
	assert_int_equal(failures, 2);

	/* restore, of a new id and of one already in the book. */
	const char *ids[] = {"aa", "d"};
	for (size_t j = 0; j < 2; j++) {
		for (long k = 1;; k++) {
			long base = live;
			oom_book(&b);
			snap_take(&b, &s);
			struct drdns_alert r = stored(ids[j], 3, T0, true);
			fail_in = k;
			int rc = drdns_alertbook_restore(&b, &r);
			bool injected = fail_in == 0;
			fail_in = 0;
			if (rc) {
				assert_int_equal(rc, DRDNS_ENOMEM);
				snap_check(&b, &s);
			} else {
				assert_false(injected);
				check_book(&b);
				assert_true(drdns_alertbook_find(&b, ids[j])->acked);
			}
			drdns_alertbook_free(&b);
			assert_int_equal(live, base);
			if (!injected)
				break;
		}
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    T(test_raise_runs_once),
	    T(test_repeat_boundary),
	    T(test_ack_stops_repeats),
	    T(test_reack_replaces),
	    T(test_ack_unknown),
	    T(test_ack_needs_who_and_reason),
	    T(test_escalate_once),
	    T(test_no_escalate_when_acked),
	    T(test_escalate_after_zero),
	    T(test_escalate_after_one),
	    T(test_clear_then_new_alert),
	    T(test_worse_id),
	    T(test_message_update),
	    T(test_set_conf_keeps_counts),
	    T(test_restore_acked_stays_silent),
	    T(test_restore_unacked_counts_on),
	    T(test_restore_not_held_cleared),
	    T(test_restore_replace_and_invalid),
	    T(test_invalid_ids_skipped),
	    T(test_action_order),
	    T(test_many_sorted),
	    cmocka_unit_test(test_oom),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
