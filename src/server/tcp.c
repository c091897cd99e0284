/*
 * TCP connections: framing, pipelining, idle timeout, connection limit.
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

/* ------------------------------------------------------------ TCP */

static void conn_touch(struct conn *c);

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct drdns_server *srv = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->n_conns--;
	free(c->rbuf);
	free(c);
	srv_release(srv);
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	xfr_end(c, "aborted");
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_idle(uv_timer_t *t)
{
	struct conn *c = t->data;
	drdns_log(DRDNS_LOG_INFO, "server", "tcp idle timeout peer=%s", c->peer_text);
	conn_close(c);
}

static void conn_touch(struct conn *c)
{
	if (!c->closing)
		uv_timer_start(&c->timer, on_idle, TCP_IDLE_MS, 0);
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct conn *c = w->c;
	free(w);
	c->busy = false;
	if (c->closing)
		return;
	if (status < 0) {
		drdns_log(DRDNS_LOG_INFO, "server", "tcp write failed peer=%s: %s", c->peer_text,
		          uv_strerror(status));
		conn_close(c);
		return;
	}
	conn_touch(c);
	if (c->xfr) {
		if (!c->xfr->cur.done) {
			xfr_send_next(c);
			return;
		}
		xfr_end(c, "ok");
	}
	conn_process(c);
}

/* A write request with room for a message of up to room bytes at data + 2. */
struct write_req *wreq_new(struct conn *c, size_t room)
{
	struct write_req *w = malloc(sizeof(*w) + 2 + room);
	if (w)
		w->c = c;
	return w;
}

/* Frame the len-byte message at w->data + 2 and write it (frees w on failure). */
int conn_write(struct conn *c, struct write_req *w, size_t len)
{
	w->len = len + 2;
	w->data[0] = (uint8_t)(len >> 8);
	w->data[1] = (uint8_t)len;
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
	int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (rc < 0) {
		free(w);
		return rc;
	}
	c->busy = true;
	return 0;
}

/* Send one message (takes ownership of wire). */
static int conn_send(struct conn *c, uint8_t *wire, size_t len)
{
	struct write_req *w = wreq_new(c, len);
	if (!w) {
		free(wire);
		return DRDNS_ENOMEM;
	}
	memcpy(w->data + 2, wire, len);
	free(wire);
	return conn_write(c, w, len);
}

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = h->data;
	if (c->rcap - c->rlen < 4096 && c->rcap < TCP_RBUF_MAX) {
		size_t cap = c->rcap ? c->rcap * 2 : 4096;
		if (cap > TCP_RBUF_MAX)
			cap = TCP_RBUF_MAX;
		uint8_t *g = realloc(c->rbuf, cap);
		if (g) {
			c->rbuf = g;
			c->rcap = cap;
		}
	}
	buf->base = (char *)c->rbuf + c->rlen;
	buf->len = c->rcap - c->rlen;
}

static void conn_pause_reading(struct conn *c)
{
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = s->data;
	if (c->closing)
		return;
	if (nread == UV_ENOBUFS) {
		conn_pause_reading(c); /* buffer full: resume once queries are handled */
		return;
	}
	if (nread == UV_EOF) {
		c->peer_eof = true;
		conn_pause_reading(c);
		conn_process(c);
		return;
	}
	if (nread < 0) {
		drdns_log(DRDNS_LOG_DEBUG, "server", "tcp read error peer=%s: %s", c->peer_text,
		          uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	c->rlen += (size_t)nread;
	if (nread > 0)
		conn_touch(c);
	conn_process(c);
	if (!c->closing && c->rlen == c->rcap && c->rcap >= TCP_RBUF_MAX)
		conn_pause_reading(c);
}

/* Handle complete buffered requests while the connection is idle. */
void conn_process(struct conn *c)
{
	while (!c->closing && !c->busy && !c->xfr && c->rlen >= 2) {
		size_t mlen = ((size_t)c->rbuf[0] << 8) | c->rbuf[1];
		if (c->rlen < 2 + mlen)
			break;
		uint8_t *out = NULL;
		size_t out_len = 0;
		enum proc_result r =
		    srv_process(c->srv, c, c->rbuf + 2, mlen, (const struct sockaddr *)&c->peer,
		                c->peer_text, &out, &out_len);
		c->rlen -= 2 + mlen;
		memmove(c->rbuf, c->rbuf + 2 + mlen, c->rlen);
		if (r == PROC_CLOSE) {
			conn_close(c);
			return;
		}
		if (r == PROC_REPLY && conn_send(c, out, out_len) < 0) {
			conn_close(c);
			return;
		}
		if (r == PROC_XFR)
			xfr_send_next(c);
	}
	if (c->closing)
		return;
	if (c->peer_eof) {
		if (!c->busy && !c->xfr)
			conn_close(c); /* everything the peer sent has been answered */
		return;
	}
	if (!c->reading && c->rlen < TCP_RBUF_MAX) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_tcp_alloc, on_tcp_read) == 0)
			c->reading = true;
		else
			conn_close(c);
	}
}

static void on_reject_closed(uv_handle_t *h)
{
	struct drdns_server *srv = h->data;
	free(h);
	srv_release(srv);
}

void on_connection(uv_stream_t *server, int status)
{
	struct drdns_server *srv = server->data;
	if (status < 0) {
		drdns_log(DRDNS_LOG_WARNING, "server", "tcp accept error: %s", uv_strerror(status));
		return;
	}
	if (srv->closing)
		return;
	if (srv->n_conns >= TCP_MAX_CONNS) {
		/* accept and close at once, or libuv would stop accepting */
		uv_tcp_t *t = malloc(sizeof(*t));
		if (!t || uv_tcp_init(srv->loop, t) < 0) {
			free(t);
			return;
		}
		t->data = srv;
		srv->pending++;
		(void)uv_accept(server, (uv_stream_t *)t);
		uv_close((uv_handle_t *)t, on_reject_closed);
		drdns_log(DRDNS_LOG_WARNING, "server",
		          "tcp connection limit (%d) reached: closed a new one", TCP_MAX_CONNS);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->srv = srv;
	if (uv_tcp_init(srv->loop, &c->tcp) < 0) {
		free(c);
		return;
	}
	uv_timer_init(srv->loop, &c->timer); /* cannot fail */
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
	srv->pending++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c);
		return;
	}
	int len = sizeof(c->peer);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len) == 0)
		sockaddr_text((struct sockaddr *)&c->peer, c->peer_text, sizeof(c->peer_text));
	else
		snprintf(c->peer_text, sizeof(c->peer_text), "?");
	uv_tcp_nodelay(&c->tcp, 1);
	conn_touch(c);
	conn_process(c); /* starts reading */
}
