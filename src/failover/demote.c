/*
 * drdnsctl demote: fail back to the campus primary.
 *
 *   1. probe the master and every nameserver for every served zone;
 *   2. refuse (exit 4, nothing changed) unless the master answers every zone
 *      with a serial above the DR serial (RFC 1982): the secondaries accept
 *      only a higher serial, so until then they would keep the DR data and
 *      eventually expire it.  The refusal says, per zone, the smallest serial
 *      the master must publish, in two steps when the gap is 2^31 or more;
 *   3. step down (stepdown.c) through the hand-back relay: fetch and check
 *      every zone's campus copy (any failure: exit 1, nothing changed;
 *      --dry-run stops after this with the copies' report), commit standby,
 *      serve the campus copies while NOTIFYing the secondaries that answered
 *      and watching each converge, then REFUSED.
 */
#include "drdns/audit.h"
#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/log.h"
#include "drdns/notify.h"
#include "drdns/probe.h"
#include "drdns/serial.h"
#include "drdns/server.h"
#include "drdns/state.h"
#include "drdns/zone.h"
#include "nameservers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct demote_op {
	struct drdns_ctx *ctx;
	drdns_op_done_cb done;
	void *arg;
	char *reason;
	json_t *who;
	bool dry_run;
	double wait;
	struct drdns_zoneset *set; /* the served zones (names) */
	struct drdns_nameservers ns;
	json_t *plan; /* per zone */
};

static void op_free(struct demote_op *op)
{
	free(op->reason);
	json_decref(op->who);
	drdns_zoneset_free(op->set);
	drdns_nameservers_clear(&op->ns);
	json_decref(op->plan);
	free(op);
}

static void finish(struct demote_op *op, json_t *reply)
{
	drdns_op_done_cb done = op->done;
	void *arg = op->arg;
	op->ctx->busy = false;
	op_free(op);
	done(reply ? reply : drdns_error_reply("demote", DRDNS_EXIT_ERROR, "out of memory"), arg);
}

struct demote_run {
	drdns_op_done_cb done;
	void *arg;
	json_t *plan;
	bool dry_run;
};

static void on_stepped_down(json_t *reply, void *arg)
{
	struct demote_run *run = arg;
	json_object_set_new(reply, "zones", run->plan);
	json_object_set_new(reply, "dry_run", json_boolean(run->dry_run));
	run->done(reply, run->arg);
	free(run);
}

static void on_probed(struct drdns_soa_result *results, size_t n, void *arg)
{
	struct demote_op *op = arg;
	struct drdns_ctx *ctx = op->ctx;
	size_t nz = op->set->n;
	size_t ready = 0;
	char why[4096] = "";
	size_t used = 0;
	struct drdns_zone_serial *serials = calloc(nz ? nz : 1, sizeof(*serials));
	op->plan = json_array();

	for (size_t z = 0; z < nz && serials && op->plan; z++) {
		const struct drdns_soa_result *m = &results[z]; /* the master's row */
		const char *zone = op->set->zones[z]->name;
		uint32_t dr = 0;
		bool have_dr = drdns_state_published(ctx->state, zone, &dr);
		uint32_t target = 0, mid = 0;
		bool two_step = false;
		bool ok = have_dr && m->answered && drdns_serial_gt(m->serial, dr);
		json_t *row = json_pack("{s:s, s:o, s:o, s:b, s:s}", "zone", zone, "dr_serial",
		                        have_dr ? json_integer(dr) : json_null(), "master_serial",
		                        m->answered ? json_integer(m->serial) : json_null(),
		                        "ready", ok, "master_detail", m->detail);
		if (ok) {
			serials[ready].zone = zone;
			serials[ready++].serial = m->serial;
		} else if (have_dr) {
			/* what the master must publish: above the DR serial, from what it has */
			drdns_serial_failback(m->answered ? m->serial : dr, dr, &target, &two_step,
			                      &mid);
			json_object_set_new(row, "master_must_publish", json_integer(target));
			if (two_step)
				json_object_set_new(row, "first_publish", json_integer(mid));
			if (used < sizeof(why))
				used += (size_t)snprintf(
				    why + used, sizeof(why) - used,
				    "\n  %s: %s; the master must publish %u%s", zone,
				    !m->answered ? "the master does not answer"
				                 : "the master's serial is not above the DR serial",
				    target, two_step ? " in two steps" : "");
			if (two_step && used < sizeof(why))
				used += (size_t)snprintf(
				    why + used, sizeof(why) - used,
				    " (first %u, let every secondary take it, then %u)", mid,
				    target);
			if (m->answered && used < sizeof(why))
				used += (size_t)snprintf(why + used, sizeof(why) - used,
				                         " (it serves %u; drdns serves %u)",
				                         m->serial, dr);
		}
		json_array_append_new(op->plan, row);
	}

	/* the secondaries that answer now are notified and watched; the rest skipped */
	struct drdns_xfr_peer *peers = calloc(op->ns.n ? op->ns.n : 1, sizeof(*peers));
	size_t n_peers = 0;
	for (size_t i = 1; peers && i < op->ns.n; i++) {
		if (!op->ns.list[i].secondary)
			continue;
		bool any = false;
		for (size_t z = 0; z < nz; z++)
			any = any || results[i * nz + z].answered;
		if (!any)
			continue;
		peers[n_peers].name = op->ns.list[i].name;
		peers[n_peers].address = op->ns.list[i].address;
		peers[n_peers].port = op->ns.list[i].port;
		peers[n_peers++].key = op->ns.list[i].secondary->key;
	}
	drdns_soa_results_free(results, n);

	if (!serials || !op->plan || !peers) {
		free(serials);
		free(peers);
		finish(op, drdns_error_reply("demote", DRDNS_EXIT_ERROR, "out of memory"));
		return;
	}
	if (ready < nz) {
		free(serials);
		free(peers);
		drdns_log(DRDNS_LOG_WARNING, "failover", "demote refused zones_not_ready=%zu",
		          nz - ready);
		json_t *reply = drdns_error_reply(
		    "demote", DRDNS_EXIT_REFUSED,
		    "refused: the secondaries accept only a higher serial, so the master must "
		    "serve a serial above the DR serial on every zone first:%s\nNothing changed; "
		    "drdns keeps serving the DR set.",
		    why);
		if (reply)
			json_object_set(reply, "zones", op->plan);
		if (!op->dry_run) { /* an attempt all the same: on record, like promote */
			json_t *rec =
			    json_pack("{s:s, s:s, s:s, s:O, s:s, s:i, s:O}", "controller",
			              ctx->conf->controller.id, "action", "demote", "reason",
			              op->reason, "who", op->who, "result", "refused", "exit",
			              DRDNS_EXIT_REFUSED, "zones", op->plan);
			if (!rec || drdns_audit_append(ctx->conf->controller.audit_log, rec) < 0)
				drdns_log(DRDNS_LOG_ERR, "failover",
				          "audit log write failed path=%s",
				          ctx->conf->controller.audit_log);
			json_decref(rec);
		}
		finish(op, reply);
		return;
	}
	struct demote_run *run = calloc(1, sizeof(*run));
	struct drdns_stepdown_opts so = {
	    .action = "demote",
	    .reason = op->reason,
	    .who = op->who,
	    .master_serials = serials,
	    .n_serials = ready,
	    .peers = peers,
	    .n_peers = n_peers,
	    .wait = op->wait >= 0 ? op->wait : ctx->conf->policy.default_wait,
	    .dry_run = op->dry_run,
	};
	int ret = DRDNS_ENOMEM;
	if (run) {
		run->done = op->done;
		run->arg = op->arg;
		run->plan = json_incref(op->plan);
		run->dry_run = op->dry_run;
		ctx->busy = false; /* stepdown takes the lock itself */
		ret = drdns_stepdown_start(ctx, &so, on_stepped_down, run);
	}
	free(serials);
	free(peers);
	if (ret < 0) {
		if (run)
			json_decref(run->plan);
		free(run);
		finish(op, drdns_error_reply("demote", DRDNS_EXIT_ERROR, "%s; nothing changed",
		                             drdns_strerror(ret)));
		return;
	}
	op->done = NULL; /* the step-down replies */
	op_free(op);
}

