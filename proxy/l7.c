/*
 * A CONNECT tunnel the proxy looks into (docs/proxy.md, "TLS and L7"):
 *
 *   PEEK -> ACCEPT (TLS toward the sandbox) -> UPTLS (TLS toward the
 *        upstream, verified) -> HTTP (request by request) | RAW
 *   PEEK -> HTTP (plain HTTP inside CONNECT) | the splice relay (conn.c)
 *
 * In HTTP every request head is parsed (origin form), its target
 * canonicalised, decided with moat_policy_decide_request() against the
 * sandbox's current policy, its credential placeholders replaced
 * (inject.c), and forwarded; its body follows by Content-Length or
 * chunks. The next request is read only after the response to this one
 * has ended (resp.c), so a 403 is never written into another response.
 * A 101 (WebSocket) turns the tunnel into RAW: bytes both ways.
 *
 * Bytes are copied through per-direction buffers that exist only while
 * they hold something; SSL buffers are released when idle, so an idle
 * terminated tunnel costs its two SSL objects and this struct.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/util.h"
#include "proxy/l7.h"

static void l7_idle(struct moat_loop *l, void *arg);

void
px_l7_free(struct px_l7 *x)
{
	if (x == NULL)
		return;
	SSL_free(x->c.ssl);
	SSL_free(x->u.ssl);
	px_ibuf_free(&x->c.out);
	px_ibuf_free(&x->u.out);
	px_ibuf_free(&x->body);
	px_ibuf_free(&x->bhead);
	free(x->head);
	free(x->uerr);
	free(x);
}

static size_t
pending(const struct px_io *io)
{
	return io->out.len - io->off;
}

int
px_l7_out(struct px_io *io, const void *s, size_t n)
{
	const char *p = s;
	ssize_t r;

	/*
	 * Nothing queued: write at once, and queue only what the socket
	 * did not take (a bulk transfer then copies each record once). A
	 * retried SSL_write resends from the queue: the same bytes, moved
	 * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
	 */
	while (pending(io) == 0 && n > 0 && !io->wr_wr && io->fd >= 0) {
		if (io->ssl != NULL) {
			ERR_clear_error();
			if ((r = SSL_write(io->ssl, p, (int)n)) <= 0) {
				if (SSL_get_error(io->ssl, (int)r) ==
				    SSL_ERROR_WANT_READ)
					io->wr_wr = true;
				ERR_clear_error();
				break;
			}
		} else if ((r = send(io->fd, p, n, MSG_NOSIGNAL |
		    MSG_DONTWAIT)) <= 0) {
			break;
		}
		p += r;
		n -= (size_t)r;
	}
	return px_ibuf_put(&io->out, p, n);
}


/* >0 bytes, 0 EOF, -1 would block, -2 error. */
static ssize_t
io_read(struct px_io *io, char *buf, size_t n)
{
	ssize_t r;

	io->rd_ww = false;
	if (io->ssl == NULL) {
		r = recv(io->fd, buf, n, 0);
		if (r == -1)
			return errno == EAGAIN || errno == EINTR ? -1 : -2;
		return r;
	}
	ERR_clear_error();
	if ((r = SSL_read(io->ssl, buf, (int)n)) > 0)
		return r;
	switch (SSL_get_error(io->ssl, (int)r)) {
	case SSL_ERROR_WANT_READ:
		return -1;
	case SSL_ERROR_WANT_WRITE:
		io->rd_ww = true;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		/* A TCP close without close_notify: an end all the same. */
		return errno == 0 || errno == ECONNRESET ? 0 : -2;
	default:
		ERR_clear_error();
		return -2;
	}
}

