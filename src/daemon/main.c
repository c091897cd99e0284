/*
 * drdnsd: the DR failover controller daemon.
 *
 *   drdnsd -c FILE [-f] [-v]     run (foreground with -f, logging to stderr)
 *   drdnsd --check -c FILE       validate the configuration and the DR zone set
 */
#include "drdns/conf.h"
#include "drdns/ctl.h"
#include "drdns/diag.h"
#include "drdns/dnssec.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/fsutil.h"
#include "drdns/log.h"
#include "drdns/metrics.h"
#include "drdns/server.h"
#include "drdns/audit.h"
#include "drdns/checks.h"
#include "drdns/rewrite.h"
#include "drdns/tsig.h"
#include "drdns/state.h"
#include "drdns/watchdog.h"
#include "drdns/zone.h"
#include "drdns_config.h"

#include <systemd/sd-daemon.h>

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* After SIGTERM, requests still in flight (NOTIFY retries to a dead secondary,
 * a promotion's convergence wait) get this long before drdnsd exits anyway. */
#define STOP_GRACE_MS 2000

struct daemon {
	struct drdns_ctx ctx;
	struct drdns_ctl_server *ctl;
	struct drdns_metrics *metrics;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t stop_timer;
	uv_timer_t sd_timer; /* systemd watchdog keep-alive (when WatchdogSec= is set) */
	bool stopping;
	/* Configurations replaced by a reload: operations in flight may still point
	 * into them (peer names, keys), so they live until exit. */
	struct drdns_conf **retired;
	size_t n_retired;
};

static void log_one_line(const char *what, const char *msg);

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: drdnsd [-c FILE] [-f] [-v]\n"
	        "       drdnsd --check [-c FILE]\n"
	        "  -c, --config FILE   configuration (default %s/drdns.conf)\n"
	        "  -f, --foreground    stay in the foreground and log to stderr\n"
	        "  -v, --verbose       log debug messages\n"
	        "      --check         validate the configuration and the DR zone set, then exit\n"
	        "  -h, --help          this text\n"
	        "      --version       print the version\n",
	        DRDNS_SYSCONFDIR);
}

static void print_diag(const struct drdns_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "%s\n", d->msgs[i]);
}

/* ---- control commands ---- */

static void reply_done(json_t *reply, void *arg)
{
	struct drdns_ctl_request *req = arg;
	drdns_ctl_reply(req, reply);
}

/* The user name of uid from /etc/passwd only: getpwuid() may ask NSS (LDAP,
 * sssd), which blocks the loop for its timeout, and during a failover the
 * directory server is likely on the campus that is gone.  Caller frees. */
static char *local_user_name(uid_t uid)
{
	FILE *f = fopen("/etc/passwd", "re");
	if (!f)
		return NULL;
	char *name = NULL;
	struct passwd *pw;
	while (!name && (pw = fgetpwent(f)))
		if (pw->pw_uid == uid)
			name = strdup(pw->pw_name);
	fclose(f);
	return name;
}

static json_t *who_from(const json_t *body, const struct drdns_ctl_peer *peer)
{
	json_t *who =
	    json_pack("{s:I, s:I}", "uid", (json_int_t)peer->uid, "pid", (json_int_t)peer->pid);
	char *user = local_user_name(peer->uid);
	if (user)
		json_object_set_new(who, "user", json_string(user));
	free(user);
	/* What the client says about itself: informational, the uid is authoritative. */
	const json_t *client = json_object_get(body, "client");
	const char *keys[] = {"sudo_user", "ssh_client", "tty"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = json_string_value(json_object_get(client, keys[i]));
		if (v && *v)
			json_object_set_new(who, keys[i], json_string(v));
	}
	return who;
}

/* One line of printable text (logs stay parseable). */
static bool one_line(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* The flags a request may carry (dry_run, force, preflight_only) must be JSON
 * booleans when present: "true" as a string must never read as false and turn
 * a dry run into the real thing.  Replies (usage error) and returns false. */
static bool flags_ok(struct drdns_ctl_request *req, const json_t *body, const char *command)
{
	static const char *const flags[] = {"dry_run", "force", "preflight_only"};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		const json_t *v = json_object_get(body, flags[i]);
		if (v && !json_is_boolean(v)) {
			drdns_ctl_reply(req,
			                drdns_error_reply(command, DRDNS_EXIT_USAGE,
			                                  "%s must be true or false", flags[i]));
			return false;
		}
	}
	return true;
}

/* The fields every state-changing command shares: a one-line --reason and an
 * optional --wait.  Replies (usage error) and returns false when they are bad. */