int drdns_demote_start(struct drdns_ctx *ctx, const struct drdns_demote_opts *opts,
                       drdns_op_done_cb done, void *arg)
{
	if (ctx->busy)
		return DRDNS_EBUSY;
	if (!ctx->state->promoted) {
		done(json_pack("{s:i, s:s, s:b, s:s}", "exit", DRDNS_EXIT_OK, "command", "demote",
		               "dry_run", opts->dry_run, "message",
		               "not promoted: drdns is already standby; nothing changed"),
		     arg);
		return 0;
	}
	struct demote_op *op = calloc(1, sizeof(*op));
	if (!op)
		return DRDNS_ENOMEM;
	op->ctx = ctx;
	op->done = done;
	op->arg = arg;
	op->dry_run = opts->dry_run;
	op->wait = opts->wait;
	op->reason = strdup(opts->reason);
	op->who = opts->who ? json_deep_copy(opts->who) : json_object();
	const struct drdns_zoneset *served = ctx->server ? drdns_server_zones(ctx->server) : NULL;
	op->set = calloc(1, sizeof(*op->set));
	if (op->set && served) {
		op->set->zones = calloc(served->n ? served->n : 1, sizeof(*op->set->zones));
		for (size_t i = 0; op->set->zones && i < served->n; i++)
			if ((op->set->zones[op->set->n] = drdns_zone_clone(served->zones[i])))
				op->set->n++;
	}
	if (!op->reason || !op->who || !op->set || !served || op->set->n != served->n) {
		op_free(op);
		return served ? DRDNS_ENOMEM : DRDNS_ESTATE;
	}
	ctx->busy = true;
	drdns_log(DRDNS_LOG_NOTICE, "failover", "demote requested dry_run=%s reason=\"%s\"",
	          op->dry_run ? "yes" : "no", op->reason);
	struct drdns_soa_target *targets = NULL;
	size_t n_targets = 0;
	int ret = drdns_nameservers_build(ctx->conf, op->set, &op->ns);
	if (ret == 0)
		ret = drdns_nameservers_targets(&op->ns, op->set, &targets, &n_targets);
	if (ret == 0)
		ret = drdns_probe_soa(ctx->loop, ctx->conf->controller.address, targets, n_targets,
		                      ctx->conf->policy.probe_timeout,
		                      ctx->conf->policy.probe_attempts, false, on_probed, op);
	free(targets);
	if (ret < 0) {
		ctx->busy = false;
		op_free(op);
		return ret;
	}
	return 0;
}