/* 1 all sent, 0 would block, -2 error. */
static int
io_flush(struct px_io *io)
{
	io->wr_wr = false;
	while (pending(io) > 0) {
		ssize_t r;

		if (io->ssl == NULL) {
			r = send(io->fd, io->out.p + io->off, pending(io),
			    MSG_NOSIGNAL);
			if (r == -1 && errno == EINTR)
				continue;
			if (r == -1)
				return errno == EAGAIN ? 0 : -2;
		} else {
			ERR_clear_error();
			r = SSL_write(io->ssl, io->out.p + io->off,
			    (int)pending(io));
			if (r <= 0) {
				int e = SSL_get_error(io->ssl, (int)r);

				if (e == SSL_ERROR_WANT_READ)
					io->wr_wr = true;
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE)
					return 0;
				ERR_clear_error();
				return -2;
			}
		}
		io->off += (size_t)r;
	}
	/* Empty: give the memory back (an idle tunnel keeps none). */
	free(io->out.p);
	memset(&io->out, 0, sizeof(io->out));
	io->off = 0;
	return 1;
}

/* ---- answering the client ourselves ---- */

/*
 * End the tunnel: close_notify toward the client, then the conn's
 * half-close and drain (closing with unread bytes would reset the
 * connection and could destroy what was just written).
 */
static void
l7_close(struct px_conn *c)
{
	struct px_l7 *x = c->l7;
	bool linger = !x->c.eof;
	char *none;

	if (x->c.ssl != NULL && linger) {
		ERR_clear_error();
		(void)SSL_shutdown(x->c.ssl);
		ERR_clear_error();
	}
	px_l7_free(x);
	c->l7 = NULL;
	if (!linger || (none = malloc(1)) == NULL) {
		px_conn_free(c);
		return;
	}
	px_conn_respond(c, none, 0);
}

/* Queue a whole response for the client and end the tunnel after it. */
void
px_l7_finish(struct px_conn *c, char *resp, size_t len)
{
	struct px_l7 *x = c->l7;

	if (resp != NULL)
		px_l7_out(&x->c, resp, len);
	free(resp);
	/* Nothing more goes upstream: a half-sent request is abandoned. */
	x->st = L_FLUSH;
	x->resp_on = false;
}

/* ---- the request stream (client -> upstream) ---- */

static bool
looks_like_http(const char *b, size_t n)
{
	size_t i = 0;

	while (i < n && i < 32 && b[i] >= 'A' && b[i] <= 'Z')
		i++;
	return i == n || (i > 0 && i < n && b[i] == ' ');
}

static int body_bytes(struct px_conn *c, const char *b, size_t n);

/* Take the head buffer's bytes as far as they go. */
static int
heads(struct px_conn *c)
{
	struct px_l7 *x = c->l7;
	struct moat_cause cause = { { 0 } };
	struct moat_http_req r;
	int status = 0, rc;

	while (x->up == U_HEAD && x->hlen > 0 && x->st == L_HTTP) {
		if (x->first && !x->must_l7 && !looks_like_http(x->head,
		    x->hlen)) {
			/* Not HTTP, on an L4 endpoint: bytes as they are. */
			x->st = L_RAW;
			rc = px_l7_out(&x->u, x->head, x->hlen);
			x->hlen = 0;
			return rc;
		}
		rc = moat_http_parse_origin(x->head, x->hlen, &r, &status,
		    &cause);
		if (rc == MOAT_ERR_AGAIN)
			return 0;
		if (rc != MOAT_OK) {
			px_l7_error(c, status ? status : 400, status == 431 ?
			    "request_header_too_large" : "bad_request",
			    cause.msg);
			return 0;
		}
		x->first = false;
		if (px_l7_request(c, &r) != 0)
			return 0;
		/* What followed the head: body, then maybe the next head. */
		{
			size_t rest = x->hlen - r.head_len;
			char *tail = x->head + r.head_len;

			memmove(x->head, tail, rest);
			x->hlen = rest;
			if (x->up != U_HEAD && x->up != U_WAIT && rest > 0) {
				char *copy = malloc(rest);

				if (copy == NULL)
					return -1;
				memcpy(copy, x->head, rest);
				x->hlen = 0;
				rc = body_bytes(c, copy, rest);
				free(copy);
				if (rc != 0)
					return rc;
			}
		}
	}
	return 0;
}

