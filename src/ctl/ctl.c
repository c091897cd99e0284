/*
 * Control socket: the daemon side (libuv) and the blocking client used by
 * drdnsctl.  Protocol in include/drdns/ctl.h.
 *
 * Lifetimes.  A connection (struct ctl_conn) owns two handles, freed when both
 * close callbacks have run.  A request handed to the handler is a separate
 * object that points back at its connection; whichever goes first cuts the
 * link, so the handler may reply seconds later (a promote waits for
 * secondaries) after the client, or the whole server, has gone.
 */
#include "drdns/ctl.h"

#include "drdns/error.h"
#include "drdns/fsutil.h"
#include "drdns/log.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_HELLO_MAX       128   /* longest hello line we accept */
#define CTL_IDLE_MS_DEFAULT 30000 /* hello + request must arrive within this */
#define CTL_REPLY_WRITE_MS  30000 /* a client that never reads its reply */
#define CTL_MAX_CONNS       64    /* concurrent connections */
#define CTL_BACKLOG         16
#define CTL_REPLY_MAX       (16u << 20) /* client: largest reply accepted */

/* ------------------------------------------------------------------------ */
/* daemon side                                                              */

enum conn_state {
	CONN_HELLO,    /* waiting for the client's hello line */
	CONN_REQUEST,  /* waiting for the JSON request line */
	CONN_HANDLING, /* request is with the handler */
	CONN_REPLYING, /* reply being written; close when done */
	CONN_CLOSING,  /* handles closing */
};

struct ctl_conn;

struct drdns_ctl_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	char *path;
	dev_t dev; /* the socket file we bound, so close never removes another's */
	ino_t ino;
	drdns_ctl_handler handler;
	void *arg;
	unsigned idle_ms;
	struct ctl_conn *conns;
	size_t n_conns;
	bool closing;
};

struct ctl_conn {
	uv_pipe_t pipe;
	uv_timer_t timer;
	struct drdns_ctl_server *srv; /* NULL once detached by the server's close */
	struct ctl_conn *prev, *next;
	enum conn_state state;
	int open_handles;
	struct drdns_ctl_peer peer;
	struct drdns_ctl_request *req; /* with the handler, or NULL */
	uv_write_t hello_wr;
	char rbuf[4096];
	char *buf; /* unconsumed input */
	size_t len, cap;
};

struct drdns_ctl_request {
	struct ctl_conn *conn; /* NULL once the connection is gone */
	json_t *body;
	char *command;
};

struct ctl_write {
	uv_write_t wr;
	char *data;
};

static void conn_close(struct ctl_conn *c);

static void conn_on_close(uv_handle_t *h)
{
	struct ctl_conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	free(c->buf);
	free(c);
}

static void conn_unlink(struct ctl_conn *c)
{
	struct drdns_ctl_server *srv = c->srv;
	if (!srv)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	srv->n_conns--;
	c->srv = NULL;
}

static void conn_close(struct ctl_conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->req) {
		/* the handler still holds the request; its reply will be dropped */
		c->req->conn = NULL;
		c->req = NULL;
	}
	conn_unlink(c);
	uv_close((uv_handle_t *)&c->pipe, conn_on_close);
	uv_close((uv_handle_t *)&c->timer, conn_on_close);
}

static void on_write_reply(uv_write_t *wr, int status)
{
	struct ctl_write *w = (struct ctl_write *)wr;
	struct ctl_conn *c = wr->handle->data;
	if (status < 0 && status != UV_ECANCELED)
		drdns_log(DRDNS_LOG_INFO, "ctl", "reply not delivered pid=%d uid=%u: %s",
		          (int)c->peer.pid, (unsigned)c->peer.uid, uv_strerror(status));
	free(w->data);
	free(w);
	conn_close(c);
}

static void on_timer(uv_timer_t *t);

