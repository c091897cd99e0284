/*
 * Refused transfers in the failover reports (see failover.h,
 * drdns_failover_watch_refusals): the glue between the server's refusal record
 * (server.h), the configuration (who is which secondary) and the convergence
 * watch (notify.h).
 */
#include "drdns/conf.h"
#include "drdns/failover.h"
#include "drdns/notify.h"
#include "drdns/server.h"
#include "drdns/xfr_acl.h"

#include <stdlib.h>

static uint64_t mark(void *arg)
{
	const struct drdns_ctx *ctx = arg;
	return drdns_server_refusals_mark(ctx->server);
}

bool drdns_failover_explain(const struct drdns_ctx *ctx, uint64_t since, const char *peer_name,
                            const char *const *zones, size_t n_zones,
                            struct drdns_xfr_explained *out)
{
	if (!ctx || !ctx->server || !ctx->conf)
		return false;
	struct drdns_xfr_refusal *list = calloc(DRDNS_XFR_REFUSALS_MAX, sizeof(*list));
	if (!list)
		return false;
	size_t n = drdns_server_refusals(ctx->server, since, list, DRDNS_XFR_REFUSALS_MAX);
	bool found = drdns_xfr_explain(ctx->conf, list, n, peer_name, zones, n_zones, out);
	free(list);
	return found;
}

static bool explain(void *arg, uint64_t since, const char *peer_name, const char *const *zones,
                    size_t n_zones, struct drdns_xfr_explained *out)
{
	return drdns_failover_explain(arg, since, peer_name, zones, n_zones, out);
}

void drdns_failover_watch_refusals(struct drdns_ctx *ctx)
{
	if (!ctx) {
		drdns_converge_set_refusals(NULL);
		return;
	}
	struct drdns_converge_refusals src = {.mark = mark, .explain = explain, .arg = ctx};
	drdns_converge_set_refusals(&src);
}
