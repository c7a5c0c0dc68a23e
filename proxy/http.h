/*
 * Strict HTTP/1.x request-head parser for the egress proxy, and the
 * chunked-body framer the forward path uses to find where a body ends.
 *
 * Strict means: anything a lenient server could read two ways (bare LF,
 * obs-fold, CL+TE, duplicate CL, control bytes, userinfo) is refused
 * with 400, so no byte after an ambiguous head can reach an upstream;
 * so is what RFC 9112 says MUST be (an HTTP/1.1 request without Host,
 * any request with two). One empty line before the request line is
 * ignored, as RFC 9112 2.2 recommends; head_len counts it.
 * The parser never allocates; names and values are offsets into the
 * caller's buffer.
 */
#ifndef MOAT_PROXY_HTTP_H
#define MOAT_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"

#define MOAT_HTTP_HEAD_MAX 8192
#define MOAT_HTTP_MAX_HEADERS 100
#define MOAT_HTTP_HOST_MAX 256

enum moat_http_kind {
	MOAT_HTTP_CONNECT = 1, /* CONNECT host:port */
	MOAT_HTTP_FORWARD,     /* METHOD http://host[:port]/path */
	MOAT_HTTP_ORIGIN,      /* METHOD /path: a request inside a tunnel */
};

struct moat_http_span {
	uint16_t off;
	uint16_t len;
};

struct moat_http_header {
	struct moat_http_span name;
	struct moat_http_span value; /* without surrounding spaces */
};

struct moat_http_req {
	enum moat_http_kind kind;
	char method[33];
	/* Lowercase, one trailing dot dropped, IPv6 without brackets. */
	char host[MOAT_HTTP_HOST_MAX];
	bool host_is_ipv6;
	uint16_t port;
	/* Origin-form target (path and query) of a forward request. */
	struct moat_http_span path;
	int minor; /* HTTP/1.minor */
	struct moat_http_header headers[MOAT_HTTP_MAX_HEADERS];
	size_t nheaders;
	int64_t content_length; /* -1 when absent */
	bool chunked;           /* Transfer-Encoding: chunked */
	size_t head_len;        /* bytes up to and including the blank line */
};

/*
 * Parse the head at the start of buf[0..len). Returns MOAT_OK with *r
 * filled, MOAT_ERR_AGAIN when more bytes are needed, or MOAT_ERR_INVALID
 * with *status set to the HTTP status to answer (400 or 431) and a
 * sentence in cause. *status is 0 unless the result is MOAT_ERR_INVALID.
 * An `https://` absolute form is 400 with the cause "Use CONNECT for
 * HTTPS URLs".
 */
int moat_http_parse(const char *buf, size_t len, struct moat_http_req *r,
    int *status, struct moat_cause *cause);

/*
 * The same for a request inside a tunnel (after TLS termination): the
 * target must be in origin form (kind MOAT_HTTP_ORIGIN, path set, host
 * empty: the Host header names it).
 */
int moat_http_parse_origin(const char *buf, size_t len,
    struct moat_http_req *r, int *status, struct moat_cause *cause);

/* Case-insensitive header lookup; the first match, or NULL. */
const struct moat_http_header *moat_http_header_get(
    const struct moat_http_req *r, const char *buf, const char *name);

/* Is tok (case-insensitive) an element of the comma-separated list
 * v[0..n)? ("close" in "keep-alive, Close"; never a substring.) */
bool moat_http_list_has(const char *v, size_t n, const char *tok);

/* Case-insensitive comparison of a span of buf with s. */
bool moat_http_span_eq(const char *buf, struct moat_http_span sp,
    const char *s);

/*
 * Validate and normalise a host (no brackets, no port) into out: names
 * lowercase with one trailing dot dropped; IPv4 dotted quads only (a
 * numeric last label that is not a dotted quad is refused, so "127.1"
 * or "0x7f.1" cannot reach getaddrinfo's inet_aton); IPv6 literals.
 */
bool moat_http_host_ok(const char *in, size_t n, char *out, size_t outlen,
    bool *is_ipv6);

/*
 * Chunked transfer coding, fed incrementally: how many bytes of a
 * request body belong to it, so nothing after its end is forwarded.
 */
struct moat_http_chunked {
	int state;
	uint64_t remaining; /* of the current chunk's data */
	unsigned ndigits;
	unsigned linelen; /* of a chunk extension or trailer line */
};

void moat_http_chunked_init(struct moat_http_chunked *c);
/*
 * Consume up to len bytes; returns how many belong to the body (<= len)
 * in *used. MOAT_OK (need more or done: see moat_http_chunked_done) or
 * MOAT_ERR_INVALID for malformed framing.
 */
int moat_http_chunked_feed(struct moat_http_chunked *c, const char *buf,
    size_t len, size_t *used);
bool moat_http_chunked_done(const struct moat_http_chunked *c);

#endif