/* Serialise reply (reference stolen), write it, close after.  */
static void conn_send(struct ctl_conn *c, json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	struct ctl_write *w = text ? calloc(1, sizeof(*w)) : NULL;
	size_t n = text ? strlen(text) : 0;
	char *data = w ? realloc(text, n + 2) : NULL;
	if (!data) {
		free(w);
		free(text);
		drdns_log(DRDNS_LOG_ERR, "ctl", "out of memory serialising a reply");
		conn_close(c);
		return;
	}
	data[n] = '\n';
	data[n + 1] = '\0';
	w->data = data;
	c->state = CONN_REPLYING;
	uv_read_stop((uv_stream_t *)&c->pipe);
	uv_timer_start(&c->timer, on_timer, CTL_REPLY_WRITE_MS, 0);
	uv_buf_t b = uv_buf_init(data, (unsigned)(n + 1));
	int rc = uv_write(&w->wr, (uv_stream_t *)&c->pipe, &b, 1, on_write_reply);
	if (rc < 0) {
		free(w->data);
		free(w);
		conn_close(c);
	}
}

__attribute__((format(printf, 4, 5))) static void
conn_error(struct ctl_conn *c, int code, const char *command, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	drdns_log(DRDNS_LOG_NOTICE, "ctl", "refused request pid=%d uid=%u exit=%d: %s",
	          (int)c->peer.pid, (unsigned)c->peer.uid, code, msg);
	json_t *r = json_pack("{s:i, s:s?, s:s}", "exit", code, "command", command, "error", msg);
	if (!r) {
		conn_close(c);
		return;
	}
	conn_send(c, r);
}

static void on_timer(uv_timer_t *t)
{
	struct ctl_conn *c = t->data;
	if (c->state == CONN_HELLO || c->state == CONN_REQUEST) {
		unsigned ms = c->srv ? c->srv->idle_ms : CTL_IDLE_MS_DEFAULT;
		conn_error(c, DRDNS_EXIT_ERROR, NULL,
		           "timed out after %u ms waiting for the request", ms);
	} else if (c->state == CONN_REPLYING) {
		drdns_log(DRDNS_LOG_INFO, "ctl", "client pid=%d does not read its reply; closing",
		          (int)c->peer.pid);
		conn_close(c);
	}
}

/* A printable, shortened copy of untrusted input for messages. */
static void sanitize(char *out, size_t outlen, const char *in, size_t inlen)
{
	size_t i = 0, j = 0;
	for (; i < inlen && j + 4 < outlen; i++)
		out[j++] = isprint((unsigned char)in[i]) ? in[i] : '?';
	if (i < inlen) { /* cut short */
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = '\0';
}

static void handle_hello(struct ctl_conn *c, char *line, size_t n)
{
	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	if (strcmp(line, DRDNS_CTL_HELLO) == 0) {
		c->state = CONN_REQUEST;
		return;
	}
	char shown[64];
	static const char prefix[] = "drdns-control ";
	if (strncmp(line, prefix, sizeof(prefix) - 1) == 0) {
		sanitize(shown, sizeof(shown), line + sizeof(prefix) - 1, n - (sizeof(prefix) - 1));
		conn_error(c, DRDNS_EXIT_ERROR, NULL,
		           "protocol version mismatch: daemon %d, client %s", DRDNS_CTL_VERSION,
		           shown);
	} else {
		sanitize(shown, sizeof(shown), line, n);
		conn_error(c, DRDNS_EXIT_ERROR, NULL, "protocol error: expected \"%s\", got \"%s\"",
		           DRDNS_CTL_HELLO, shown);
	}
}

static void handle_request(struct ctl_conn *c, const char *line, size_t n)
{
	json_error_t jerr;
	json_t *body = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!body) {
		conn_error(c, DRDNS_EXIT_USAGE, NULL, "bad request: invalid JSON at column %d: %s",
		           jerr.column, jerr.text);
		return;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		conn_error(c, DRDNS_EXIT_USAGE, NULL, "bad request: expected a JSON object");
		return;
	}
	const char *command = json_string_value(json_object_get(body, "command"));
	if (!command) {
		json_decref(body);
		conn_error(c, DRDNS_EXIT_USAGE, NULL,
		           "bad request: \"command\" is missing or not a string");
		return;
	}
	if (drdns_ctl_cmd_parse(command) == DRDNS_CMD_UNKNOWN) {
		char shown[64];
		sanitize(shown, sizeof(shown), command, strlen(command));
		json_decref(body);
		conn_error(c, DRDNS_EXIT_USAGE, NULL, "unknown command \"%s\"", shown);
		return;
	}

	struct drdns_ctl_request *req = calloc(1, sizeof(*req));
	char *cmd = strdup(command);
	if (!req || !cmd) {
		free(req);
		free(cmd);
		/* reply first: command points into body */
		conn_error(c, DRDNS_EXIT_ERROR, command, "out of memory");
		json_decref(body);
		return;
	}
	req->conn = c;
	req->body = body;
	req->command = cmd;
	c->req = req;
	c->state = CONN_HANDLING;
	uv_timer_stop(&c->timer);
	drdns_log(DRDNS_LOG_INFO, "ctl", "request command=%s uid=%u gid=%u pid=%d", cmd,
	          (unsigned)c->peer.uid, (unsigned)c->peer.gid, (int)c->peer.pid);
	/* The handler may reply (and so close c) before returning. */
	struct drdns_ctl_peer peer = c->peer;
	c->srv->handler(req, body, &peer, c->srv->arg);
}

