/*
 * The alert book (see alerts.h).  Pure: the caller passes the time.
 *
 * Where the contract leaves a choice, this is the reading taken:
 *  - sync: when an id is held twice in one call, the first occurrence counts
 *    (its message) and the later ones are skipped; skipping all of them would
 *    clear an alert whose condition does hold.  A NULL message is "".
 *  - sync: an alert that is overdue by several repeat periods gets one RUN,
 *    not a burst of catch-up runs; last_sent becomes now.
 *  - ESCALATE comes with the first RUN whose repeat is >= escalate_after, so
 *    an alert already past a lowered escalate_after (set_conf, restore)
 *    escalates at its next RUN instead of never.
 *  - ack: who/reason are checked before the id, so a missing reason is
 *    reported the same way whatever the book holds.  Active ids that do not
 *    fit in err are cut off (the text stays NUL-terminated).
 *  - restore: acked_by/ack_reason are ignored when the alert is not acked;
 *    when it is acked a missing one is stored as "", so readers of an acked
 *    alert never meet NULL and the acknowledgement is not lost.
 */
#include "drdns/alerts.h"

#include "drdns/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void drdns_alertbook_init(struct drdns_alertbook *b, const struct drdns_alertbook_conf *conf)
{
	memset(b, 0, sizeof(*b));
	b->conf = *conf;
}

static void alert_free(struct drdns_alert *a)
{
	free(a->id);
	free(a->message);
	free(a->acked_by);
	free(a->ack_reason);
}

void drdns_alertbook_free(struct drdns_alertbook *b)
{
	for (size_t i = 0; i < b->n; i++)
		alert_free(&b->alerts[i]);
	free(b->alerts);
	b->alerts = NULL;
	b->n = 0;
}

void drdns_alertbook_set_conf(struct drdns_alertbook *b, const struct drdns_alertbook_conf *conf)
{
	b->conf = *conf;
}

void drdns_alert_actions_free(struct drdns_alert_action *a, size_t n)
{
	if (!a)
		return;
	for (size_t i = 0; i < n; i++) {
		free(a[i].id);
		free(a[i].message);
	}
	free(a);
}

static bool valid_id(const char *id)
{
	if (!id)
		return false;
	size_t len = strnlen(id, DRDNS_ALERT_ID_MAX + 1);
	return len > 0 && len <= DRDNS_ALERT_ID_MAX;
}

/* Index of id in the book, or where it would go (*found false). */
static size_t book_search(const struct drdns_alertbook *b, const char *id, bool *found)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(b->alerts[mid].id, id);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

const struct drdns_alert *drdns_alertbook_find(const struct drdns_alertbook *b, const char *id)
{
	bool found;
	if (!id)
		return NULL;
	size_t i = book_search(b, id, &found);
	return found ? &b->alerts[i] : NULL;
}

/* Sort held conditions by id; among equal ids the earliest in conds comes first
 * (the pointers all point into one array), so the dedup below keeps it. */
static int cmp_cond(const void *pa, const void *pb)
{
	const struct drdns_alert_cond *a = *(const struct drdns_alert_cond *const *)pa;
	const struct drdns_alert_cond *b = *(const struct drdns_alert_cond *const *)pb;
	int c = strcmp(a->id, b->id);
	if (c)
		return c;
	return a < b ? -1 : a > b;
}

