#include "drdns/state.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/fsutil.h"
#include "drdns/serial.h"
#include "drdns/zone.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_FILE    "state.json"
#define STATE_VERSION 1

static void zones_free(struct drdns_state_zone *zones, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(zones[i].zone);
	free(zones);
}

static void alerts_free(struct drdns_alert *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(a[i].id);
		free(a[i].message);
		free(a[i].acked_by);
		free(a[i].ack_reason);
	}
	free(a);
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*oom = true;
	return d;
}

int drdns_state_set_alerts(struct drdns_state *st, const struct drdns_alert *list, size_t n)
{
	struct drdns_alert *copy = calloc(n ? n : 1, sizeof(*copy));
	bool oom = !copy;
	for (size_t i = 0; !oom && i < n; i++) {
		copy[i] = list[i];
		copy[i].restored = false;
		copy[i].id = dup_or_null(list[i].id, &oom);
		copy[i].message = dup_or_null(list[i].message, &oom);
		copy[i].acked_by = dup_or_null(list[i].acked_by, &oom);
		copy[i].ack_reason = dup_or_null(list[i].ack_reason, &oom);
	}
	if (oom) {
		if (copy)
			alerts_free(copy, n);
		return DRDNS_ENOMEM;
	}
	alerts_free(st->alerts, st->n_alerts);
	st->alerts = copy;
	st->n_alerts = n;
	return 0;
}

/* The optional "alerts" array. */
static int alerts_from_json(json_t *arr, struct drdns_state *st)
{
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return DRDNS_ESTATE;
	size_t n = json_array_size(arr), i;
	struct drdns_alert *list = calloc(n ? n : 1, sizeof(*list));
	if (!list)
		return DRDNS_ENOMEM;
	json_t *e;
	int ret = 0;
	json_array_foreach(arr, i, e)
	{
		const char *id = NULL, *message = NULL, *by = NULL, *reason = NULL;
		double raised = 0, last_sent = 0, acked_at = 0;
		json_int_t sent = 0;
		int escalated = 0, acked = 0;
		if (json_unpack(e, "{s:s, s:s, s:F, s:F, s:I, s:b, s:b, s?s, s?s, s?F}", "id", &id,
		                "message", &message, "raised_at", &raised, "last_sent", &last_sent,
		                "sent", &sent, "escalated", &escalated, "acked", &acked, "acked_by",
		                &by, "ack_reason", &reason, "acked_at", &acked_at) < 0 ||
		    sent < 0 || sent > UINT32_MAX) {
			ret = DRDNS_ESTATE;
			break;
		}
		bool oom = false;
		list[i] = (struct drdns_alert){
		    .id = dup_or_null(id, &oom),
		    .message = dup_or_null(message, &oom),
		    .raised_at = raised,
		    .last_sent = last_sent,
		    .sent = (unsigned)sent,
		    .escalated = escalated,
		    .acked = acked,
		    .acked_by = dup_or_null(by, &oom),
		    .ack_reason = dup_or_null(reason, &oom),
		    .acked_at = acked_at,
		};
		if (oom) {
			ret = DRDNS_ENOMEM;
			n = i + 1;
			break;
		}
	}
	if (ret < 0) {
		alerts_free(list, n);
		return ret;
	}
	alerts_free(st->alerts, st->n_alerts);
	st->alerts = list;
	st->n_alerts = n;
	return 0;
}

