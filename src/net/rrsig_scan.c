/*
 * The RRSIG scan (see expiry.h): AXFR (nameserver, zone) pairs in libuv's
 * thread pool and keep only a summary of each copy.
 *
 * Targets are grouped by address (compared as addresses, so "2001:db8::1"
 * and "2001:DB8:0::1" are one server); one uv_work_t per group fetches its
 * targets one after the other, so a dead nameserver holds one pool thread
 * for its own timeouts and never delays the others.  At most `parallel`
 * groups are queued at a time, the next one when one finishes: libuv's pool
 * is small and shared with the server's AXFR rendering and the signer's
 * jobs, which must not wait behind a scan.  Each transfer is summarized and
 * freed in the job: a scan never holds more than one copy of a zone per
 * group.
 *
 * Lifetime.  While the scan is alive at least one job is queued (start
 * fails, and calls nothing, when none could be); cb runs from the last
 * job's after-work callback, which libuv only calls from uv_run, so never
 * before drdns_rrsig_scan_start returns; the scan is freed right after cb,
 * once.  Cancelling sets the flag the transfers poll, takes the jobs that
 * have not started off the pool's queue (uv_cancel) and queues no more:
 * their targets are reported "cancelled".
 *
 * Clarifications: a target without a label is reported under its address;
 * n == 0 is a valid, empty scan (cb runs once with n == 0, from an empty
 * job, to keep the "never before start returns" promise without a timer).
 */
#include "drdns/expiry.h"

#include "drdns/axfr.h"
#include "drdns/error.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Targets that share an address: order[first .. first + n) index results. */
struct group {
	uv_work_t work;
	struct drdns_rrsig_scan *scan;
	size_t first, n;
	bool in_flight; /* queued, its after-work callback not run yet */
};

struct drdns_rrsig_scan {
	uv_loop_t *loop;
	atomic_bool cancel; /* polled by the transfers (any thread) */
	drdns_rrsig_scan_cb cb;
	void *arg;
	/* inputs, read-only once queued (owned) */
	char *source;
	double timeout;
	unsigned parallel;
	/* results[i] is written by its group's job, then read on the loop */
	struct drdns_rrsig_result *results;
	size_t n;
	size_t *order;
	struct group *groups;
	size_t n_groups;
	/* loop thread only */
	size_t next;    /* the next group to queue */
	size_t running; /* groups in flight */
};

void drdns_rrsig_results_free(struct drdns_rrsig_result *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++) {
		free(r[i].label);
		free(r[i].address);
		free(r[i].zone);
	}
	free(r);
}

static void scan_free(struct drdns_rrsig_scan *s)
{
	free(s->source);
	free(s->order);
	free(s->groups);
	free(s);
}

/* ---- the jobs (thread pool): no loop, no logging ---- */

static void fetch_one(const struct drdns_rrsig_scan *s, struct drdns_rrsig_result *r)
{
	if (atomic_load(&s->cancel)) {
		snprintf(r->detail, sizeof(r->detail), "cancelled");
		return;
	}
	struct drdns_axfr_opts opts = {
	    .zone = r->zone,
	    .address = r->address,
	    .port = r->port,
	    .source = s->source,
	    .timeout = s->timeout,
	    .cancel = &s->cancel,
	};
	ldns_rr_list *rrs = NULL;
	char err[sizeof(r->detail)] = "";
	int ret = drdns_axfr_fetch(&opts, &rrs, err, sizeof(err));
	if (ret < 0) {
		snprintf(r->detail, sizeof(r->detail), "%s", *err ? err : drdns_strerror(ret));
		return;
	}
	drdns_rrsig_summarize(rrs, (int64_t)time(NULL), &r->summary);
	ldns_rr_list_deep_free(rrs);
	r->fetched = true;
	snprintf(r->detail, sizeof(r->detail), "ok");
}

static void scan_work(uv_work_t *w)
{
	struct group *g = w->data;
	const struct drdns_rrsig_scan *s = g->scan;
	for (size_t k = 0; k < g->n; k++)
		fetch_one(s, &s->results[s->order[g->first + k]]);
}

/* ---- the loop ---- */

/* Report the group's targets that have no outcome yet. */
static void group_fail(struct drdns_rrsig_scan *s, struct group *g, const char *why)
{
	for (size_t k = 0; k < g->n; k++) {
		struct drdns_rrsig_result *r = &s->results[s->order[g->first + k]];
		if (!r->detail[0])
			snprintf(r->detail, sizeof(r->detail), "%s", why);
	}
}

static void scan_after(uv_work_t *w, int status);

/* Queue groups up to the limit; once cancelled, report the rest instead.
 * Returns the last queueing error, or 0. */
static int pump(struct drdns_rrsig_scan *s)
{
	int err = 0;
	while (s->next < s->n_groups && s->running < s->parallel) {
		struct group *g = &s->groups[s->next++];
		if (atomic_load(&s->cancel)) {
			group_fail(s, g, "cancelled");
			continue;
		}
		int ret = uv_queue_work(s->loop, &g->work, scan_work, scan_after);
		if (ret < 0) {
			char why[96];
			snprintf(why, sizeof(why), "not queued: %s", uv_strerror(ret));
			group_fail(s, g, why);
			err = ret;
			continue;
		}
		g->in_flight = true;
		s->running++;
	}
	return err;
}

