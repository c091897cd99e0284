/*
 * Prometheus metrics endpoint (see include/drdns/metrics.h), served by
 * libmicrohttpd on its own internal polling thread.
 *
 * Decisions worth knowing:
 *   - The text is a private copy held under a mutex; publish swaps the pointer
 *     (the old copy is freed outside the lock), the request handler builds an
 *     MHD response with MHD_RESPMEM_MUST_COPY while holding it.  A scrape thus
 *     always sees one whole published text, never a mix.
 *   - Binds exactly the given literal (inet_pton; "127.1" and names are
 *     DRDNS_EINVAL).  An IPv6 literal may carry a zone index ("fe80::1%eth0",
 *     interface name or number).  IPv6 sockets are v6-only (no dual stack).
 *   - Routing: the path is checked first (anything but /metrics is 404, for any
 *     method), then the method (GET and HEAD; anything else is 405 with
 *     "Allow: GET, HEAD").  HEAD is answered by MHD with the headers of GET.
 *     A query string is ignored ("/metrics?x=1" is /metrics).
 *   - Before the first publish, /metrics is 503 ("no metrics yet").
 *   - Scrapers cannot exhaust anything: at most CONN_LIMIT connections (MHD
 *     stops accepting at the limit, so more wait in the kernel's listen backlog
 *     until one ends), each dropped after CONN_TIMEOUT seconds without
 *     activity; MHD's memory limit per connection bounds request headers.
 *   - epoll (MHD_USE_AUTO) rather than select, so a daemon with many descriptors
 *     is not limited by FD_SETSIZE.
 *   - MHD's error messages go to drdns_log (group "metrics", level warning).
 */
#include "drdns/metrics.h"

#include "drdns/error.h"
#include "drdns/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#define METRICS_PATH  "/metrics"
#define CONTENT_TYPE  "text/plain; version=0.0.4; charset=utf-8"
#define CONN_LIMIT    16
#define CONN_TIMEOUT  10 /* seconds */
#define TEXT_NOTYET   "no metrics yet\n"
#define TEXT_NOTFOUND "not found\n"
#define TEXT_METHOD   "method not allowed\n"

struct drdns_metrics {
	struct MHD_Daemon *daemon;
	pthread_mutex_t lock;
	char *text; /* NULL until the first publish */
	size_t len;
	uint16_t port;
};

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/* MHD_OPTION_EXTERNAL_LOGGER: one warning per MHD message, newline stripped. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	drdns_log(DRDNS_LOG_WARNING, "metrics", "mhd msg=\"%s\"", msg);
}

/* Queue a response with body (len bytes of text, copied) and our Content-Type. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status, const char *text,
                               size_t len, bool allow)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE) != MHD_YES ||
	    (allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
	struct drdns_metrics *m = cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;

	/* Answer on the first call, before any request body is read: MHD then
	 * closes the connection instead of reading a body we do not want. */
	if (strcmp(url, METRICS_PATH) != 0)
		return respond(conn, MHD_HTTP_NOT_FOUND, TEXT_NOTFOUND, strlen(TEXT_NOTFOUND),
		               false);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT_METHOD, strlen(TEXT_METHOD),
		               true);

	struct MHD_Response *r = NULL;
	pthread_mutex_lock(&m->lock);
	if (m->text)
		r = MHD_create_response_from_buffer(m->len, m->text, MHD_RESPMEM_MUST_COPY);
	bool have = m->text != NULL;
	pthread_mutex_unlock(&m->lock);

	if (!have)
		return respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, TEXT_NOTYET, strlen(TEXT_NOTYET),
		               false);
	if (!r)
		return MHD_NO;
	enum MHD_Result ret = MHD_NO;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE) == MHD_YES)
		ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* IPv6 zone index: an interface name or a decimal number.  0 when invalid. */
static uint32_t parse_scope(const char *s)
{
	if (!*s)
		return 0;
	unsigned int idx = if_nametoindex(s);
	if (idx)
		return idx;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || s[0] < '0' || s[0] > '9' || v == 0 || v > UINT32_MAX)
		return 0;
	return (uint32_t)v;
}

/* Fill sa from an IPv4 or IPv6 literal and port.  0 or DRDNS_EINVAL. */
static int parse_address(const char *address, uint16_t port, union sockaddr_any *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (inet_pton(AF_INET, address, &sa->in4.sin_addr) == 1) {
		sa->in4.sin_family = AF_INET;
		sa->in4.sin_port = htons(port);
		return 0;
	}
	char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	size_t n = strlen(address);
	if (n >= sizeof(buf))
		return DRDNS_EINVAL;
	memcpy(buf, address, n + 1);
	char *pct = strchr(buf, '%');
	if (pct) {
		*pct = '\0';
		sa->in6.sin6_scope_id = parse_scope(pct + 1);
		if (!sa->in6.sin6_scope_id)
			return DRDNS_EINVAL;
	}
	if (inet_pton(AF_INET6, buf, &sa->in6.sin6_addr) != 1)
		return DRDNS_EINVAL;
	sa->in6.sin6_family = AF_INET6;
	sa->in6.sin6_port = htons(port);
	return 0;
}

int drdns_metrics_start(const char *address, uint16_t port, struct drdns_metrics **out)
{
	if (out)
		*out = NULL;
	if (!address || !out)
		return DRDNS_EINVAL;
	union sockaddr_any sa;
	if (parse_address(address, port, &sa) != 0) {
		drdns_log(DRDNS_LOG_WARNING, "metrics", "invalid address=\"%s\"", address);
		return DRDNS_EINVAL;
	}

	struct drdns_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return DRDNS_ENOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return DRDNS_ENOMEM;
	}

	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (sa.sa.sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The logger first, so that MHD logs nothing through its own before it. */
	errno = 0;
	m->daemon = MHD_start_daemon(
	    flags, port, NULL, NULL, handle, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
	    MHD_OPTION_SOCK_ADDR, &sa.sa, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONN_LIMIT,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONN_TIMEOUT, MHD_OPTION_END);
	if (!m->daemon) {
		int e = errno;
		drdns_log(DRDNS_LOG_ERR, "metrics", "listen failed address=%s port=%u error=\"%s\"",
		          address, (unsigned int)port, e ? strerror(e) : "unknown");
		pthread_mutex_destroy(&m->lock);
		free(m);
		return DRDNS_ENET;
	}

	m->port = port;
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (info && info->port)
		m->port = info->port;
	drdns_log(DRDNS_LOG_INFO, "metrics", "listening address=%s port=%u", address,
	          (unsigned int)m->port);
	*out = m;
	return 0;
}

uint16_t drdns_metrics_port(const struct drdns_metrics *m)
{
	return m ? m->port : 0;
}

int drdns_metrics_publish(struct drdns_metrics *m, const char *text)
{
	if (!m || !text)
		return DRDNS_EINVAL;
	size_t len = strlen(text);
	char *copy = malloc(len + 1);
	if (!copy)
		return DRDNS_ENOMEM;
	memcpy(copy, text, len + 1);

	pthread_mutex_lock(&m->lock);
	char *old = m->text;
	m->text = copy;
	m->len = len;
	pthread_mutex_unlock(&m->lock);
	free(old);
	return 0;
}

void drdns_metrics_stop(struct drdns_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->daemon);
	pthread_mutex_destroy(&m->lock);
	free(m->text);
	free(m);
}
