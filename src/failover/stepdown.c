/*
 * Step down: promoted -> standby, through the hand-back relay.  First fetch
 * and check every zone's campus copy (handback.c); any failure stops here
 * with nothing changed.  Then commit state.json (the commit point), serve the
 * campus copies in the server's hand-back slot instead of the DR set, NOTIFY
 * the secondaries so they re-check their primaries (whichever they ask, drdns
 * or the campus primary, serves the campus data now) and watch each converge
 * to the copies' serials.  When all have (or the wait ran out) the copies go
 * (REFUSED again).  See failover.h.
 */
#include "drdns/audit.h"
#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/log.h"
#include "drdns/notify.h"
#include "drdns/server.h"
#include "drdns/state.h"
#include "drdns/zone.h"
#include "handback.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct stepdown_op {
	struct drdns_ctx *ctx;
	drdns_op_done_cb done;
	void *arg;
	char *action;
	json_t *record; /* the audit record, completed at the end */
	struct drdns_xfr_peer *peers;
	size_t n_peers;
	char **peer_strings;             /* owned copies behind peers[].name/address, 2 per peer */
	struct drdns_zone_serial *zones; /* zone strings owned */
	size_t n_zones;
	int pending;
	bool want_watch; /* opts.wait > 0: the caller asked for convergence */
	uint64_t started_ns;
	struct drdns_notify_result *notify; /* n_peers * n_zones, owned */
	size_t n_notify;
	struct drdns_converge_result *converge; /* n_peers, owned, or NULL */
	bool dry_run;
	double window;    /* seconds the campus copies are served at most */
	json_t *handback; /* the copies' report (handback.h), owned */
	char *reason;     /* owned */
	json_t *who;      /* owned */
	bool serving;     /* the copies are in the server's hand-back slot */
	uint64_t window_ns;
};

static void op_free(struct stepdown_op *op)
{
	json_decref(op->record);
	free(op->action);
	for (size_t i = 0; op->peer_strings && i < 2 * op->n_peers; i++)
		free(op->peer_strings[i]);
	free(op->peer_strings);
	free(op->peers);
	for (size_t i = 0; i < op->n_zones; i++)
		free((char *)op->zones[i].zone);
	free(op->zones);
	free(op->notify);
	drdns_converge_results_free(op->converge, op->converge ? op->n_peers : 0);
	json_decref(op->handback);
	free(op->reason);
	json_decref(op->who);
	free(op);
}

/* Close the hand-back window: REFUSED again. */
static void close_window(struct stepdown_op *op, const char *why)
{
	if (!op->serving)
		return;
	op->serving = false;
	op->ctx->handback_until = 0;
	if (op->ctx->server)
		drdns_server_set_handback(op->ctx->server, NULL);
	drdns_log(DRDNS_LOG_NOTICE, "failover",
	          "hand-back window closed action=%s after=%.1fs why=\"%s\"", op->action,
	          (double)(uv_hrtime() - op->window_ns) / 1e9, why);
}

static void audit(struct stepdown_op *op, const char *result, int exit_code)
{
	const char *path = op->ctx->conf->controller.audit_log;
	json_object_set_new(op->record, "result", json_string(result));
	if (exit_code >= 0)
		json_object_set_new(op->record, "exit", json_integer(exit_code));
	int ret = drdns_audit_append(path, op->record);
	if (ret < 0)
		drdns_log(DRDNS_LOG_ERR, "failover", "audit log write failed path=%s error=\"%s\"",
		          path, drdns_strerror(ret));
}