static bool change_args(struct drdns_ctl_request *req, const json_t *body, const char *command,
                        const char **reason_out, double *wait_out)
{
	const json_t *reason = json_object_get(body, "reason");
	const json_t *wait = json_object_get(body, "wait");
	if (!flags_ok(req, body, command))
		return false;
	bool printable = json_is_string(reason) && one_line(json_string_value(reason));
	if (json_is_string(reason) && *json_string_value(reason) && !printable) {
		drdns_ctl_reply(req,
		                drdns_error_reply(command, DRDNS_EXIT_USAGE,
		                                  "the reason must be one line of text, without "
		                                  "control characters"));
		return false;
	}
	if (!json_is_string(reason) || !*json_string_value(reason)) {
		drdns_ctl_reply(
		    req, drdns_error_reply(command, DRDNS_EXIT_USAGE,
		                           "%s needs --reason TEXT (it goes to the audit log)",
		                           command));
		return false;
	}
	if (wait && (!json_is_number(wait) || !(json_number_value(wait) >= 0) ||
	             json_number_value(wait) > 1e7)) { /* the same bound as drdnsctl --wait */
		drdns_ctl_reply(
		    req, drdns_error_reply(command, DRDNS_EXIT_USAGE,
		                           "wait must be a number of seconds from 0 to 1e7"));
		return false;
	}
	*reason_out = json_string_value(reason);
	*wait_out = wait ? json_number_value(wait) : -1;
	return true;
}

static void handle_promote(struct daemon *d, struct drdns_ctl_request *req, const json_t *body,
                           const struct drdns_ctl_peer *peer)
{
	const char *reason;
	double wait;
	if (!change_args(req, body, "promote", &reason, &wait))
		return;
	json_t *who = who_from(body, peer);
	struct drdns_promote_opts opts = {
	    .reason = reason,
	    .dry_run = json_is_true(json_object_get(body, "dry_run")),
	    .force = json_is_true(json_object_get(body, "force")),
	    .wait = wait,
	    .who = who,
	};
	int ret = drdns_promote_start(&d->ctx, &opts, reply_done, req);
	json_decref(who);
	if (ret == DRDNS_EBUSY)
		drdns_ctl_reply(
		    req, drdns_error_reply("promote", DRDNS_EXIT_ERROR,
		                           "another promotion is in progress; nothing changed"));
	else if (ret < 0)
		drdns_ctl_reply(
		    req, drdns_error_reply("promote", DRDNS_EXIT_ERROR, "%s", drdns_strerror(ret)));
}

static void handle_demote(struct daemon *d, struct drdns_ctl_request *req, const json_t *body,
                          const struct drdns_ctl_peer *peer)
{
	const char *reason;
	double wait;
	if (!change_args(req, body, "demote", &reason, &wait))
		return;
	if (json_is_true(json_object_get(body, "force"))) {
		drdns_ctl_reply(req, drdns_error_reply("demote", DRDNS_EXIT_USAGE,
		                                       "demote has no --force: the secondaries "
		                                       "follow only a higher serial"));
		return;
	}
	json_t *who = who_from(body, peer);
	struct drdns_demote_opts opts = {
	    .reason = reason,
	    .dry_run = json_is_true(json_object_get(body, "dry_run")),
	    .wait = wait,
	    .who = who,
	};
	int ret = drdns_demote_start(&d->ctx, &opts, reply_done, req);
	json_decref(who);
	if (ret == DRDNS_EBUSY)
		drdns_ctl_reply(req, drdns_error_reply("demote", DRDNS_EXIT_ERROR,
		                                       "a promotion or step-down is in progress; "
		                                       "nothing changed"));
	else if (ret < 0)
		drdns_ctl_reply(req, drdns_error_reply("demote", DRDNS_EXIT_ERROR,
		                                       "%s; nothing changed", drdns_strerror(ret)));
}

