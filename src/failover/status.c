/*
 * drdnsctl status: probe the master and every secondary for every zone now and
 * report role, health, serials and lag.
 */
#include "drdns/conf.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/log.h"
#include "drdns/notify.h"
#include "drdns/probe.h"
#include "drdns/serial.h"
#include "drdns/server.h"
#include "drdns/state.h"
#include "drdns/watchdog.h"
#include "drdns/zone.h"
#include "nameservers.h"

#include <stdlib.h>
#include <string.h>

struct status_op {
	struct drdns_ctx *ctx;
	drdns_op_done_cb done;
	void *arg;
	struct drdns_zoneset *set; /* zones to report (owned) */
	struct drdns_nameservers ns;
	json_t *alerts;
};

static void status_free(struct status_op *op)
{
	drdns_zoneset_free(op->set);
	drdns_nameservers_clear(&op->ns);
	json_decref(op->alerts);
	free(op);
}

/* The serial secondaries should serve: the published DR serial when promoted,
 * else what the master serves. */
static bool reference_serial(const struct status_op *op, const struct drdns_soa_result *results,
                             size_t z, uint32_t *ref)
{
	if (op->ctx->state->promoted)
		return drdns_state_published(op->ctx->state, op->set->zones[z]->name, ref);
	if (results[z].answered) { /* the master's row comes first */
		*ref = results[z].serial;
		return true;
	}
	return false;
}

static json_t *zone_row(const struct drdns_soa_result *r, bool have_ref, uint32_t ref)
{
	json_t *row = json_pack("{s:s, s:b, s:s, s:f}", "zone", r->zone, "answered", r->answered,
	                        "detail", r->detail, "rtt", r->rtt);
	json_object_set_new(row, "serial", r->answered ? json_integer(r->serial) : json_null());
	json_t *lag = json_null();
	if (r->answered && have_ref)
		lag = json_integer(
		    drdns_serial_gt(ref, r->serial) ? (json_int_t)(uint32_t)(ref - r->serial) : 0);
	json_object_set_new(row, "lag", lag);
	return row;
}

/* drdns_state_note_seen, telling whether the seen memory changed (so state.json
 * is rewritten only then, not with an fsync on the loop at every status). */
static bool note_seen(struct drdns_state *st, const char *zone, uint32_t serial)
{
	for (size_t i = 0; i < st->n_seen; i++)
		if (!strcmp(st->seen[i].zone, zone)) {
			if (!drdns_serial_gt(serial, st->seen[i].serial))
				return false;
			break;
		}
	drdns_state_note_seen(st, zone, serial);
	return true;
}