static int
head_bytes(struct px_conn *c, const char *b, size_t n)
{
	struct px_l7 *x = c->l7;

	if (x->head == NULL && (x->head = malloc(MOAT_HTTP_HEAD_MAX)) == NULL)
		return -1;
	if (x->hlen + n > MOAT_HTTP_HEAD_MAX) {
		px_l7_error(c, 431, "request_header_too_large", "request head "
		    "over 8 KiB, or requests sent ahead of responses");
		return 0;
	}
	memcpy(x->head + x->hlen, b, n);
	x->hlen += n;
	return heads(c);
}

/* A streamed body: forward all but the last bytes that could start a
 * placeholder split across reads; refuse the request on a placeholder. */
static int
scan_forward(struct px_conn *c, const char *b, size_t n, bool end)
{
	struct px_l7 *x = c->l7;
	char *w = NULL;
	size_t wn = x->nhold + n, keep;

	if (!x->scan)
		return px_l7_out(&x->u, b, n);
	if ((w = malloc(wn + 1)) == NULL)
		return -1;
	memcpy(w, x->hold, x->nhold);
	memcpy(w + x->nhold, b, n);
	if (px_inject_marker(w, wn)) {
		char why[200], *r;
		size_t len = 0;

		free(w);
		snprintf(why, sizeof(why), "a credential placeholder in a "
		    "request body moat does not rewrite (chunked, over 256 "
		    "KiB, or not JSON, form or text); the request was "
		    "abandoned");
		px_l7_event(c, "credential", why, NULL, NULL);
		r = px_simple_response(403, "uninspected_credentials", why,
		    &len);
		px_l7_finish(c, r, len);
		return 0;
	}
	keep = end ? 0 : (wn < PX_INJECT_HOLD ? wn : PX_INJECT_HOLD);
	if (px_l7_out(&x->u, w, wn - keep) != 0) {
		free(w);
		return -1;
	}
	memcpy(x->hold, w + wn - keep, keep);
	x->nhold = keep;
	free(w);
	return 0;
}

static int
body_bytes(struct px_conn *c, const char *b, size_t n)
{
	struct px_l7 *x = c->l7;
	size_t take = n;
	bool done;
	int rc;

	if (x->chunked) {
		if (moat_http_chunked_feed(&x->ch, b, n, &take) != MOAT_OK) {
			px_l7_error(c, 400, "bad_request", "malformed chunked "
			    "body");
			return 0;
		}
		done = moat_http_chunked_done(&x->ch);
	} else {
		take = n < x->left ? n : (size_t)x->left;
		x->left -= take;
		done = x->left == 0;
	}
	if (x->up == U_BODYBUF) {
		if (px_ibuf_put(&x->body, b, take) != 0)
			return -1;
		if (done && (rc = px_l7_send_kept(c)) != 0)
			return rc;
	} else {
		if ((rc = scan_forward(c, b, take, done)) != 0 ||
		    x->st != L_HTTP)
			return rc;
		if (done)
			x->up = x->resp_on ? U_WAIT : U_HEAD;
	}
	if (x->st != L_HTTP || take == n)
		return 0;
	/* Pipelined: the next head waits for this response. */
	return head_bytes(c, b + take, n - take);
}

static int
up_bytes(struct px_conn *c, const char *b, size_t n)
{
	struct px_l7 *x = c->l7;

	x->last_ms = moat_now_ms();
	if (x->st == L_RAW)
		return px_l7_out(&x->u, b, n);
	if (x->up == U_BODY || x->up == U_BODYBUF)
		return body_bytes(c, b, n);
	return head_bytes(c, b, n);
}

/* ---- the response stream (upstream -> client) ---- */