static void handle_pause(struct daemon *d, struct drdns_ctl_request *req, const json_t *body,
                         const struct drdns_ctl_peer *peer, bool pause)
{
	const char *command = pause ? "pause" : "resume";
	const json_t *jreason = json_object_get(body, "reason");
	const char *reason = json_string_value(jreason);
	if ((jreason && !json_is_string(jreason)) || !one_line(reason) ||
	    (pause && (!reason || !*reason))) {
		drdns_ctl_reply(req, drdns_error_reply(command, DRDNS_EXIT_USAGE,
		                                       "%s needs --reason TEXT: one line of text",
		                                       command));
		return;
	}
	if (!d->ctx.watchdog) {
		drdns_ctl_reply(req,
		                drdns_error_reply(command, DRDNS_EXIT_ERROR,
		                                  "the watchdog is not running; nothing changed"));
		return;
	}
	json_t *who = who_from(body, peer);
	char *who_text = drdns_who_text(who), err[512] = "out of memory; nothing changed";
	bool was = d->ctx.state->paused;
	int ret = was == pause ? 0
	          : !who_text  ? DRDNS_ENOMEM
	                       : drdns_watchdog_set_paused(d->ctx.watchdog, pause, reason, who_text,
	                                                   err, sizeof(err));
	free(who_text);
	if (ret < 0) {
		drdns_ctl_reply(req, drdns_error_reply(command, DRDNS_EXIT_ERROR, "%s", err));
		json_decref(who);
		return;
	}
	if (was != pause) {
		json_t *rec = json_pack("{s:s, s:s, s:s?, s:O, s:s}", "controller",
		                        d->ctx.conf->controller.id, "action", command, "reason",
		                        reason, "who", who, "result", "done");
		if (!rec || drdns_audit_append(d->ctx.conf->controller.audit_log, rec) < 0)
			drdns_log(DRDNS_LOG_ERR, "daemon", "audit log write failed path=%s",
			          d->ctx.conf->controller.audit_log);
		json_decref(rec);
	}
	json_decref(who);
	char msg[256];
	snprintf(msg, sizeof(msg), "%s%s",
	         was == pause ? (pause ? "already paused" : "not paused")
	         : pause      ? "paused: the watchdog keeps watching but takes no automatic action"
	                      : "resumed: the watchdog may act on its own again",
	         was == pause ? "; nothing changed" : "");
	drdns_ctl_reply(req, json_pack("{s:i, s:s, s:s, s:b}", "exit", DRDNS_EXIT_OK, "command",
	                               command, "message", msg, "paused", pause));
}

static void handle_resign(struct daemon *d, struct drdns_ctl_request *req, const json_t *body,
                          const struct drdns_ctl_peer *peer)
{
	const char *reason;
	double wait;
	if (!change_args(req, body, "resign", &reason, &wait))
		return;
	json_t *who = who_from(body, peer);
	struct drdns_resign_opts opts = {
	    .reason = reason,
	    .dry_run = json_is_true(json_object_get(body, "dry_run")),
	    .force = json_is_true(json_object_get(body, "force")),
	    .wait = wait,
	    .who = who,
	};
	int ret = drdns_resign_start(&d->ctx, &opts, reply_done, req);
	json_decref(who);
	if (ret == DRDNS_ESTATE)
		drdns_ctl_reply(req,
		                drdns_error_reply("resign", DRDNS_EXIT_ERROR,
		                                  "not promoted: drdns serves nothing to "
		                                  "re-sign (the campus primary signs); nothing "
		                                  "changed"));
	else if (ret == DRDNS_EBUSY)
		drdns_ctl_reply(req, drdns_error_reply("resign", DRDNS_EXIT_ERROR,
		                                       "a promotion, step-down or re-signing is in "
		                                       "progress; nothing changed"));
	else if (ret < 0)
		drdns_ctl_reply(req, drdns_error_reply("resign", DRDNS_EXIT_ERROR,
		                                       "%s; nothing changed", drdns_strerror(ret)));
}

static void handle_ack(struct daemon *d, struct drdns_ctl_request *req, const json_t *body,
                       const struct drdns_ctl_peer *peer)
{
	const json_t *jreason = json_object_get(body, "reason");
	const json_t *jid = json_object_get(body, "id");
	const char *reason = json_string_value(jreason), *id = json_string_value(jid);
	if (!json_is_string(jreason) || !*reason || !one_line(reason)) {
		drdns_ctl_reply(req,
		                drdns_error_reply("ack", DRDNS_EXIT_USAGE,
		                                  "ack needs --reason TEXT: one line of text"));
		return;
	}
	if (!json_is_string(jid) || !*id || !one_line(id)) {
		drdns_ctl_reply(req, drdns_error_reply("ack", DRDNS_EXIT_USAGE,
		                                       "ack needs the alert's ID (drdnsctl status "
		                                       "lists them)"));
		return;
	}
	if (!d->ctx.watchdog) {
		drdns_ctl_reply(req,
		                drdns_error_reply("ack", DRDNS_EXIT_ERROR,
		                                  "the watchdog is not running; nothing changed"));
		return;
	}
	json_t *who = who_from(body, peer);
	char *who_text = drdns_who_text(who), err[1024] = "out of memory; nothing changed";
	int ret = who_text
	              ? drdns_watchdog_ack(d->ctx.watchdog, id, who_text, reason, err, sizeof(err))
	              : DRDNS_ENOMEM;
	free(who_text);
	json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "controller",
	                        d->ctx.conf->controller.id, "action", "ack", "id", id, "reason",
	                        reason, "who", who, "result", ret < 0 ? "error" : "done");
	if (rec && ret < 0)
		json_object_set_new(rec, "detail", json_string(err));
	if (!rec || drdns_audit_append(d->ctx.conf->controller.audit_log, rec) < 0)
		drdns_log(DRDNS_LOG_ERR, "daemon", "audit log write failed path=%s",
		          d->ctx.conf->controller.audit_log);
	json_decref(rec);
	json_decref(who);
	if (ret < 0) {
		drdns_ctl_reply(req, drdns_error_reply("ack", DRDNS_EXIT_ERROR, "%s", err));
		return;
	}
	char msg[512];
	snprintf(msg, sizeof(msg), "acknowledged %s: it stops repeating until it clears", id);
	drdns_ctl_reply(req, json_pack("{s:i, s:s, s:s, s:s}", "exit", DRDNS_EXIT_OK, "command",
	                               "ack", "id", id, "message", msg));
}

