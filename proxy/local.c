/*
 * policy.local: the proxy's own small HTTP API for the agent inside a
 * sandbox (docs/proxy.md, "policy.local"). The agent reaches it as a
 * plain-HTTP forward request through HTTP_PROXY; the proxy answers it
 * itself and never dials out. Which sandbox is asking comes from the
 * listener the connection arrived on, so a sandbox only ever sees its
 * own policy and its own denials.
 *
 * This file holds the routes, the response bodies and the per-sandbox
 * ring of recent denials; reading a proposal's body and waiting for
 * moatd's answer is connection work, in conn.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "proxy/internal.h"

#define LOCAL_HOST "policy.local"
#define DENIALS_DEFAULT 10

/* What the agent is shown of one denial: no hashes, no ancestry list. */
struct px_denial_rec {
	int64_t ts_ms;
	int port;
	int pid;
	int uid;
	int policy_version;
	char stage[16];
	char protocol[8];
	char ip[46];
	char binary[256];
	char host[256];
	char reason[512];
};

struct px_ring {
	struct px_denial_rec rec[PX_RING_MAX];
	size_t next; /* slot the next record goes to */
	size_t n;
};

void
px_ring_add(struct px_sandbox *sb, const struct moat_denial_event *ev)
{
	struct px_denial_rec *r;

	/* An audit-mode allow is not a denial. */
	if (strcmp(ev->stage, "audit") == 0)
		return;
	/* Allocated on the first denial: most sandboxes never have one. */
	if (sb->ring == NULL && (sb->ring = calloc(1, sizeof(*sb->ring))) ==
	    NULL)
		return;
	r = &sb->ring->rec[sb->ring->next];
	r->ts_ms = ev->ts_ms;
	r->port = ev->port;
	r->pid = ev->pid;
	r->uid = ev->uid;
	r->policy_version = ev->policy_version;
	moat_strlcpy(r->stage, ev->stage, sizeof(r->stage));
	moat_strlcpy(r->protocol, ev->protocol, sizeof(r->protocol));
	moat_strlcpy(r->ip, ev->ip, sizeof(r->ip));
	moat_strlcpy(r->binary, ev->binary, sizeof(r->binary));
	moat_strlcpy(r->host, ev->host, sizeof(r->host));
	moat_strlcpy(r->reason, ev->reason, sizeof(r->reason));
	sb->ring->next = (sb->ring->next + 1) % PX_RING_MAX;
	if (sb->ring->n < PX_RING_MAX)
		sb->ring->n++;
}

void
px_ring_free(struct px_ring *r)
{
	free(r);
}

static bool
is_local_host(const char *h, size_t n)
{
	size_t ln = sizeof(LOCAL_HOST) - 1;

	if (n == ln + 1 && h[ln] == '.')
		n = ln;
	return n == ln && strncasecmp(h, LOCAL_HOST, ln) == 0;
}

enum px_local
px_local_match(const struct moat_http_req *r)
{
	/* The parser lowercased the name and dropped one trailing dot. */
	if (strcmp(r->host, LOCAL_HOST) != 0)
		return PX_LOCAL_NO;
	if (r->kind == MOAT_HTTP_CONNECT)
		return PX_LOCAL_SCHEME;
	return r->port == 80 ? PX_LOCAL_YES : PX_LOCAL_NO;
}

bool
px_local_https(const char *buf, size_t len)
{
	const char *sp, *end = buf + len, *h, *e;

	if ((sp = memchr(buf, ' ', len)) == NULL)
		return false;
	h = sp + 1;
	if ((size_t)(end - h) < 8 || strncasecmp(h, "https://", 8) != 0)
		return false;
	h += 8;
	for (e = h; e < end && *e != ':' && *e != '/' && *e != '?' &&
	     *e != ' ' && *e != '\r'; e++)
		;
	return is_local_host(h, (size_t)(e - h));
}

static char *
reply(int status, json_t *o, size_t *len)
{
	char *body, *out = NULL;

	if (o == NULL)
		return NULL;
	if ((body = json_dumps(o, JSON_COMPACT)) != NULL)
		out = px_response(status, "application/json", body,
		    strlen(body), len);
	free(body);
	json_decref(o);
	return out;
}

static char *
error_reply(int status, const char *error, const char *detail, size_t *len)
{
	return reply(status, json_pack("{s:s,s:s}", "error", error, "detail",
	    detail), len);
}

char *
px_local_scheme_error(size_t *len)
{
	return error_reply(400, "invalid_policy_local_scheme",
	    "policy.local is plain HTTP: use http://policy.local/...", len);
}

static char *
policy_current(struct px_sandbox *sb, size_t *len)
{
	json_error_t jerr;
	json_t *doc;

	if (sb->policy == NULL)
		return error_reply(404, "policy_unavailable", "no policy is "
		    "loaded for this sandbox", len);
	doc = json_loads(moat_policy_json(sb->policy), 0, &jerr);
	if (doc == NULL)
		return error_reply(404, "policy_unavailable", "the policy "
		    "cannot be shown", len);
	return reply(200, json_pack("{s:s,s:i,s:o,s:s?}", "format", "json",
	    "version", sb->version, "policy", doc, "hash",
	    moat_policy_hash(sb->policy)), len);
}

