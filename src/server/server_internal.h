/*
 * Internals of the DR primary (src/server/): shared by server.c (lifecycle,
 * zone refs, request dispatch), answer.c (queries), xfr.c (transfers and their
 * cache), udp.c and tcp.c.  The public API is include/drdns/server.h.
 */
#ifndef DRDNS_SERVER_INTERNAL_H
#define DRDNS_SERVER_INTERNAL_H

#include "drdns/server.h"
#include "drdns/tsig.h"

#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

struct drdns_tsig_key;
struct drdns_zone;
struct drdns_zoneset;
struct drdns_conf;
struct zindex;

/* Zones up to this many records are indexed at once in install(); larger ones
 * in the thread pool (queries other than the apex SOA get SERVFAIL until it
 * lands). */
#define ZINDEX_SYNC_MAX 50000

#define XFR_MSG_TARGET 16000             /* uncompressed RR bytes per AXFR message */
#define TCP_IDLE_MS    10000             /* close TCP connections idle this long */
#define TCP_MAX_CONNS  256               /* concurrent TCP connections */
#define TCP_RBUF_MAX   (2 * (65535 + 2)) /* buffered pipelined input per connection */
#define TCP_BACKLOG    128
#define UDP_MAX_PLAIN  512
#define UDP_MAX_EDNS   1232 /* DNS flag day 2020 */

/* ------------------------------------------------------------ zone sets */

/* One message of a zone's transfer, as rendered into the cache. */
struct xmsg {
	size_t off; /* in zcache.wire */
	size_t len;
	size_t start; /* index in zone->rrs of the first record after the leading SOA (or
	               * of the first record, in the first message) */
	size_t end;   /* index after the message's last record from zone->rrs */
	size_t count; /* answer records (both SOAs included) */
	bool done;    /* ends with the closing SOA */
};

/* A zone's whole AXFR body, rendered once (id 0, question "<origin> AXFR IN"). */
struct zcache {
	uint8_t *wire; /* the messages back to back */
	struct xmsg *msgs;
	size_t n, bytes;
	size_t qname_len; /* the question name at offset 12 of message 0 */
};

/* A served zone set with a reference count: the server holds one reference to
 * the current set, every running transfer and every cache job one to the set it
 * uses. */
struct zref {
	struct drdns_zoneset *set;
	unsigned refs;
	struct zindex **ix;    /* per zone: the query index, NULL until built */
	struct zcache **cache; /* per zone: the rendered transfer, NULL until it lands */
};

/* ------------------------------------------------------------ structures */

/* Where a transfer stands in its zone. */
struct xcursor {
	size_t next; /* next index in zone->rrs */
	bool soa_sent, done;
};

struct xfr {
	struct zref *zr; /* keeps the set alive */
	const struct drdns_zone *zone;
	size_t zi;         /* index of zone in zr->set */
	ldns_rr *question; /* owned clone */
	uint16_t id;
	bool ixfr;
	struct xcursor cur;
	size_t rrs, msgs, bytes, cached; /* cached: messages copied from the cache */
	struct drdns_tsig_key *key;      /* owned copy (survives a conf reload), or NULL */
	uint8_t mac[DRDNS_TSIG_MAC_MAX]; /* request MAC, then the previous message's MAC */
	size_t mac_len;
	uint64_t start_ns;
};

/* A thread-pool job rendering one zone's transfer into the cache. */
struct zbuild {
	uv_work_t work;
	struct drdns_server *srv;
	struct zref *zr; /* reference held until the after-work callback */
	size_t zi;
	bool index;         /* build the query index (else render the transfer) */
	struct zcache *out; /* written by the worker only */
	struct zindex *ix;  /* written by the worker only */
	atomic_bool abort;  /* set on the loop: stop rendering */
	int rc;
	uint64_t ns;
	struct zbuild *prev, *next;
};

struct conn {
	struct drdns_server *srv;
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct conn *prev, *next;
	int open_handles;
	bool closing, reading, peer_eof, busy;
	uint8_t *rbuf;
	size_t rlen, rcap;
	struct xfr *xfr;
	struct sockaddr_storage peer;
	char peer_text[INET6_ADDRSTRLEN + 8];
};