/* Consume complete lines from c->buf while the state wants input. */
static void conn_process(struct ctl_conn *c)
{
	while (c->state == CONN_HELLO || c->state == CONN_REQUEST) {
		char *nl = memchr(c->buf, '\n', c->len);
		size_t limit = c->state == CONN_HELLO ? CTL_HELLO_MAX : DRDNS_CTL_MAX_REQUEST;
		if (!nl) {
			if (c->len > limit) {
				if (c->state == CONN_HELLO)
					conn_error(c, DRDNS_EXIT_ERROR, NULL,
					           "protocol error: no \"%s\" line",
					           DRDNS_CTL_HELLO);
				else
					conn_error(c, DRDNS_EXIT_USAGE, NULL,
					           "request too large (at most %d bytes)",
					           DRDNS_CTL_MAX_REQUEST);
			}
			return;
		}
		size_t n = (size_t)(nl - c->buf);
		if (n > limit) {
			conn_error(c, c->state == CONN_HELLO ? DRDNS_EXIT_ERROR : DRDNS_EXIT_USAGE,
			           NULL,
			           c->state == CONN_HELLO ? "protocol error: hello line too long"
			                                  : "request too large");
			return;
		}
		*nl = '\0';
		/* copy the line out so the buffer can be compacted first */
		char *line = malloc(n + 1);
		if (!line) {
			conn_close(c);
			return;
		}
		memcpy(line, c->buf, n + 1);
		c->len -= n + 1;
		memmove(c->buf, nl + 1, c->len);
		if (c->state == CONN_HELLO)
			handle_hello(c, line, n);
		else
			handle_request(c, line, n);
		free(line);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ctl_conn *c = h->data;
	(void)suggested;
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

/* After EOF: has the client closed its socket, or only shut down its
 * writing side (socat, `nc -N`) and still waits for the reply? */
static bool peer_gone(struct ctl_conn *c)
{
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0)
		return true;
	struct pollfd p = {.fd = fd, .events = 0};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl_conn *c = s->data;
	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (c->state == CONN_HANDLING && nread == UV_EOF && !peer_gone(c)) {
			uv_read_stop(s); /* half-closed: the reply can still be delivered */
			return;
		}
		if (c->state == CONN_HANDLING)
			drdns_log(
			    DRDNS_LOG_NOTICE, "ctl",
			    "client pid=%d uid=%u went away before the reply; command=%s continues",
			    (int)c->peer.pid, (unsigned)c->peer.uid,
			    c->req ? c->req->command : "?");
		conn_close(c);
		return;
	}
	if (c->state != CONN_HELLO && c->state != CONN_REQUEST)
		return; /* anything after the request is ignored */
	size_t need = c->len + (size_t)nread + 1;
	if (need > c->cap) {
		size_t cap = c->cap ? c->cap : 1024;
		while (cap < need)
			cap *= 2;
		char *nb = realloc(c->buf, cap);
		if (!nb) {
			conn_close(c);
			return;
		}
		c->buf = nb;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, c->rbuf, (size_t)nread);
	c->len += (size_t)nread;
	c->buf[c->len] = '\0';
	conn_process(c);
}

