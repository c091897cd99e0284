/*
 * Persistent controller state in controller.state_dir.
 *
 *   state.json       the role and what was published; replaced atomically
 *                    (temp file, fsync, rename, fsync dir).  Writing it is the
 *                    commit point of a promotion.
 *   gen-<N>/         one directory per published DR zone set ("generation"),
 *                    fully written and fsynced before state.json names it.
 *
 * A crash before the commit leaves an unreferenced gen-* directory, removed at
 * the next start (the promotion rolled back: nothing was served from it); a
 * crash after it restarts serving the committed set (the promotion resumes with
 * NOTIFY).  Serials are never bumped twice for one promotion.
 */
#ifndef DRDNS_STATE_H
#define DRDNS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drdns/alerts.h"

struct drdns_zoneset;
struct drdns_diag;

struct drdns_state_zone {
	char *zone;      /* owned */
	uint32_t serial; /* serial published by the DR primary */
};

/* What the watchdog knows about the master's last contact per zone (so the
 * expiry guard survives a restart during an outage). */
struct drdns_state_contact {
	char *zone;      /* owned */
	double last_ok;  /* unix time the master last answered it */
	uint32_t expire; /* its SOA EXPIRE and REFRESH then */
	uint32_t refresh;
};

struct drdns_state {
	bool promoted;
	unsigned long generation;       /* gen-<generation> when promoted, else 0 */
	int64_t changed_at;             /* unix time of the last role change */
	char *reason;                   /* owned, may be NULL */
	char *who;                      /* owned, may be NULL */
	struct drdns_state_zone *zones; /* published serials, n_zones, owned */
	size_t n_zones;
	/* the last serial observed per zone on the master or a secondary, so a later
	 * promotion never goes below what was once seen (owned) */
	struct drdns_state_zone *seen;
	size_t n_seen;
	int64_t last_promotion_at; /* unix time of the last committed promotion, 0: never */
	/* drdnsctl pause: automatic actions off until resume (strings owned) */
	bool paused;
	int64_t paused_at;
	char *paused_by;
	char *paused_reason;
	struct drdns_state_contact *contact; /* n_contact, owned */
	size_t n_contact;
	/* the watchdog's acknowledgeable alerts (alerts.h), so a restart neither
	 * raises them again nor forgets who acknowledged them (owned, with their
	 * strings; `restored` is not saved) */
	struct drdns_alert *alerts;
	size_t n_alerts;
};

/* Read state_dir/state.json; a missing file gives a fresh (not promoted) state.
 * A corrupt file is DRDNS_ESTATE with a message in err.  Caller frees. */
int drdns_state_load(const char *state_dir, struct drdns_state **out, char *err, size_t errlen);
int drdns_state_save(const char *state_dir, const struct drdns_state *st);
void drdns_state_free(struct drdns_state *st);

/* Write every zone of set into a new gen-<N> directory (N = the highest existing
 * generation + 1), fsynced.  Returns 0 and *generation. */
int drdns_state_write_generation(const char *state_dir, const struct drdns_zoneset *set,
                                 unsigned long *generation);
/* Load the zone files of gen-<generation>. */
int drdns_state_load_generation(const char *state_dir, unsigned long generation,
                                struct drdns_zoneset **out, struct drdns_diag *diag);
/* Remove every gen-* directory except keep (0 = remove all). */
void drdns_state_gc(const char *state_dir, unsigned long keep);

/* Record a seen serial for zone (keeps the RFC 1982 greatest). */
void drdns_state_note_seen(struct drdns_state *st, const char *zone, uint32_t serial);
/* Record the master's last contact with zone (replaces the zone's entry).
 * Returns 0 or DRDNS_ENOMEM. */
int drdns_state_note_contact(struct drdns_state *st, const char *zone, double last_ok,
                             uint32_t expire, uint32_t refresh);
/* Replace st's alerts with copies of the n in list (0 or DRDNS_ENOMEM: then st
 * is unchanged). */
int drdns_state_set_alerts(struct drdns_state *st, const struct drdns_alert *list, size_t n);
/* Published serial of zone, or false. */
bool drdns_state_published(const struct drdns_state *st, const char *zone, uint32_t *serial);

#endif