/* Per peer: NOTIFY outcome and, when watched, convergence. */
static json_t *peers_report(const struct stepdown_op *op, bool *all_converged)
{
	json_t *arr = json_array();
	*all_converged = op->n_peers > 0;
	for (size_t p = 0; p < op->n_peers; p++) {
		bool acked = op->notify != NULL;
		for (size_t z = 0; op->notify && z < op->n_zones; z++)
			acked = acked && op->notify[p * op->n_zones + z].acked;
		json_t *row = json_pack("{s:s, s:s, s:b}", "name", op->peers[p].name, "address",
		                        op->peers[p].address, "notify_acked", acked);
		if (op->converge) {
			const struct drdns_converge_result *c = &op->converge[p];
			json_t *zones = json_array();
			for (size_t z = 0; z < c->n_zones; z++)
				json_array_append_new(
				    zones,
				    json_pack("{s:s, s:o}", "zone", op->zones[z].zone, "serial",
				              c->has_served[z] ? json_integer(c->served[z])
				                               : json_null()));
			json_object_set_new(row, "converged", json_boolean(c->converged));
			json_object_set_new(row, "seconds",
			                    c->converged ? json_real(c->seconds) : json_null());
			json_object_set_new(row, "zones", zones);
			json_object_set_new(row, "detail", json_string(c->detail));
			json_object_set_new(row, "transfer_refused",
			                    drdns_converge_refusal_json(c));
			*all_converged = *all_converged && c->converged;
		}
		json_array_append_new(arr, row);
	}
	return arr;
}

static void step_done(struct stepdown_op *op)
{
	if (--op->pending > 0)
		return;
	bool all = false;
	json_t *secs = peers_report(op, &all);
	bool watched = op->converge != NULL;
	/* asked to watch but nobody to watch (no live secondary): not success */
	int code = !op->want_watch || (watched && all) ? DRDNS_EXIT_OK : DRDNS_EXIT_PARTIAL;
	double window_secs = (double)(uv_hrtime() - op->window_ns) / 1e9;
	const char *closed = !watched ? "no secondary to watch"
	                     : all    ? "every secondary converged"
	                              : "the wait ran out";
	close_window(op, closed);
	json_t *hb =
	    json_pack("{s:O, s:f, s:s}", "zones", op->handback ? op->handback : json_null(),
	              "seconds", window_secs, "closed", closed);
	if (hb)
		json_object_set(op->record, "handback", hb);
	double secs_total = (double)(uv_hrtime() - op->started_ns) / 1e9;
	char msg[400];
	snprintf(msg, sizeof(msg),
	         "%s: drdns no longer serves the DR set; it relayed the campus copies for %.1f s, "
	         "now REFUSED; %s after %.1f s",
	         op->action, window_secs,
	         !op->want_watch ? "the secondaries were notified to re-check their primaries"
	         : !watched      ? "no live secondary to watch"
	         : all           ? "every live secondary serves the master's serials again"
	                         : "some secondaries did not converge back in time",
	         secs_total);
	drdns_log(DRDNS_LOG_NOTICE, "failover", "%s finished exit=%d converged=%s", op->action,
	          code, watched ? (all ? "all" : "not all") : "not watched");
	audit(op, code == DRDNS_EXIT_OK ? "done" : "done-not-converged", code);
	json_t *reply = json_pack("{s:i, s:s, s:s, s:o, s:o*}", "exit", code, "command", op->action,
	                          "message", msg, "secondaries", secs, "handback", hb);
	drdns_op_done_cb done = op->done;
	void *done_arg = op->arg;
	op->ctx->busy = false;
	op_free(op);
	done(reply ? reply
	           : drdns_error_reply("demote", DRDNS_EXIT_PARTIAL,
	                               "stepped down, but the report could not be built"),
	     done_arg);
}

static void on_notified(struct drdns_notify_result *results, size_t n, void *arg)
{
	struct stepdown_op *op = arg;
	op->notify = results;
	op->n_notify = n;
	size_t acked = 0;
	for (size_t i = 0; i < n; i++)
		acked += results[i].acked;
	drdns_log(DRDNS_LOG_NOTICE, "failover", "%s notify acked=%zu of=%zu", op->action, acked, n);
	step_done(op);
}

