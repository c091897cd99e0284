/*
 * The UDP listener.
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

/* ------------------------------------------------------------ UDP */

void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct drdns_server *srv = h->data;
	buf->base = (char *)srv->udp_buf;
	buf->len = sizeof(srv->udp_buf);
}

static void on_udp_sent(uv_udp_send_t *req, int status)
{
	struct udp_send_req *s = (struct udp_send_req *)req;
	if (status < 0 && status != UV_ECANCELED)
		drdns_log(DRDNS_LOG_DEBUG, "server", "udp send failed: %s", uv_strerror(status));
	free(s->data);
	free(s);
}

void on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                 unsigned flags)
{
	struct drdns_server *srv = h->data;
	if (nread < 0)
		drdns_log(DRDNS_LOG_DEBUG, "server", "udp receive error: %s",
		          uv_strerror((int)nread));
	if (nread <= 0 || !addr || (flags & UV_UDP_PARTIAL) || srv->closing)
		return;
	char peer[INET6_ADDRSTRLEN + 8];
	sockaddr_text(addr, peer, sizeof(peer));
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (srv_process(srv, NULL, (const uint8_t *)buf->base, (size_t)nread, addr, peer, &out,
	                &out_len) != PROC_REPLY)
		return;
	uv_buf_t b = uv_buf_init((char *)out, (unsigned)out_len);
	if (uv_udp_try_send(&srv->udp, &b, 1, addr) == (int)out_len) {
		free(out);
		return;
	}
	struct udp_send_req *s = malloc(sizeof(*s));
	if (!s) {
		free(out);
		return;
	}
	s->data = out;
	int rc = uv_udp_send(&s->req, &srv->udp, &b, 1, addr, on_udp_sent);
	if (rc < 0) {
		drdns_log(DRDNS_LOG_DEBUG, "server", "udp send to %s failed: %s", peer,
		          uv_strerror(rc));
		free(out);
		free(s);
	}
}