static json_t *alerts_to_json(const struct drdns_state *st)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < st->n_alerts; i++) {
		const struct drdns_alert *a = &st->alerts[i];
		json_t *o = json_pack("{s:s, s:s, s:f, s:f, s:I, s:b, s:b}", "id", a->id, "message",
		                      a->message ? a->message : "", "raised_at", a->raised_at,
		                      "last_sent", a->last_sent, "sent", (json_int_t)a->sent,
		                      "escalated", a->escalated, "acked", a->acked);
		if (o && a->acked) {
			json_object_set_new(o, "acked_by",
			                    json_string(a->acked_by ? a->acked_by : ""));
			json_object_set_new(o, "ack_reason",
			                    json_string(a->ack_reason ? a->ack_reason : ""));
			json_object_set_new(o, "acked_at", json_real(a->acked_at));
		}
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

void drdns_state_free(struct drdns_state *st)
{
	if (!st)
		return;
	free(st->reason);
	free(st->who);
	zones_free(st->zones, st->n_zones);
	zones_free(st->seen, st->n_seen);
	free(st->paused_by);
	free(st->paused_reason);
	for (size_t i = 0; i < st->n_contact; i++)
		free(st->contact[i].zone);
	free(st->contact);
	alerts_free(st->alerts, st->n_alerts);
	free(st);
}

/* The optional "watchdog" object: pause switch and last promotion time. */
static int watchdog_from_json(json_t *obj, struct drdns_state *st)
{
	if (!obj)
		return 0;
	int paused = 0;
	json_int_t paused_at = 0, last = 0;
	json_t *jby = NULL, *jreason = NULL;
	if (json_unpack(obj, "{s?b, s?I, s?o, s?o, s?I}", "paused", &paused, "paused_at",
	                &paused_at, "paused_by", &jby, "paused_reason", &jreason,
	                "last_promotion_at", &last) < 0 ||
	    (jby && !json_is_string(jby) && !json_is_null(jby)) ||
	    (jreason && !json_is_string(jreason) && !json_is_null(jreason)))
		return DRDNS_ESTATE;
	const char *by = json_string_value(jby), *reason = json_string_value(jreason);
	st->paused = paused;
	st->paused_at = paused_at;
	st->last_promotion_at = last;
	if ((by && !(st->paused_by = strdup(by))) ||
	    (reason && !(st->paused_reason = strdup(reason))))
		return DRDNS_ENOMEM;
	return 0;
}

static int contact_from_json(json_t *arr, struct drdns_state *st)
{
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return DRDNS_ESTATE;
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		const char *zone = NULL;
		double last_ok = 0;
		json_int_t expire = -1, refresh = -1;
		if (json_unpack(e, "{s:s, s:F, s:I, s:I}", "zone", &zone, "last_ok", &last_ok,
		                "expire", &expire, "refresh", &refresh) < 0 ||
		    expire < 0 || expire > UINT32_MAX || refresh < 0 || refresh > UINT32_MAX)
			return DRDNS_ESTATE;
		int ret = drdns_state_note_contact(st, zone, last_ok, (uint32_t)expire,
		                                   (uint32_t)refresh);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int drdns_state_note_contact(struct drdns_state *st, const char *zone, double last_ok,
                             uint32_t expire, uint32_t refresh)
{
	struct drdns_state_contact *c = NULL;
	for (size_t i = 0; i < st->n_contact && !c; i++)
		if (!strcmp(st->contact[i].zone, zone))
			c = &st->contact[i];
	if (!c) {
		char *copy = strdup(zone);
		struct drdns_state_contact *grown =
		    copy ? realloc(st->contact, (st->n_contact + 1) * sizeof(*grown)) : NULL;
		if (!grown) {
			free(copy);
			return DRDNS_ENOMEM;
		}
		st->contact = grown;
		c = &st->contact[st->n_contact++];
		c->zone = copy;
	}
	c->last_ok = last_ok;
	c->expire = expire;
	c->refresh = refresh;
	return 0;
}

static int zones_from_json(const json_t *arr, struct drdns_state_zone **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return DRDNS_ESTATE;
	size_t count = json_array_size(arr);
	if (count == 0)
		return 0;
	struct drdns_state_zone *zones = calloc(count, sizeof(*zones));
	if (!zones)
		return DRDNS_ENOMEM;
	for (size_t i = 0; i < count; i++) {
		const char *zone = NULL;
		json_int_t serial = -1;
		if (json_unpack(json_array_get(arr, i), "{s:s, s:I}", "zone", &zone, "serial",
		                &serial) < 0 ||
		    serial < 0 || serial > UINT32_MAX || !(zones[i].zone = strdup(zone))) {
			zones_free(zones, count);
			return DRDNS_ESTATE;
		}
		zones[i].serial = (uint32_t)serial;
	}
	*out = zones;
	*n = count;
	return 0;
}

int drdns_state_load(const char *state_dir, struct drdns_state **out, char *err, size_t errlen)
{
	char *path = NULL;
	json_t *root = NULL;
	int ret = 0;
	struct drdns_state *st = calloc(1, sizeof(*st));
	if (!st || asprintf(&path, "%s/%s", state_dir, STATE_FILE) < 0) {
		free(st);
		return DRDNS_ENOMEM;
	}
	json_error_t jerr;
	root = json_load_file(path, 0, &jerr);
	if (!root) {
		FILE *probe = fopen(path, "re");
		if (!probe && errno == ENOENT) { /* first start: not promoted */
			*out = st;
			free(path);
			return 0;
		}
		if (probe)
			fclose(probe);
		snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
		ret = DRDNS_ESTATE;
		goto cleanup;
	}
	int version = 0, promoted = 0;
	json_int_t generation = 0, changed_at = 0;
	json_t *reason = NULL, *who = NULL;
	json_t *zones = NULL, *seen = NULL, *watchdog = NULL, *contact = NULL, *alerts = NULL;
	if (json_unpack_ex(
	        root, &jerr, 0, "{s:i, s:b, s:I, s:I, s?o, s?o, s?o, s?o, s?o, s?o, s?o}",
	        "version", &version, "promoted", &promoted, "generation", &generation, "changed_at",
	        &changed_at, "reason", &reason, "who", &who, "zones", &zones, "seen", &seen,
	        "watchdog", &watchdog, "contact", &contact, "alerts", &alerts) < 0) {
		snprintf(err, errlen, "%s: %s", path, jerr.text);
		ret = DRDNS_ESTATE;
		goto cleanup;
	}
	if ((reason && !json_is_string(reason) && !json_is_null(reason)) ||
	    (who && !json_is_string(who) && !json_is_null(who))) {
		snprintf(err, errlen, "%s: reason and who must be strings or null", path);
		ret = DRDNS_ESTATE;
		goto cleanup;
	}
	if (version != STATE_VERSION || generation < 0 || (promoted && generation == 0)) {
		snprintf(err, errlen, "%s: unsupported version %d or bad generation", path,
		         version);
		ret = DRDNS_ESTATE;
		goto cleanup;
	}
	st->promoted = promoted;
	st->generation = (unsigned long)generation;
	st->changed_at = changed_at;
	st->reason = json_is_string(reason) ? strdup(json_string_value(reason)) : NULL;
	st->who = json_is_string(who) ? strdup(json_string_value(who)) : NULL;
	if (zones_from_json(zones, &st->zones, &st->n_zones) < 0 ||
	    zones_from_json(seen, &st->seen, &st->n_seen) < 0) {
		snprintf(err, errlen, "%s: malformed zone list", path);
		ret = DRDNS_ESTATE;
	} else if (watchdog_from_json(watchdog, st) < 0 || contact_from_json(contact, st) < 0) {
		snprintf(err, errlen, "%s: malformed \"watchdog\" or \"contact\"", path);
		ret = DRDNS_ESTATE;
	} else if (alerts_from_json(alerts, st) < 0) {
		snprintf(err, errlen, "%s: malformed \"alerts\"", path);
		ret = DRDNS_ESTATE;
	}
cleanup:
	json_decref(root);
	free(path);
	if (ret < 0)
		drdns_state_free(st);
	else
		*out = st;
	return ret;
}

static json_t *zones_to_json(const struct drdns_state_zone *zones, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:I}", "zone", zones[i].zone, "serial",
		                                     (json_int_t)zones[i].serial));
	return arr;
}