static int
down_bytes(struct px_conn *c, const char *b, size_t n)
{
	struct px_l7 *x = c->l7;
	size_t used = 0;
	int rc;

	x->last_ms = moat_now_ms();
	if (x->st == L_RAW)
		return px_l7_out(&x->c, b, n);
	if (!x->resp_on) {
		/* Bytes nobody asked for: the upstream is not HTTP/1.x. */
		x->st = L_FLUSH;
		return 0;
	}
	rc = px_resp_feed(&x->resp, b, n, &used);
	if (px_l7_out(&x->c, b, used) != 0)
		return -1;
	switch (rc) {
	case PX_RESP_DONE:
		x->resp_on = false;
		if (x->resp.close || used < n) {
			x->st = L_FLUSH;
			return 0;
		}
		if (x->up == U_WAIT)
			x->up = U_HEAD;
		return heads(c);
	case PX_RESP_UPGRADE:
		x->st = L_RAW;
		x->upgraded = true;
		return px_l7_out(&x->c, b + used, n - used);
	case PX_RESP_BAD:
		x->st = L_FLUSH;
		return 0;
	default:
		return 0;
	}
}

/* ---- driving both sides ---- */

static bool
want_client(const struct px_l7 *x)
{
	if (x->c.eof || pending(&x->u) >= OUT_HIGH)
		return false;
	if (x->st == L_RAW)
		return true;
	return x->st == L_HTTP && x->up != U_WAIT;
}

static bool
want_upstream(const struct px_l7 *x)
{
	if (x->u.eof || x->u.fd < 0 || pending(&x->c) >= OUT_HIGH)
		return false;
	return x->st == L_RAW || x->st == L_HTTP;
}

static void
set_masks(struct px_conn *c)
{
	struct px_l7 *x = c->l7;
	unsigned cm = 0, um = 0;

	if (want_client(x) || x->c.wr_wr)
		cm |= MOAT_EV_READ;
	if ((pending(&x->c) > 0 && !x->c.wr_wr) || x->c.rd_ww)
		cm |= MOAT_EV_WRITE;
	if (want_upstream(x) || x->u.wr_wr)
		um |= MOAT_EV_READ;
	if ((pending(&x->u) > 0 && !x->u.wr_wr) || x->u.rd_ww)
		um |= MOAT_EV_WRITE;
	/*
	 * Decrypted bytes OpenSSL holds (read off the socket already; it
	 * reads one record at a time) wake no one: ask for writability,
	 * at once on an idle socket, to come back for them.
	 */
	if (want_client(x) && x->c.ssl != NULL && SSL_pending(x->c.ssl) > 0)
		cm |= MOAT_EV_WRITE;
	if (want_upstream(x) && x->u.ssl != NULL && SSL_pending(x->u.ssl) > 0)
		um |= MOAT_EV_WRITE;
	moat_loop_mod_fd(c->p->loop, c->cfd, cm);
	if (c->ufd >= 0)
		moat_loop_mod_fd(c->p->loop, c->ufd, um);
}

/* Read what one side has; 1 progress, 0 none, -1 the tunnel ends. */
static int
read_side(struct px_conn *c, bool client)
{
	struct px_l7 *x = c->l7;
	struct px_io *io = client ? &x->c : &x->u;
	char buf[IO_CHUNK];
	ssize_t n = io_read(io, buf, sizeof(buf));

	if (n == -1)
		return 0;
	if (n == -2)
		return -1;
	if (n == 0) {
		io->eof = true;
		return 1;
	}
	if ((client ? up_bytes(c, buf, (size_t)n) :
	    down_bytes(c, buf, (size_t)n)) != 0)
		return -1;
	return 1;
}

/*
 * Move everything that can move. Returns false when the connection was
 * freed.
 */
static bool
pump(struct px_conn *c)
{
	struct px_l7 *x = c->l7;

	for (int i = 0; i < 64; i++) {
		int progress = 0, r;

		if (io_flush(&x->c) < 0 || (x->st != L_FLUSH &&
		    io_flush(&x->u) < 0))
			goto end;
		if (x->st == L_FLUSH) {
			if (pending(&x->c) == 0)
				goto end;
			break;
		}
		if (want_client(x)) {
			if ((r = read_side(c, true)) < 0)
				goto end;
			progress |= r;
		}
		if (want_upstream(x)) {
			if ((r = read_side(c, false)) < 0)
				goto end;
			progress |= r;
		}
		/* An end: at a request boundary, or when the upstream
		 * closed (its EOF-framed response is then complete). */
		if (x->u.eof && pending(&x->c) == 0 && x->st != L_FLUSH &&
		    (x->st == L_RAW || !x->resp_on ||
		    px_resp_until_eof(&x->resp)))
			goto end;
		if (x->c.eof && pending(&x->u) == 0 && (x->st == L_RAW ||
		    (!x->resp_on && x->up == U_HEAD) || x->up == U_BODY ||
		    x->up == U_BODYBUF))
			goto end;
		if (x->u.eof && x->resp_on && !px_resp_until_eof(&x->resp))
			x->st = L_FLUSH;
		if (!progress)
			break;
	}
	set_masks(c);
	return true;
end:
	l7_close(c);
	return false;
}