static bool streq_null(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Re-read the configuration and the DR zone set.  On any error the running
 * configuration stays and err says why.  Returns 0 or an error. */
static int reload(struct daemon *d, char *err, size_t errlen)
{
	struct drdns_conf *old = d->ctx.conf, *conf = NULL;
	struct drdns_diag diag = {0};
	struct drdns_zoneset *dr = NULL;
	if (d->ctx.busy) {
		snprintf(err, errlen,
		         "a promotion or step-down is running; reload when it is done");
		return DRDNS_EBUSY;
	}
	sd_notify(0, "RELOADING=1");
	int ret = drdns_conf_load(old->path, &conf, &diag);
	if (ret == 0)
		ret = drdns_zoneset_load_checked(conf->zones.directory, conf->controller.ns_name,
		                                 &dr, &diag);
	drdns_zoneset_free(dr);
	const char *needs_restart = NULL;
	if (ret == 0) {
		if (strcmp(conf->controller.address, old->controller.address) ||
		    conf->controller.port != old->controller.port)
			needs_restart = "controller.address or controller.port";
		else if (strcmp(conf->controller.control_socket, old->controller.control_socket))
			needs_restart = "controller.control_socket";
		else if (strcmp(conf->controller.state_dir, old->controller.state_dir))
			needs_restart = "controller.state_dir";
		else if (!streq_null(conf->controller.pid_file, old->controller.pid_file))
			needs_restart = "controller.pid_file";
	}
	if (ret < 0 || needs_restart) {
		char *text = drdns_diag_join(&diag);
		if (needs_restart)
			snprintf(err, errlen,
			         "%s changed: that takes a restart of drdnsd; the running "
			         "configuration is unchanged",
			         needs_restart);
		else
			snprintf(err, errlen,
			         "%s is invalid; the running configuration is unchanged:\n%s",
			         old->path, text ? text : drdns_strerror(ret));
		free(text);
		drdns_diag_clear(&diag);
		drdns_conf_free(conf);
		sd_notify(0, "READY=1");
		return ret < 0 ? ret : DRDNS_ECONF;
	}
	drdns_diag_clear(&diag);
	struct drdns_conf **grown = realloc(d->retired, (d->n_retired + 1) * sizeof(*grown));
	if (!grown) {
		drdns_conf_free(conf);
		snprintf(err, errlen, "out of memory; the running configuration is unchanged");
		sd_notify(0, "READY=1");
		return DRDNS_ENOMEM;
	}
	d->retired = grown;
	d->retired[d->n_retired++] = old;
	d->ctx.conf = conf;
	if (d->ctx.server)
		drdns_server_set_conf(d->ctx.server, conf);
	if (d->ctx.watchdog)
		drdns_watchdog_reconf(d->ctx.watchdog);
	bool metrics_moved =
	    (conf->metrics.address == NULL) != (old->metrics.address == NULL) ||
	    (conf->metrics.address && (strcmp(conf->metrics.address, old->metrics.address) ||
	                               conf->metrics.port != old->metrics.port));
	if (metrics_moved) {
		drdns_metrics_stop(d->metrics);
		d->metrics = NULL;
		if (conf->metrics.address &&
		    drdns_metrics_start(conf->metrics.address, conf->metrics.port, &d->metrics) < 0)
			drdns_log(DRDNS_LOG_ERR, "daemon",
			          "metrics endpoint not available address=%s port=%u",
			          conf->metrics.address, conf->metrics.port);
	}
	drdns_log(DRDNS_LOG_NOTICE, "daemon", "configuration reloaded path=%s", conf->path);
	sd_notify(0, "READY=1");
	return 0;
}

static void handle_reload(struct daemon *d, struct drdns_ctl_request *req)
{
	char err[8192];
	int ret = reload(d, err, sizeof(err));
	if (ret < 0) {
		log_one_line("reload refused", err);
		drdns_ctl_reply(req, drdns_error_reply("reload", DRDNS_EXIT_ERROR, "%s", err));
		return;
	}
	drdns_ctl_reply(req,
	                json_pack("{s:i, s:s, s:s}", "exit", DRDNS_EXIT_OK, "command", "reload",
	                          "message", "configuration and DR zone set reloaded"));
}

static void handle_check(struct daemon *d, struct drdns_ctl_request *req)
{
	int ret = drdns_check_start(&d->ctx, reply_done, req);
	if (ret == DRDNS_EBUSY)
		drdns_ctl_reply(req, drdns_error_reply("check", DRDNS_EXIT_ERROR,
		                                       "a check is already running; try again when "
		                                       "it is done"));
	else if (ret < 0)
		drdns_ctl_reply(
		    req, drdns_error_reply("check", DRDNS_EXIT_ERROR, "%s", drdns_strerror(ret)));
}

static void handle_drill(struct daemon *d, struct drdns_ctl_request *req, const json_t *body,
                         const struct drdns_ctl_peer *peer)
{
	const json_t *zone = json_object_get(body, "zone");
	const json_t *reason = json_object_get(body, "reason");
	const json_t *wait = json_object_get(body, "wait");
	if (!flags_ok(req, body, "drill"))
		return;
	if ((zone && !json_is_string(zone)) || (reason && !json_is_string(reason))) {
		drdns_ctl_reply(req, drdns_error_reply("drill", DRDNS_EXIT_USAGE,
		                                       "zone and reason must be strings"));
		return;
	}
	ldns_rdf *dname = zone ? ldns_dname_new_frm_str(json_string_value(zone)) : NULL;
	bool zone_ok = !zone || (one_line(json_string_value(zone)) && *json_string_value(zone) &&
	                         dname && ldns_dname_label_count(dname) > 0);
	ldns_rdf_deep_free(dname);
	if (!zone_ok) {
		drdns_ctl_reply(req, drdns_error_reply("drill", DRDNS_EXIT_USAGE,
		                                       "the zone must be a domain name below the "
		                                       "root"));
		return;
	}
	if (reason && !one_line(json_string_value(reason))) {
		drdns_ctl_reply(req, drdns_error_reply("drill", DRDNS_EXIT_USAGE,
		                                       "the reason must be one line without "
		                                       "control characters"));
		return;
	}
	if (wait && (!json_is_number(wait) || !(json_number_value(wait) >= 0) ||
	             json_number_value(wait) > 1e7)) {
		drdns_ctl_reply(req, drdns_error_reply("drill", DRDNS_EXIT_USAGE,
		                                       "wait must be a number of seconds from 0 "
		                                       "to 1e7"));
		return;
	}
	json_t *who = who_from(body, peer);
	struct drdns_drill_opts opts = {
	    .zone = zone ? json_string_value(zone) : NULL,
	    .preflight_only = json_is_true(json_object_get(body, "preflight_only")),
	    .wait = wait ? json_number_value(wait) : -1,
	    .reason = reason ? json_string_value(reason) : NULL,
	    .who = who,
	};
	int ret = drdns_drill_start(&d->ctx, &opts, reply_done, req);
	json_decref(who);
	if (ret == DRDNS_EBUSY)
		drdns_ctl_reply(req, drdns_error_reply("drill", DRDNS_EXIT_ERROR,
		                                       "a promotion, step-down or drill is in "
		                                       "progress; nothing changed"));
	else if (ret < 0)
		drdns_ctl_reply(
		    req, drdns_error_reply("drill", DRDNS_EXIT_ERROR, "%s", drdns_strerror(ret)));
}

static void on_request(struct drdns_ctl_request *req, const json_t *body,
                       const struct drdns_ctl_peer *peer, void *arg)
{
	struct daemon *d = arg;
	const char *name = json_string_value(json_object_get(body, "command"));
	enum drdns_ctl_cmd cmd = drdns_ctl_cmd_parse(name ? name : "");
	if (d->stopping) {
		drdns_ctl_reply(req, drdns_error_reply(name ? name : "?", DRDNS_EXIT_ERROR,
		                                       "drdnsd is shutting down"));
		return;
	}
	switch (cmd) {
	case DRDNS_CMD_STATUS: {
		int ret = drdns_status_start(&d->ctx, reply_done, req);
		if (ret < 0)
			drdns_ctl_reply(req, drdns_error_reply("status", DRDNS_EXIT_ERROR, "%s",
			                                       drdns_strerror(ret)));
		break;
	}
	case DRDNS_CMD_PROMOTE: handle_promote(d, req, body, peer); break;
	case DRDNS_CMD_DEMOTE: handle_demote(d, req, body, peer); break;
	case DRDNS_CMD_PAUSE: handle_pause(d, req, body, peer, true); break;
	case DRDNS_CMD_RESUME: handle_pause(d, req, body, peer, false); break;
	case DRDNS_CMD_RELOAD: handle_reload(d, req); break;
	case DRDNS_CMD_CHECK: handle_check(d, req); break;
	case DRDNS_CMD_DRILL: handle_drill(d, req, body, peer); break;
	case DRDNS_CMD_RESIGN: handle_resign(d, req, body, peer); break;
	case DRDNS_CMD_ACK: handle_ack(d, req, body, peer); break;
	default:
		drdns_ctl_reply(req, drdns_error_reply(name ? name : "?", DRDNS_EXIT_USAGE,
		                                       "unknown command \"%s\"", name ? name : ""));
		break;
	}
}

/* ---- life cycle ---- */

static void on_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* The grace ran out.  Leaving now is safe: every await point of an operation
 * lies before its commit (nothing written yet) or after it (state.json and gen-N
 * are durable, and a restart resumes serving and re-sends NOTIFY). */
static void on_stop_timeout(uv_timer_t *t)
{
	struct daemon *d = t->data;
	drdns_log(DRDNS_LOG_NOTICE, "daemon",
	          "stopped with requests in flight abandoned promotion_in_flight=%s",
	          d->ctx.busy ? "yes" : "no");
	if (d->ctx.conf->controller.pid_file)
		unlink(d->ctx.conf->controller.pid_file);
	exit(0);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct daemon *d = sig->data;
	if (signum == SIGHUP) {
		char err[8192];
		if (!d->stopping && reload(d, err, sizeof(err)) < 0)
			log_one_line("reload refused", err);
		return;
	}
	if (d->stopping)
		return;
	d->stopping = true;
	sd_notify(0, "STOPPING=1");
	drdns_watchdog_stop(d->ctx.watchdog);
	drdns_metrics_stop(d->metrics);
	d->metrics = NULL;
	if (uv_is_active((uv_handle_t *)&d->sd_timer))
		uv_timer_stop(&d->sd_timer);
	drdns_log(DRDNS_LOG_NOTICE, "daemon", "stopping signal=%d", signum);
	/* In-flight requests cannot be cancelled (src/net has no cancel): wait for them a
	 * little, not for a whole NOTIFY backoff or --wait.  Unref'd: it does not keep
	 * the loop alive when everything ends sooner. */
	uv_timer_init(sig->loop, &d->stop_timer);
	d->stop_timer.data = d;
	uv_timer_start(&d->stop_timer, on_stop_timeout, STOP_GRACE_MS, 0);
	uv_unref((uv_handle_t *)&d->stop_timer);
	drdns_ctl_server_close(d->ctl);
	d->ctl = NULL;
	drdns_server_close(d->ctx.server, NULL, NULL);
	d->ctx.server = NULL;
	uv_signal_stop(&d->sigterm);
	uv_signal_stop(&d->sigint);
	uv_signal_stop(&d->sighup);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sighup, NULL);
}