int drdns_state_save(const char *state_dir, const struct drdns_state *st)
{
	json_t *root = json_pack(
	    "{s:i, s:b, s:I, s:I, s:s?, s:s?, s:o, s:o}", "version", STATE_VERSION, "promoted",
	    st->promoted, "generation", (json_int_t)st->generation, "changed_at",
	    (json_int_t)st->changed_at, "reason", st->reason, "who", st->who, "zones",
	    zones_to_json(st->zones, st->n_zones), "seen", zones_to_json(st->seen, st->n_seen));
	json_t *contact = json_array();
	for (size_t i = 0; root && contact && i < st->n_contact; i++)
		json_array_append_new(contact,
		                      json_pack("{s:s, s:f, s:I, s:I}", "zone", st->contact[i].zone,
		                                "last_ok", st->contact[i].last_ok, "expire",
		                                (json_int_t)st->contact[i].expire, "refresh",
		                                (json_int_t)st->contact[i].refresh));
	json_t *alerts = root ? alerts_to_json(st) : NULL;
	if (root && (!alerts || json_object_set_new(root, "alerts", alerts) < 0)) {
		json_decref(root);
		json_decref(contact);
		return DRDNS_ENOMEM;
	}
	if (root && contact &&
	    (json_object_set_new(root, "contact", contact) < 0 ||
	     json_object_set_new(root, "watchdog",
	                         json_pack("{s:b, s:I, s:s?, s:s?, s:I}", "paused", st->paused,
	                                   "paused_at", (json_int_t)st->paused_at, "paused_by",
	                                   st->paused_by, "paused_reason", st->paused_reason,
	                                   "last_promotion_at",
	                                   (json_int_t)st->last_promotion_at)) < 0)) {
		json_decref(root);
		return DRDNS_ENOMEM;
	}
	if (!root || !contact) {
		json_decref(root);
		json_decref(contact);
		return DRDNS_ENOMEM;
	}
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	char *path = NULL;
	if (!text || asprintf(&path, "%s/%s", state_dir, STATE_FILE) < 0) {
		free(text);
		return DRDNS_ENOMEM;
	}
	int ret = drdns_mkdir_p(state_dir, 0750);
	if (ret == 0)
		ret = drdns_write_atomic(path, text, strlen(text), 0640);
	free(text);
	free(path);
	return ret;
}