/* ---- setting up ---- */

static void
l7_idle(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;
	int64_t idle = moat_now_ms() - c->l7->last_ms;

	(void)l;
	c->timer = NULL;
	if (idle >= c->p->cfg.idle_timeout_ms) {
		px_conn_free(c);
		return;
	}
	px_conn_arm(c, c->p->cfg.idle_timeout_ms - idle, l7_idle);
}

static void
start_http(struct px_conn *c)
{
	struct px_l7 *x = c->l7;

	x->st = x->inspect ? L_HTTP : L_RAW;
	x->up = U_HEAD;
	x->first = true;
	pump(c);
}

/* One step of a handshake: 1 done, 0 wait (*m: what for), -1 failed. */
static int
handshake(SSL *s, unsigned *m)
{
	int r, e;

	ERR_clear_error();
	if ((r = SSL_do_handshake(s)) == 1)
		return 1;
	e = SSL_get_error(s, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*m = e == SSL_ERROR_WANT_READ ? MOAT_EV_READ : MOAT_EV_WRITE;
		return 0;
	}
	return -1;
}

/*
 * Both handshakes at once (toward the sandbox and toward the upstream),
 * so the second one adds no round trips: the tunnel starts when both
 * are done, or answers 502 when the upstream's failed.
 */
static void
handshakes(struct px_conn *c)
{
	struct px_l7 *x = c->l7;
	unsigned cm = 0, um = 0;
	char why[600];
	int r;

	if (x->chs == 0 && (r = handshake(x->c.ssl, &cm)) != 0) {
		if (r < 0) {
			ERR_clear_error();
			if (x->peer.sni_mismatch) {
				snprintf(why, sizeof(why), "TLS server name "
				    "'%s' is not the CONNECT host '%s'; refused",
				    x->peer.sni, c->who->host);
				px_l7_event(c, "connect", why, NULL, NULL);
			}
			/* A client that does not trust the CA ends here. */
			px_conn_free(c);
			return;
		}
		x->chs = 1;
	}
	if (x->uhs == 0 && (r = handshake(x->u.ssl, &um)) != 0) {
		x->uhs = r;
		if (r < 0) {
			px_tls_client_error(x->u.ssl, why, sizeof(why));
			if (asprintf(&x->uerr, "upstream %s:%u: %s",
			    c->who->host, (unsigned)c->port, why) < 0)
				x->uerr = NULL;
		}
	}
	if (x->chs == 1 && x->uhs == 1) {
		start_http(c);
		return;
	}
	if (x->chs == 1 && x->uhs < 0) {
		px_l7_event(c, "tls", x->uerr ? x->uerr : "upstream TLS "
		    "failed", NULL, NULL);
		px_l7_error(c, 502, "upstream_tls_failed", x->uerr ? x->uerr :
		    "upstream TLS failed");
		pump(c);
		return;
	}
	moat_loop_mod_fd(c->p->loop, c->cfd, cm);
	moat_loop_mod_fd(c->p->loop, c->ufd, um);
}