static void on_converged(struct drdns_converge_result *results, size_t n, void *arg)
{
	struct stepdown_op *op = arg;
	(void)n;
	op->converge = results;
	step_done(op);
}

static int commit_standby(struct drdns_ctx *ctx, const char *reason, const char *who_text)
{
	struct drdns_state *st = ctx->state;
	/* A later promotion must go above what was published. */
	for (size_t i = 0; i < st->n_zones; i++)
		drdns_state_note_seen(st, st->zones[i].zone, st->zones[i].serial);
	struct drdns_state next = *st; /* shallow: only the fields set below differ */
	next.promoted = false;
	next.generation = 0;
	next.changed_at = time(NULL);
	next.reason = (char *)reason;
	next.who = (char *)who_text;
	next.zones = NULL;
	next.n_zones = 0;
	int ret = drdns_state_save(ctx->conf->controller.state_dir, &next);
	if (ret < 0) {
		/* the rename may have happened before the failure: put the old one back */
		drdns_state_save(ctx->conf->controller.state_dir, st);
		return ret;
	}
	char *r = strdup(reason), *w = strdup(who_text);
	free(st->reason);
	free(st->who);
	for (size_t i = 0; i < st->n_zones; i++)
		free(st->zones[i].zone);
	free(st->zones);
	st->promoted = false;
	st->generation = 0;
	st->changed_at = next.changed_at;
	st->reason = r; /* NULL on out of memory: only the in-memory text is lost */
	st->who = w;
	st->zones = NULL;
	st->n_zones = 0;
	return 0;
}

static int copy_peers(struct stepdown_op *op, const struct drdns_stepdown_opts *o,
                      const struct drdns_conf *conf)
{
	size_t n = o->peers ? o->n_peers : conf->n_secondaries;
	op->peers = calloc(n ? n : 1, sizeof(*op->peers));
	op->peer_strings = calloc(2 * n + 1, sizeof(char *));
	if (!op->peers || !op->peer_strings)
		return DRDNS_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct drdns_xfr_peer *p = &op->peers[i];
		if (o->peers) {
			*p = o->peers[i];
		} else {
			p->name = conf->secondaries[i].name;
			p->address = conf->secondaries[i].address;
			p->port = conf->secondaries[i].port;
			p->key =
			    conf->secondaries[i].key; /* conf outlives the op (reload keeps it) */
		}
		op->peer_strings[2 * i] = strdup(p->name);
		op->peer_strings[2 * i + 1] = strdup(p->address);
		op->n_peers++;
		if (!op->peer_strings[2 * i] || !op->peer_strings[2 * i + 1])
			return DRDNS_ENOMEM;
		p->name = op->peer_strings[2 * i];
		p->address = op->peer_strings[2 * i + 1];
	}
	return 0;
}

/* Committed, copies in the hand-back slot: NOTIFY and watch. */
static void run_window(struct stepdown_op *op)
{
	struct drdns_ctx *ctx = op->ctx;
	const struct drdns_conf *conf = ctx->conf;
	op->pending = 1; /* held until both are started */
	if (op->n_zones > 0 && op->n_peers > 0) {
		op->pending++;
		if (drdns_notify_batch(ctx->loop, conf->controller.address, op->peers, op->n_peers,
		                       op->zones, op->n_zones, conf->policy.notify_timeout,
		                       conf->policy.notify_attempts, on_notified, op) < 0)
			op->pending--;
		op->pending++;
		if (drdns_converge_watch(
		        ctx->loop, conf->controller.address, op->peers, op->n_peers, op->zones,
		        op->n_zones, conf->policy.poll_interval, op->window, on_converged, op) < 0)
			op->pending--;
	}
	step_done(op); /* committed all the same when nothing could be started */
}

