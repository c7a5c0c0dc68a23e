#include <string.h>

#include "proxy/http.h"
#include "tests/unit/tap.h"

/* The Host line an HTTP/1.1 request needs (RFC 9112 3.2). */
#define HX "Host: x\r\n"

static struct moat_http_req req;
static struct moat_cause cause;
static int status;

static int
parse(const char *s)
{
	memset(&cause, 0, sizeof(cause));
	return moat_http_parse(s, strlen(s), &req, &status, &cause);
}

static int
parse_n(const char *s, size_t n)
{
	memset(&cause, 0, sizeof(cause));
	return moat_http_parse(s, n, &req, &status, &cause);
}

/*
 * Refused with code, and not for want of a good Host: every request here
 * has one, so each case fails for its own reason (REJECT_HOST is for the
 * Host cases).
 */
#define REJECT_HOST(s, code, name)                                        \
	do {                                                              \
		int r_ = parse(s);                                        \
		ok(r_ == MOAT_ERR_INVALID && status == (code), "%s", name); \
		if (r_ != MOAT_ERR_INVALID)                               \
			diag("  rc %d status %d", r_, status);            \
	} while (0)
#define REJECT(s, code, name)                                             \
	do {                                                              \
		REJECT_HOST(s, code, name);                               \
		if (strstr(cause.msg, "Host") != NULL)                    \
			ok(0, "%s: refused for its Host (%s)", name,      \
			    cause.msg);                                   \
	} while (0)

