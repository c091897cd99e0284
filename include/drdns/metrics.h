/*
 * Prometheus metrics endpoint: GET /metrics on address:port answers with the
 * latest text published (text exposition format 0.0.4).  Served by
 * libmicrohttpd on its own thread, so a slow scraper never touches the event
 * loop; the loop only swaps in a new text after each probe round.
 * Any other path is 404, any other method 405.
 */
#ifndef DRDNS_METRICS_H
#define DRDNS_METRICS_H

#include <stdint.h>

struct drdns_metrics;

/* Listen on address (IPv4 or IPv6 literal) and port (0: any free port, see
 * drdns_metrics_port).  Returns 0 and *out, or DRDNS_ENET (cannot bind; errno
 * text logged) / DRDNS_ENOMEM.  Until the first publish, /metrics answers 503. */
int drdns_metrics_start(const char *address, uint16_t port, struct drdns_metrics **out);

/* The port actually bound. */
uint16_t drdns_metrics_port(const struct drdns_metrics *m);

/* Replace the text served (copied).  Thread-safe against the server thread. */
int drdns_metrics_publish(struct drdns_metrics *m, const char *text);

/* Stop serving and free m (NULL is fine). */
void drdns_metrics_stop(struct drdns_metrics *m);

#endif
