/*
 * Advisory checks on a valid DR zone set: things a DNS operator wants to know
 * before a disaster, none of which stops a promotion.  Each finding is one
 * warning in the collector ("<file>: zone <zone>: ..."):
 *   - an A or AAAA record whose address falls in one of the set's reverse
 *     zones but has no PTR there naming the host (mail and SSH check reverse
 *     DNS);
 *   - records whose TTL is above dr_ttl (they will be clamped at promotion);
 *   - SOA timers: EXPIRE below REFRESH + RETRY (the zone can expire before a
 *     retry), and EXPIRE below one week (little time to fail over);
 *   - apex NS targets outside the zone that are neither this controller, nor
 *     a configured secondary, nor given an address anywhere in the set: drdns
 *     can neither probe nor NOTIFY them.
 * (The comparison with the campus zone is compare.h; drdnsctl check runs it.)
 */
#ifndef DRDNS_CHECKS_H
#define DRDNS_CHECKS_H

#include <stddef.h>
#include <stdint.h>

struct drdns_zoneset;
struct drdns_diag;
struct drdns_conf;

struct drdns_check_input {
	uint32_t dr_ttl;
	const char *ns_name;         /* this controller's NS name */
	const char *const *known_ns; /* configured secondaries' NS names */
	size_t n_known;
};

#define DRDNS_EXPIRE_RECOMMENDED 604800u /* one week */

/* Load the DR set in dir (drdns_zoneset_load_dir) and check that every zone
 * can be promoted with ns_name (drdns_rewrite_check): the validation drdnsd
 * --check, reload and drdnsctl check share.  All or nothing: returns 0 and
 * *out (caller frees with drdns_zoneset_free), or an error with every problem
 * in diag (then *out is untouched). */
int drdns_zoneset_load_checked(const char *dir, const char *ns_name, struct drdns_zoneset **out,
                               struct drdns_diag *diag);

/* Run every check; returns the number of warnings added to diag. */
size_t drdns_zoneset_check(const struct drdns_zoneset *set, const struct drdns_check_input *in,
                           struct drdns_diag *diag);

/* The same, with the input taken from conf (dr_ttl, ns_name, the configured
 * secondaries' names). */
size_t drdns_zoneset_check_conf(const struct drdns_zoneset *set, const struct drdns_conf *conf,
                                struct drdns_diag *diag);

#endif
