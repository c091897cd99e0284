/*
 * The watchdog's failure detector and state machine (see detector.h).  Pure:
 * every input, the time included, arrives in a struct drdns_round.
 */
#include "drdns/detector.h"

#include "drdns/error.h"
#include "drdns/serial.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_CAP 16 /* retry_after doubles up to this factor */

static const char *const state_names[] = {
    [DRDNS_WD_NORMAL] = "NORMAL",           [DRDNS_WD_SUSPECT] = "SUSPECT",
    [DRDNS_WD_MASTER_DOWN] = "MASTER_DOWN", [DRDNS_WD_ISOLATED] = "ISOLATED",
    [DRDNS_WD_PROMOTING] = "PROMOTING",     [DRDNS_WD_PROMOTED] = "PROMOTED",
    [DRDNS_WD_DEMOTING] = "DEMOTING",
};

static const char *const alert_names[DRDNS_ALERT_N] = {
    [DRDNS_ALERT_MASTER_DOWN] = "master_down",
    [DRDNS_ALERT_ISOLATED] = "isolated",
    [DRDNS_ALERT_MASTER_DEGRADED] = "master_degraded",
    [DRDNS_ALERT_MANUAL_NEEDED] = "manual_needed",
    [DRDNS_ALERT_PAUSED_WHILE_DOWN] = "paused_while_down",
    [DRDNS_ALERT_BLOCKED] = "blocked",
    [DRDNS_ALERT_EXPIRY] = "expiry",
    [DRDNS_ALERT_PROMOTE_FAILED] = "promote_failed",
    [DRDNS_ALERT_MASTER_RETURNED] = "master_returned",
    [DRDNS_ALERT_MASTER_AHEAD] = "master_ahead",
};

const char *drdns_wd_state_name(enum drdns_wd_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) && state_names[s]
	           ? state_names[s]
	           : "UNKNOWN";
}

const char *drdns_alert_kind_name(enum drdns_alert_kind k)
{
	return (unsigned)k < DRDNS_ALERT_N ? alert_names[k] : "unknown";
}

void drdns_detector_init(struct drdns_detector *d, const struct drdns_detector_conf *conf)
{
	memset(d, 0, sizeof(*d));
	d->conf = *conf;
	d->state = DRDNS_WD_NORMAL;
}

void drdns_detector_free(struct drdns_detector *d)
{
	for (size_t i = 0; i < d->n_zones; i++)
		free(d->zones[i].zone);
	free(d->zones);
	d->zones = NULL;
	d->n_zones = 0;
}

void drdns_detector_set_conf(struct drdns_detector *d, const struct drdns_detector_conf *conf)
{
	d->conf = *conf;
}

void drdns_detector_set_paused(struct drdns_detector *d, bool paused)
{
	d->paused = paused;
}

static struct drdns_detector_zone *find_zone(struct drdns_detector *d, const char *zone, bool add)
{
	for (size_t i = 0; i < d->n_zones; i++)
		if (!strcmp(d->zones[i].zone, zone))
			return &d->zones[i];
	if (!add)
		return NULL;
	struct drdns_detector_zone *grown = realloc(d->zones, (d->n_zones + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	d->zones = grown;
	struct drdns_detector_zone *z = &d->zones[d->n_zones];
	memset(z, 0, sizeof(*z));
	if (!(z->zone = strdup(zone)))
		return NULL;
	d->n_zones++;
	return z;
}

int drdns_detector_restore_zone(struct drdns_detector *d, const char *zone, double last_ok,
                                uint32_t expire, uint32_t refresh)
{
	struct drdns_detector_zone *z = find_zone(d, zone, true);
	if (!z)
		return DRDNS_ENOMEM;
	z->current = true; /* until a round says which zones are current */
	if (last_ok > z->last_ok) {
		z->last_ok = last_ok;
		z->reported_ok = last_ok;
		z->expire = expire;
		z->refresh = refresh;
	}
	return 0;
}

static double zone_soa_deadline(const struct drdns_detector_zone *z)
{
	return z->last_ok > 0 && z->expire != 0
	           ? z->last_ok - (double)z->refresh + (double)z->expire
	           : 0;
}

static double zone_deadline(const struct drdns_detector_zone *z)
{
	double soa = zone_soa_deadline(z);
	if (z->rrsig_dark > 0 && (soa == 0 || z->rrsig_dark < soa))
		return z->rrsig_dark;
	return soa;
}

double drdns_detector_zone_deadline(const struct drdns_detector *d, const char *zone)
{
	for (size_t i = 0; i < d->n_zones; i++)
		if (!strcmp(d->zones[i].zone, zone))
			return zone_deadline(&d->zones[i]);
	return 0;
}

double drdns_detector_zone_expire_deadline(const struct drdns_detector *d, const char *zone)
{
	for (size_t i = 0; i < d->n_zones; i++)
		if (!strcmp(d->zones[i].zone, zone))
			return zone_soa_deadline(&d->zones[i]);
	return 0;
}

double drdns_detector_deadline(const struct drdns_detector *d, const char **zone)
{
	double best = 0;
	if (zone)
		*zone = NULL;
	for (size_t i = 0; i < d->n_zones; i++) {
		if (!d->zones[i].current)
			continue;
		double dl = zone_deadline(&d->zones[i]);
		if (dl > 0 && (best == 0 || dl < best)) {
			best = dl;
			if (zone)
				*zone = d->zones[i].zone;
		}
	}
	return best;
}

static void iso_time(double t, char *buf, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&s, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "%.0f", t);
}

/* Set alert condition k for this round, with its text. */
__attribute__((format(printf, 4, 5))) static void
cond(struct drdns_detector *d, unsigned *conds, enum drdns_alert_kind k, const char *fmt, ...)
{
	*conds |= 1u << k;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->alert_msg[k], sizeof(d->alert_msg[k]), fmt, ap);
	va_end(ap);
}