static void on_hello_written(uv_write_t *wr, int status)
{
	struct ctl_conn *c = wr->handle->data;
	if (status < 0 && c->state != CONN_CLOSING && c->state != CONN_REPLYING)
		conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct drdns_ctl_server *srv = server->data;
	if (status < 0) {
		drdns_log(DRDNS_LOG_WARNING, "ctl", "accept failed: %s", uv_strerror(status));
		return;
	}
	struct ctl_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		drdns_log(DRDNS_LOG_ERR, "ctl", "out of memory accepting a connection");
		return;
	}
	uv_pipe_init(srv->loop, &c->pipe, 0);
	uv_timer_init(srv->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->srv = srv;
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
	c->state = CONN_HELLO;

	int rc = uv_accept(server, (uv_stream_t *)&c->pipe);
	if (rc < 0) {
		drdns_log(DRDNS_LOG_WARNING, "ctl", "accept failed: %s", uv_strerror(rc));
		conn_close(c);
		return;
	}
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		drdns_log(DRDNS_LOG_WARNING, "ctl", "cannot read peer credentials: %s",
		          strerror(errno));
		conn_close(c);
		return;
	}
	c->peer.uid = cred.uid;
	c->peer.gid = cred.gid;
	c->peer.pid = cred.pid;
	if (srv->n_conns > CTL_MAX_CONNS) {
		drdns_log(DRDNS_LOG_WARNING, "ctl", "too many control connections; refusing pid=%d",
		          (int)cred.pid);
		conn_close(c);
		return;
	}

	static char hello[] = DRDNS_CTL_HELLO "\n";
	uv_buf_t b = uv_buf_init(hello, sizeof(hello) - 1);
	if (uv_write(&c->hello_wr, (uv_stream_t *)&c->pipe, &b, 1, on_hello_written) < 0 ||
	    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timer, srv->idle_ms, 0);
}

static void on_listener_close(uv_handle_t *h)
{
	struct drdns_ctl_server *srv = h->data;
	free(srv->path);
	free(srv);
}

/* Is a drdnsd listening on path?  0: no (stale), 1: yes, <0: cannot tell. */
static int socket_live(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1;
	if (e == ECONNREFUSED || e == ENOENT)
		return 0;
	return -e;
}

int drdns_ctl_server_new(uv_loop_t *loop, const char *path, drdns_ctl_handler handler, void *arg,
                         struct drdns_ctl_server **out)
{
	struct sockaddr_un sun;
	struct stat st;
	int rc;

	*out = NULL;
	if (!loop || !path || !path[0] || !handler)
		return DRDNS_EINVAL;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		drdns_log(DRDNS_LOG_ERR, "ctl", "control socket path too long (max %zu): %s",
		          sizeof(sun.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}

	/* A client that vanishes makes our reply write raise SIGPIPE. */
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
	    !(sa.sa_flags & SA_SIGINFO)) {
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}

