/*
 * drdnsctl drill: a read-only pre-flight of the DR path, then a live drill on
 * one dedicated zone that every secondary carries.  See failover.h for the
 * contract and README "DR drills" for the runbook.
 *
 *   pre-flight  load the DR set, advisory checks, probe every nameserver for
 *               every zone, the promotion plan (promote --dry-run --force with
 *               these probes), secondaries reachable;
 *   step 1      serve the drill zone at S + T, NOTIFY, watch;
 *   step 2      serve it at S + 2T, NOTIFY, watch;
 *               with T = floor(2^32 / 3): each step is a valid RFC 1982
 *               increase, and so is the way back from S + 2T to S (T + 1);
 *               and any two of S, S + T, S + 2T are less than 2^31 apart, so a
 *               drill cut short between two steps never leaves the secondaries
 *               so far apart that a real promotion finds no serial above them;
 *   step 3      the release, through the hand-back relay (handback.h): fetch
 *               the drill zone's campus copy by AXFR (master.tsig_key) and check
 *               it (its serial above S + 2T), serve it in the server's hand-back
 *               slot instead of the drill zone, NOTIFY with its serial, watch
 *               the return, then close the window (REFUSED).  A secondary that
 *               asks only the NOTIFY's sender (PowerDNS; a BIND listing drdns
 *               first) so gets the campus data from drdns at once.  When the
 *               fetch or its checks fail: stop serving (REFUSED) as before, the
 *               secondaries go back by their own refresh, and the report says
 *               so (the drill does not fail for that alone);
 *   verify      probe again: production serials unchanged (or the master's).
 *
 * Only the server's drill and hand-back slots are touched
 * (drdns_server_set_drill, drdns_server_set_handback): state.json, the
 * generations and the promoted set never change.
 */
#include "drdns/audit.h"
#include "drdns/checks.h"
#include "drdns/conf.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/log.h"
#include "drdns/notify.h"
#include "drdns/probe.h"
#include "drdns/rewrite.h"
#include "drdns/serial.h"
#include "drdns/server.h"
#include "drdns/state.h"
#include "drdns/zone.h"
#include "handback.h"
#include "nameservers.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DRILL_STEPS 3
#define DRILL_THIRD 1431655765u /* floor(2^32 / 3) */

static const char *const step_names[DRILL_STEPS] = {"promote", "return", "release"};

/* One secondary taking part in the live drill. */
struct drill_peer {
	size_t ns_index;             /* into op->ns.list */
	uint32_t before;             /* drill-zone serial before the drill */
	bool leftover;               /* started ahead of the master: an earlier drill's */
	bool done[DRILL_STEPS];      /* reached the step's serial */
	double seconds[DRILL_STEPS]; /* from the step's start */
	uint32_t served[DRILL_STEPS];
	bool has_served[DRILL_STEPS];
	bool acked[DRILL_STEPS]; /* NOTIFY answered NOERROR */
	/* a refused transfer that explains a step that did not converge */
	struct drdns_converge_result refusal[DRILL_STEPS]; /* only .refused, .refusal used */
	char detail[640];
};

struct drill_op {
	struct drdns_ctx *ctx;
	drdns_op_done_cb done;
	void *arg;
	char *zone; /* drill zone, lowercase with trailing dot, or NULL */
	char *reason;
	json_t *who;
	bool preflight_only;
	double wait;
	uint64_t started_ns;

	struct drdns_zoneset *dr;    /* the DR set on disk */
	size_t drill_index;          /* of zone in dr */
	struct drdns_nameservers ns; /* probe targets (list[0] is the master) */
	struct drdns_soa_result *probes, *after;
	size_t n_probes, n_after;

	json_t *preflight, *warnings, *timeline, *plan;
	bool preflight_failed;
	int preflight_exit; /* 4, or 1 for an error */

	uint32_t campus, serial[DRILL_STEPS]; /* S; the serial each step expects */
	struct drill_peer *peers;
	size_t n_peers;
	int step; /* running step, 0..2 */
	int pending;
	uint64_t step_ns;
	struct drdns_xfr_peer *xpeers; /* the peers, as NOTIFY and the watch take them */
	size_t *xmap;                  /* xpeers[i] is peers[xmap[i]] */
	size_t n_x;
	struct drdns_zone_serial zs; /* the running step's zone and serial (the watchers
	                              * keep pointers to it) */
	struct drdns_notify_result *notify;
	size_t n_notify;
	struct drdns_converge_result *converge;
	size_t n_converge;
	bool serving;  /* the drill slot is installed */
	bool relaying; /* the release step's hand-back slot is installed */
	bool relay_tried, relay_ok;
	char relay_detail[512]; /* the relay's outcome, for the report */
	json_t *relay_copy;     /* the fetch's report (handback.h), owned */
	bool live;              /* the live drill started */
};

static void op_free(struct drill_op *op)
{
	free(op->zone);
	free(op->reason);
	json_decref(op->who);
	drdns_zoneset_free(op->dr);
	drdns_nameservers_clear(&op->ns);
	drdns_soa_results_free(op->probes, op->n_probes);
	drdns_soa_results_free(op->after, op->n_after);
	json_decref(op->preflight);
	json_decref(op->warnings);
	json_decref(op->timeline);
	json_decref(op->plan);
	free(op->peers);
	free(op->xpeers);
	free(op->xmap);
	free(op->notify);
	drdns_converge_results_free(op->converge, op->n_converge);
	json_decref(op->relay_copy);
	free(op);
}

