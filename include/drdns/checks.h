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
 * (The comparison with the campus zone by AXFR is not here yet.)
 */
#ifndef DRDNS_CHECKS_H
#define DRDNS_CHECKS_H

#include <stddef.h>
#include <stdint.h>

struct drdns_zoneset;
struct drdns_diag;

struct drdns_check_input {
	uint32_t dr_ttl;
	const char *ns_name;         /* this controller's NS name */
	const char *const *known_ns; /* configured secondaries' NS names */
	size_t n_known;
};

#define DRDNS_EXPIRE_RECOMMENDED 604800u /* one week */

/* Run every check; returns the number of warnings added to diag. */
size_t drdns_zoneset_check(const struct drdns_zoneset *set, const struct drdns_check_input *in,
                           struct drdns_diag *diag);

#endif