static bool held_search(const struct drdns_alert_cond *const *held, size_t m, const char *id)
{
	size_t lo = 0, hi = m;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(held[mid]->id, id);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int add_action(struct drdns_alert_action *acts, size_t *k, enum drdns_alert_action_kind kind,
                      const struct drdns_alert *a, unsigned repeat)
{
	struct drdns_alert_action *x = &acts[*k];
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->repeat = repeat;
	x->acked = kind == DRDNS_ALERT_CLEARED && a->acked;
	x->id = strdup(a->id);
	x->message = strdup(a->message ? a->message : "");
	if (!x->id || !x->message) {
		free(x->id);
		free(x->message);
		return DRDNS_ENOMEM;
	}
	(*k)++;
	return 0;
}

/*
 * Everything is built on the side (the new alert array, fresh strings, the
 * actions) and only swapped into the book once nothing can fail any more, so
 * an allocation failure leaves the book exactly as it was.  A kept alert in
 * the new array shares its strings with the old one, except for a changed
 * message, which is a fresh copy (src[j] says which old alert, if any).
 */
int drdns_alertbook_sync(struct drdns_alertbook *b, const struct drdns_alert_cond *conds, size_t n,
                         double now, struct drdns_alert_action **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (!conds)
		n = 0;

	const struct drdns_alert_cond **held = NULL;
	struct drdns_alert *alerts = NULL;
	size_t *src = NULL;
	struct drdns_alert_action *acts = NULL;
	size_t m = 0, k = 0;

	if (n) {
		if (!(held = malloc(n * sizeof(*held))))
			goto nomem;
		for (size_t i = 0; i < n; i++)
			if (valid_id(conds[i].id))
				held[m++] = &conds[i];
		qsort(held, m, sizeof(*held), cmp_cond);
		size_t u = 0;
		for (size_t i = 0; i < m; i++)
			if (u == 0 || strcmp(held[u - 1]->id, held[i]->id))
				held[u++] = held[i];
		m = u;
	}

	/* At most: a CLEARED per old alert, a RUN and an ESCALATE per held one. */
	size_t cap = b->n + 2 * m;
	if (cap && !(acts = malloc(cap * sizeof(*acts))))
		goto nomem;
	if (m) {
		/* calloc, and src all SIZE_MAX, so the rollback can walk every slot. */
		if (!(alerts = calloc(m, sizeof(*alerts))) || !(src = malloc(m * sizeof(*src))))
			goto nomem;
		for (size_t j = 0; j < m; j++)
			src[j] = SIZE_MAX;
	}

	/* CLEARED first, in id order (the book is sorted). */
	for (size_t i = 0; i < b->n; i++)
		if (!held_search(held, m, b->alerts[i].id) &&
		    add_action(acts, &k, DRDNS_ALERT_CLEARED, &b->alerts[i], 0))
			goto nomem;

	for (size_t j = 0; j < m; j++) {
		const char *msg = held[j]->message ? held[j]->message : "";
		struct drdns_alert *a = &alerts[j];
		bool found;
		size_t i = book_search(b, held[j]->id, &found);
		if (!found) {
			a->id = strdup(held[j]->id);
			a->message = strdup(msg);
			if (!a->id || !a->message)
				goto nomem;
			a->raised_at = now;
			a->last_sent = now;
			a->sent = 1;
			if (add_action(acts, &k, DRDNS_ALERT_RUN, a, 0))
				goto nomem;
			continue;
		}
		*a = b->alerts[i];
		src[j] = i;
		a->restored = false;
		/* A changed message is a fresh copy; the rollback and the commit tell it
		 * from the old one by the pointer. */
		if (strcmp(a->message, msg) && !(a->message = strdup(msg)))
			goto nomem;
		/* Written so that a NaN never counts as due. */
		bool due = !a->acked && now - a->last_sent >= b->conf.repeat;
		if (!due)
			continue;
		unsigned repeat = a->sent;
		if (add_action(acts, &k, DRDNS_ALERT_RUN, a, repeat))
			goto nomem;
		a->sent++;
		a->last_sent = now;
		if (b->conf.escalate_after > 0 && !a->escalated &&
		    repeat >= b->conf.escalate_after) {
			if (add_action(acts, &k, DRDNS_ALERT_ESCALATE, a, repeat))
				goto nomem;
			a->escalated = true;
		}
	}

	/* Commit: nothing below can fail. */
	for (size_t i = 0; i < b->n; i++)
		if (!held_search(held, m, b->alerts[i].id))
			alert_free(&b->alerts[i]);
	for (size_t j = 0; j < m; j++)
		if (src[j] != SIZE_MAX && alerts[j].message != b->alerts[src[j]].message)
			free(b->alerts[src[j]].message);
	free(b->alerts);
	b->alerts = alerts;
	b->n = m;
	free(held);
	free(src);

	if (k == 0) {
		free(acts);
		return 0;
	}
	if (k < cap) {
		struct drdns_alert_action *shrunk = realloc(acts, k * sizeof(*acts));
		if (shrunk) /* else the larger block is as good */
			acts = shrunk;
	}
	*out = acts;
	*n_out = k;
	return 0;

nomem:
	drdns_alert_actions_free(acts, k);
	for (size_t j = 0; alerts && src && j < m; j++) {
		if (src[j] == SIZE_MAX) {
			free(alerts[j].id);
			free(alerts[j].message);
		} else if (alerts[j].message != b->alerts[src[j]].message) {
			free(alerts[j].message);
		}
	}
	free(alerts);
	free(src);
	free(held);
	return DRDNS_ENOMEM;
}

static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	if (*pos >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	*pos += (size_t)w;
}

int drdns_alertbook_ack(struct drdns_alertbook *b, const char *id, const char *who,
                        const char *reason, double now, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!who || !*who || !reason || !*reason) {
		if (err && errlen)
			snprintf(err, errlen, "who and reason are required");
		return DRDNS_EINVAL;
	}
	bool found = false;
	size_t i = id ? book_search(b, id, &found) : 0;
	if (!found) {
		if (err && errlen) {
			size_t pos = 0;
			append(err, errlen, &pos, "no active alert %s (", id ? id : "(null)");
			if (b->n == 0)
				append(err, errlen, &pos, "none is active");
			else
				append(err, errlen, &pos, "active: ");
			for (size_t j = 0; j < b->n; j++)
				append(err, errlen, &pos, "%s%s", j ? ", " : "", b->alerts[j].id);
			append(err, errlen, &pos, ")");
		}
		return DRDNS_EINVAL;
	}
	char *by = strdup(who);
	char *why = strdup(reason);
	if (!by || !why) {
		free(by);
		free(why);
		return DRDNS_ENOMEM;
	}
	struct drdns_alert *a = &b->alerts[i];
	free(a->acked_by);
	free(a->ack_reason);
	a->acked_by = by;
	a->ack_reason = why;
	a->acked_at = now;
	a->acked = true;
	return 0;
}

