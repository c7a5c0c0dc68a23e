/*
 * Private to proxy/l7.c (the tunnel: handshakes, the two byte streams)
 * and proxy/l7-req.c (one request: decide, rewrite, answer). The state
 * of a tunnel the proxy looks into.
 */
#ifndef MOAT_PROXY_L7_H
#define MOAT_PROXY_L7_H

#include "proxy/conn.h"

#define IO_CHUNK (16 * 1024)
#define OUT_HIGH (256 * 1024)     /* stop reading the other side */
#define BODY_REWRITE_MAX (256 * 1024)

enum { L_PEEK = 0, L_ACCEPT, L_HTTP, L_RAW, L_FLUSH };
enum { U_HEAD = 0, U_BODY, U_BODYBUF, U_WAIT };

struct px_io {
	int fd;
	SSL *ssl;
	bool rd_ww; /* SSL_read needs the fd writable */
	bool wr_wr; /* SSL_write needs the fd readable */
	bool eof;
	struct px_ibuf out; /* bytes to send to this side */
	size_t off;
};

struct px_l7 {
	struct px_io c;
	struct px_io u;
	int st;
	int up;
	bool must_l7;  /* the decision needs every request decided */
	bool inspect;  /* parse requests (L7, or credentials to replace) */
	bool first;    /* no request seen yet */
	bool upgraded; /* raw after a WebSocket upgrade (decided) */
	struct px_tls_peer peer;
	int chs;       /* handshakes: 1 done, 0 going, -1 failed */
	int uhs;
	char *uerr;    /* why the upstream's failed (malloc'd) */
	char *head;    /* a request head being read */
	size_t hlen;
	uint64_t left; /* body bytes of a Content-Length body */
	bool chunked;
	struct moat_http_chunked ch;
	bool scan;     /* look for placeholders in the streamed body */
	char hold[PX_INJECT_HOLD];
	size_t nhold;
	struct px_ibuf body; /* a body kept whole to be rewritten */
	enum px_ictx bctx;
	struct px_ibuf bhead; /* its head, sent once the body is rewritten */
	size_t clen_at; /* where Content-Length's value goes in bhead */
	struct px_resp resp;
	bool resp_on;   /* a response is being read */
	int64_t last_ms;
};

/* l7.c */
/* Append to the bytes queued for one side: 0 or -1. */
int px_l7_out(struct px_io *io, const void *s, size_t n);
/* Queue a whole response (taken over) for the client; end after it. */
void px_l7_finish(struct px_conn *c, char *resp, size_t len);

/* l7-req.c */
void px_l7_error(struct px_conn *c, int status, const char *error,
    const char *why);
/* Record an event about the current request (method, path may be NULL). */
void px_l7_event(struct px_conn *c, const char *stage, const char *reason,
    const char *method, const char *path);
/* Decide, rewrite and send one request head: 0, or -1 answered. */
int px_l7_request(struct px_conn *c, const struct moat_http_req *r);
/* A kept body is complete: rewrite it, send head and body. */
int px_l7_send_kept(struct px_conn *c);

#endif