static void scan_after(uv_work_t *w, int status)
{
	struct group *g = w->data;
	struct drdns_rrsig_scan *s = g->scan;
	g->in_flight = false;
	s->running--;
	if (status < 0) /* UV_ECANCELED: taken off the queue before it ran */
		group_fail(s, g, status == UV_ECANCELED ? "cancelled" : uv_strerror(status));
	pump(s);
	if (s->running > 0)
		return;
	/* The last job: hand the results over, then the scan is gone. */
	s->cb(s->results, s->n, s->arg);
	scan_free(s);
}

void drdns_rrsig_scan_cancel(struct drdns_rrsig_scan *scan)
{
	if (!scan)
		return;
	atomic_store(&scan->cancel, true);
	for (size_t i = 0; i < scan->n_groups; i++)
		if (scan->groups[i].in_flight) /* EBUSY when running: the flag stops it */
			(void)uv_cancel((uv_req_t *)&scan->groups[i].work);
}

/* An address as bytes, to group by; text that does not parse (the transfer
 * will say why) is compared as text. */
struct addr_key {
	int family; /* AF_INET, AF_INET6, or 0: text */
	unsigned char bytes[16];
	const char *text;
};

static void addr_key(const char *text, struct addr_key *k)
{
	memset(k, 0, sizeof(*k));
	k->text = text;
	if (inet_pton(AF_INET, text, k->bytes) == 1)
		k->family = AF_INET;
	else if (inet_pton(AF_INET6, text, k->bytes) == 1)
		k->family = AF_INET6;
}

static bool addr_key_eq(const struct addr_key *a, const struct addr_key *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == 0)
		return strcmp(a->text, b->text) == 0;
	return memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

/* Copy the targets and group them by address, in order of first appearance. */
static int build(struct drdns_rrsig_scan *s, const struct drdns_rrsig_target *targets)
{
	size_t n = s->n;
	s->results = calloc(n ? n : 1, sizeof(*s->results));
	s->order = calloc(n ? n : 1, sizeof(*s->order));
	s->groups = calloc(n ? n : 1, sizeof(*s->groups));
	struct addr_key *keys = calloc(n ? n : 1, sizeof(*keys));
	size_t *group_of = calloc(n ? n : 1, sizeof(*group_of));
	size_t *fill = calloc(n ? n : 1, sizeof(*fill));
	int ret =
	    s->results && s->order && s->groups && keys && group_of && fill ? 0 : DRDNS_ENOMEM;
	for (size_t i = 0; ret == 0 && i < n; i++) {
		const struct drdns_rrsig_target *t = &targets[i];
		struct drdns_rrsig_result *r = &s->results[i];
		r->label = strdup(t->label ? t->label : t->address);
		r->address = strdup(t->address);
		r->zone = strdup(t->zone);
		r->port = t->port;
		if (!r->label || !r->address || !r->zone) {
			ret = DRDNS_ENOMEM;
			break;
		}
		addr_key(t->address, &keys[i]);
		size_t g = 0;
		/* groups[g].first is the group's first target until order[] is laid out */
		while (g < s->n_groups && !addr_key_eq(&keys[s->groups[g].first], &keys[i]))
			g++;
		if (g == s->n_groups)
			s->groups[s->n_groups++].first = i;
		s->groups[g].n++;
		group_of[i] = g;
	}
	if (ret == 0) {
		/* Lay the groups out one after the other in order[]. */
		size_t at = 0;
		for (size_t g = 0; g < s->n_groups; g++) {
			fill[g] = at;
			at += s->groups[g].n;
		}
		for (size_t g = 0; g < s->n_groups; g++)
			s->groups[g].first = fill[g];
		for (size_t i = 0; i < n; i++)
			s->order[fill[group_of[i]]++] = i;
		if (s->n_groups == 0) /* the empty scan: one empty job */
			s->n_groups = 1;
		for (size_t g = 0; g < s->n_groups; g++) {
			s->groups[g].scan = s;
			s->groups[g].work.data = &s->groups[g];
		}
	}
	free(keys);
	free(group_of);
	free(fill);
	return ret;
}

int drdns_rrsig_scan_start(uv_loop_t *loop, const char *source,
                           const struct drdns_rrsig_target *targets, size_t n, double timeout,
                           unsigned parallel, drdns_rrsig_scan_cb cb, void *arg,
                           struct drdns_rrsig_scan **handle)
{
	if (handle)
		*handle = NULL;
	if (!loop || !cb || parallel == 0 || !(timeout > 0) || (n > 0 && !targets))
		return DRDNS_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!targets[i].address || !targets[i].zone)
			return DRDNS_EINVAL;
	struct drdns_rrsig_scan *s = calloc(1, sizeof(*s));
	if (!s)
		return DRDNS_ENOMEM;
	s->loop = loop;
	atomic_init(&s->cancel, false);
	s->cb = cb;
	s->arg = arg;
	s->timeout = timeout;
	s->parallel = parallel;
	s->n = n;
	int ret = source && !(s->source = strdup(source)) ? DRDNS_ENOMEM : 0;
	if (ret == 0)
		ret = build(s, targets);
	if (ret == 0) {
		ret = pump(s);
		if (s->running > 0)
			ret = 0; /* some are on their way: the others report why not */
		else if (ret == 0)
			ret = DRDNS_EINVAL; /* not reached: a group is always queued or failed */
	}
	if (ret < 0) {
		drdns_rrsig_results_free(s->results, s->n);
		scan_free(s);
		return ret;
	}
	if (handle)
		*handle = s;
	return 0;
}