static bool is_standby_down(enum drdns_wd_state s)
{
	return s == DRDNS_WD_MASTER_DOWN || s == DRDNS_WD_ISOLATED;
}

/* Track each zone's last OK contact; returns whether it is worth persisting. */
static bool track_contact(struct drdns_detector *d, const struct drdns_round *r)
{
	bool changed = false;
	for (size_t i = 0; i < d->n_zones; i++)
		d->zones[i].current = false;
	for (size_t i = 0; i < r->n_zones; i++) {
		const struct drdns_round_zone *rz = &r->zones[i];
		struct drdns_detector_zone *z = find_zone(d, rz->zone, true);
		if (!z)
			continue; /* out of memory: the guard knows less, nothing breaks */
		z->current = true;
		z->rrsig_dark = rz->rrsig_dark;
		if (rz->master == DRDNS_MASTER_OK || rz->contact) {
			bool report = z->last_ok <= 0 || z->expire != rz->expire ||
			              z->refresh != rz->refresh ||
			              r->now - z->reported_ok >= DRDNS_CONTACT_SAVE;
			z->last_ok = r->now;
			z->expire = rz->expire;
			z->refresh = rz->refresh;
			z->ok_last_round = true;
			if (report) {
				z->reported_ok = r->now;
				changed = true;
			}
		} else {
			if (z->ok_last_round) {
				z->reported_ok = z->last_ok;
				changed = true; /* last_ok is final for this outage */
			}
			z->ok_last_round = false;
		}
	}
	return changed;
}

/* The standby health state after this round's streaks. */
static enum drdns_wd_state standby_state(const struct drdns_detector *d,
                                         const struct drdns_round *r, bool alive)
{
	enum drdns_wd_state prev = d->state;
	if (alive) {
		if (is_standby_down(prev) && d->ok_streak < d->conf.recover_after)
			return prev;
		return DRDNS_WD_NORMAL;
	}
	if (d->fail_streak < d->conf.fail_after)
		return is_standby_down(prev) ? prev : DRDNS_WD_SUSPECT;
	bool majority = r->secondaries_answered * 2 > r->secondaries_total;
	return majority ? DRDNS_WD_MASTER_DOWN : DRDNS_WD_ISOLATED;
}

