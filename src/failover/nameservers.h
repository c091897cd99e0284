/*
 * The nameservers the controller talks to: the master first, then every
 * configured secondary, then NS targets of the DR zones that are not configured
 * but have in-zone glue.  Addresses come from the configuration first (it knows
 * how this host reaches a secondary), then from glue.
 * Private to src/failover.
 */
#ifndef DRDNS_FAILOVER_NAMESERVERS_H
#define DRDNS_FAILOVER_NAMESERVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_conf;
struct drdns_zoneset;
struct drdns_secondary;
struct drdns_soa_target;

struct drdns_nameserver {
	char *name;    /* "master" or an NS name with trailing dot (owned) */
	char *address; /* (owned) */
	uint16_t port;
	bool is_master;
	const struct drdns_secondary *secondary; /* configured secondary, or NULL */
};

struct drdns_nameservers {
	struct drdns_nameserver *list; /* list[0] is the master */
	size_t n;
};

int drdns_nameservers_build(const struct drdns_conf *conf, const struct drdns_zoneset *set,
                            struct drdns_nameservers *out);
void drdns_nameservers_clear(struct drdns_nameservers *ns);

/* SOA targets: every nameserver x every zone, nameserver-major (result index =
 * ns_index * set->n + zone_index).  *targets is newly allocated; its strings point
 * into ns and set. */
int drdns_nameservers_targets(const struct drdns_nameservers *ns, const struct drdns_zoneset *set,
                              struct drdns_soa_target **targets, size_t *n);

#endif