struct drdns_server {
	uv_loop_t *loop;
	const struct drdns_conf *conf;
	uv_udp_t udp;
	uv_tcp_t tcp;
	struct zref *cur;      /* the promoted set, or NULL */
	struct zref *drill;    /* a drill's zone, served only while cur is NULL */
	struct zref *handback; /* campus copies after a step-down, while cur is NULL */
	struct drdns_server_stats st;
	struct drdns_xfr_refusals refusals; /* refused transfers, for the reports */
	struct conn *conns;
	unsigned n_conns;
	struct zbuild *builds; /* cache jobs whose after-work callback has not run */
	unsigned pending;      /* handles, connections and cache jobs not yet released */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
	uint8_t udp_buf[65536];
};

struct write_req {
	uv_write_t req;
	struct conn *c;
	size_t len;
	uint8_t data[];
};

struct udp_send_req {
	uv_udp_send_t req;
	uint8_t *data;
};

/* What to do with a request. */
enum proc_result {
	PROC_DROP,
	PROC_REPLY,
	PROC_XFR,
	PROC_CLOSE
};

/* A request being handled. */
struct reqctx {
	struct drdns_server *srv;
	struct conn *conn; /* TCP connection, or NULL for UDP */
	const uint8_t *wire;
	size_t len;
	const struct sockaddr *peer;
	const char *peer_text;
	ldns_pkt *q;
	const struct drdns_tsig_key *key; /* verified request key, or NULL */
	const ldns_rdf *mac;              /* request MAC (in q), or NULL */
	size_t udp_max;
};

/* ---- server.c */
struct zref *zref_get(struct zref *zr);
void zref_put(struct zref *zr);
/* What answers queries: the promoted set, else the hand-back copies, else a
 * drill's zone, else nothing. */
struct zref *serving(const struct drdns_server *srv);
void srv_release(struct drdns_server *srv);
void sockaddr_text(const struct sockaddr *sa, char *out, size_t len);
/* Handle one request (UDP: conn NULL); *out (caller frees) is the reply for
 * PROC_REPLY. */
enum proc_result srv_process(struct drdns_server *srv, struct conn *conn, const uint8_t *wire,
                             size_t len, const struct sockaddr *peer, const char *peer_text,
                             uint8_t **out, size_t *out_len);
ldns_pkt *resp_new(const ldns_pkt *q, ldns_pkt_rcode rcode);
/* Sign (when the request was signed), add the NSID option when asked,
 * serialize, truncate.  Frees r. */
int srv_finish(struct reqctx *rq, ldns_pkt *r, uint8_t **out, size_t *out_len);
int reply_rcode(struct reqctx *rq, ldns_pkt_rcode rcode, uint8_t **out, size_t *len);
/* Octets srv_finish will add for NSID (RFC 5001) to the reply to rq, or 0:
 * answers are fitted to the buffer less this. */
size_t srv_nsid_size(const struct reqctx *rq);

/* ---- answer.c */
/* The served zone containing name (longest match; exact: the apex only), or -1. */
ssize_t zone_for_name(const struct drdns_zoneset *set, const ldns_rdf *name, bool exact);
/* The answer engine, without sockets: the reply to query q (one question, class
 * IN, opcode QUERY) from set and its indexes ixs (one per zone, NULL while
 * not built), fitted into max bytes.  Returns 0, 1 (REFUSED: not a served
 * name) or a negative error; *reply is the caller's. */
int drdns_answer(const struct drdns_zoneset *set, struct zindex *const *ixs, const ldns_pkt *q,
                 size_t max, ldns_pkt **reply);
int answer_query(struct reqctx *rq, const ldns_rr *question, uint8_t **out, size_t *len);

/* ---- xfr.c */
void zcache_free(struct zcache *zc);
/* The transfer ACL: whether an unsigned transfer from peer is allowed. */
bool unsigned_transfer_allowed(const struct drdns_conf *conf, const struct sockaddr *peer);
int transfer(struct reqctx *rq, const ldns_rr *question, bool ixfr, uint8_t **out, size_t *len,
             enum proc_result *res);
void xfr_end(struct conn *c, const char *status);
void xfr_send_next(struct conn *c);
void cache_start(struct drdns_server *srv, struct zref *zr);
void cache_stop(struct drdns_server *srv, const struct zref *zr);
/* Index the zones of zr: small ones now, large ones in the thread pool. */
void index_start(struct drdns_server *srv, struct zref *zr);

/* ---- udp.c */
void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                 unsigned flags);

/* ---- tcp.c */
void on_connection(uv_stream_t *server, int status);
void conn_close(struct conn *c);
void conn_process(struct conn *c);
struct write_req *wreq_new(struct conn *c, size_t room);
int conn_write(struct conn *c, struct write_req *w, size_t len);

#endif