/* On record: a restart resumed serving a committed promotion (which may have
 * been cut off right after its commit point, before its own audit records). */
static void audit_resume(const struct drdns_ctx *ctx)
{
	json_t *serials = json_object();
	for (size_t i = 0; serials && i < ctx->state->n_zones; i++)
		json_object_set_new(serials, ctx->state->zones[i].zone,
		                    json_integer(ctx->state->zones[i].serial));
	json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:s?, s:s?, s:o}", "controller",
	                        ctx->conf->controller.id, "action", "resume", "result", "serving",
	                        "generation", (json_int_t)ctx->state->generation, "reason",
	                        ctx->state->reason, "who", ctx->state->who, "serials",
	                        serials ? serials : json_object());
	if (!rec || drdns_audit_append(ctx->conf->controller.audit_log, rec) < 0)
		drdns_log(DRDNS_LOG_ERR, "daemon", "audit log write failed path=%s",
		          ctx->conf->controller.audit_log);
	json_decref(rec);
}

/* A multi-line message as one log line ("; " between lines). */
static void log_one_line(const char *what, const char *msg)
{
	char line[8192];
	size_t j = 0;
	for (const char *p = msg; *p && j + 3 < sizeof(line); p++) {
		if (*p == '\n') {
			if (p[1]) {
				line[j++] = ';';
				line[j++] = ' ';
			}
		} else {
			line[j++] = *p == '"' ? '\'' : *p;
		}
	}
	line[j] = 0;
	drdns_log(DRDNS_LOG_WARNING, "daemon", "%s error=\"%s\"", what, line);
}

