/*
 * Convergence watch (see include/drdns/notify.h).
 *
 * Every peer runs its own rounds: a round is one drdns_probe_soa() batch with
 * one UDP SOA query (one attempt) per zone that has not yet converged on that
 * peer.  The next round starts poll_interval after the previous one started,
 * or at once when the round took longer.  Per-query timeout:
 * clamp(poll_interval, 0.25 s, 1 s), and never beyond the deadline (but at
 * least 50 ms).  Polls are unsigned: secondaries answer SOA queries publicly,
 * and the served serial is all we look at.
 *
 * A zone has converged on a peer when an authoritative SOA answer (the probe's
 * "answered") carries the expected serial or a newer one in RFC 1982 terms
 * (drdns_serial_cmp; an undefined comparison does not count).  A converged
 * zone is not polled again.  A peer's `seconds` is the time from the start of
 * the watch to the arrival of the answer that completed it (round start + that
 * query's rtt).
 *
 * The watch ends when every peer has converged or `wait` seconds have passed;
 * the callback fires once, from the loop, never from inside
 * drdns_converge_watch().  Queries still out at that moment are left to finish
 * (their results are ignored); the watch's memory lives until they have.  For
 * a peer that did not converge, `seconds` is the time the watch ran and
 * `detail` tells the first zone still missing:
 *   "unreachable (timeout)"                  no DNS answer at all from the peer
 *   "unreachable (connection refused)"       ... with the last network error
 *   "timeout: example.edu. still at 2026112301"   it answers with an older serial
 *   "timeout: example.edu. REFUSED"          it answers, but not with the SOA
 * A converged peer's detail is "ok".  One log line per peer at the end.
 *
 * Refused transfers: with a refusal source set (drdns_converge_set_refusals,
 * drdnsd's server), the watch takes the record's mark at its start; at the end,
 * each peer that did not converge is given the newest refusal since then of
 * one of the watched zones that concerns it (or possibly does: an unknown
 * source address), and the log line says it.
 */
#include "drdns/notify.h"

#include "drdns/error.h"
#include "drdns/log.h"
#include "drdns/probe.h"
#include "drdns/serial.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZERR_LEN 64

struct cw;

struct cw_peer {
	struct cw *w;
	size_t idx;
	uv_timer_t timer;
	bool *done; /* per zone: converged */
	size_t n_done;
	size_t *round_zone; /* target index -> zone index, for the current round */
	uint64_t round_start;
	bool reachable; /* any DNS answer (any rcode) seen */
	bool converged;
	double conv_seconds;    /* latest converging answer so far */
	char (*zerr)[ZERR_LEN]; /* per zone: last failure detail */
	char last_net[ZERR_LEN];
};

struct cw {
	uv_loop_t *loop;
	char *source;
	const struct drdns_xfr_peer *peers;
	size_t n_peers;
	const struct drdns_zone_serial *zones;
	size_t n_zones;
	double poll_interval;
	uint64_t start;    /* hrtime */
	uint64_t deadline; /* hrtime */
	bool have_mark;    /* a refusal source was set at the start */
	uint64_t mark;     /* its position then */
	uv_timer_t deadline_timer;
	struct cw_peer *p;
	struct drdns_converge_result *results;
	size_t n_converged;
	int refs; /* open handles + probe batches in flight */
	bool finished;
	drdns_converge_cb cb;
	void *arg;
};

static struct drdns_converge_refusals refusal_src;
static bool have_refusal_src;

void drdns_converge_set_refusals(const struct drdns_converge_refusals *src)
{
	have_refusal_src = src && src->mark && src->explain;
	if (have_refusal_src)
		refusal_src = *src;
}