static void fail_op(struct stepdown_op *op, json_t *reply)
{
	drdns_op_done_cb done = op->done;
	void *done_arg = op->arg;
	op->ctx->busy = false;
	op_free(op);
	done(reply ? reply : drdns_error_reply("stepdown", DRDNS_EXIT_ERROR, "out of memory"),
	     done_arg);
}

static void on_fetched(struct drdns_zoneset *copies, json_t *report, const char *error, void *arg)
{
	struct stepdown_op *op = arg;
	struct drdns_ctx *ctx = op->ctx;
	const struct drdns_conf *conf = ctx->conf;
	op->handback = report;
	if (!error && !ctx->server)
		error = "drdnsd is stopping";
	if (!error && !ctx->state->promoted)
		error = "no longer promoted";
	if (error) {
		drdns_zoneset_free(copies);
		drdns_log(DRDNS_LOG_ERR, "failover",
		          "%s stopped: a campus copy failed its checks; nothing changed",
		          op->action);
		json_t *hb = json_pack("{s:O}", "zones", report ? report : json_null());
		json_object_set_new(op->record, "error", json_string(error));
		json_object_set(op->record, "handback", hb ? hb : json_null());
		if (!op->dry_run)
			audit(op, "error", DRDNS_EXIT_ERROR);
		json_t *reply = drdns_error_reply(
		    op->action, DRDNS_EXIT_ERROR,
		    "hand-back stopped: the campus copy of a zone failed its checks:\n  %s\n"
		    "Nothing changed: drdns is still promoted and serves the DR set.",
		    error);
		if (reply && hb)
			json_object_set(reply, "handback", hb);
		json_decref(hb);
		fail_op(op, reply);
		return;
	}
	if (op->dry_run) {
		drdns_zoneset_free(copies);
		json_t *reply = json_pack(
		    "{s:i, s:s, s:b, s:s, s:{s:O, s:f}}", "exit", DRDNS_EXIT_OK, "command",
		    op->action, "dry_run", true, "message",
		    "dry run: the master is ahead on every zone and every campus copy passes its "
		    "checks; a demote would serve those copies (the hand-back) while the "
		    "secondaries follow, then stop serving. Nothing changed.",
		    "handback", "zones", report ? report : json_null(), "window_seconds",
		    op->window);
		fail_op(op, reply);
		return;
	}
	/* the secondaries must reach the copies' serials (what drdns relays) */
	for (size_t i = 0; i < op->n_zones; i++)
		free((char *)op->zones[i].zone);
	op->n_zones = 0;
	struct drdns_zone_serial *zs = realloc(op->zones, copies->n * sizeof(*zs));
	if (zs) {
		op->zones = zs;
		for (size_t i = 0; i < copies->n; i++) {
			if (!(zs[i].zone = strdup(copies->zones[i]->name)))
				break;
			zs[i].serial = drdns_zone_serial(copies->zones[i]);
			op->n_zones++;
		}
	}
	char *who = op->n_zones == copies->n ? drdns_who_text(op->who) : NULL;
	int ret = who ? commit_standby(ctx, op->reason, who) : DRDNS_ENOMEM;
	free(who);
	if (ret < 0) {
		drdns_zoneset_free(copies);
		drdns_log(DRDNS_LOG_ERR, "failover",
		          "%s not committed: cannot save state dir=%s error=\"%s\"", op->action,
		          conf->controller.state_dir, drdns_strerror(ret));
		json_object_set_new(op->record, "handback",
		                    json_pack("{s:O}", "zones", report ? report : json_null()));
		audit(op, "error", DRDNS_EXIT_ERROR);
		fail_op(op, drdns_error_reply(op->action, DRDNS_EXIT_ERROR,
		                              "cannot save state in %s: %s; nothing changed",
		                              conf->controller.state_dir, drdns_strerror(ret)));
		return;
	}
	/* Committed: the campus copies replace the DR set (no REFUSED gap), the
	 * generations go.  Not persisted: after a restart drdnsd is standby. */
	size_t nz = copies->n;
	op->window_ns = uv_hrtime();
	op->serving = drdns_server_set_handback(ctx->server, copies) == 0;
	drdns_server_set_zones(ctx->server, NULL);
	if (op->serving)
		ctx->handback_until = (double)time(NULL) + op->window;
	drdns_state_gc(conf->controller.state_dir, 0);
	drdns_log(DRDNS_LOG_NOTICE, "failover",
	          "stepped down action=%s reason=\"%s\" handback_zones=%zu window=%gs", op->action,
	          op->reason, op->serving ? nz : (size_t)0, op->window);
	audit(op, "committed", -1);
	run_window(op);
}

