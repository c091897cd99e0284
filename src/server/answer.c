/*
 * Queries (everything but transfers and NOTIFY) for the served zone set.
 */
#include "server_internal.h"

#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/log.h"
#include "drdns/serial.h"
#include "drdns/tsig.h"
#include "drdns/zone.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>
#include <openssl/crypto.h>

/* ------------------------------------------------------------ lookups */

/* The served zone containing name (longest match), or -1. */
ssize_t zone_for_name(const struct drdns_zoneset *set, const ldns_rdf *name, bool exact)
{
	ssize_t best = -1;
	size_t best_labels = 0;
	for (size_t i = 0; i < set->n; i++) {
		const ldns_rdf *o = set->zones[i]->origin;
		bool match = ldns_dname_compare(name, o) == 0 ||
		             (!exact && ldns_dname_is_subdomain(name, o));
		if (match && (best < 0 || ldns_dname_label_count(o) > best_labels)) {
			best = (ssize_t)i;
			best_labels = ldns_dname_label_count(o);
		}
	}
	return best;
}

static bool zone_sorted(struct zref *zr, size_t zi)
{
	if (zr->sorted[zi] == SORT_UNKNOWN) {
		const ldns_rr_list *l = zr->set->zones[zi]->rrs;
		size_t n = ldns_rr_list_rr_count(l);
		zr->sorted[zi] = SORT_YES;
		for (size_t i = 1; i < n; i++) {
			if (ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(l, i - 1)),
			                       ldns_rr_owner(ldns_rr_list_rr(l, i))) > 0) {
				zr->sorted[zi] = SORT_NO;
				break;
			}
		}
	}
	return zr->sorted[zi] == SORT_YES;
}

/* Push a clone of every record at name matching type (ANY: all) onto r's answer;
 * sets *exists when the name owns records or has descendants. */
static size_t answer_from_zone(struct zref *zr, size_t zi, const ldns_rdf *name, ldns_rr_type type,
                               ldns_pkt *r, bool *exists)
{
	const struct drdns_zone *z = zr->set->zones[zi];
	const ldns_rr_list *l = z->rrs;
	size_t n = ldns_rr_list_rr_count(l), added = 0;
	bool apex = ldns_dname_compare(name, z->origin) == 0;
	*exists = apex;
	if (apex && (type == LDNS_RR_TYPE_SOA || type == LDNS_RR_TYPE_ANY)) {
		ldns_rr *c = ldns_rr_clone(z->soa);
		if (c && ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, c))
			added++;
		else
			ldns_rr_free(c);
	}
	size_t lo = 0, hi = n;
	bool sorted = zone_sorted(zr, zi);
	if (sorted) {
		while (lo < hi) { /* first owner >= name */
			size_t mid = lo + (hi - lo) / 2;
			if (ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(l, mid)), name) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		hi = n;
	}
	const ldns_rr *cname = NULL;
	for (size_t i = lo; i < hi; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(l, i);
		if (ldns_dname_compare(ldns_rr_owner(rr), name) != 0) {
			if (sorted)
				break;
			continue;
		}
		*exists = true;
		ldns_rr_type t = ldns_rr_get_type(rr);
		if (t == type || type == LDNS_RR_TYPE_ANY) {
			ldns_rr *c = ldns_rr_clone(rr);
			if (c && ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, c))
				added++;
			else
				ldns_rr_free(c);
		} else if (t == LDNS_RR_TYPE_CNAME) {
			cname = rr;
		}
	}
	/* A name that owns nothing still exists (NODATA, not NXDOMAIN) when it has
	 * descendants: an empty non-terminal.  Only then is the (allocating)
	 * subdomain test needed; in canonical order the first descendant sits at lo. */
	size_t from = sorted ? lo : 0, to = sorted && lo < n ? lo + 1 : n;
	for (size_t i = from; !*exists && i < to; i++)
		if (ldns_dname_is_subdomain(ldns_rr_owner(ldns_rr_list_rr(l, i)), name))
			*exists = true;
	if (!added && cname) {
		ldns_rr *c = ldns_rr_clone(cname);
		if (c && ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, c))
			added++;
		else
			ldns_rr_free(c);
	}
	return added;
}

/* SOA for a negative answer: TTL is min(SOA TTL, MINIMUM) (RFC 2308 3). */
static void push_negative_soa(ldns_pkt *r, const struct drdns_zone *z)
{
	ldns_rr *soa = ldns_rr_clone(z->soa);
	if (!soa)
		return;
	const ldns_rdf *min = ldns_rr_rdf(soa, 6);
	if (min && ldns_rdf_size(min) == 4 && ldns_rdf2native_int32(min) < ldns_rr_ttl(soa))
		ldns_rr_set_ttl(soa, ldns_rdf2native_int32(min));
	if (!ldns_pkt_push_rr(r, LDNS_SECTION_AUTHORITY, soa))
		ldns_rr_free(soa);
}

int answer_query(struct reqctx *rq, const ldns_rr *question, uint8_t **out, size_t *len)
{
	struct zref *zr = serving(rq->srv);
	const ldns_rdf *name = ldns_rr_owner(question);
	ssize_t zi = zone_for_name(zr->set, name, false);
	if (zi < 0)
		return reply_rcode(rq, LDNS_RCODE_REFUSED, out, len);
	const struct drdns_zone *z = zr->set->zones[zi];
	ldns_pkt *r = resp_new(rq->q, LDNS_RCODE_NOERROR);
	if (!r)
		return DRDNS_ENOMEM;
	ldns_pkt_set_aa(r, true);
	bool exists = false;
	if (!answer_from_zone(zr, (size_t)zi, name, ldns_rr_get_type(question), r, &exists)) {
		if (!exists)
			ldns_pkt_set_rcode(r, LDNS_RCODE_NXDOMAIN);
		push_negative_soa(r, z);
	}
	return srv_finish(rq, r, out, len);
}