json_t *drdns_converge_refusal_json(const struct drdns_converge_result *r)
{
	if (!r || !r->refused)
		return json_null();
	const struct drdns_xfr_refusal *x = &r->refusal.refusal;
	json_t *o = json_pack(
	    "{s:s, s:s, s:b, s:s?, s:s, s:I, s:I, s:I, s:b, s:s}", "source", x->source, "zone",
	    x->zone, "signed", x->is_signed, "key", x->is_signed ? x->key : NULL, "reason",
	    x->reason, "count", (json_int_t)x->count, "first", (json_int_t)x->first, "last",
	    (json_int_t)x->last, "possibly", r->refusal.possibly, "text", r->refusal.text);
	return o ? o : json_null();
}

/* The refused transfer that explains why peer i did not converge, if any. */
static void explain_refusal(struct cw *w, size_t i, struct drdns_converge_result *r)
{
	if (!w->have_mark || !have_refusal_src || r->converged || !w->peers[i].name)
		return;
	const char **zones = calloc(w->n_zones ? w->n_zones : 1, sizeof(*zones));
	if (!zones)
		return;
	size_t n = 0;
	for (size_t z = 0; z < w->n_zones; z++)
		if (!w->p[i].done[z])
			zones[n++] = w->zones[z].zone;
	r->refused =
	    refusal_src.explain(refusal_src.arg, w->mark, w->peers[i].name, zones, n, &r->refusal);
	free(zones);
}

static void cw_free(struct cw *w)
{
	if (w->p) {
		for (size_t i = 0; i < w->n_peers; i++) {
			free(w->p[i].done);
			free(w->p[i].round_zone);
			free(w->p[i].zerr);
		}
	}
	free(w->p);
	if (w->results)
		drdns_converge_results_free(w->results, w->n_peers);
	free(w->source);
	free(w);
}

static void unref(struct cw *w)
{
	if (--w->refs == 0)
		cw_free(w);
}

static void deadline_close_cb(uv_handle_t *h)
{
	unref(h->data);
}

static void peer_close_cb(uv_handle_t *h)
{
	struct cw_peer *pp = h->data;
	unref(pp->w);
}

static double since_start(const struct cw *w, uint64_t t)
{
	return t > w->start ? (double)(t - w->start) / 1e9 : 0.0;
}

static const char *strip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(s, prefix, n) == 0 ? s + n : s;
}

static void describe(struct cw *w, struct cw_peer *pp, struct drdns_converge_result *r)
{
	if (pp->converged) {
		snprintf(r->detail, sizeof(r->detail), "ok");
		return;
	}
	if (!pp->reachable) {
		snprintf(r->detail, sizeof(r->detail), "unreachable (%.48s)",
		         pp->last_net[0] ? strip_prefix(pp->last_net, "network: ")
		                         : "no answer yet");
		return;
	}
	for (size_t z = 0; z < w->n_zones; z++) {
		if (pp->done[z])
			continue;
		if (r->has_served[z])
			snprintf(r->detail, sizeof(r->detail), "timeout: %s still at %u",
			         w->zones[z].zone, (unsigned)r->served[z]);
		else
			snprintf(r->detail, sizeof(r->detail), "timeout: %s %s", w->zones[z].zone,
			         pp->zerr[z][0] ? pp->zerr[z] : "no answer");
		return;
	}
	snprintf(r->detail, sizeof(r->detail), "timeout");
}

static void finish(struct cw *w)
{
	if (w->finished)
		return;
	w->finished = true;
	uint64_t now = uv_hrtime();
	uv_timer_stop(&w->deadline_timer);
	uv_close((uv_handle_t *)&w->deadline_timer, deadline_close_cb);
	for (size_t i = 0; i < w->n_peers; i++) {
		struct cw_peer *pp = &w->p[i];
		struct drdns_converge_result *r = &w->results[i];
		uv_timer_stop(&pp->timer);
		uv_close((uv_handle_t *)&pp->timer, peer_close_cb);
		r->converged = pp->converged;
		r->seconds = pp->converged ? pp->conv_seconds : since_start(w, now);
		describe(w, pp, r);
		explain_refusal(w, i, r);
		drdns_log(r->converged ? DRDNS_LOG_NOTICE : DRDNS_LOG_WARNING, "notify",
		          "converge peer=%s addr=%s converged=%s seconds=%.3f detail=\"%s\"%s%s%s",
		          r->peer ? r->peer : "-", r->address ? r->address : "-",
		          r->converged ? "yes" : "no", r->seconds, r->detail,
		          r->refused ? " refused=\"" : "", r->refused ? r->refusal.text : "",
		          r->refused ? "\"" : "");
	}
	struct drdns_converge_result *results = w->results;
	w->results = NULL;
	w->cb(results, w->n_peers, w->arg);
}