	char *dir = drdns_dirname(path);
	if (!dir)
		return DRDNS_ENOMEM;
	if (stat(dir, &st) != 0) {
		rc = drdns_mkdir_p(dir, 0750);
		if (rc < 0) {
			drdns_log(DRDNS_LOG_ERR, "ctl", "cannot create %s: %s", dir,
			          drdns_strerror(rc));
			free(dir);
			return rc;
		}
		chmod(dir, 0750);
		drdns_log(DRDNS_LOG_INFO, "ctl", "created directory %s mode=0750", dir);
	}
	free(dir);

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			drdns_log(
			    DRDNS_LOG_ERR, "ctl",
			    "%s exists and is not a socket; not replacing it (remove it or choose "
			    "another controller.control_socket)",
			    path);
			return -EEXIST;
		}
		rc = socket_live(path);
		if (rc == 1) {
			drdns_log(
			    DRDNS_LOG_ERR, "ctl",
			    "%s: another drdnsd is already listening there (stop it first, or give "
			    "this one another controller.control_socket)",
			    path);
			return -EADDRINUSE;
		}
		if (rc < 0) {
			drdns_log(DRDNS_LOG_ERR, "ctl", "cannot probe existing socket %s: %s", path,
			          strerror(-rc));
			return rc;
		}
		if (unlink(path) != 0 && errno != ENOENT) {
			rc = -errno;
			drdns_log(DRDNS_LOG_ERR, "ctl", "cannot remove stale socket %s: %s", path,
			          strerror(errno));
			return rc;
		}
		drdns_log(DRDNS_LOG_NOTICE, "ctl", "removed stale control socket %s", path);
	}

	/* Bind the socket ourselves rather than with uv_pipe_bind: libuv unlinks a
	 * path it bound when the handle closes, even if by then the file is
	 * another drdnsd's socket. */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0117);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	umask(old);
	if (rc != 0) {
		drdns_log(DRDNS_LOG_ERR, "ctl", "cannot bind %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	if (chmod(path, 0660) != 0 || lstat(path, &st) != 0 || listen(fd, CTL_BACKLOG) != 0) {
		rc = -errno;
		drdns_log(DRDNS_LOG_ERR, "ctl", "cannot set up %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return rc;
	}

	struct drdns_ctl_server *srv = calloc(1, sizeof(*srv));
	if (!srv || !(srv->path = strdup(path))) {
		free(srv);
		unlink(path);
		close(fd);
		return DRDNS_ENOMEM;
	}
	srv->loop = loop;
	srv->handler = handler;
	srv->arg = arg;
	srv->idle_ms = CTL_IDLE_MS_DEFAULT;
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	rc = uv_pipe_init(loop, &srv->listener, 0);
	if (rc < 0) {
		free(srv->path);
		free(srv);
		unlink(path);
		close(fd);
		return rc;
	}
	srv->listener.data = srv;
	rc = uv_pipe_open(&srv->listener, fd);
	if (rc < 0) {
		close(fd);
	} else {
		rc = uv_listen((uv_stream_t *)&srv->listener, CTL_BACKLOG, on_connection);
	}
	if (rc < 0) {
		drdns_log(DRDNS_LOG_ERR, "ctl", "cannot listen on %s: %s", path, uv_strerror(rc));
		unlink(path);
		uv_close((uv_handle_t *)&srv->listener, on_listener_close);
		return rc;
	}
	drdns_log(DRDNS_LOG_INFO, "ctl", "listening path=%s mode=0660", path);
	*out = srv;
	return 0;
}

void drdns_ctl_server_set_idle_timeout(struct drdns_ctl_server *srv, unsigned ms)
{
	if (srv)
		srv->idle_ms = ms ? ms : CTL_IDLE_MS_DEFAULT;
}

const char *drdns_ctl_request_command(const struct drdns_ctl_request *req)
{
	return req ? req->command : NULL;
}

void drdns_ctl_reply(struct drdns_ctl_request *req, json_t *reply)
{
	if (!req) {
		json_decref(reply);
		return;
	}
	struct ctl_conn *c = req->conn;
	if (c && c->state == CONN_HANDLING) {
		c->req = NULL;
		if (!json_is_object(reply)) {
			drdns_log(DRDNS_LOG_ERR, "ctl", "command=%s: handler gave no reply object",
			          req->command);
			json_decref(reply);
			reply = json_pack("{s:i, s:s}", "exit", DRDNS_EXIT_ERROR, "error",
			                  "internal error: no reply");
		}
		if (reply && !json_is_integer(json_object_get(reply, "exit"))) {
			drdns_log(DRDNS_LOG_ERR, "ctl",
			          "command=%s: reply without an integer \"exit\"", req->command);
			json_object_set_new(reply, "exit", json_integer(DRDNS_EXIT_ERROR));
		}
		if (reply && !json_object_get(reply, "command"))
			json_object_set_new(reply, "command", json_string(req->command));
		if (reply)
			conn_send(c, reply);
		else
			conn_close(c);
	} else {
		drdns_log(DRDNS_LOG_INFO, "ctl", "command=%s: client gone, reply dropped",
		          req->command);
		json_decref(reply);
	}
	json_decref(req->body);
	free(req->command);
	free(req);
}

void drdns_ctl_server_close(struct drdns_ctl_server *srv)
{
	if (!srv || srv->closing)
		return;
	srv->closing = true;
	while (srv->conns)
		conn_close(srv->conns); /* unlinks it */
	struct stat st;
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
	uv_close((uv_handle_t *)&srv->listener, on_listener_close);
}

/* ------------------------------------------------------------------------ */
/* client side                                                              */

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds left before deadline for poll(): -1 forever, 0 expired. */
static int ms_left(double deadline)
{
	if (deadline <= 0)
		return -1;
	double left = deadline - now_mono();
	if (left <= 0)
		return 0;
	if (left > 1e6)
		return 1000000000;
	return (int)(left * 1000.0) + 1;
}

static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		int ms = ms_left(deadline);
		if (ms == 0)
			return DRDNS_ETIMEOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0;
	}
}

