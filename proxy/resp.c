/*
 * Where an HTTP/1.x response ends, read incrementally as it is relayed
 * to the client unchanged: status line and headers, then the body by
 * Content-Length, chunked coding, or the connection's end. A 1xx other
 * than 101 is followed by another response; 101 switches protocols
 * (only for a request that asked for a WebSocket upgrade).
 *
 * The L7 engine (l7.c) reads the next request only once the response
 * to the previous one has ended, so a denial's 403 never lands in the
 * middle of another response.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "proxy/internal.h"

#define RESP_HEAD_MAX (64 * 1024)

enum {
	R_LINE = 0, /* reading a status or header line */
	R_BODY_CL,
	R_BODY_CHUNKED,
	R_BODY_EOF,
	R_DONE,
};

void
px_resp_start(struct px_resp *r, bool head_req, bool upgrade)
{
	memset(r, 0, sizeof(*r));
	r->head_req = head_req;
	r->upgrade = upgrade;
	r->cl = -1;
}

static bool
header(struct px_resp *r, const char *l, size_t n)
{
	const char *colon = memchr(l, ':', n);
	size_t nl, vs;

	if (colon == NULL)
		return false;
	nl = (size_t)(colon - l);
	vs = nl + 1;
	while (vs < n && (l[vs] == ' ' || l[vs] == '\t'))
		vs++;
	if (nl == 14 && strncasecmp(l, "content-length", 14) == 0) {
		int64_t v = 0;

		if (vs == n || n - vs > 18)
			return false;
		for (size_t i = vs; i < n; i++) {
			if (!isdigit((unsigned char)l[i]))
				return false;
			v = v * 10 + (l[i] - '0');
		}
		if (r->cl >= 0 && r->cl != v)
			return false;
		r->cl = v;
	} else if (nl == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
		r->te = true;
		/* chunked must be the last coding to frame the body. */
		r->chunked = n - vs >= 7 &&
		    strncasecmp(l + n - 7, "chunked", 7) == 0;
	} else if (nl == 10 && strncasecmp(l, "connection", 10) == 0) {
		if (moat_http_list_has(l + vs, n - vs, "close"))
			r->close = true;
	}
	return true;
}

static bool
status_line(struct px_resp *r, const char *l, size_t n)
{
	if (n < 12 || strncmp(l, "HTTP/1.", 7) != 0 ||
	    (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
	    !isdigit((unsigned char)l[9]) || !isdigit((unsigned char)l[10]) ||
	    !isdigit((unsigned char)l[11]))
		return false;
	r->minor = l[7] - '0';
	r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	return r->status >= 100 && r->status <= 599;
}

/* The head ended: how does the body end? */
static int
head_done(struct px_resp *r)
{
	/* A switch nobody asked for (h2c, say) would leave bytes that
	 * nobody decides: not HTTP/1.x as we can frame it. */
	if (r->status == 101)
		return r->upgrade ? PX_RESP_UPGRADE : PX_RESP_BAD;
	if (r->status >= 100 && r->status < 200) {
		bool head_req = r->head_req, upgrade = r->upgrade;

		/* Another response follows for the same request. */
		px_resp_start(r, head_req, upgrade);
		return PX_RESP_MORE;
	}
	if (r->head_req || r->status == 204 || r->status == 304) {
		r->state = R_DONE;
		return PX_RESP_DONE;
	}
	if (r->te && r->chunked) {
		moat_http_chunked_init(&r->ch);
		r->state = R_BODY_CHUNKED;
	} else if (r->te) {
		r->state = R_BODY_EOF;
	} else if (r->cl >= 0) {
		r->left = (uint64_t)r->cl;
		r->state = r->left == 0 ? R_DONE : R_BODY_CL;
		if (r->state == R_DONE)
			return PX_RESP_DONE;
	} else {
		r->state = R_BODY_EOF;
	}
	return PX_RESP_MORE;
}

/* One byte of the head. */
static int
head_byte(struct px_resp *r, char ch)
{
	size_t n;

	if (++r->head_bytes > RESP_HEAD_MAX)
		return PX_RESP_BAD;
	if (ch == '\n') {
		if (!r->cr)
			return PX_RESP_BAD;
		n = r->llen - 1; /* without the CR */
		r->cr = false;
		r->llen = 0;
		/* A long line we do not need (a cookie) is only skipped. */
		if (n >= sizeof(r->line))
			return r->status != 0 ? PX_RESP_MORE : PX_RESP_BAD;
		if (r->status == 0)
			return status_line(r, r->line, n) ? PX_RESP_MORE :
			    PX_RESP_BAD;
		if (n == 0)
			return head_done(r);
		return header(r, r->line, n) ? PX_RESP_MORE : PX_RESP_BAD;
	}
	r->cr = ch == '\r';
	if (r->llen < sizeof(r->line))
		r->line[r->llen] = ch;
	r->llen++;
	return PX_RESP_MORE;
}

int
px_resp_feed(struct px_resp *r, const char *buf, size_t n, size_t *used)
{
	size_t i = 0, k;
	int rc = PX_RESP_MORE;

	while (i < n && rc == PX_RESP_MORE) {
		switch (r->state) {
		case R_LINE:
			rc = head_byte(r, buf[i++]);
			break;
		case R_BODY_CL:
			k = n - i < r->left ? n - i : (size_t)r->left;
			i += k;
			r->left -= k;
			if (r->left == 0) {
				r->state = R_DONE;
				rc = PX_RESP_DONE;
			}
			break;
		case R_BODY_CHUNKED:
			if (moat_http_chunked_feed(&r->ch, buf + i, n - i,
			    &k) != MOAT_OK) {
				rc = PX_RESP_BAD;
				break;
			}
			i += k;
			if (moat_http_chunked_done(&r->ch)) {
				r->state = R_DONE;
				rc = PX_RESP_DONE;
			}
			break;
		case R_BODY_EOF:
			i = n;
			break;
		default:
			rc = PX_RESP_BAD;
			break;
		}
	}
	*used = i;
	return rc;
}

bool
px_resp_until_eof(const struct px_resp *r)
{
	return r->state == R_BODY_EOF;
}