static double since_start(const struct drill_op *op)
{
	return (double)(uv_hrtime() - op->started_ns) / 1e9;
}

static void vevent(struct drill_op *op, double t, const char *fmt, va_list ap)
{
	char text[512];
	vsnprintf(text, sizeof(text), fmt, ap);
	json_array_append_new(op->timeline, json_pack("{s:f, s:s}", "t", t, "event", text));
	drdns_log(DRDNS_LOG_NOTICE, "drill", "%s", text);
}

/* A timeline entry now. */
static void event(struct drill_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(struct drill_op *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vevent(op, since_start(op), fmt, ap);
	va_end(ap);
}

/* A timeline entry for something that happened at t (seconds since the start),
 * learnt later: the secondaries' convergence is reported when the step ends. */
static void event_at(struct drill_op *op, double t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void event_at(struct drill_op *op, double t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vevent(op, t, fmt, ap);
	va_end(ap);
}

/* Order the timeline by time (stable insertion sort; it is short). */
static void timeline_sort(json_t *tl)
{
	size_t n = json_array_size(tl);
	for (size_t i = 1; i < n; i++) {
		json_t *e = json_incref(json_array_get(tl, i));
		double t = json_real_value(json_object_get(e, "t"));
		size_t j = i;
		while (j > 0 &&
		       json_real_value(json_object_get(json_array_get(tl, j - 1), "t")) > t)
			j--;
		if (j != i) {
			json_array_remove(tl, i);
			json_array_insert(tl, j, e);
		}
		json_decref(e);
	}
}

static void warn(struct drill_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct drill_op *op, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_array_append_new(op->warnings, json_string(text));
}

/* One pre-flight item. */
static void item(struct drill_op *op, const char *check, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void item(struct drill_op *op, const char *check, bool ok, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_array_append_new(
	    op->preflight, json_pack("{s:s, s:b, s:s}", "check", check, "ok", ok, "detail", text));
	if (!ok) {
		op->preflight_failed = true;
		drdns_log(DRDNS_LOG_WARNING, "drill", "pre-flight %s failed: %s", check, text);
	}
}

static const struct drdns_soa_result *probe_of(const struct drill_op *op,
                                               const struct drdns_soa_result *results,
                                               size_t ns_index, size_t zone_index)
{
	return &results[ns_index * op->dr->n + zone_index];
}

static void audit(struct drill_op *op, const char *result, int exit_code, json_t *extra)
{
	const char *path = op->ctx->conf->controller.audit_log;
	json_t *rec = json_pack("{s:s, s:s, s:s, s:O, s:s?, s:s, s:b}", "controller",
	                        op->ctx->conf->controller.id, "action", "drill", "reason",
	                        op->reason, "who", op->who, "zone", op->zone, "result", result,
	                        "live", !op->preflight_only && op->zone != NULL);
	if (rec && exit_code >= 0)
		json_object_set_new(rec, "exit", json_integer(exit_code));
	if (rec && extra)
		json_object_update(rec, extra);
	int ret = rec ? drdns_audit_append(path, rec) : DRDNS_ENOMEM;
	if (ret < 0)
		drdns_log(DRDNS_LOG_ERR, "drill", "audit log write failed path=%s error=\"%s\"",
		          path, drdns_strerror(ret));
	json_decref(rec);
}

/* ---- the report ---- */

static json_t *peers_json(const struct drill_op *op)
{
	json_t *arr = json_array();
	for (size_t p = 0; p < op->n_peers; p++) {
		const struct drill_peer *dp = &op->peers[p];
		const struct drdns_nameserver *ns = &op->ns.list[dp->ns_index];
		json_t *steps = json_array();
		bool ok = !dp->leftover;
		const struct drdns_converge_result *last_refused = NULL;
		for (int s = 0; s < DRILL_STEPS; s++) {
			ok = ok && dp->done[s];
			json_array_append_new(
			    steps,
			    json_pack(
			        "{s:s, s:I, s:b, s:b, s:o, s:o, s:o}", "step", step_names[s],
			        "expected", (json_int_t)op->serial[s], "notify_acked", dp->acked[s],
			        "converged", dp->done[s], "seconds",
			        dp->done[s] ? json_real(dp->seconds[s]) : json_null(), "serial",
			        dp->has_served[s] ? json_integer(dp->served[s]) : json_null(),
			        "transfer_refused", drdns_converge_refusal_json(&dp->refusal[s])));
			if (dp->refusal[s].refused)
				last_refused = &dp->refusal[s];
		}
		json_array_append_new(
		    arr, json_pack("{s:s, s:s, s:I, s:b, s:o, s:s, s:o}", "name", ns->name,
		                   "address", ns->address, "before", (json_int_t)dp->before, "ok",
		                   ok, "steps", steps, "detail", dp->detail, "transfer_refused",
		                   drdns_converge_refusal_json(last_refused)));
	}
	return arr;
}

/* Close the release step's hand-back window: REFUSED again. */
static void close_relay(struct drill_op *op, const char *why)
{
	if (!op->relaying)
		return;
	op->relaying = false;
	op->ctx->handback_until = 0;
	if (op->ctx->server)
		drdns_server_set_handback(op->ctx->server, NULL);
	event(op,
	      "step 3 (release): hand-back window closed (%s): drdns answers REFUSED for %s again",
	      why, op->zone);
}

/* Reply (extra is merged in, reference stolen), audit, release the lock, free. */
static void finish(struct drill_op *op, int exit_code, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finish(struct drill_op *op, int exit_code, json_t *extra, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (op->serving && op->ctx->server) /* never leave the drill zone served */
		drdns_server_set_drill(op->ctx->server, NULL);
	close_relay(op, "the drill ended");
	if (op->live && exit_code == DRDNS_EXIT_ERROR) { /* not "nothing changed" */
		exit_code = DRDNS_EXIT_PARTIAL;
		size_t len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len,
		         "; drdns no longer serves the drill zone, but secondaries may be left on "
		         "the drill's serials: run the drill again to bring them back");
	}
	timeline_sort(op->timeline);
	bool live = op->live;
	json_t *reply =
	    json_pack("{s:i, s:s, s:s?, s:b, s:s, s:s, s:O, s:O, s:O}", "exit", exit_code,
	              "command", "drill", "zone", op->zone, "live", live, "verdict",
	              exit_code == DRDNS_EXIT_OK ? "pass" : "fail", "message", msg, "preflight",
	              op->preflight, "warnings", op->warnings, "timeline", op->timeline);
	if (reply && op->plan)
		json_object_set(reply, "plan", op->plan);
	if (reply && live) {
		json_object_set_new(reply, "serials",
		                    json_pack("{s:I, s:I, s:I}", "campus", (json_int_t)op->campus,
		                              "drill", (json_int_t)op->serial[0], "return",
		                              (json_int_t)op->serial[1]));
		json_object_set_new(reply, "secondaries", peers_json(op));
		if (op->relay_tried)
			json_object_set_new(
			    reply, "release",
			    json_pack("{s:b, s:s, s:O}", "relay", op->relay_ok, "detail",
			              op->relay_detail, "copy",
			              op->relay_copy ? op->relay_copy : json_null()));
	}
	if (reply && extra)
		json_object_update(reply, extra);
	audit(op,
	      exit_code == DRDNS_EXIT_OK        ? "pass"
	      : exit_code == DRDNS_EXIT_REFUSED ? "refused"
	                                        : "fail",
	      exit_code, extra);
	json_decref(extra);
	drdns_log(DRDNS_LOG_NOTICE, "drill", "drill finished zone=%s exit=%d seconds=%.1f",
	          op->zone ? op->zone : "-", exit_code, since_start(op));
	drdns_op_done_cb done = op->done;
	void *arg = op->arg;
	op->ctx->busy = false;
	op_free(op);
	done(reply ? reply : drdns_error_reply("drill", DRDNS_EXIT_ERROR, "out of memory"), arg);
}

/* ---- verify: production serials ---- */

static void on_verified(struct drdns_soa_result *results, size_t n, void *arg)
{
	struct drill_op *op = arg;
	op->after = results;
	op->n_after = n;
	json_t *prod = json_array();
	bool all_same = true;
	for (size_t z = 0; z < op->dr->n; z++) {
		if (z == op->drill_index)
			continue;
		const struct drdns_soa_result *m0 = probe_of(op, op->probes, 0, z);
		const struct drdns_soa_result *m1 = probe_of(op, results, 0, z);
		char detail[512] = "";
		size_t used = 0;
		bool same = true;
		for (size_t i = 1; i < op->ns.n; i++) {
			const struct drdns_soa_result *b = probe_of(op, op->probes, i, z);
			const struct drdns_soa_result *a = probe_of(op, results, i, z);
			if (!b->answered ||
			    (a->answered &&
			     (a->serial == b->serial || (m1->answered && a->serial == m1->serial))))
				continue;
			same = false;
			if (used >= sizeof(detail))
				continue;
			if (a->answered)
				used += (size_t)snprintf(detail + used, sizeof(detail) - used,
				                         "%s%s served %u, now %u", used ? "; " : "",
				                         op->ns.list[i].name, b->serial, a->serial);
			else
				used += (size_t)snprintf(detail + used, sizeof(detail) - used,
				                         "%s%s served %u, now %s", used ? "; " : "",
				                         op->ns.list[i].name, b->serial, a->detail);
		}
		all_same = all_same && same;
		json_array_append_new(
		    prod,
		    json_pack("{s:s, s:o, s:o, s:b, s:s}", "zone", op->dr->zones[z]->name,
		              "master_before",
		              m0->answered ? json_integer(m0->serial) : json_null(), "master_after",
		              m1->answered ? json_integer(m1->serial) : json_null(), "unchanged",
		              same, "detail",
		              same ? "every secondary serves the serial it served before, or "
		                     "the master's"
		                   : detail));
	}
	event(op, "production zones checked: %s", all_same ? "unchanged" : "CHANGED");
	size_t failed = 0, leftover = 0;
	for (size_t p = 0; p < op->n_peers; p++) {
		bool ok = true;
		for (int s = 0; s < DRILL_STEPS; s++)
			ok = ok && op->peers[p].done[s];
		failed += !ok;
		leftover += ok && op->peers[p].leftover;
	}
	bool peers_ok = op->n_peers > 0 && failed == 0 && leftover == 0;
	int code = peers_ok && all_same ? DRDNS_EXIT_OK : DRDNS_EXIT_PARTIAL;
	json_t *extra = json_pack("{s:o}", "production", prod);
	char relay[700] = "";
	if (!op->relay_ok)
		snprintf(relay, sizeof(relay),
		         "; the hand-back relay was not used (%s): drdns answered REFUSED in the "
		         "release step and the secondaries went back by their own refresh",
		         op->relay_detail);
	if (code == DRDNS_EXIT_OK)
		finish(op, code, extra,
		       "drill passed: %zu secondaries took %s serial %u, returned to the campus "
		       "serial %u%s, production zones unchanged (%.1f s)%s",
		       op->n_peers, op->zone, op->serial[0], op->serial[2],
		       op->relay_ok ? " through the hand-back relay" : "", since_start(op), relay);
	else
		finish(op, code, extra, "drill FAILED: %s%s%s%s%s (%.1f s); see the secondaries%s",
		       failed ? "some secondaries did not follow every step" : "",
		       failed && leftover ? "; " : "",
		       leftover ? "some secondaries started on an earlier drill's serial and were "
		                  "brought back: run the drill again for a full test"
		                : "",
		       (failed || leftover) && !all_same ? "; " : "",
		       all_same ? "" : "a production serial changed during the drill",
		       since_start(op), relay);
}

static void verify(struct drill_op *op)
{
	struct drdns_soa_target *targets = NULL;
	size_t n = 0;
	int ret = drdns_nameservers_targets(&op->ns, op->dr, &targets, &n);
	if (ret == 0)
		ret = drdns_probe_soa(op->ctx->loop, op->ctx->conf->controller.address, targets, n,
		                      op->ctx->conf->policy.probe_timeout,
		                      op->ctx->conf->policy.probe_attempts, false, on_verified, op);
	free(targets);
	if (ret < 0)
		finish(op, DRDNS_EXIT_ERROR, NULL, "cannot probe the production zones: %s",
		       drdns_strerror(ret));
}

/* ---- the three live steps ---- */

static void run_step(struct drill_op *op);
static void watch_step(struct drill_op *op);
static void on_release_fetched(struct drdns_zoneset *copies, json_t *report, const char *error,
                               void *arg);

static void step_done(struct drill_op *op)
{
	if (--op->pending > 0)
		return;
	int s = op->step;
	size_t ok = 0;
	for (size_t i = 0; i < op->n_x; i++) {
		struct drill_peer *dp = &op->peers[op->xmap[i]];
		for (size_t k = 0; op->notify && k < op->n_notify; k++)
			if (!strcmp(op->notify[k].peer, op->xpeers[i].name))
				dp->acked[s] = op->notify[k].acked;
		const struct drdns_converge_result *c = NULL;
		for (size_t k = 0; op->converge && k < op->n_converge; k++)
			if (!strcmp(op->converge[k].peer, op->xpeers[i].name))
				c = &op->converge[k];
		if (c && c->n_zones == 1 && c->has_served[0]) {
			dp->served[s] = c->served[0];
			dp->has_served[s] = true;
		}
		if (c && c->converged) {
			dp->done[s] = true;
			dp->seconds[s] = c->seconds;
			ok++;
			event_at(op, (double)(op->step_ns - op->started_ns) / 1e9 + c->seconds,
			         "%s: %s serves %u after %.2f s", step_names[s],
			         op->ns.list[dp->ns_index].name, c->served[0], c->seconds);
		} else if (s == DRILL_STEPS - 1 && dp->has_served[s]) {
			snprintf(
			    dp->detail, sizeof(dp->detail),
			    "left on serial %u of the drill zone: run the drill again to bring it "
			    "back (it ignores the campus's lower serial)",
			    dp->served[s]);
			event(op, "%s: %s did NOT converge (%s)", step_names[s],
			      op->ns.list[dp->ns_index].name, c ? c->detail : "not watched");
		} else {
			snprintf(dp->detail, sizeof(dp->detail), "%s step: %s", step_names[s],
			         c ? c->detail : "not watched");
			if (c && c->refused) {
				dp->refusal[s].refused = true;
				dp->refusal[s].refusal = c->refusal;
				size_t used = strlen(dp->detail);
				snprintf(dp->detail + used, sizeof(dp->detail) - used, "; %s",
				         c->refusal.text);
				event(op, "%s: %s: %s", step_names[s],
				      op->ns.list[dp->ns_index].name, c->refusal.text);
			}
			event(op, "%s: %s did NOT converge (%s)", step_names[s],
			      op->ns.list[dp->ns_index].name, c ? c->detail : "not watched");
		}
	}
	free(op->notify);
	op->notify = NULL;
	drdns_converge_results_free(op->converge, op->n_converge);
	op->converge = NULL;
	event(op, "step %d (%s) done: %zu of %zu converged", s + 1, step_names[s], ok, op->n_x);
	if (s == DRILL_STEPS - 1)
		close_relay(op, ok == op->n_x ? "every secondary converged" : "the watch ended");
	if (!op->ctx->server) {
		finish(op, DRDNS_EXIT_ERROR, NULL, "drdnsd is shutting down: drill cut short");
		return;
	}
	if (++op->step < DRILL_STEPS) {
		run_step(op);
		return;
	}
	verify(op);
}

static void on_notified(struct drdns_notify_result *results, size_t n, void *arg)
{
	struct drill_op *op = arg;
	op->notify = results;
	op->n_notify = n;
	step_done(op);
}

static void on_converged(struct drdns_converge_result *results, size_t n, void *arg)
{
	struct drill_op *op = arg;
	op->converge = results;
	op->n_converge = n;
	step_done(op);
}

/* The drill zone as promote would rewrite it (NS from these probes, TTLs),
 * with the given serial.  NULL on failure (err says why). */
static struct drdns_zoneset *drill_set(struct drill_op *op, uint32_t serial, char *err,
                                       size_t errlen)
{
	const struct drdns_conf *conf = op->ctx->conf;
	const struct drdns_zone *zone = op->dr->zones[op->drill_index];
	struct drdns_ns_probe *probes = calloc(op->ns.n, sizeof(*probes));
	struct drdns_zoneset *set = calloc(1, sizeof(*set));
	struct drdns_zone *out = NULL;
	struct drdns_rewrite_plan *plan = NULL;
	size_t n = 0;
	if (set)
		set->zones = calloc(1, sizeof(*set->zones));
	if (!probes || !set || !set->zones) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 1; i < op->ns.n; i++) {
		const struct drdns_soa_result *r = probe_of(op, op->probes, i, op->drill_index);
		probes[n].name = op->ns.list[i].name;
		probes[n].address = op->ns.list[i].address;
		probes[n].answered = r->answered;
		probes[n++].detail = r->detail;
	}
	struct drdns_rewrite_input in = {
	    .ns_name = conf->controller.ns_name,
	    .dr_ttl = conf->zones.dr_ttl,
	    .min_ns = conf->zones.min_ns,
	    .probes = probes,
	    .n_probes = n,
	    .observed = &op->campus,
	    .n_observed = 1,
	};
	if (drdns_rewrite_zone(zone, &in, &out, &plan, err, errlen) < 0)
		goto fail;
	drdns_rewrite_plan_free(plan);
	ldns_rdf *rdf = ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, serial);
	if (!rdf) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ldns_rdf_deep_free(ldns_rr_set_rdf(out->soa, rdf, 2));
	set->zones[0] = out;
	set->n = 1;
	free(probes);
	return set;
fail:
	drdns_zone_free(out);
	drdns_zoneset_free(set);
	free(probes);
	return NULL;
}

static void run_step(struct drill_op *op)
{
	int s = op->step;
	uint32_t serial = op->serial[s];
	char err[512] = "";
	if (s < 2) {
		struct drdns_zoneset *set = drill_set(op, serial, err, sizeof(err));
		if (!set) {
			finish(op, DRDNS_EXIT_ERROR, NULL, "cannot build the drill zone: %s", err);
			return;
		}
		int ret = drdns_server_set_drill(op->ctx->server, set); /* hands it over */
		if (ret < 0) {
			finish(op, DRDNS_EXIT_ERROR, NULL, "cannot serve the drill zone: %s",
			       drdns_strerror(ret));
			return;
		}
		op->serving = true;
		event(op, "step %d (%s): drdns serves %s serial %u", s + 1, step_names[s], op->zone,
		      serial);
		watch_step(op);
		return;
	}
	struct drdns_handback_zone hz = {.zone = op->zone, .dr_serial = op->serial[1]};
	op->relay_tried = true;
	event(op, "step 3 (release): fetching the campus copy of %s by AXFR (hand-back relay)",
	      op->zone);
	int ret = drdns_handback_fetch(op->ctx, &hz, 1, on_release_fetched, op);
	if (ret < 0)
		on_release_fetched(NULL, NULL, drdns_strerror(ret), op);
}

/* The release step's campus copy: relay it, or fall back to REFUSED. */
static void on_release_fetched(struct drdns_zoneset *copies, json_t *report, const char *error,
                               void *arg)
{
	struct drill_op *op = arg;
	json_t *copy = report ? json_incref(json_array_get(report, 0)) : NULL;
	json_decref(report);
	json_decref(op->relay_copy);
	op->relay_copy = copy;
	if (!op->ctx->server) {
		drdns_zoneset_free(copies);
		finish(op, DRDNS_EXIT_ERROR, NULL, "drdnsd is shutting down: drill cut short");
		return;
	}
	int ret = error ? 0 : drdns_server_set_handback(op->ctx->server, copies);
	if (!error && ret < 0)
		error = drdns_strerror(ret);
	if (error) {
		if (ret == 0)
			drdns_zoneset_free(copies);
		snprintf(op->relay_detail, sizeof(op->relay_detail), "%s", error);
		drdns_server_set_drill(op->ctx->server, NULL);
		op->serving = false;
		warn(op,
		     "the hand-back relay was not used in the release step (%s): secondaries that "
		     "ask only drdns (PowerDNS) went back by their own refresh",
		     error);
		event(op,
		      "step 3 (release): no campus copy to relay (%s); drdns answers REFUSED for "
		      "%s again; the secondaries go back to the master's serial %u",
		      error, op->zone, op->serial[2]);
		watch_step(op);
		return;
	}
	/* the campus copy replaces the drill zone (no REFUSED gap); the
	 * secondaries must reach its serial (the master may have moved on) */
	op->serial[2] = drdns_zone_serial(copies->zones[0]);
	op->relaying = true;
	op->relay_ok = true;
	double wait = op->wait >= 0 ? op->wait : op->ctx->conf->policy.default_wait;
	op->ctx->handback_until = (double)time(NULL) + wait; /* at the latest */
	drdns_server_set_drill(op->ctx->server, NULL);
	op->serving = false;
	snprintf(op->relay_detail, sizeof(op->relay_detail),
	         "drdns served the campus copy (serial %u) during the release step", op->serial[2]);
	event(op,
	      "step 3 (release): drdns relays the campus copy of %s serial %u (hand-back); the "
	      "secondaries go back to it",
	      op->zone, op->serial[2]);
	watch_step(op);
}

/* NOTIFY the peers with the running step's serial and watch them reach it. */
static void watch_step(struct drill_op *op)
{
	const struct drdns_conf *conf = op->ctx->conf;
	int s = op->step;
	uint32_t serial = op->serial[s];
	op->n_x = 0;
	for (size_t p = 0; p < op->n_peers; p++) {
		struct drill_peer *dp = &op->peers[p];
		const struct drdns_nameserver *ns = &op->ns.list[dp->ns_index];
		op->xpeers[op->n_x] = (struct drdns_xfr_peer){
		    .name = ns->name,
		    .address = ns->address,
		    .port = ns->port,
		    .key = ns->secondary->key,
		};
		op->xmap[op->n_x++] = p;
	}
	if (op->n_x == 0) {
		event(op, "step %d (%s): no secondary left to follow", s + 1, step_names[s]);
		op->pending = 1;
		step_done(op);
		return;
	}
	op->zs = (struct drdns_zone_serial){.zone = op->zone, .serial = serial};
	op->step_ns = uv_hrtime();
	op->pending = 1;
	double wait = op->wait >= 0 ? op->wait : conf->policy.default_wait;
	if (drdns_notify_batch(op->ctx->loop, conf->controller.address, op->xpeers, op->n_x,
	                       &op->zs, 1, conf->policy.notify_timeout,
	                       conf->policy.notify_attempts, on_notified, op) == 0)
		op->pending++;
	if (drdns_converge_watch(op->ctx->loop, conf->controller.address, op->xpeers, op->n_x,
	                         &op->zs, 1, conf->policy.poll_interval, wait, on_converged,
	                         op) == 0)
		op->pending++;
	step_done(op);
}

/* ---- pre-flight ---- */

/* The master's serial S of the drill zone, the step serials, and the peers:
 * every off-campus secondary that answers for the drill zone, whatever it
 * serves (one left on S + T by a drill cut short is marked: no full test). */
static bool choose_peers(struct drill_op *op)
{
	size_t zi = op->drill_index;
	const struct drdns_soa_result *m = probe_of(op, op->probes, 0, zi);
	if (!m->answered) {
		item(op, "drill_zone", false,
		     "the master does not answer for %s (%s): a live drill needs the campus "
		     "primary up",
		     op->zone, m->detail);
		return false;
	}
	op->campus = m->serial;
	op->serial[0] = op->campus + DRILL_THIRD; /* mod 2^32 */
	op->serial[1] = op->campus + 2 * DRILL_THIRD;
	op->serial[2] = op->campus;
	op->peers = calloc(op->ns.n, sizeof(*op->peers));
	op->xpeers = calloc(op->ns.n, sizeof(*op->xpeers));
	op->xmap = calloc(op->ns.n, sizeof(*op->xmap));
	if (!op->peers || !op->xpeers || !op->xmap) {
		item(op, "drill_zone", false, "out of memory");
		return false;
	}
	for (size_t i = 1; i < op->ns.n; i++) {
		const struct drdns_nameserver *ns = &op->ns.list[i];
		const struct drdns_soa_result *r = probe_of(op, op->probes, i, zi);
		if (!ns->secondary)
			continue;
		if (ns->secondary->on_campus) { /* dark in a real disaster: not drilled */
			warn(op,
			     "%s is on campus: left out of the live drill, as it would be out of a "
			     "failover",
			     ns->name);
			continue;
		}
		if (!r->answered) {
			warn(op, "%s does not answer for %s (%s): left out of the live drill",
			     ns->name, op->zone, r->detail);
			continue;
		}
		struct drill_peer *dp = &op->peers[op->n_peers++];
		dp->ns_index = i;
		dp->before = r->serial;
		snprintf(dp->detail, sizeof(dp->detail), "ok");
		/* Not below S + T: left on S + T or S + 2T by a drill cut short (maybe
		 * before the campus moved on).  Every serial has one of S, S + T, S + 2T
		 * less than 2^31 above it, so the steps bring it back; but it skips the
		 * first step, so this drill is no full test of it. */
		if (!drdns_serial_gt(op->serial[0], r->serial)) {
			dp->leftover = true;
			snprintf(dp->detail, sizeof(dp->detail),
			         "started on %u, not below the drill serial (an earlier drill cut "
			         "short?): brought back, but run the drill again for a full test",
			         r->serial);
			warn(op,
			     "%s serves %s serial %u, not below the drill serial %u (an earlier "
			     "drill "
			     "cut short?): the drill brings it back, but is no full test of it",
			     ns->name, op->zone, r->serial, op->serial[0]);
		}
	}
	if (op->n_peers == 0) {
		item(op, "drill_zone", false, "no configured secondary answers for %s", op->zone);
		return false;
	}
	item(op, "drill_zone", true,
	     "%s: the master serves %u and %zu secondaries follow it; the drill will publish %u, "
	     "then %u, then hand back to %u",
	     op->zone, op->campus, op->n_peers, op->serial[0], op->serial[1], op->campus);
	return true;
}

static void preflight_verdict(struct drill_op *op)
{
	if (op->preflight_failed) {
		finish(op, op->preflight_exit, NULL,
		       "pre-flight FAILED: see the failed checks; nothing changed");
		return;
	}
	if (op->preflight_only || !op->zone) {
		if (!op->zone)
			warn(op, "no drill zone (drill.zone or --zone): pre-flight only");
		finish(op, DRDNS_EXIT_OK, NULL, "pre-flight passed%s; nothing changed",
		       op->zone ? "" : " (no drill zone configured: no live drill)");
		return;
	}
	if (!op->ctx->server) {
		finish(op, DRDNS_EXIT_ERROR, NULL, "drdnsd is shutting down; nothing changed");
		return;
	}
	json_t *serials =
	    json_pack("{s:I, s:I, s:I}", "campus_serial", (json_int_t)op->campus, "drill_serial",
	              (json_int_t)op->serial[0], "return_serial", (json_int_t)op->serial[1]);
	audit(op, "started", -1, serials); /* on record before anything is served */
	json_decref(serials);
	event(op, "pre-flight passed; live drill on %s with %zu secondaries", op->zone,
	      op->n_peers);
	op->live = true;
	run_step(op);
}

/* DNSSEC from the plan: keys present where configured (a bad key fails the
 * plan itself), and key continuity per zone (continuity.h): the drill's dry
 * run is forced, so a break shows in the plan instead of refusing it. */
static void dnssec_item(struct drill_op *op)
{
	size_t zi, n_signed = 0, n_broken = 0;
	json_t *z;
	char broken[768] = "";
	size_t used = 0;
	json_array_foreach(op->plan, zi, z)
	{
		const json_t *d = json_object_get(z, "dnssec");
		const char *zone = json_string_value(json_object_get(z, "zone"));
		const char *cont = json_string_value(json_object_get(d, "continuity"));
		n_signed += json_is_true(json_object_get(d, "signed"));
		if (cont && (!strcmp(cont, "mismatch") || !strcmp(cont, "would-unsign"))) {
			n_broken++;
			if (used < sizeof(broken))
				used += (size_t)snprintf(
				    broken + used, sizeof(broken) - used, "%s%s: %s",
				    used ? "; " : "", zone ? zone : "?",
				    json_string_value(json_object_get(d, "message")));
		} else if (cont && !strcmp(cont, "unknown")) {
			warn(op,
			     "%s: DNSSEC key continuity could not be checked (no nameserver "
			     "answered for the DNSKEY set)",
			     zone ? zone : "?");
		}
	}
	if (n_broken)
		item(op, "dnssec", false, "%s", broken);
	else if (n_signed)
		item(op, "dnssec", true,
		     "%zu zones would be signed; their keys load, and the nameservers publish the "
		     "same DNSKEY sets (or none yet)",
		     n_signed);
	else
		item(op, "dnssec", true,
		     "no zone would be signed, and no nameserver publishes DNSKEYs for one");
}

/* The promotion plan (promote --dry-run --force over our probes). */
static void on_plan(json_t *reply, void *arg)
{
	struct drill_op *op = arg;
	op->ctx->busy = true; /* promote released it just before calling back */
	int code = (int)json_integer_value(json_object_get(reply, "exit"));
	if (code != DRDNS_EXIT_OK) {
		const char *e = json_string_value(json_object_get(reply, "error"));
		bool keys = e && strstr(e, "DNSSEC");
		item(op, keys ? "dnssec" : "serial_plan", false, "the promotion plan fails: %s",
		     e ? e : "?");
		if (code != DRDNS_EXIT_REFUSED && !keys)
			op->preflight_exit = DRDNS_EXIT_ERROR;
		json_decref(reply);
		preflight_verdict(op);
		return;
	}
	op->plan = json_incref(json_object_get(reply, "zones"));
	json_decref(reply);
	size_t zi;
	json_t *z;
	char kept_silent[768] = "";
	size_t used = 0;
	json_array_foreach(op->plan, zi, z)
	{
		const char *zone = json_string_value(json_object_get(z, "zone"));
		size_t ni;
		json_t *d;
		json_array_foreach(json_object_get(z, "ns"), ni, d)
		{
			const char *verdict = json_string_value(json_object_get(d, "verdict"));
			const char *name = json_string_value(json_object_get(d, "name"));
			const char *reason = json_string_value(json_object_get(d, "reason"));
			if (verdict && !strcmp(verdict, drdns_ns_verdict_str(DRDNS_NS_DROP)))
				warn(op, "%s: NS %s would be dropped (%s)", zone ? zone : "?",
				     name ? name : "?", reason ? reason : "");
			else if (verdict &&
			         !strcmp(verdict, drdns_ns_verdict_str(DRDNS_NS_KEEP_MIN_NS)) &&
			         used < sizeof(kept_silent))
				used += (size_t)snprintf(
				    kept_silent + used, sizeof(kept_silent) - used, "%s%s in %s",
				    used ? ", " : "", name ? name : "?", zone ? zone : "?");
		}
	}
	item(op, "serial_plan", true,
	     "a promotion now would publish a serial above every serial seen, on every zone");
	dnssec_item(op);
	if (used)
		item(op, "nameservers", false,
		     "NS kept only to honour min_ns although they do not answer: %s", kept_silent);
	else
		item(op, "nameservers", true, "every NS a promotion would keep answers");
	if (op->zone)
		choose_peers(op);
	preflight_verdict(op);
}

static void on_probed(struct drdns_soa_result *results, size_t n, void *arg)
{
	struct drill_op *op = arg;
	struct drdns_ctx *ctx = op->ctx;
	op->probes = results;
	op->n_probes = n;
	/* the secondaries: reachable for every zone (on-campus ones: a warning) */
	char bad[1024] = "";
	size_t used = 0, n_sec = 0;
	for (size_t i = 1; i < op->ns.n; i++) {
		const struct drdns_nameserver *ns = &op->ns.list[i];
		if (!ns->secondary)
			continue;
		n_sec++;
		for (size_t z = 0; z < op->dr->n; z++) {
			const struct drdns_soa_result *r = probe_of(op, results, i, z);
			if (r->answered)
				continue;
			if (ns->secondary->on_campus)
				warn(op, "%s (on campus) does not answer for %s: %s", ns->name,
				     op->dr->zones[z]->name, r->detail);
			else if (used < sizeof(bad))
				used += (size_t)snprintf(
				    bad + used, sizeof(bad) - used, "%s%s for %s: %s",
				    used ? "; " : "", ns->name, op->dr->zones[z]->name, r->detail);
		}
	}
	if (used)
		item(op, "secondaries", false, "not answering: %s", bad);
	else
		item(op, "secondaries", true,
		     "all %zu configured secondaries answer for every zone", n_sec);
	/* a promotion's plan, exactly as promote would make it, from these probes */
	struct drdns_promote_opts po = {
	    .reason = op->reason,
	    .dry_run = true,
	    .force = true, /* the master is up during a drill */
	    .wait = 0,
	    .who = op->who,
	    .probes = results,
	    .n_probes = n,
	};
	ctx->busy = false; /* promote takes the lock itself */
	int ret = drdns_promote_start(ctx, &po, on_plan, op);
	if (ret < 0) {
		ctx->busy = true;
		item(op, "serial_plan", false, "cannot compute the promotion plan: %s",
		     drdns_strerror(ret));
		op->preflight_exit = DRDNS_EXIT_ERROR;
		preflight_verdict(op);
	}
}

/* Load the DR set and run the advisory checks.  False when it is invalid. */
static bool load_dr_set(struct drill_op *op)
{
	const struct drdns_conf *conf = op->ctx->conf;
	struct drdns_diag diag = {0};
	int ret = drdns_zoneset_load_checked(conf->zones.directory, conf->controller.ns_name,
	                                     &op->dr, &diag);
	if (ret < 0) {
		char *text = drdns_diag_join(&diag);
		item(op, "dr_set", false, "%s is invalid:\n%s", conf->zones.directory,
		     text ? text : drdns_strerror(ret));
		free(text);
		drdns_diag_clear(&diag);
		return false;
	}
	size_t n_warn = drdns_zoneset_check_conf(op->dr, conf, &diag);
	for (size_t i = 0; i < diag.n; i++)
		warn(op, "%s", diag.msgs[i]);
	drdns_diag_clear(&diag);
	item(op, "dr_set", true, "%s: %zu zones, valid (%zu advisory warnings)",
	     conf->zones.directory, op->dr->n, n_warn);
	if (op->zone) {
		struct drdns_zone *z = drdns_zoneset_find(op->dr, op->zone);
		if (!z) {
			item(op, "drill_zone", false,
			     "%s is not in the DR set (%s): add it there, and to every secondary",
			     op->zone, conf->zones.directory);
			return false;
		}
		for (size_t i = 0; i < op->dr->n; i++)
			if (op->dr->zones[i] == z)
				op->drill_index = i;
	}
	return true;
}

static char *normalize_zone(const char *z)
{
	size_t len = strlen(z);
	char *out = malloc(len + 2);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)z[i]);
	if (len == 0 || out[len - 1] != '.')
		out[len++] = '.';
	out[len] = '\0';
	return out;
}