int drdns_stepdown_start(struct drdns_ctx *ctx, const struct drdns_stepdown_opts *o,
                         drdns_op_done_cb done, void *arg)
{
	if (ctx->busy)
		return DRDNS_EBUSY;
	if (!ctx->state->promoted)
		return DRDNS_ESTATE;
	if (!ctx->server || ctx->state->n_zones == 0)
		return DRDNS_ESTATE;
	const struct drdns_conf *conf = ctx->conf;
	struct stepdown_op *op = calloc(1, sizeof(*op));
	if (!op)
		return DRDNS_ENOMEM;
	op->ctx = ctx;
	op->done = done;
	op->arg = arg;
	op->started_ns = uv_hrtime();
	op->want_watch = o->wait > 0;
	op->dry_run = o->dry_run;
	op->window = o->wait > 0 ? o->wait : conf->policy.default_wait;
	op->action = strdup(o->action ? o->action : "stepdown");
	op->reason = strdup(o->reason ? o->reason : "");
	op->who = o->who ? json_deep_copy(o->who) : json_null();
	json_t *published = json_object();
	for (size_t i = 0; published && i < ctx->state->n_zones; i++)
		json_object_set_new(published, ctx->state->zones[i].zone,
		                    json_integer(ctx->state->zones[i].serial));
	json_t *master = json_object();
	for (size_t i = 0; master && i < o->n_serials; i++)
		json_object_set_new(master, o->master_serials[i].zone,
		                    json_integer(o->master_serials[i].serial));
	op->record = json_pack("{s:s, s:s, s:s, s:O, s:o, s:o}", "controller", conf->controller.id,
	                       "action", op->action ? op->action : "stepdown", "reason", o->reason,
	                       "who", o->who ? o->who : json_null(), "published_serials", published,
	                       "master_serials", master);
	op->zones = calloc(o->n_serials ? o->n_serials : 1, sizeof(*op->zones));
	for (size_t i = 0; op->zones && i < o->n_serials; i++) {
		if (!(op->zones[i].zone = strdup(o->master_serials[i].zone)))
			break;
		op->zones[i].serial = o->master_serials[i].serial;
		op->n_zones++;
	}
	size_t nz = ctx->state->n_zones;
	struct drdns_handback_zone *hz = calloc(nz, sizeof(*hz));
	if (!op->action || !op->reason || !op->who || !op->record || !op->zones ||
	    op->n_zones != o->n_serials || !hz || copy_peers(op, o, conf) < 0) {
		free(hz);
		op_free(op);
		return DRDNS_ENOMEM;
	}
	for (size_t i = 0; i < nz; i++) {
		hz[i].zone = ctx->state->zones[i].zone;
		hz[i].dr_serial = ctx->state->zones[i].serial;
	}
	int ret = drdns_handback_fetch(ctx, hz, nz, on_fetched, op);
	free(hz);
	if (ret < 0) {
		op_free(op);
		return ret;
	}
	ctx->busy = true; /* until the reply: nothing else runs meanwhile */
	drdns_log(DRDNS_LOG_NOTICE, "failover", "%s: fetching the campus copies dry_run=%s",
	          op->action, op->dry_run ? "yes" : "no");
	return 0;
}
