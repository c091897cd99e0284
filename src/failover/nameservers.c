#include "nameservers.h"
#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/probe.h"
#include "drdns/zone.h"

#include <stdlib.h>
#include <string.h>

static int push(struct drdns_nameservers *ns, const char *name, const char *address, uint16_t port,
                bool is_master, const struct drdns_secondary *sec)
{
	struct drdns_nameserver *grown = realloc(ns->list, (ns->n + 1) * sizeof(*grown));
	if (!grown)
		return DRDNS_ENOMEM;
	ns->list = grown;
	struct drdns_nameserver *e = &ns->list[ns->n];
	e->name = strdup(name);
	e->address = strdup(address);
	e->port = port;
	e->is_master = is_master;
	e->secondary = sec;
	if (!e->name || !e->address) {
		free(e->name);
		free(e->address);
		return DRDNS_ENOMEM;
	}
	ns->n++;
	return 0;
}

static bool known(const struct drdns_nameservers *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (!strcasecmp(ns->list[i].name, name))
			return true;
	return false;
}

int drdns_nameservers_build(const struct drdns_conf *conf, const struct drdns_zoneset *set,
                            struct drdns_nameservers *out)
{
	memset(out, 0, sizeof(*out));
	int ret = push(out, "master", conf->master.address, conf->master.port, true, NULL);
	for (size_t i = 0; ret == 0 && i < conf->n_secondaries; i++) {
		const struct drdns_secondary *s = &conf->secondaries[i];
		ret = push(out, s->name, s->address, s->port, false, s);
	}
	for (size_t z = 0; ret == 0 && set && z < set->n; z++) {
		char **names = NULL;
		size_t n = drdns_zone_ns_names(set->zones[z], &names);
		for (size_t i = 0; i < n; i++) {
			if (ret == 0 && strcasecmp(names[i], conf->controller.ns_name) &&
			    !known(out, names[i])) {
				/* glue from any zone of the set */
				char *addr = NULL;
				for (size_t g = 0; g < set->n && !addr; g++)
					addr = drdns_zone_glue_address(set->zones[g], names[i]);
				if (addr)
					ret = push(out, names[i], addr, 53, false, NULL);
				free(addr);
			}
			free(names[i]);
		}
		free(names);
	}
	if (ret < 0)
		drdns_nameservers_clear(out);
	return ret;
}

void drdns_nameservers_clear(struct drdns_nameservers *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		free(ns->list[i].name);
		free(ns->list[i].address);
	}
	free(ns->list);
	ns->list = NULL;
	ns->n = 0;
}

int drdns_nameservers_targets(const struct drdns_nameservers *ns, const struct drdns_zoneset *set,
                              struct drdns_soa_target **targets, size_t *n)
{
	size_t count = ns->n * set->n;
	struct drdns_soa_target *t = calloc(count ? count : 1, sizeof(*t));
	if (!t)
		return DRDNS_ENOMEM;
	for (size_t i = 0; i < ns->n; i++)
		for (size_t z = 0; z < set->n; z++) {
			struct drdns_soa_target *e = &t[i * set->n + z];
			e->label = ns->list[i].name;
			e->address = ns->list[i].address;
			e->port = ns->list[i].port;
			e->zone = set->zones[z]->name;
		}
	*targets = t;
	*n = count;
	return 0;
}