struct rbuf {
	char *data;
	size_t len, cap;
};

/* Read until buf holds a '\n' (returns its offset in *line_len) or EOF.
 * Returns 0 (line found), 1 (EOF; *line_len = len), or a negative error. */
static int read_line(int fd, struct rbuf *b, size_t max, double deadline, size_t *line_len)
{
	for (;;) {
		char *nl = b->len ? memchr(b->data, '\n', b->len) : NULL;
		if (nl) {
			*line_len = (size_t)(nl - b->data);
			return 0;
		}
		if (b->len > max)
			return DRDNS_EPROTO;
		if (b->cap - b->len < 4096) {
			size_t cap = b->cap ? b->cap * 2 : 8192;
			char *nd = realloc(b->data, cap);
			if (!nd)
				return DRDNS_ENOMEM;
			b->data = nd;
			b->cap = cap;
		}
		int rc = wait_fd(fd, POLLIN, deadline);
		if (rc < 0)
			return rc;
		ssize_t n = recv(fd, b->data + b->len, b->cap - b->len - 1, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			*line_len = b->len;
			return 1;
		}
		b->len += (size_t)n;
	}
}

static int write_all(int fd, const char *data, size_t len, double deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int rc = wait_fd(fd, POLLOUT, deadline);
			if (rc < 0)
				return rc;
			continue;
		}
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static void consume(struct rbuf *b, size_t n)
{
	b->len -= n;
	memmove(b->data, b->data + n, b->len);
}

