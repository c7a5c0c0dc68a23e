/*
 * Responses the proxy writes itself. Denials use OpenShell's 403 JSON
 * shape (docs/protocols.md, "403 deny bodies") so agents that know it
 * read ours unchanged; every error carries Content-Type,
 * Content-Length and Connection: close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "proxy/conn.h"

#define GUIDANCE                                                            \
	"This connection was blocked by the sandbox's network policy. "     \
	"Read the current policy (inspect_policy) and recent denials "      \
	"(inspect_recent_denials), then submit the narrowest rule that "    \
	"allows this host, port and binary (submit_proposal). An operator " \
	"must approve it; retry after the policy is reloaded."

const char *
px_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Error";
	}
}

char *
px_response(int status, const char *ctype, const char *body, size_t blen,
    size_t *len)
{
	char *out = NULL;
	/* JSON ends in a newline, so `curl` leaves the shell prompt alone. */
	bool nl = strcmp(ctype, "application/json") == 0 && blen > 0 &&
	    body[blen - 1] != '\n';
	int n;

	n = asprintf(&out,
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%.*s%s",
	    status, px_status_text(status), ctype, blen + (nl ? 1 : 0),
	    (int)blen, body, nl ? "\n" : "");
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return out;
}

static json_t *
step(const char *action, const char *method, const char *url)
{
	return json_pack("{s:s,s:s,s:s}", "action", action, "method", method,
	    "url", url);
}

static json_t *
next_steps(void)
{
	json_t *a = json_array(), *prop;

	json_array_append_new(a, step("inspect_policy", "GET",
	    "http://policy.local/v1/policy/current"));
	json_array_append_new(a, step("inspect_recent_denials", "GET",
	    "http://policy.local/v1/denials?last=5"));
	prop = step("submit_proposal", "POST",
	    "http://policy.local/v1/proposals");
	json_object_set_new(prop, "body_type",
	    json_string("PolicyMergeOperation"));
	json_array_append_new(a, prop);
	return a;
}

char *
px_deny_response(const struct px_deny *d, size_t *len)
{
	json_t *o = json_object(), *anc = json_array();
	bool ssrf = strcmp(d->error, "ssrf_denied") == 0;
	char detail[512], *body = NULL, *out = NULL;
	bool v6;

	if (o == NULL || anc == NULL)
		goto out;
	v6 = d->host != NULL && strchr(d->host, ':') != NULL;
	snprintf(detail, sizeof(detail), "%s %s%s%s:%u%s %s", d->method,
	    v6 ? "[" : "", d->host, v6 ? "]" : "", (unsigned)d->port,
	    d->path != NULL ? d->path : "",
	    ssrf ? "blocked: internal address" : "not permitted by policy");
	for (size_t i = 0; i < d->nancestors; i++)
		json_array_append_new(anc, json_string(d->ancestors[i]));
	json_object_set_new(o, "error", json_string(d->error));
	json_object_set_new(o, "detail", json_string(detail));
	json_object_set_new(o, "reason", json_string(d->reason));
	json_object_set_new(o, "host", json_string(d->host));
	json_object_set_new(o, "port", json_integer(d->port));
	json_object_set_new(o, "binary", json_string(d->binary ? d->binary :
	    ""));
	json_object_set(o, "ancestors", anc);
	if (d->policy != NULL)
		json_object_set_new(o, "policy", json_string(d->policy));
	if (d->path != NULL) {
		/* OpenShell's L7 fields: which request, at which layer. */
		json_object_set_new(o, "layer", json_string("l7"));
		json_object_set_new(o, "protocol", json_string("rest"));
		json_object_set_new(o, "method", json_string(d->method));
		json_object_set_new(o, "path", json_string(d->path));
	}
	json_object_set_new(o, "next_steps", next_steps());
	json_object_set_new(o, "agent_guidance", json_string(GUIDANCE));
	if ((body = json_dumps(o, JSON_COMPACT)) == NULL)
		goto out;
	out = px_response(403, "application/json", body, strlen(body), len);
out:
	free(body);
	json_decref(anc);
	json_decref(o);
	return out;
}

/* Dump o (taken over) as the JSON body of a response. */
static char *
json_response(int status, json_t *o, size_t *len)
{
	char *body, *out;

	if (o == NULL)
		return NULL;
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (body == NULL)
		return NULL;
	out = px_response(status, "application/json", body, strlen(body), len);
	free(body);
	return out;
}

char *
px_simple_response(int status, const char *error, const char *detail,
    size_t *len)
{
	/* OpenShell's plain-text answer for the https:// mistake. */
	if (status == 400 && detail != NULL &&
	    strcmp(detail, "Use CONNECT for HTTPS URLs") == 0)
		return px_response(400, "text/plain", detail, strlen(detail), len);
	return json_response(status, json_pack("{s:s,s:s}", "error", error,
	    "detail", detail != NULL ? detail : ""), len);
}

char *
px_cap_response(const char *cap, int limit, const char *sandbox,
    size_t *len)
{
	char detail[256];

	snprintf(detail, sizeof(detail), "sandbox %s: the proxy is at its "
	    "connection limit %s = %d; close connections or raise it",
	    sandbox, cap, limit);
	return json_response(503, json_pack("{s:s,s:s,s:s,s:i}", "error",
	    "too_many_connections", "detail", detail, "cap", cap, "limit",
	    limit), len);
}

void
px_conn_respond_nofd(struct px_conn *c, const char *what)
{
	size_t len = 0;
	unsigned ended;
	char note[64], *r;

	if (px_burst_start(&c->p->nofd_burst, &ended))
		log_error("out of file descriptors (%s, sandbox %s): new "
		    "connections get 503 until some close; raise "
		    "max_open_files%s", what, c->sb->name,
		    px_burst_note(ended, note, sizeof(note)));
	r = px_simple_response(503, "proxy_out_of_fds", "the proxy is out of "
	    "file descriptors; try again later", &len);
	px_conn_respond(c, r, len);
}