static void decide_standby(struct drdns_detector *d, const struct drdns_round *r, bool alive,
                           unsigned *conds, struct drdns_decision *out)
{
	const struct drdns_detector_conf *c = &d->conf;
	char when[32];
	const char *dz = NULL;
	double deadline = drdns_detector_deadline(d, &dz);
	bool guard_due = deadline > 0 && r->now >= deadline - c->expire_margin;

	if (guard_due && !alive) {
		iso_time(deadline, when, sizeof(when));
		const struct drdns_detector_zone *z = find_zone(d, dz, false);
		bool rrsig = z && z->rrsig_dark > 0 && deadline >= z->rrsig_dark;
		cond(d, conds, DRDNS_ALERT_EXPIRY,
		     "zone %s %s from %s (%.0f s left, expire_margin %.0f s)", dz,
		     rrsig ? "goes dark when its RRSIGs expire" : "may expire on the secondaries",
		     when, deadline - r->now, c->expire_margin);
	}
	if (d->state == DRDNS_WD_ISOLATED) {
		cond(d, conds, DRDNS_ALERT_ISOLATED,
		     "the master and %zu of %zu secondaries do not answer: this controller seems "
		     "cut off, so it will not promote",
		     r->secondaries_total - r->secondaries_answered, r->secondaries_total);
		return;
	}
	if (d->state != DRDNS_WD_MASTER_DOWN)
		return;
	iso_time(d->down_since, when, sizeof(when));
	cond(d, conds, DRDNS_ALERT_MASTER_DOWN,
	     "the master has not answered since %s (%d rounds); %zu of %zu secondaries answer",
	     when, d->fail_streak, r->secondaries_answered, r->secondaries_total);
	if (d->failures > 0)
		cond(d, conds, DRDNS_ALERT_PROMOTE_FAILED,
		     "%d automatic promotion attempt(s) failed; next attempt in %.0f s",
		     d->failures, d->retry_at > r->now ? d->retry_at - r->now : 0.0);
	if (d->fail_streak < c->fail_after) /* answered again lately: recovering */
		return;
	if (!c->auto_promote) {
		cond(d, conds, DRDNS_ALERT_MANUAL_NEEDED,
		     "the master is down and auto_promote is off: run drdnsctl promote if the "
		     "campus is really lost");
		return;
	}
	if (d->paused) {
		cond(d, conds, DRDNS_ALERT_PAUSED_WHILE_DOWN,
		     "the master is down and the watchdog is paused: it will not promote (drdnsctl "
		     "resume, or drdnsctl promote)");
		return;
	}
	if (r->last_promotion_at > 0 && r->now - r->last_promotion_at < c->block_after_failover) {
		iso_time(r->last_promotion_at + c->block_after_failover, when, sizeof(when));
		cond(d, conds, DRDNS_ALERT_BLOCKED,
		     "the master is down, but the last failover was %.0f s ago: no automatic "
		     "failover before %s (block_after_failover)",
		     r->now - r->last_promotion_at, when);
		return;
	}
	bool long_enough = r->now - d->down_since >= c->promote_after;
	if (!long_enough && !guard_due)
		return;
	if (r->busy || d->promote_in_flight || r->now < d->retry_at)
		return;
	out->action = DRDNS_WD_PROMOTE;
	iso_time(d->down_since, when, sizeof(when));
	if (long_enough)
		snprintf(out->reason, sizeof(out->reason),
		         "watchdog: the master has not answered since %s (%d rounds, %.0f s); %zu "
		         "of %zu secondaries answer",
		         when, d->fail_streak, r->now - d->down_since, r->secondaries_answered,
		         r->secondaries_total);
	else
		snprintf(out->reason, sizeof(out->reason),
		         "watchdog: expiry guard: zone %s may expire in %.0f s; the master has not "
		         "answered since %s",
		         dz, deadline - r->now, when);
	d->promote_in_flight = true;
	d->state = DRDNS_WD_PROMOTING;
}

static void decide_promoted(struct drdns_detector *d, const struct drdns_round *r, bool alive,
                            bool all_ok, unsigned *conds, struct drdns_decision *out)
{
	if (!alive) {
		d->ahead_streak = 0;
		return;
	}
	/* The master answers again.  Which zones is it ahead on? */
	bool ahead = all_ok && r->n_zones > 0, followed = true;
	const struct drdns_round_zone *behind = NULL;
	for (size_t i = 0; i < r->n_zones; i++) {
		const struct drdns_round_zone *z = &r->zones[i];
		bool z_ahead = z->master == DRDNS_MASTER_OK && z->has_published &&
		               drdns_serial_gt(z->master_serial, z->published_serial);
		if (!z_ahead) {
			ahead = false;
			if (!behind && z->master == DRDNS_MASTER_OK && z->has_published)
				behind = z;
		}
		followed = followed && z->secondaries_at_master;
	}
	if (!ahead) {
		d->ahead_streak = 0;
		if (behind) {
			uint32_t target, mid;
			bool two_step;
			drdns_serial_failback(behind->master_serial, behind->published_serial,
			                      &target, &two_step, &mid);
			cond(
			    d, conds, DRDNS_ALERT_MASTER_RETURNED,
			    "the master answers again while this controller is the primary: zone "
			    "%s "
			    "is at %u on the master, %u here; to fail back the master must publish "
			    "%u or more%s; this controller keeps serving until then (drdnsctl "
			    "demote "
			    "checks this)",
			    behind->zone, behind->master_serial, behind->published_serial, target,
			    two_step ? " in two steps" : "");
		} else {
			cond(d, conds, DRDNS_ALERT_MASTER_RETURNED,
			     "the master answers again while this controller is the primary");
		}
		return;
	}
	d->ahead_streak++;
	cond(d, conds, DRDNS_ALERT_MASTER_AHEAD,
	     "the master serves newer serials than the DR set on every zone: the secondaries "
	     "fail back to it%s",
	     d->conf.auto_demote || followed
	         ? ""
	         : "; this controller steps down once every secondary has followed "
	           "(drdnsctl demote does it now)");
	if (d->ahead_streak < d->conf.recover_after || d->paused || d->stepdown_in_flight ||
	    r->busy)
		return;
	if (!d->conf.auto_demote && !followed)
		return;
	out->action = DRDNS_WD_STEPDOWN;
	snprintf(out->reason, sizeof(out->reason),
	         "watchdog: the master is back and ahead of the DR serial on every zone for %d "
	         "rounds%s",
	         d->ahead_streak, followed ? ", and the secondaries follow it" : " (auto_demote)");
	d->stepdown_in_flight = true;
	d->state = DRDNS_WD_DEMOTING;
}