static void on_status_probed(struct drdns_soa_result *results, size_t n, void *arg)
{
	struct status_op *op = arg;
	struct drdns_ctx *ctx = op->ctx;
	const struct drdns_conf *conf = ctx->conf;
	size_t nz = op->set->n;
	(void)n;

	json_t *master_zones = json_array();
	size_t master_up = 0;
	bool seen_changed = false;
	for (size_t z = 0; z < nz; z++) {
		master_up += results[z].answered;
		if (results[z].answered)
			seen_changed |= note_seen(ctx->state, results[z].zone, results[z].serial);
		else
			json_array_append_new(op->alerts,
			                      json_sprintf("master %s does not answer for %s (%s)",
			                                   conf->master.address, results[z].zone,
			                                   results[z].detail));
		json_array_append_new(master_zones, zone_row(&results[z], false, 0));
	}

	json_t *secondaries = json_array();
	for (size_t i = 1; i < op->ns.n; i++) {
		if (!op->ns.list[i].secondary)
			continue;
		json_t *zones = json_array();
		const char **behind = calloc(nz ? nz : 1, sizeof(*behind));
		size_t n_behind = 0;
		for (size_t z = 0; z < nz; z++) {
			const struct drdns_soa_result *r = &results[i * nz + z];
			uint32_t ref = 0;
			bool have_ref = reference_serial(op, results, z, &ref);
			if (r->answered)
				seen_changed |= note_seen(ctx->state, r->zone, r->serial);
			if (behind && have_ref && (!r->answered || drdns_serial_gt(ref, r->serial)))
				behind[n_behind++] = op->set->zones[z]->name;
			json_array_append_new(zones, zone_row(r, have_ref, ref));
		}
		/* behind on a zone whose transfer drdns refused: say from where, and the fix */
		struct drdns_xfr_explained x;
		bool refused = n_behind > 0 && drdns_failover_explain(ctx, 0, op->ns.list[i].name,
		                                                      behind, n_behind, &x);
		free(behind);
		json_t *why = json_null();
		if (refused) {
			struct drdns_converge_result cr = {.refused = true, .refusal = x};
			json_decref(why);
			why = drdns_converge_refusal_json(&cr);
			json_array_append_new(
			    op->alerts,
			    json_sprintf("secondary %s: %s", op->ns.list[i].name, x.text));
		}
		json_array_append_new(secondaries,
		                      json_pack("{s:s, s:s, s:i, s:o, s:o}", "name",
		                                op->ns.list[i].name, "address",
		                                op->ns.list[i].address, "port", op->ns.list[i].port,
		                                "zones", zones, "transfer_refused", why));
	}

	json_t *zones = json_array();
	for (size_t z = 0; z < nz; z++) {
		uint32_t published;
		json_t *row = json_pack("{s:s}", "zone", op->set->zones[z]->name);
		json_object_set_new(
		    row, "published_serial",
		    drdns_state_published(ctx->state, op->set->zones[z]->name, &published)
		        ? json_integer(published)
		        : json_null());
		json_object_set_new(row, "master_serial",
		                    results[z].answered ? json_integer(results[z].serial)
		                                        : json_null());
		json_array_append_new(zones, row);
	}
	drdns_soa_results_free(results, n);
	int ret = seen_changed ? drdns_state_save(conf->controller.state_dir, ctx->state) : 0;
	if (ret < 0) /* keep what was seen: best effort, it is saved again at the next change */
		drdns_log(DRDNS_LOG_WARNING, "failover", "cannot save state dir=%s error=\"%s\"",
		          conf->controller.state_dir, drdns_strerror(ret));

	/* The server is gone when SIGTERM arrived while the probes ran. */
	struct drdns_server_stats stats = {0};
	if (ctx->server)
		drdns_server_stats(ctx->server, &stats);
	bool promoted = ctx->state->promoted;
	/* Nothing probed (no valid zone set): the master's health is unknown, not "up". */
	bool master_ok = nz > 0 && master_up == nz;
	json_t *reply = json_pack(
	    "{s:i, s:s, s:s, s:s, s:I, s:s?, s:s?, s:{s:s, s:s, s:i, s:s}, s:{s:s, s:i, s:b, s:o},"
	    " s:o, s:o, s:O, s:{s:I, s:I, s:I, s:I}}",
	    "exit", DRDNS_EXIT_OK, "command", "status", "role", promoted ? "primary" : "standby",
	    "state",
	    promoted    ? "PROMOTED"
	    : nz == 0   ? "UNKNOWN"
	    : master_ok ? "NORMAL"
	                : "MASTER_DOWN",
	    "since", (json_int_t)ctx->state->changed_at, "reason", ctx->state->reason, "who",
	    ctx->state->who, "controller", "id", conf->controller.id, "address",
	    conf->controller.address, "port", conf->controller.port, "ns_name",
	    conf->controller.ns_name, "master", "address", conf->master.address, "port",
	    conf->master.port, "up", master_ok, "zones", master_zones, "secondaries", secondaries,
	    "zones", zones, "alerts", op->alerts, "server", "queries", (json_int_t)stats.queries,
	    "refused", (json_int_t)stats.refused, "axfr", (json_int_t)stats.axfr,
	    "active_transfers", (json_int_t)stats.active_transfers);
	/* The hand-back window of a step-down (not persisted): the campus copies served. */
	const struct drdns_zoneset *hb =
	    ctx->server ? drdns_server_handback_zones(ctx->server) : NULL;
	if (reply && hb) {
		json_t *names = json_array();
		for (size_t i = 0; names && i < hb->n; i++)
			json_array_append_new(
			    names, json_pack("{s:s, s:I}", "zone", hb->zones[i]->name, "serial",
			                     (json_int_t)drdns_zone_serial(hb->zones[i])));
		json_object_set_new(reply, "handback",
		                    json_pack("{s:o, s:I}", "zones", names ? names : json_array(),
		                              "until", (json_int_t)ctx->handback_until));
	}
	/* The watchdog's view: its state replaces the one-shot guess, its alerts join. */
	json_t *wd = reply && ctx->watchdog ? drdns_watchdog_status(ctx->watchdog) : NULL;
	if (wd) {
		/* Trust the watchdog's state only when it has probed lately; else this
		 * one-shot probe's view stands (and the staleness is an alert). */
		if (json_is_true(json_object_get(wd, "fresh")))
			json_object_set(reply, "state", json_object_get(wd, "state"));
		else if (!json_object_get(wd, "blind"))
			json_array_append_new(
			    json_object_get(reply, "alerts"),
			    json_pack("{s:s, s:s}", "id", "watchdog_stale", "message",
			              "the watchdog has not completed a probe round "
			              "lately; the state shown is this status's own "
			              "probe"));
		json_array_extend(json_object_get(reply, "alerts"), json_object_get(wd, "alerts"));
		json_object_set_new(reply, "watchdog", wd);
	}
	drdns_op_done_cb done = op->done;
	void *done_arg = op->arg;
	status_free(op);
	done(reply ? reply : drdns_error_reply("status", DRDNS_EXIT_ERROR, "out of memory"),
	     done_arg);
}