int drdns_alertbook_restore(struct drdns_alertbook *b, const struct drdns_alert *a)
{
	if (!valid_id(a->id))
		return DRDNS_EINVAL;
	struct drdns_alert x = *a;
	x.id = strdup(a->id);
	x.message = strdup(a->message ? a->message : "");
	x.acked_by = NULL;
	x.ack_reason = NULL;
	if (a->acked) {
		x.acked_by = strdup(a->acked_by ? a->acked_by : "");
		x.ack_reason = strdup(a->ack_reason ? a->ack_reason : "");
	} else {
		x.acked_at = 0;
	}
	x.restored = true;
	if (!x.id || !x.message || (a->acked && (!x.acked_by || !x.ack_reason)))
		goto nomem;

	bool found;
	size_t i = book_search(b, a->id, &found);
	if (found) {
		alert_free(&b->alerts[i]);
		b->alerts[i] = x;
		return 0;
	}
	struct drdns_alert *grown = realloc(b->alerts, (b->n + 1) * sizeof(*grown));
	if (!grown)
		goto nomem;
	b->alerts = grown;
	memmove(&b->alerts[i + 1], &b->alerts[i], (b->n - i) * sizeof(*grown));
	b->alerts[i] = x;
	b->n++;
	return 0;

nomem:
	alert_free(&x);
	return DRDNS_ENOMEM;
}