static void schedule_round(struct cw_peer *pp);

static void round_cb(struct drdns_soa_result *res, size_t n, void *arg)
{
	struct cw_peer *pp = arg;
	struct cw *w = pp->w;
	if (!w->finished) {
		struct drdns_converge_result *r = &w->results[pp->idx];
		double base = since_start(w, pp->round_start);
		for (size_t i = 0; i < n; i++) {
			size_t z = pp->round_zone[i];
			const struct drdns_soa_result *s = &res[i];
			bool net_fail = strcmp(s->detail, "timeout") == 0 ||
			                strncmp(s->detail, "network: ", 9) == 0 ||
			                strncmp(s->detail, "error: ", 7) == 0;
			if (net_fail)
				snprintf(pp->last_net, sizeof(pp->last_net), "%s", s->detail);
			else
				pp->reachable = true;
			if (!s->answered) {
				snprintf(pp->zerr[z], ZERR_LEN, "%s", s->detail);
				continue;
			}
			r->served[z] = s->serial;
			r->has_served[z] = true;
			int cmp;
			if (drdns_serial_cmp(s->serial, w->zones[z].serial, &cmp) == 0 &&
			    cmp >= 0) {
				pp->done[z] = true;
				pp->n_done++;
				if (base + s->rtt > pp->conv_seconds)
					pp->conv_seconds = base + s->rtt;
			} else {
				snprintf(pp->zerr[z], ZERR_LEN, "at %u", (unsigned)s->serial);
			}
		}
		if (pp->n_done == w->n_zones) {
			pp->converged = true;
			w->n_converged++;
			if (w->n_converged == w->n_peers)
				finish(w);
		} else {
			schedule_round(pp);
		}
	}
	drdns_soa_results_free(res, n);
	unref(w);
}

static void round_timer_cb(uv_timer_t *t);

/* Next round poll_interval after the last one started (at once if overdue). */
static void schedule_round(struct cw_peer *pp)
{
	struct cw *w = pp->w;
	uint64_t now = uv_hrtime();
	uint64_t next = pp->round_start + (uint64_t)(w->poll_interval * 1e9);
	uint64_t ms = next > now ? (next - now + 999999) / 1000000 : 0;
	uv_timer_start(&pp->timer, round_timer_cb, ms, 0);
}

static void start_round(struct cw_peer *pp)
{
	struct cw *w = pp->w;
	const struct drdns_xfr_peer *peer = &w->peers[pp->idx];
	pp->round_start = uv_hrtime();

	struct drdns_soa_target *t = calloc(w->n_zones, sizeof(*t));
	if (!t) {
		schedule_round(pp);
		return;
	}
	size_t k = 0;
	for (size_t z = 0; z < w->n_zones; z++) {
		if (pp->done[z])
			continue;
		t[k] = (struct drdns_soa_target){
		    .label = peer->name,
		    .address = peer->address,
		    .port = peer->port ? peer->port : 53,
		    .zone = w->zones[z].zone,
		};
		pp->round_zone[k++] = z;
	}
	double timeout = w->poll_interval;
	if (timeout < 0.25)
		timeout = 0.25;
	if (timeout > 1.0)
		timeout = 1.0;
	double left =
	    w->deadline > pp->round_start ? (double)(w->deadline - pp->round_start) / 1e9 : 0.0;
	if (timeout > left)
		timeout = left;
	if (timeout < 0.05)
		timeout = 0.05;
	int rc = drdns_probe_soa(w->loop, w->source, t, k, timeout, 1, false, round_cb, pp);
	free(t);
	if (rc == 0)
		w->refs++;
	else
		schedule_round(pp);
}