static void
test_connect(void)
{
	ok(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443"
	    "\r\n\r\n") == MOAT_OK, "plain CONNECT parses");
	is_int(req.kind, MOAT_HTTP_CONNECT, "kind connect");
	is_str(req.host, "example.com", "host");
	is_int(req.port, 443, "port");
	is_int(req.nheaders, 1, "one header");
	is_int(req.minor, 1, "HTTP/1.1");

	ok(parse("CONNECT GitHub.COM.:443 HTTP/1.1\r\n" HX "\r\n") == MOAT_OK &&
	    strcmp(req.host, "github.com") == 0,
	    "trailing dot dropped and case folded");
	ok(parse("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n" HX "\r\n") ==
	    MOAT_OK &&
	    strcmp(req.host, "2001:db8::1") == 0 && req.host_is_ipv6 &&
	    req.port == 8443, "IPv6 in brackets");
	ok(parse("CONNECT 10.1.2.3:22 HTTP/1.0\r\n\r\n") == MOAT_OK &&
	    req.minor == 0 && strcmp(req.host, "10.1.2.3") == 0,
	    "IPv4 literal, HTTP/1.0");
	ok(parse("CONNECT a.b:65535 HTTP/1.1\r\n" HX "\r\n") == MOAT_OK &&
	    req.port == 65535, "port 65535");

	REJECT("CONNECT 2001:db8::1:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "IPv6 without brackets");
	REJECT("CONNECT [example.com]:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "name in brackets");
	REJECT("CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "IPv6 zone id");
	REJECT("CONNECT example.com HTTP/1.1\r\n" HX "\r\n", 400, "no port");
	REJECT("CONNECT example.com: HTTP/1.1\r\n" HX "\r\n", 400,
	    "empty port");
	REJECT("CONNECT example.com:0 HTTP/1.1\r\n" HX "\r\n", 400, "port 0");
	REJECT("CONNECT example.com:65536 HTTP/1.1\r\n" HX "\r\n", 400,
	    "port 65536");
	REJECT("CONNECT example.com:4294967739 HTTP/1.1\r\n" HX "\r\n", 400,
	    "port overflow wrapping to 443");
	REJECT("CONNECT example.com:+443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "signed port");
	REJECT("CONNECT example.com:44a HTTP/1.1\r\n" HX "\r\n", 400,
	    "letters in port");
	REJECT("CONNECT user:pw@example.com:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "userinfo");
	REJECT("CONNECT exa\x01mple.com:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "control char in host");
	REJECT("CONNECT ex%61mple.com:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "percent in host");
	REJECT("CONNECT 127.1:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "short IPv4 form refused");
	REJECT("CONNECT 0x7f.0.0.1:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "hex IPv4 form refused");
	REJECT("CONNECT a..b:443 HTTP/1.1\r\n" HX "\r\n", 400, "empty label");
	REJECT("CONNECT .:443 HTTP/1.1\r\n" HX "\r\n", 400, "only a dot");
	REJECT("CONNECT a.com..:443 HTTP/1.1\r\n" HX "\r\n", 400,
	    "two trailing dots");
	ok(parse_n("CONNECT a\0b.com:443 HTTP/1.1\r\n" HX "\r\n", 42) ==
	    MOAT_ERR_INVALID && status == 400, "NUL in target");
}

static void
test_forward(void)
{
	const char *s = "GET http://Upstream.Test:8080/a/b?c=d HTTP/1.1\r\n"
	    "Host: upstream.test\r\nContent-Length: 5\r\n\r\nhello";

	ok(parse(s) == MOAT_OK, "forward GET parses");
	is_int(req.kind, MOAT_HTTP_FORWARD, "kind forward");
	is_str(req.method, "GET", "method");
	is_str(req.host, "upstream.test", "host lowercased");
	is_int(req.port, 8080, "explicit port");
	ok(req.path.len == 8 && memcmp(s + req.path.off, "/a/b?c=d", 8) == 0,
	    "origin-form path");
	is_int(req.content_length, 5, "content length");
	is_int(req.head_len, strlen(s) - 5, "head length excludes the body");
	ok(moat_http_header_get(&req, s, "HOST") != NULL, "header lookup");

	ok(parse("GET http://x.test HTTP/1.1\r\n" HX "\r\n") == MOAT_OK &&
	    req.port == 80 && req.path.len == 0, "default port, empty path");
	ok(parse("GET http://x.test?q=1 HTTP/1.1\r\n" HX "\r\n") == MOAT_OK &&
	    req.path.len == 4, "query without path");
	ok(parse("POST http://x.test/ HTTP/1.1\r\n" HX "Transfer-Encoding: "
	    "chunked"
	    "\r\n\r\n") == MOAT_OK && req.chunked, "chunked POST");

	REJECT("GET https://x.test/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "https:// form");
	like_str(cause.msg, "Use CONNECT", "https cause says use CONNECT");
	REJECT("GET ftp://x.test/ HTTP/1.1\r\n\r\n", 400, "ftp scheme");
	REJECT("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "origin form");
	REJECT("GET http://u@x.test/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "userinfo in URL");
	REJECT("GET http://x.test/#f HTTP/1.1\r\n" HX "\r\n", 400, "fragment");
	REJECT("GET http://x.test:99999/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "URL port overflow");
	REJECT("GET http:///a HTTP/1.1\r\n" HX "\r\n", 400, "empty authority");
}

static void
test_smuggling(void)
{
	REJECT("GET http://x.test/ HTTP/1.1\nHost: x\r\n\r\n", 400,
	    "bare LF after request line");
	REJECT("GET http://x.test/ HTTP/1.1\r\nHost: x\n\r\n", 400,
	    "bare LF after a header");
	REJECT("GET http://x.test/ HTTP/1.1\r\nHost: x\r\n\n", 400,
	    "bare LF as the blank line");
	ok(parse("GET http://x.test/ HTTP/1.1\r\n" HX "A: b\n") ==
	    MOAT_ERR_INVALID,
	    "bare LF refused before the head is complete");
	REJECT("GET http://x.test/ HTTP/1.1\r\n" HX "A: b\r\n c\r\n\r\n", 400,
	    "obs-fold with space");
	REJECT("GET http://x.test/ HTTP/1.1\r\n" HX "A: b\r\n\tc\r\n\r\n", 400,
	    "obs-fold with tab");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Content-Length: 3\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 400, "CL with TE");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Content-Length: 3\r\n"
	    "Content-Length: 3\r\n\r\n", 400, "duplicate CL, same value");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Content-Length: 3\r\n"
	    "Content-Length: 4\r\n\r\n", 400, "duplicate CL, other value");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Content-Length: 3, 3"
	    "\r\n\r\n",
	    400, "CL list");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Content-Length: -1"
	    "\r\n\r\n",
	    400, "negative CL");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Content-Length: 0x10"
	    "\r\n\r\n",
	    400, "hex CL");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Content-Length: "
	    "99999999999999999999999\r\n\r\n", 400, "CL overflow");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Transfer-Encoding: gzip, "
	    "chunked\r\n\r\n", 400, "TE other than chunked");
	REJECT("POST http://x.test/ HTTP/1.1\r\n" HX "Transfer-Encoding: "
	    "chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 400, "duplicate TE");
	REJECT("POST http://x.test/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n", 400, "chunked in HTTP/1.0");
	REJECT("GET http://x.test/ HTTP/1.1\r\n" HX "Content-Length : 1"
	    "\r\n\r\n", 400,
	    "space before colon");
	REJECT("GET http://x.test/ HTTP/1.1\r\n" HX "A: b\x01\r\n\r\n", 400,
	    "control byte in value");
	REJECT("GET http://x.test/ HTTP/1.1\r\n" HX "A: b\rc\r\n\r\n", 400,
	    "bare CR in value");
	ok(parse_n("GET http://x.test/ HTTP/1.1\r\n" HX "A: b\0c\r\n\r\n",
	    48) ==
	    MOAT_ERR_INVALID && status == 400, "NUL in value");
	REJECT("GET  http://x.test/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "double space");
	REJECT("GET http://x.test/ HTTP/2.0\r\n\r\n", 400, "HTTP/2.0");
	REJECT("GET http://x.test/ HTTP/1.1 \r\n\r\n", 400, "trailing space");
	REJECT("G(T http://x.test/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "bad method char");
	REJECT("GET http://x.test/ HTTP/1.1\r\n" HX "NoColon\r\n\r\n", 400,
	    "header without colon");
}

/*
 * RFC 9112 3.2 (MUST): 400 for an HTTP/1.1 request without Host and for
 * any request with more than one; 2.2 (SHOULD): one empty line before
 * the request line is ignored.
 */
static void
test_host_and_crlf(void)
{
	const char *s = "\r\nGET http://x.test/p HTTP/1.1\r\nHost: x.test\r\n"
	    "Content-Length: 2\r\n\r\nhi";
	const struct moat_http_header *h;

	REJECT_HOST("GET http://x.test/ HTTP/1.1\r\n\r\n", 400,
	    "HTTP/1.1 forward request without Host");
	like_str(cause.msg, "without Host", "cause says Host is missing");
	REJECT_HOST("CONNECT x.test:443 HTTP/1.1\r\nUser-Agent: a\r\n\r\n",
	    400, "HTTP/1.1 CONNECT without Host");
	REJECT_HOST("GET http://x.test/ HTTP/1.1\r\nHost: x.test\r\n"
	    "Host: y.test\r\n\r\n", 400, "two Host headers");
	like_str(cause.msg, "more than one Host", "cause says two");
	REJECT_HOST("CONNECT x.test:443 HTTP/1.1\r\nHost: x.test:443\r\n"
	    "hOsT: x.test:443\r\n\r\n", 400,
	    "CONNECT with two Host headers, even equal ones");
	REJECT_HOST("GET http://x.test/ HTTP/1.0\r\nHost: a\r\nHost: a\r\n"
	    "\r\n", 400, "two Host headers in HTTP/1.0 too");
	REJECT_HOST("GET http://x.test/ HTTP/1.1\r\nHost: u@x.test\r\n\r\n",
	    400, "userinfo in Host");
	REJECT_HOST("GET http://x.test/ HTTP/1.1\r\nHost: x.test:8a\r\n\r\n",
	    400, "letters in the Host port");
	REJECT_HOST("GET http://x.test/ HTTP/1.1\r\nHost: a b\r\n\r\n", 400,
	    "space inside Host");
	REJECT_HOST("GET http://x.test/ HTTP/1.1\r\nHost: [::1\r\n\r\n", 400,
	    "unclosed bracket in Host");
	like_str(cause.msg, "invalid Host", "cause says invalid Host");
	ok(parse("GET http://x.test/ HTTP/1.0\r\n\r\n") == MOAT_OK,
	    "HTTP/1.0 without Host is served");
	ok(parse("GET http://x.test/ HTTP/1.1\r\nHost:\r\n\r\n") == MOAT_OK,
	    "an empty Host is valid syntax");
	ok(parse("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: "
	    "[2001:db8::1]:443\r\n\r\n") == MOAT_OK, "IPv6 Host");
	ok(parse("GET http://x.test/ HTTP/1.1\r\nhost: other.test:8080\r\n"
	    "\r\n") == MOAT_OK && strcmp(req.host, "x.test") == 0,
	    "a Host that differs from the URL is valid; the URL decides");

	ok(parse(s) == MOAT_OK, "one empty line before the request line is "
	    "ignored");
	is_str(req.method, "GET", "method after the empty line");
	is_str(req.host, "x.test", "host after the empty line");
	ok(req.path.len == 2 && memcmp(s + req.path.off, "/p", 2) == 0,
	    "path span points into the caller's buffer");
	h = moat_http_header_get(&req, s, "host");
	ok(h != NULL && h->value.len == 6 &&
	    memcmp(s + h->value.off, "x.test", 6) == 0, "header spans too");
	is_int(req.head_len, strlen(s) - 2, "the head includes the empty line");
	ok(parse("\r\nCONNECT x.test:443 HTTP/1.1\r\nHost: x.test:443\r\n"
	    "\r\n") == MOAT_OK && req.kind == MOAT_HTTP_CONNECT,
	    "CONNECT after one empty line");
	REJECT("\r\n\r\nGET http://x.test/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "two empty lines before the request line");
	ok(parse("\r\n\r\n") == MOAT_ERR_INVALID,
	    "two empty lines are refused at once, without waiting");
	ok(parse("\r\n") == MOAT_ERR_AGAIN && parse("\r") == MOAT_ERR_AGAIN,
	    "one empty line waits for the request");
	REJECT("\n" "GET http://x.test/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "a bare LF before the request line");
	REJECT("\r\n\nGET http://x.test/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "CRLF then a bare LF");
	REJECT(" \r\nGET http://x.test/ HTTP/1.1\r\n" HX "\r\n", 400,
	    "whitespace before the request line");
}

static void
test_limits(void)
{
	static char big[MOAT_HTTP_HEAD_MAX + 64];
	size_t n;

	ok(parse("CONNECT a.b:443 HTTP/1.1\r\nHost: a") == MOAT_ERR_AGAIN &&
	    status == 0, "incomplete head asks for more");
	ok(parse("") == MOAT_ERR_AGAIN, "empty asks for more");

	n = (size_t)snprintf(big, sizeof(big), "GET http://x.test/ HTTP/1.1"
	    "\r\n" HX "X: ");
	memset(big + n, 'a', sizeof(big) - n);
	ok(parse_n(big, MOAT_HTTP_HEAD_MAX) == MOAT_ERR_INVALID &&
	    status == 431, "8 KiB without an end is 431");
	ok(parse_n(big, MOAT_HTTP_HEAD_MAX - 1) == MOAT_ERR_AGAIN,
	    "just under 8 KiB still waits");
	/* A head ending exactly at 8 KiB is accepted. */
	memcpy(big + MOAT_HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
	ok(parse_n(big, MOAT_HTTP_HEAD_MAX) == MOAT_OK,
	    "head of exactly 8 KiB parses");
	/* But one ending past 8 KiB is not. */
	memset(big + MOAT_HTTP_HEAD_MAX - 4, 'a', 4);
	memcpy(big + MOAT_HTTP_HEAD_MAX, "\r\n\r\n", 4);
	ok(parse_n(big, MOAT_HTTP_HEAD_MAX + 4) == MOAT_ERR_INVALID &&
	    status == 431, "head of 8 KiB + 4 is 431");
}

static void
test_chunked(void)
{
	struct moat_http_chunked c;
	const char *body = "5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nT: x\r\n\r\n"
	    "GET http://evil/ HTTP/1.1\r\n\r\n";
	size_t used = 0, total = 0, blen = strlen(body);

	moat_http_chunked_init(&c);
	ok(moat_http_chunked_feed(&c, body, blen, &used) == MOAT_OK &&
	    moat_http_chunked_done(&c), "chunked body ends");
	is_int(used, strlen("5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nT: x\r\n\r\n"),
	    "bytes after the last chunk are not part of the body");

	/* Byte at a time gives the same answer. */
	moat_http_chunked_init(&c);
	for (size_t i = 0; i < blen && !moat_http_chunked_done(&c); i++) {
		if (moat_http_chunked_feed(&c, body + i, 1, &used) != MOAT_OK)
			break;
		total += used;
	}
	is_int(total, strlen("5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nT: x\r\n\r\n"),
	    "byte-at-a-time framing agrees");

	moat_http_chunked_init(&c);
	ok(moat_http_chunked_feed(&c, "5\nhello", 7, &used) != MOAT_OK,
	    "bare LF in chunk size refused");
	moat_http_chunked_init(&c);
	ok(moat_http_chunked_feed(&c, "2\r\nabc\r\n", 8, &used) != MOAT_OK,
	    "chunk longer than its size refused");
	moat_http_chunked_init(&c);
	ok(moat_http_chunked_feed(&c, "fffffffffffffffff\r\n", 19, &used) !=
	    MOAT_OK, "chunk size overflow refused");
	moat_http_chunked_init(&c);
	ok(moat_http_chunked_feed(&c, "\r\n", 2, &used) != MOAT_OK,
	    "missing chunk size refused");
	moat_http_chunked_init(&c);
	ok(moat_http_chunked_feed(&c, "0\r\n\r\n", 5, &used) == MOAT_OK &&
	    moat_http_chunked_done(&c) && used == 5, "empty chunked body");
}

int
main(void)
{
	test_connect();
	test_forward();
	test_smuggling();
	test_host_and_crlf();
	test_limits();
	test_chunked();
	return done_testing();
}
