/*
 * Append-only audit log: one JSON object per line (who, when, why, what, result),
 * written with O_APPEND and fsynced before the operation is reported done.
 */
#ifndef DRDNS_AUDIT_H
#define DRDNS_AUDIT_H

#include <jansson.h>

/* Append record (borrowed) to path; adds "time" (ISO 8601 UTC) if absent. */
int drdns_audit_append(const char *path, const json_t *record);

#endif