static void on_round(const char *summary, void *arg)
{
	struct daemon *d = arg;
	sd_notifyf(0, "STATUS=%s", summary);
	if (d->metrics && d->ctx.watchdog) {
		char *text = drdns_watchdog_metrics(d->ctx.watchdog);
		if (text)
			drdns_metrics_publish(d->metrics, text);
		free(text);
	}
}

static void on_sd_timer(uv_timer_t *t)
{
	(void)t;
	sd_notify(0, "WATCHDOG=1");
}

static int write_pid_file(const char *path)
{
	char *dir = drdns_dirname(path); /* e.g. /run/drdns outside systemd */
	if (dir)
		drdns_mkdir_p(dir, 0755);
	free(dir);
	FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "%ld\n", (long)getpid());
	return fclose(f) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
	const char *config = DRDNS_SYSCONFDIR "/drdns.conf";
	bool foreground = false, check = false, verbose = false;
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"foreground", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"check", no_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "c:fvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'f': foreground = true; break;
		case 'v': verbose = true; break;
		case 'C': check = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("drdnsd %s\n", DRDNS_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "drdnsd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	struct drdns_diag diag = {0};
	struct drdns_conf *conf = NULL;
	struct drdns_zoneset *dr = NULL;
	int conf_ret = drdns_conf_load(config, &conf, &diag);
	int zone_ret = conf_ret == 0
	                   ? drdns_zoneset_load_checked(conf->zones.directory,
	                                                conf->controller.ns_name, &dr, &diag)
	                   : 0;
	bool ok = conf_ret == 0 && zone_ret == 0;
	if (check && ok && conf->drill.zone && !drdns_zoneset_find(dr, conf->drill.zone)) {
		drdns_diag_error(&diag,
		                 "%s: drill.zone %s is not in the DR set %s: add it there (and to "
		                 "every secondary), or drills run the pre-flight only",
		                 conf->path, conf->drill.zone, conf->zones.directory);
		ok = false;
	}
	for (size_t i = 0; check && ok && conf->dnssec.keys && i < dr->n; i++) {
		struct drdns_keyset *ks = NULL; /* a promotion would sign with these */
		if (drdns_keyset_load(conf->dnssec.keys, dr->zones[i]->name, &ks, &diag) < 0)
			zone_ret = DRDNS_EDNSSEC;
		drdns_keyset_free(ks);
	}
	ok = ok && zone_ret == 0;
	if (check && ok) { /* advisory: warnings, never a failure */
		drdns_zoneset_check_conf(dr, conf, &diag);
	}
	print_diag(&diag);
	drdns_diag_clear(&diag);
	if (check) {
		if (ok) {
			printf("%s: OK: configuration valid, %zu DR zone(s) valid in %s\n", config,
			       dr->n, conf->zones.directory);
			for (size_t i = 0; i < dr->n; i++) /* the operator's choice, per zone */
				if (drdns_rewrite_publishes_self(dr->zones[i],
				                                 conf->controller.ns_name))
					printf("  %s publishes %s as a public nameserver\n",
					       dr->zones[i]->name, conf->controller.ns_name);
				else
					printf("  %s does not publish drdns (MNAME only)\n",
					       dr->zones[i]->name);
			if (conf->master.key)
				printf(
				    "%s: failback hand-back: AXFR from the master %s TSIG-signed "
				    "with key %s (%s)\n",
				    config, conf->master.address, conf->master.key->name,
				    conf->master.tsig_key_file);
			else
				printf(
				    "%s: failback hand-back: AXFR from the master %s unsigned, "
				    "from %s (set master.tsig_key if the master requires TSIG)\n",
				    config, conf->master.address, conf->controller.address);
		} else
			fprintf(stderr, "%s: check failed\n", config);
		drdns_zoneset_free(dr);
		drdns_conf_free(conf);
		return ok ? 0 : 1;
	}
	drdns_zoneset_free(dr); /* validated; promotion reloads it fresh */
	if (conf_ret < 0) {
		fprintf(stderr,
		        "drdnsd: not starting: fix the errors above (drdnsd --check -c %s)\n",
		        config);
		drdns_conf_free(conf);
		return 1;
	}

	char err[512] = "";
	struct daemon d = {0};
	d.ctx.conf = conf;
	int ret = drdns_state_load(conf->controller.state_dir, &d.ctx.state, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "drdnsd: cannot read state: %s\n", err);
		drdns_conf_free(conf);
		return 1;
	}
	/* A broken zones-dr/ must not stop a promoted drdnsd from serving what it
	 * committed (gen-N): the secondaries depend on it.  In standby, refuse. */
	if (!ok && !d.ctx.state->promoted) {
		fprintf(stderr,
		        "drdnsd: not starting: fix the errors above (drdnsd --check -c %s)\n",
		        config);
		drdns_state_free(d.ctx.state);
		drdns_conf_free(conf);
		return 1;
	}
	if (!ok)
		fprintf(
		    stderr,
		    "drdnsd: warning: the DR zone set is invalid (above); starting anyway to keep "
		    "serving the committed generation %lu\n",
		    d.ctx.state->generation);
	struct drdns_zoneset *published = NULL;
	if (d.ctx.state->promoted) {
		ret = drdns_state_load_generation(conf->controller.state_dir,
		                                  d.ctx.state->generation, &published, &diag);
		if (ret < 0) {
			print_diag(&diag);
			fprintf(stderr,
			        "drdnsd: state says promoted but generation %lu cannot be loaded\n",
			        d.ctx.state->generation);
			drdns_diag_clear(&diag);
			drdns_state_free(d.ctx.state);
			drdns_conf_free(conf);
			return 1;
		}
	}
	/* Generations never committed are left-overs of an interrupted promotion. */
	drdns_state_gc(conf->controller.state_dir,
	               d.ctx.state->promoted ? d.ctx.state->generation : 0);

	if (!foreground && daemon(0, 0) < 0) {
		fprintf(stderr, "drdnsd: cannot daemonize: %s\n", strerror(errno));
		return 1;
	}
	drdns_log_init("drdnsd", !foreground, verbose ? DRDNS_LOG_DEBUG : DRDNS_LOG_INFO);
	if (!ok)
		drdns_log(DRDNS_LOG_WARNING, "daemon",
		          "dr zone set invalid dir=%s: serving the committed generation=%lu; "
		          "run drdnsd --check",
		          conf->zones.directory, d.ctx.state->generation);
	if (conf->controller.pid_file && (ret = write_pid_file(conf->controller.pid_file)) < 0)
		drdns_log(DRDNS_LOG_WARNING, "daemon", "cannot write pid file path=%s error=\"%s\"",
		          conf->controller.pid_file, drdns_strerror(ret));

	uv_loop_t loop;
	uv_loop_init(&loop);
	d.ctx.loop = &loop;
	int exit_code = 1;
	ret = drdns_server_new(&loop, conf, &d.ctx.server);
	drdns_failover_watch_refusals(&d.ctx); /* reports name refused transfers */
	if (ret < 0) {
		drdns_log(DRDNS_LOG_ERR, "daemon",
		          "cannot serve on address=%s port=%u error=\"%s\"",
		          conf->controller.address, conf->controller.port, drdns_strerror(ret));
		drdns_zoneset_free(published);
		goto out;
	}
	ret = drdns_ctl_server_new(&loop, conf->controller.control_socket, on_request, &d, &d.ctl);
	if (ret < 0) {
		drdns_log(DRDNS_LOG_ERR, "daemon",
		          "cannot open control socket path=%s error=\"%s\"",
		          conf->controller.control_socket, drdns_strerror(ret));
		drdns_zoneset_free(published);
		drdns_server_close(d.ctx.server, NULL, NULL);
		goto out;
	}
	if (published) {
		drdns_log(DRDNS_LOG_NOTICE, "daemon",
		          "resuming as primary generation=%lu zones=%zu", d.ctx.state->generation,
		          published->n);
		drdns_server_set_zones(d.ctx.server, published);
		audit_resume(&d.ctx);
		drdns_promote_resume_notify(&d.ctx);
	}
	uv_signal_init(&loop, &d.sigterm);
	uv_signal_init(&loop, &d.sigint);
	uv_signal_init(&loop, &d.sighup);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_signal_start(&d.sighup, on_signal, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	ret = drdns_watchdog_start(&d.ctx, on_round, &d, &d.ctx.watchdog);
	if (ret < 0)
		drdns_log(DRDNS_LOG_ERR, "daemon", "watchdog not started error=\"%s\"",
		          drdns_strerror(ret));
	if (conf->metrics.address &&
	    drdns_metrics_start(conf->metrics.address, conf->metrics.port, &d.metrics) < 0)
		drdns_log(DRDNS_LOG_ERR, "daemon",
		          "metrics endpoint not available address=%s port=%u",
		          conf->metrics.address, conf->metrics.port);
	uv_timer_init(&loop, &d.sd_timer);
	uint64_t wd_usec = 0;
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		uint64_t ms = wd_usec / 2000 ? wd_usec / 2000 : 1;
		uv_timer_start(&d.sd_timer, on_sd_timer, ms, ms);
	}
	uv_unref((uv_handle_t *)&d.sd_timer);
	sd_notify(0, "READY=1");
	drdns_log(DRDNS_LOG_NOTICE, "daemon", "started version=%s id=%s address=%s port=%u role=%s",
	          DRDNS_VERSION, conf->controller.id, conf->controller.address,
	          conf->controller.port, d.ctx.state->promoted ? "primary" : "standby");
	uv_run(&loop, UV_RUN_DEFAULT);
	exit_code = 0;
out:
	uv_walk(&loop, on_walk_close, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (conf->controller.pid_file)
		unlink(conf->controller.pid_file);
	drdns_metrics_stop(d.metrics);
	drdns_state_free(d.ctx.state);
	drdns_conf_free(d.ctx.conf);
	for (size_t i = 0; i < d.n_retired; i++)
		drdns_conf_free(d.retired[i]);
	free(d.retired);
	return exit_code;
}
