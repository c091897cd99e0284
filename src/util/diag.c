#include "drdns/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void diag_add(struct drdns_diag *d, bool is_error, const char *fmt, va_list ap)
{
	if (!d)
		return;
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	char **grown = realloc(d->msgs, (d->n + 1) * sizeof(*grown));
	if (!grown) {
		free(msg);
		return;
	}
	d->msgs = grown;
	d->msgs[d->n++] = msg;
	if (is_error)
		d->n_errors++;
}

void drdns_diag_error(struct drdns_diag *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_add(d, true, fmt, ap);
	va_end(ap);
}

void drdns_diag_warn(struct drdns_diag *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_add(d, false, fmt, ap);
	va_end(ap);
}

void drdns_diag_clear(struct drdns_diag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->msgs[i]);
	free(d->msgs);
	d->msgs = NULL;
	d->n = 0;
	d->n_errors = 0;
}

char *drdns_diag_join(const struct drdns_diag *d)
{
	size_t len = 1;
	for (size_t i = 0; d && i < d->n; i++)
		len += strlen(d->msgs[i]) + 1;
	char *out = malloc(len);
	if (!out)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; d && i < d->n; i++) {
		if (i)
			strcat(out, "\n");
		strcat(out, d->msgs[i]);
	}
	return out;
}