int drdns_ctl_call(const char *path, const json_t *request, double timeout, json_t **reply,
                   char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct rbuf b = {0};
	char *req_text = NULL;
	int fd = -1;
	int rc;
	size_t n;
	double deadline = timeout > 0 ? now_mono() + timeout : 0;

	*reply = NULL;
	if (err && errlen)
		err[0] = '\0';
#define FAIL(code, ...)                                                                            \
	do {                                                                                       \
		rc = (code);                                                                       \
		if (err && errlen)                                                                 \
			snprintf(err, errlen, __VA_ARGS__);                                        \
		goto cleanup;                                                                      \
	} while (0)

	if (!path || !path[0])
		FAIL(DRDNS_EINVAL, "no control socket path given");
	if (strlen(path) >= sizeof(sun.sun_path))
		FAIL(-ENAMETOOLONG, "control socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	req_text = request ? json_dumps(request, JSON_COMPACT) : NULL;
	if (!req_text)
		FAIL(DRDNS_EINVAL, "cannot serialise the request");
	if (strlen(req_text) > DRDNS_CTL_MAX_REQUEST)
		FAIL(DRDNS_EINVAL, "request too large (%zu bytes, at most %d)", strlen(req_text),
		     DRDNS_CTL_MAX_REQUEST);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		FAIL(-errno, "socket: %s", strerror(errno));
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN) { /* listener's backlog is full: try again shortly */
			if (ms_left(deadline) == 0)
				FAIL(DRDNS_ETIMEOUT,
				     "cannot connect to %s: drdnsd is not accepting", path);
			struct timespec ts = {0, 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		const char *hint = "";
		if (e == ENOENT || e == ECONNREFUSED)
			hint = " (is drdnsd running?)";
		else if (e == EACCES || e == EPERM)
			hint = " (run as root or as a member of drdnsd's group)";
		FAIL(-e, "cannot connect to %s: %s%s", path, strerror(e), hint);
	}

	rc = read_line(fd, &b, CTL_HELLO_MAX, deadline, &n);
	if (rc == DRDNS_ETIMEOUT)
		FAIL(rc, "%s: no greeting from drdnsd within %g s", path, timeout);
	if (rc == 1 && n == 0)
		FAIL(DRDNS_EPROTO, "%s: drdnsd closed the connection without a greeting", path);
	if (rc < 0 && rc != DRDNS_EPROTO)
		FAIL(rc, "%s: reading the greeting: %s", path, drdns_strerror(rc));
	if (rc != 0)
		FAIL(DRDNS_EPROTO, "%s: not a drdnsd control socket (no \"%s\" greeting)", path,
		     DRDNS_CTL_HELLO);
	b.data[n] = '\0';
	if (n > 0 && b.data[n - 1] == '\r')
		b.data[n - 1] = '\0';
	if (strcmp(b.data, DRDNS_CTL_HELLO) != 0) {
		static const char prefix[] = "drdns-control ";
		char shown[64];
		if (strncmp(b.data, prefix, sizeof(prefix) - 1) == 0) {
			const char *v = b.data + sizeof(prefix) - 1;
			sanitize(shown, sizeof(shown), v, strlen(v));
			FAIL(DRDNS_EPROTO,
			     "protocol version mismatch: daemon %s, client %d (drdnsctl and drdnsd "
			     "are "
			     "from different releases)",
			     shown, DRDNS_CTL_VERSION);
		}
		sanitize(shown, sizeof(shown), b.data, strlen(b.data));
		FAIL(DRDNS_EPROTO, "%s: not a drdnsd control socket (greeting \"%s\")", path,
		     shown);
	}
	consume(&b, n + 1);

	size_t rl = strlen(req_text);
	char *msg = malloc(sizeof(DRDNS_CTL_HELLO) + rl + 2);
	if (!msg)
		FAIL(DRDNS_ENOMEM, "out of memory");
	int ml = sprintf(msg, "%s\n%s\n", DRDNS_CTL_HELLO, req_text);
	rc = write_all(fd, msg, (size_t)ml, deadline);
	free(msg);
	if (rc == DRDNS_ETIMEOUT)
		FAIL(rc, "%s: timed out sending the request", path);
	if (rc < 0)
		FAIL(rc, "%s: sending the request: %s", path, drdns_strerror(rc));

	rc = read_line(fd, &b, CTL_REPLY_MAX, deadline, &n);
	if (rc == DRDNS_ETIMEOUT)
		FAIL(rc, "no reply from drdnsd within %g s", timeout);
	if (rc == DRDNS_EPROTO)
		FAIL(rc, "reply from drdnsd too large (more than %u bytes)", CTL_REPLY_MAX);
	if (rc < 0)
		FAIL(rc, "reading the reply: %s", drdns_strerror(rc));
	if (rc == 1 && n == 0)
		FAIL(DRDNS_EPROTO, "drdnsd closed the connection without a reply");
	json_error_t jerr;
	json_t *r = json_loadb(b.data, n, 0, &jerr);
	if (!r)
		FAIL(DRDNS_EPROTO, "malformed reply from drdnsd: %s", jerr.text);
	if (!json_is_object(r) || !json_is_integer(json_object_get(r, "exit"))) {
		json_decref(r);
		FAIL(DRDNS_EPROTO, "malformed reply from drdnsd: no integer \"exit\"");
	}
	*reply = r;
	rc = 0;
#undef FAIL

cleanup:
	if (fd >= 0)
		close(fd);
	free(b.data);
	free(req_text);
	return rc;
}