static void round_timer_cb(uv_timer_t *t)
{
	struct cw_peer *pp = t->data;
	if (pp->w->finished)
		return;
	start_round(pp);
}

static void deadline_cb(uv_timer_t *t)
{
	finish(t->data);
}

void drdns_converge_results_free(struct drdns_converge_result *results, size_t n)
{
	if (!results)
		return;
	for (size_t i = 0; i < n; i++) {
		free(results[i].served);
		free(results[i].has_served);
	}
	free(results);
}

int drdns_converge_watch(uv_loop_t *loop, const char *source, const struct drdns_xfr_peer *peers,
                         size_t n_peers, const struct drdns_zone_serial *zones, size_t n_zones,
                         double poll_interval, double wait, drdns_converge_cb cb, void *arg)
{
	if (!loop || !cb || (n_peers && !peers) || (n_zones && !zones) || !(poll_interval > 0) ||
	    !(wait >= 0))
		return DRDNS_EINVAL;
	for (size_t z = 0; z < n_zones; z++)
		if (!zones[z].zone)
			return DRDNS_EINVAL;
	struct cw *w = calloc(1, sizeof(*w));
	if (!w)
		return DRDNS_ENOMEM;
	w->loop = loop;
	w->peers = peers;
	w->n_peers = n_peers;
	w->zones = zones;
	w->n_zones = n_zones;
	w->poll_interval = poll_interval;
	w->cb = cb;
	w->arg = arg;
	if (source && !(w->source = strdup(source)))
		goto nomem;
	w->p = calloc(n_peers ? n_peers : 1, sizeof(*w->p));
	w->results = calloc(n_peers ? n_peers : 1, sizeof(*w->results));
	if (!w->p || !w->results)
		goto nomem;
	for (size_t i = 0; i < n_peers; i++) {
		struct cw_peer *pp = &w->p[i];
		struct drdns_converge_result *r = &w->results[i];
		pp->w = w;
		pp->idx = i;
		pp->done = calloc(n_zones ? n_zones : 1, sizeof(*pp->done));
		pp->round_zone = calloc(n_zones ? n_zones : 1, sizeof(*pp->round_zone));
		pp->zerr = calloc(n_zones ? n_zones : 1, sizeof(*pp->zerr));
		r->peer = peers[i].name;
		r->address = peers[i].address;
		r->n_zones = n_zones;
		r->served = calloc(n_zones ? n_zones : 1, sizeof(*r->served));
		r->has_served = calloc(n_zones ? n_zones : 1, sizeof(*r->has_served));
		if (!pp->done || !pp->round_zone || !pp->zerr || !r->served || !r->has_served)
			goto nomem;
		if (n_zones == 0) {
			pp->converged = true;
			w->n_converged++;
		}
	}
	if (n_peers == 0) {
		free(w->results);
		w->results = NULL; /* hand over NULL, 0 */
	}

	if (have_refusal_src) {
		w->have_mark = true;
		w->mark = refusal_src.mark(refusal_src.arg);
	}
	w->start = uv_hrtime();
	w->deadline = w->start + (uint64_t)(wait * 1e9);
	uv_timer_init(loop, &w->deadline_timer);
	w->deadline_timer.data = w;
	w->refs = 1;
	bool all = w->n_converged == n_peers;
	uint64_t wait_ms =
	    wait * 1000.0 > 1e12 ? (uint64_t)1e12 : (uint64_t)(wait * 1000.0 + 0.999);
	uv_timer_start(&w->deadline_timer, deadline_cb, all ? 0 : wait_ms, 0);
	for (size_t i = 0; i < n_peers; i++) {
		uv_timer_init(loop, &w->p[i].timer);
		w->p[i].timer.data = &w->p[i];
		w->refs++;
		if (!all)
			uv_timer_start(&w->p[i].timer, round_timer_cb, 0, 0);
	}
	return 0;

nomem:
	cw_free(w);
	return DRDNS_ENOMEM;
}