/* last=N from a query string: default 10, clamped to 1..100. */
static int
query_last(const char *q, size_t n)
{
	const char *p = q, *end = q + n;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp != NULL ? amp : end;

		if (e - p > 5 && strncmp(p, "last=", 5) == 0) {
			long v = 0;
			const char *d = p + 5;
			for (; d < e && *d >= '0' && *d <= '9'; d++)
				v = v < 1000 ? v * 10 + (*d - '0') : v;
			if (d != e)
				return DENIALS_DEFAULT;
			return v < 1 ? 1 : v > PX_RING_MAX ? PX_RING_MAX :
			    (int)v;
		}
		p = e + (e < end);
	}
	return DENIALS_DEFAULT;
}

static char *
denials(struct px_sandbox *sb, int last, size_t *len)
{
	json_t *a = json_array();
	struct px_ring *ring = sb->ring;
	size_t n = ring != NULL ? ring->n : 0;

	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < n && i < (size_t)last; i++) {
		size_t slot = (ring->next + PX_RING_MAX - 1 - i) % PX_RING_MAX;
		const struct px_denial_rec *r = &ring->rec[slot];

		/* Events name hosts and reasons, never a request path. */
		json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s,s:s,s:i,"
		    "s:s,s:s,s:i,s:i,s:i}", "ts_ms", (json_int_t)r->ts_ms,
		    "stage", r->stage, "binary", r->binary, "host", r->host,
		    "ip", r->ip, "port", r->port, "protocol", r->protocol,
		    "reason", r->reason, "policy_version", r->policy_version,
		    "pid", r->pid, "uid", r->uid));
	}
	return reply(200, json_pack("{s:o,s:b}", "denials", a,
	    "log_available", 1), len);
}

static bool
path_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

static char *
method_not_allowed(const char *allow, size_t *len)
{
	char detail[64];

	snprintf(detail, sizeof(detail), "use %s", allow);
	return error_reply(405, "method_not_allowed", detail, len);
}

static char *
proposal_checks(struct px_sandbox *sb, const struct moat_http_req *r,
    size_t *len, bool *propose)
{
	char detail[96];

	if (r->chunked || r->content_length < 0)
		return error_reply(411, "length_required", "a proposal needs "
		    "a Content-Length", len);
	if (r->content_length > PX_LOCAL_BODY_MAX) {
		snprintf(detail, sizeof(detail), "a proposal body is at most "
		    "%d bytes", PX_LOCAL_BODY_MAX);
		return error_reply(413, "payload_too_large", detail, len);
	}
	if (sb->p->cfg.propose == NULL)
		return px_local_unavailable("proposals are not forwarded "
		    "anywhere for this sandbox", len);
	*propose = true;
	return NULL;
}

char *
px_local_answer(struct px_sandbox *sb, const struct moat_http_req *r,
    const char *buf, size_t *len, bool *propose)
{
	const char *path = buf + r->path.off, *q;
	size_t pn = r->path.len, qn = 0;
	bool get = strcmp(r->method, "GET") == 0;

	*propose = false;
	if ((q = memchr(path, '?', pn)) != NULL) {
		qn = pn - (size_t)(q - path) - 1;
		pn = (size_t)(q - path);
		q++;
	}
	if (path_is(path, pn, "/v1/policy/current"))
		return get ? policy_current(sb, len) :
		    method_not_allowed("GET", len);
	if (path_is(path, pn, "/v1/denials"))
		return get ? denials(sb, query_last(q, qn), len) :
		    method_not_allowed("GET", len);
	if (path_is(path, pn, "/v1/proposals"))
		return strcmp(r->method, "POST") == 0 ?
		    proposal_checks(sb, r, len, propose) :
		    method_not_allowed("POST", len);
	/* XXX: GET /v1/proposals/{id} needs moatd's store; not served. */
	return error_reply(404, "not_found", "no such policy.local route",
	    len);
}

bool
px_local_body_ok(const char *body, size_t n)
{
	json_t *s;

	/* moatd receives it as a JSON string: UTF-8, and no NUL. */
	if (memchr(body, '\0', n) != NULL ||
	    (s = json_stringn(body, n)) == NULL)
		return false;
	json_decref(s);
	return true;
}

char *
px_local_invalid(const char *detail, size_t *len)
{
	return error_reply(400, "invalid_proposal", detail, len);
}

char *
px_local_unavailable(const char *detail, size_t *len)
{
	return error_reply(503, "gateway_unavailable", detail, len);
}

char *
px_local_timeout(size_t *len)
{
	return error_reply(408, "request_timeout", "the proposal body did "
	    "not arrive in time", len);
}

static char *
proposal_reply(bool ok, int64_t id, const char *error, size_t *len)
{
	static const char prefix[] = "invalid_proposal: ";
	static const char limited[] = "rate_limited: ";
	char ids[32];

	if (!ok) {
		if (error == NULL || error[0] == '\0')
			error = "the proposal was refused";
		/* moatd's flood caps (docs/operator.md, "Floods"). */
		if (strncmp(error, limited, sizeof(limited) - 1) == 0)
			return error_reply(429, "rate_limited", error +
			    sizeof(limited) - 1, len);
		/* moatd's sentences carry the code as a prefix; drop it. */
		if (strncmp(error, prefix, sizeof(prefix) - 1) == 0)
			error += sizeof(prefix) - 1;
		return px_local_invalid(error, len);
	}
	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	return reply(202, json_pack("{s:s,s:i,s:i,s:[],s:[s]}", "status",
	    "submitted", "accepted_chunks", 1, "rejected_chunks", 0,
	    "rejection_reasons", "accepted_chunk_ids", ids), len);
}

void
moat_proxy_proposal_result(struct moat_proxy *p, uint64_t req, bool ok,
    int64_t id, const char *error)
{
	size_t len = 0;
	char *r = proposal_reply(ok, id, error, &len);

	px_conn_proposal_result(p, req, r, len);
}