int drdns_drill_start(struct drdns_ctx *ctx, const struct drdns_drill_opts *opts,
                      drdns_op_done_cb done, void *arg)
{
	if (ctx->busy)
		return DRDNS_EBUSY;
	if (ctx->state->promoted) {
		done(drdns_error_reply("drill", DRDNS_EXIT_REFUSED,
		                       "drdns is promoted: it is the primary for real, so there is "
		                       "nothing to drill; nothing changed"),
		     arg);
		return 0;
	}
	struct drill_op *op = calloc(1, sizeof(*op));
	if (!op)
		return DRDNS_ENOMEM;
	op->ctx = ctx;
	op->done = done;
	op->arg = arg;
	op->started_ns = uv_hrtime();
	op->preflight_only = opts->preflight_only;
	op->wait = opts->wait;
	op->preflight_exit = DRDNS_EXIT_REFUSED;
	const char *zone = opts->zone ? opts->zone : ctx->conf->drill.zone;
	op->zone = zone ? normalize_zone(zone) : NULL;
	op->reason = strdup(opts->reason ? opts->reason : "drill");
	op->who = opts->who ? json_deep_copy(opts->who) : json_object();
	op->preflight = json_array();
	op->warnings = json_array();
	op->timeline = json_array();
	if ((zone && !op->zone) || !op->reason || !op->who || !op->preflight || !op->warnings ||
	    !op->timeline) {
		op_free(op);
		return DRDNS_ENOMEM;
	}
	ctx->busy = true;
	event(op, "drill requested zone=%s preflight_only=%s reason=\"%s\"",
	      op->zone ? op->zone : "-", op->preflight_only ? "yes" : "no", op->reason);
	if (!load_dr_set(op)) {
		finish(op, DRDNS_EXIT_REFUSED, NULL,
		       "pre-flight FAILED: see the failed checks; nothing changed");
		return 0;
	}
	struct drdns_soa_target *targets = NULL;
	size_t n = 0;
	int ret = drdns_nameservers_build(ctx->conf, op->dr, &op->ns);
	if (ret == 0)
		ret = drdns_nameservers_targets(&op->ns, op->dr, &targets, &n);
	if (ret == 0)
		ret = drdns_probe_soa(ctx->loop, ctx->conf->controller.address, targets, n,
		                      ctx->conf->policy.probe_timeout,
		                      ctx->conf->policy.probe_attempts, false, on_probed, op);
	free(targets);
	if (ret < 0) {
		finish(op, DRDNS_EXIT_ERROR, NULL, "cannot start the SOA probes: %s",
		       drdns_strerror(ret));
		return 0;
	}
	return 0;
}