/* The first bytes after the 200 say what the tunnel carries. */
static void
peek(struct px_conn *c, int fd)
{
	struct px_l7 *x = c->l7;
	unsigned char b;
	ssize_t n;

	if (io_flush(&x->c) < 0) {
		px_conn_free(c);
		return;
	}
	moat_loop_mod_fd(c->p->loop, c->cfd, MOAT_EV_READ |
	    (pending(&x->c) > 0 ? MOAT_EV_WRITE : 0));
	if (fd == c->ufd) {
		/* The server spoke first: not TLS, not HTTP. */
		if (x->must_l7) {
			px_l7_event(c, "l7", "the server spoke first; L7 rules "
			    "need HTTP requests", NULL, NULL);
			px_conn_free(c);
			return;
		}
		px_conn_start_relay(c);
		return;
	}
	n = recv(c->cfd, &b, 1, MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		px_conn_free(c);
		return;
	}
	if (b == 0x16 && c->sb->ca != NULL) {
		x->peer.ca = c->sb->ca;
		x->peer.host = c->who->host;
		if ((x->c.ssl = px_tls_server(c->p->tls, &x->peer,
		    c->cfd)) == NULL || (x->u.ssl = px_tls_client(c->p->tls,
		    c->who->host, c->ufd)) == NULL) {
			px_conn_free(c);
			return;
		}
		x->st = L_ACCEPT;
		handshakes(c);
		return;
	}
	if (!x->inspect) {
		px_conn_start_relay(c);
		return;
	}
	start_http(c);
}

bool
px_l7_inspects(const struct px_conn *c)
{
	/* A raw relay (bytes that never looked like HTTP) reads nothing,
	 * unless a decided WebSocket upgrade made it one. */
	return c->st == ST_L7 && c->l7 != NULL && c->l7->inspect &&
	    (c->l7->st != L_RAW || c->l7->upgraded);
}

bool
px_l7_wanted(const struct px_conn *c)
{
	return !c->s->dec.tls_skip && (c->s->dec.l7 || c->sb->ca != NULL ||
	    px_secrets_any(c->sb->secrets));
}

int
px_l7_begin(struct px_conn *c, const char *extra, size_t nextra)
{
	static const char ok200[] = "HTTP/1.1 200 Connection established\r\n"
	    "\r\n";
	struct px_l7 *x;

	/* Bytes sent before our 200: a tunnel we cannot look into. */
	if (nextra > 0) {
		if (!c->s->dec.l7)
			return 1;
		px_l7_error(c, 400, "bad_request", "data sent before the "
		    "CONNECT was answered; L7 rules need to see it");
		return 0;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		px_l7_error(c, 503, "out_of_memory", "out of memory");
		return 0;
	}
	x->c.fd = c->cfd;
	x->u.fd = c->ufd;
	x->must_l7 = c->s->dec.l7;
	x->inspect = x->must_l7 || px_secrets_any(c->sb->secrets);
	x->last_ms = moat_now_ms();
	c->l7 = x;
	if (px_l7_out(&x->c, ok200, sizeof(ok200) - 1) != 0) {
		c->l7 = NULL;
		px_l7_free(x);
		px_l7_error(c, 503, "out_of_memory", "out of memory");
		return 0;
	}
	c->st = ST_L7;
	px_conn_arm(c, c->p->cfg.idle_timeout_ms, l7_idle);
	moat_loop_mod_fd(c->p->loop, c->cfd, MOAT_EV_READ | MOAT_EV_WRITE);
	moat_loop_mod_fd(c->p->loop, c->ufd, MOAT_EV_READ);
	return 0;
}

void
px_l7_io(struct px_conn *c, int fd, unsigned ev)
{
	struct px_l7 *x = c->l7;

	if ((ev & MOAT_EV_ERROR) && fd == c->cfd) {
		/* The client is gone: nothing is left to answer. */
		px_conn_free(c);
		return;
	}
	if ((ev & MOAT_EV_ERROR) && fd == c->ufd && x->st >= L_HTTP) {
		/* Hung up: read what it sent when we want it, without
		 * its error waking the loop again and again. */
		moat_loop_del_fd(c->p->loop, c->ufd);
	}
	switch (x->st) {
	case L_PEEK:
		peek(c, fd);
		break;
	case L_ACCEPT:
		handshakes(c);
		break;
	default:
		pump(c);
		break;
	}
}