void drdns_detector_round(struct drdns_detector *d, const struct drdns_round *r,
                          struct drdns_decision *out)
{
	memset(out, 0, sizeof(*out));
	enum drdns_wd_state prev = d->state;
	d->last_round = r->now;
	out->contact_changed = track_contact(d, r);

	bool alive = false, all_ok = r->n_zones > 0;
	for (size_t i = 0; i < r->n_zones; i++) {
		alive = alive || r->zones[i].master != DRDNS_MASTER_SILENT;
		all_ok = all_ok && r->zones[i].master == DRDNS_MASTER_OK;
	}
	if (r->n_zones == 0) /* nothing to probe: no information, change nothing */
		return;
	if (alive) {
		d->ok_streak++;
		d->fail_streak = 0;
	} else {
		d->ok_streak = 0;
		if (d->fail_streak++ == 0)
			d->down_since = r->now;
	}

	unsigned conds = 0;
	if (alive && !all_ok)
		cond(d, &conds, DRDNS_ALERT_MASTER_DEGRADED,
		     "the master answers, but not with an authoritative SOA over both UDP and TCP "
		     "for every zone");
	if (r->promoted) {
		d->promote_in_flight = false;
		if (!r->busy)
			d->stepdown_in_flight = false;
		d->state = d->stepdown_in_flight ? DRDNS_WD_DEMOTING : DRDNS_WD_PROMOTED;
		decide_promoted(d, r, alive, all_ok, &conds, out);
	} else if (r->busy && d->stepdown_in_flight) { /* committed, still notifying */
		d->state = DRDNS_WD_DEMOTING;
	} else if (r->busy || d->promote_in_flight) {
		d->state = DRDNS_WD_PROMOTING;
		d->stepdown_in_flight = false;
	} else {
		d->stepdown_in_flight = false;
		d->ahead_streak = 0;
		if (prev == DRDNS_WD_PROMOTING || prev == DRDNS_WD_PROMOTED ||
		    prev == DRDNS_WD_DEMOTING)
			d->state = DRDNS_WD_NORMAL; /* re-derive from the streaks alone */
		d->state = standby_state(d, r, alive);
		if (d->state == DRDNS_WD_NORMAL) {
			d->failures = 0; /* a new outage starts with a clean slate */
			d->retry_at = 0;
		}
		decide_standby(d, r, alive, &conds, out);
	}
	out->raised = conds & ~d->active;
	d->active = conds;
	out->state_changed = d->state != prev;
}

void drdns_detector_promotion_done(struct drdns_detector *d, double now, bool committed)
{
	d->promote_in_flight = false;
	if (committed) {
		d->failures = 0;
		d->retry_at = 0;
		d->state = DRDNS_WD_PROMOTED;
		return;
	}
	double factor = 1;
	for (int i = 1; i < d->failures + 1 && factor < RETRY_CAP; i++)
		factor *= 2;
	d->failures++;
	d->retry_at = now + d->conf.retry_after * factor;
	d->active &= ~(1u << DRDNS_ALERT_PROMOTE_FAILED); /* raise it again */
	if (d->state == DRDNS_WD_PROMOTING)
		d->state = d->fail_streak >= d->conf.fail_after ? DRDNS_WD_MASTER_DOWN
		           : d->fail_streak > 0                 ? DRDNS_WD_SUSPECT
		                                                : DRDNS_WD_NORMAL;
}

void drdns_detector_promotion_abandoned(struct drdns_detector *d)
{
	d->promote_in_flight = false;
	if (d->state == DRDNS_WD_PROMOTING)
		d->state = d->fail_streak >= d->conf.fail_after ? DRDNS_WD_MASTER_DOWN
		           : d->fail_streak > 0                 ? DRDNS_WD_SUSPECT
		                                                : DRDNS_WD_NORMAL;
}

void drdns_detector_stepdown_done(struct drdns_detector *d, double now, bool done)
{
	(void)now;
	d->stepdown_in_flight = false;
	d->ahead_streak = 0;
	d->state = done ? DRDNS_WD_NORMAL : DRDNS_WD_PROMOTED;
}