int drdns_status_start(struct drdns_ctx *ctx, drdns_op_done_cb done, void *arg)
{
	struct status_op *op = calloc(1, sizeof(*op));
	if (!op)
		return DRDNS_ENOMEM;
	op->ctx = ctx;
	op->done = done;
	op->arg = arg;
	op->alerts = json_array();

	/* Report the zones being served; when standby, the DR set on disk (validated). */
	struct drdns_diag diag = {0};
	int ret = 0;
	const struct drdns_zoneset *served = drdns_server_zones(ctx->server);
	op->set = calloc(1, sizeof(*op->set));
	if (!op->set) {
		ret = DRDNS_ENOMEM;
	} else if (served) {
		op->set->zones = calloc(served->n, sizeof(*op->set->zones));
		for (size_t i = 0; op->set->zones && i < served->n; i++)
			if ((op->set->zones[op->set->n] = drdns_zone_clone(served->zones[i])))
				op->set->n++;
	} else {
		struct drdns_zoneset *dr = NULL;
		if (drdns_zoneset_load_dir(ctx->conf->zones.directory, &dr, &diag) == 0) {
			drdns_zoneset_free(op->set);
			op->set = dr;
		} else {
			for (size_t i = 0; i < diag.n; i++)
				json_array_append_new(
				    op->alerts,
				    json_sprintf("DR zone set invalid: %s", diag.msgs[i]));
		}
	}
	drdns_diag_clear(&diag);

	struct drdns_soa_target *targets = NULL;
	size_t n = 0;
	if (ret == 0)
		ret = drdns_nameservers_build(ctx->conf, NULL, &op->ns);
	if (ret == 0)
		ret = drdns_nameservers_targets(&op->ns, op->set, &targets, &n);
	if (ret == 0)
		ret =
		    drdns_probe_soa(ctx->loop, ctx->conf->controller.address, targets, n,
		                    ctx->conf->policy.probe_timeout,
		                    ctx->conf->policy.probe_attempts, false, on_status_probed, op);
	free(targets);
	if (ret < 0)
		status_free(op);
	return ret;
}