/* Highest N among gen-N directories, 0 if none. */
static unsigned long highest_generation(const char *state_dir)
{
	DIR *d = opendir(state_dir);
	unsigned long max = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		unsigned long g;
		char tail;
		if (sscanf(e->d_name, "gen-%lu%c", &g, &tail) == 1 && g > max)
			max = g;
	}
	closedir(d);
	return max;
}

int drdns_state_write_generation(const char *state_dir, const struct drdns_zoneset *set,
                                 unsigned long *generation)
{
	unsigned long gen = highest_generation(state_dir) + 1;
	char *dir = NULL;
	int ret = drdns_mkdir_p(state_dir, 0750);
	if (ret < 0)
		return ret;
	if (asprintf(&dir, "%s/gen-%lu", state_dir, gen) < 0)
		return DRDNS_ENOMEM;
	ret = drdns_mkdir_p(dir, 0750);
	for (size_t i = 0; ret == 0 && i < set->n; i++) {
		char *path = NULL;
		if (asprintf(&path, "%s/%szone", dir, set->zones[i]->name) < 0) {
			ret = DRDNS_ENOMEM;
			break;
		}
		ret = drdns_zone_write(set->zones[i], path); /* fsyncs file and directory */
		free(path);
	}
	if (ret == 0)
		ret = drdns_fsync_dir(state_dir);
	if (ret < 0)
		drdns_rm_rf(dir);
	else
		*generation = gen;
	free(dir);
	return ret;
}

int drdns_state_load_generation(const char *state_dir, unsigned long generation,
                                struct drdns_zoneset **out, struct drdns_diag *diag)
{
	char *dir = NULL;
	if (asprintf(&dir, "%s/gen-%lu", state_dir, generation) < 0)
		return DRDNS_ENOMEM;
	int ret = drdns_zoneset_load_dir(dir, out, diag);
	free(dir);
	return ret;
}

void drdns_state_gc(const char *state_dir, unsigned long keep)
{
	DIR *d = opendir(state_dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		unsigned long g;
		char tail;
		if (sscanf(e->d_name, "gen-%lu%c", &g, &tail) != 1 || g == keep)
			continue;
		char *path = NULL;
		if (asprintf(&path, "%s/%s", state_dir, e->d_name) >= 0)
			drdns_rm_rf(path);
		free(path);
	}
	closedir(d);
}

void drdns_state_note_seen(struct drdns_state *st, const char *zone, uint32_t serial)
{
	for (size_t i = 0; i < st->n_seen; i++) {
		if (strcmp(st->seen[i].zone, zone))
			continue;
		if (drdns_serial_gt(serial, st->seen[i].serial))
			st->seen[i].serial = serial;
		return;
	}
	struct drdns_state_zone *grown = realloc(st->seen, (st->n_seen + 1) * sizeof(*grown));
	if (!grown)
		return;
	st->seen = grown;
	st->seen[st->n_seen].zone = strdup(zone);
	if (!st->seen[st->n_seen].zone)
		return;
	st->seen[st->n_seen++].serial = serial;
}

bool drdns_state_published(const struct drdns_state *st, const char *zone, uint32_t *serial)
{
	for (size_t i = 0; i < st->n_zones; i++)
		if (!strcmp(st->zones[i].zone, zone)) {
			*serial = st->zones[i].serial;
			return true;
		}
	return false;
}
