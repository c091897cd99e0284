/*
 * Diagnostics collector for validation: configuration and zone checks report
 * every problem they find, each as "file:line: message", instead of stopping
 * at the first.  The collector owns its strings; drdns_diag_clear() frees them.
 */
#ifndef DRDNS_DIAG_H
#define DRDNS_DIAG_H

#include <stdbool.h>
#include <stddef.h>

struct drdns_diag {
	char **msgs; /* owned; n entries */
	size_t n;
	size_t n_errors; /* entries that are errors (the rest are warnings) */
};

/* Append an error.  Formatted like printf; callers prefix "file:line: ". */
void drdns_diag_error(struct drdns_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append a warning ("warning: " is prefixed after the location by the caller). */
void drdns_diag_warn(struct drdns_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Free every message; the struct itself can be reused. */
void drdns_diag_clear(struct drdns_diag *d);
/* Join all messages with '\n' into a newly allocated string (caller frees). */
char *drdns_diag_join(const struct drdns_diag *d);

#endif
