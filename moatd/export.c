/*
 * Event export: one OCSF-style JSON object per line (docs/events.md), to
 * a file opened for append or to stdout, for a SIEM or `jq`. Export is
 * best effort: a failed write is logged (rate limited) and never stops
 * the aggregator, since the store already holds every event.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/escape.h"
#include "common/log.h"
#include "common/util.h"
#include "moatd/moatd.h"
#include "store/store.h"

/* OCSF class and category ids used by moat. */
#define OCSF_NETWORK_ACTIVITY 4001
#define OCSF_SSH_ACTIVITY 4007
#define OCSF_CONFIG_CHANGE 5019

/* OCSF severity_id: 1 informational, 3 medium. */
#define SEV_INFO 1
#define SEV_MEDIUM 3

struct moatd_export {
	int fd;
	bool own_fd; /* false for stdout */
	struct moat_ratelimit rl;
};

int
moatd_export_open(const char *path, struct moatd_export **out,
    struct moat_cause *cause)
{
	struct moatd_export *x = NULL;
	int fd = -1;

	if (path == NULL) {
		*out = NULL;
		return MOAT_OK;
	}
	if (strcmp(path, "-") == 0)
		fd = STDOUT_FILENO;
	else if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640)) == -1) {
		moat_cause_errno(cause, "open export file %s", path);
		return MOAT_ERR_SYSTEM;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		if (fd != STDOUT_FILENO)
			close(fd);
		return MOAT_ERR_NOMEM;
	}
	x->fd = fd;
	x->own_fd = fd != STDOUT_FILENO;
	x->rl.burst = 5;
	*out = x;
	return MOAT_OK;
}

void
moatd_export_close(struct moatd_export *x)
{
	if (x == NULL)
		return;
	if (x->own_fd)
		moat_close(x->fd);
	free(x);
}

/* The fields every moat event carries. */
static json_t *
ocsf_base(int class_uid, const char *class_name, int activity_id,
    const char *activity_name, int64_t time_ms, int severity,
    const char *status, const char *message)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "class_uid", json_integer(class_uid));
	json_object_set_new(o, "class_name", json_string(class_name));
	json_object_set_new(o, "category_uid", json_integer(class_uid / 1000));
	json_object_set_new(o, "activity_id", json_integer(activity_id));
	json_object_set_new(o, "activity_name", json_string(activity_name));
	json_object_set_new(o, "type_uid",
	    json_integer((json_int_t)class_uid * 100 + activity_id));
	json_object_set_new(o, "time", json_integer(time_ms));
	json_object_set_new(o, "severity_id", json_integer(severity));
	json_object_set_new(o, "severity",
	    json_string(severity >= SEV_MEDIUM ? "Medium" : "Informational"));
	json_object_set_new(o, "status", json_string(status));
	json_object_set_new(o, "message", json_string(message));
	json_object_set_new(o, "metadata",
	    json_pack("{s:s, s:{s:s, s:s}}", "version", "1.1.0", "product",
	    "name", "moat", "vendor_name", "moat"));
	return o;
}

/*
 * One line per event. It may go to stdout, a terminal: sandbox text in
 * it (C1 controls, DEL, bidi overrides, which jansson leaves raw) is
 * written as JSON escapes meaning the same characters.
 */
static void
emit(struct moatd_export *x, json_t *o)
{
	char *s = NULL, *safe = NULL;
	size_t n;

	if (o == NULL)
		return;
	if ((s = json_dumps(o, JSON_COMPACT)) == NULL ||
	    (safe = moat_escape_json(s)) == NULL)
		goto out;
	n = strlen(safe);
	safe[n] = '\n'; /* replaces the NUL; write n + 1 bytes */
	if (moat_write_all(x->fd, safe, n + 1) != 0 &&
	    moat_ratelimit_ok(&x->rl))
		log_warn_errno("event export write failed");
out:
	free(s);
	free(safe);
	json_decref(o);
}

static int
ip_version(const char *ip)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, ip, buf) == 1)
		return 4;
	if (inet_pton(AF_INET6, ip, buf) == 1)
		return 6;
	return 0;
}

void
moatd_export_denial(struct moatd_export *x, const struct moat_denial_event *ev)
{
	json_t *o, *dst, *proc, *anc;
	bool audit;
	char msg[1536], marks[160];

	if (x == NULL)
		return;
	audit = strcmp(ev->stage, "audit") == 0;
	snprintf(msg, sizeof(msg), "%s %s -> %s:%d: %s",
	    audit ? "AUDIT" : "DENIED", ev->binary[0] ? ev->binary : "?",
	    ev->host[0] ? ev->host : ev->ip, ev->port, ev->reason);
	/* activity 1 Open (allowed in audit mode), 5 Refuse. */
	o = ocsf_base(OCSF_NETWORK_ACTIVITY, "Network Activity", audit ? 1 : 5,
	    audit ? "Open" : "Refuse", ev->ts_ms,
	    audit ? SEV_INFO : SEV_MEDIUM, audit ? "Success" : "Failure", msg);
	if (o == NULL)
		return;
	json_object_set_new(o, "action", json_string(audit ? "Allowed" :
	    "Denied"));
	json_object_set_new(o, "disposition", json_string(audit ? "Allowed" :
	    "Blocked"));
	json_object_set_new(o, "status_detail", json_string(ev->reason));
	dst = json_object();
	json_object_set_new(dst, "hostname", json_string(ev->host));
	if (ev->ip[0] != '\0') {
		json_object_set_new(dst, "ip", json_string(ev->ip));
		json_object_set_new(o, "connection_info", json_pack("{s:s, s:i}",
		    "protocol_name", ev->protocol[0] ? ev->protocol : "tcp",
		    "protocol_ver_id", ip_version(ev->ip)));
	}
	json_object_set_new(dst, "port", json_integer(ev->port));
	json_object_set_new(o, "dst_endpoint", dst);
	json_object_set_new(o, "src_endpoint", json_pack("{s:s}", "name",
	    ev->sandbox));
	proc = json_pack("{s:i, s:{s:s}, s:{s:i}}", "pid", ev->pid, "file",
	    "path", ev->binary, "user", "uid", ev->uid);
	if (proc != NULL && ev->sha256[0] != '\0')
		json_object_set_new(json_object_get(proc, "file"), "hashes",
		    json_pack("[{s:i, s:s, s:s}]", "algorithm_id", 3,
		    "algorithm", "SHA-256", "value", ev->sha256));
	anc = json_array();
	for (int i = 0; i < ev->nancestors && i < MOAT_EV_MAX_ANCESTORS; i++)
		json_array_append_new(anc, json_pack("{s:s}", "path",
		    ev->ancestors[i]));
	json_object_set_new(proc, "lineage", anc);
	json_object_set_new(o, "actor", json_pack("{s:o}", "process", proc));
	json_object_set_new(o, "unmapped", json_pack("{s:s, s:s, s:i}",
	    "sandbox", ev->sandbox, "stage", ev->stage, "policy_version",
	    ev->policy_version));
	/* Text that did not arrive whole: "cut: binary; not UTF-8: ..." */
	moat_denial_event_marks(ev, marks, sizeof(marks));
	if (marks[0] != '\0')
		json_object_set_new(json_object_get(o, "unmapped"),
		    "text_marks", json_string(marks));
	/* An L7 event: OCSF's http_request (method, path; never a query). */
	if (ev->method[0] != '\0')
		json_object_set_new(o, "http_request", json_pack("{s:s, s:{s:s}}",
		    "http_method", ev->method, "url", "path", ev->path));
	emit(x, o);
}

void
moatd_export_session(struct moatd_export *x, bool start, const char *sandbox,
    const char *who, const char *from, const char *kind, int exit_status,
    const char *exit_signal)
{
	json_t *o;
	char msg[512];

	if (x == NULL)
		return;
	snprintf(msg, sizeof(msg), "%s %s session of %s from %s in %s",
	    start ? "open" : "close", kind ? kind : "?", who ? who : "?",
	    from ? from : "?", sandbox ? sandbox : "?");
	/* activity 1 Open, 2 Close. */
	o = ocsf_base(OCSF_SSH_ACTIVITY, "SSH Activity", start ? 1 : 2,
	    start ? "Open" : "Close", moat_wall_ms(), SEV_INFO,
	    start || exit_status == 0 ? "Success" : "Failure", msg);
	if (o == NULL)
		return;
	json_object_set_new(o, "actor", json_pack("{s:{s:s}}", "user", "name",
	    who ? who : ""));
	json_object_set_new(o, "src_endpoint", json_pack("{s:s}", "ip",
	    from ? from : ""));
	json_object_set_new(o, "dst_endpoint", json_pack("{s:s}", "name",
	    sandbox ? sandbox : ""));
	json_object_set_new(o, "unmapped", json_pack("{s:s, s:s}", "sandbox",
	    sandbox ? sandbox : "", "kind", kind ? kind : ""));
	if (!start) {
		json_object_set_new(json_object_get(o, "unmapped"),
		    "exit_status", json_integer(exit_status));
		if (exit_signal != NULL && *exit_signal != '\0')
			json_object_set_new(json_object_get(o, "unmapped"),
			    "exit_signal", json_string(exit_signal));
	}
	emit(x, o);
}

void
moatd_export_policy(struct moatd_export *x, const char *sandbox, int version,
    const char *source, const char *who)
{
	json_t *o;
	char msg[512];

	if (x == NULL)
		return;
	snprintf(msg, sizeof(msg), "policy of %s is now version %d (%s, by %s)",
	    sandbox, version, source ? source : "?", who ? who : "?");
	/* activity 1 Log (a new configuration is in force). */
	o = ocsf_base(OCSF_CONFIG_CHANGE, "Device Config State Change", 1,
	    "Log", moat_wall_ms(), SEV_INFO, "Success", msg);
	if (o == NULL)
		return;
	json_object_set_new(o, "state", json_string("LOADED"));
	json_object_set_new(o, "actor", json_pack("{s:{s:s}}", "user", "name",
	    who ? who : ""));
	json_object_set_new(o, "device", json_pack("{s:s}", "name", sandbox));
	json_object_set_new(o, "unmapped", json_pack("{s:s, s:i, s:s}",
	    "sandbox", sandbox, "policy_version", version, "source",
	    source ? source : ""));
	emit(x, o);
}

void
moatd_export_proposal(struct moatd_export *x, int64_t id, const char *sandbox,
    const char *status, const char *who)
{
	json_t *o;
	char msg[512], state[16];
	size_t i;

	if (x == NULL)
		return;
	/* PROPOSED, APPROVED, REJECTED: OpenShell's state names. */
	moat_strlcpy(state, strcmp(status, "pending") == 0 ? "proposed" :
	    status, sizeof(state));
	for (i = 0; state[i] != '\0'; i++)
		state[i] = (char)(state[i] >= 'a' && state[i] <= 'z' ?
		    state[i] - 32 : state[i]);
	snprintf(msg, sizeof(msg), "proposal #%lld for %s %s by %s",
	    (long long)id, sandbox, status, who ? who : "?");
	o = ocsf_base(OCSF_CONFIG_CHANGE, "Device Config State Change", 1,
	    "Log", moat_wall_ms(), SEV_INFO, "Success", msg);
	if (o == NULL)
		return;
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "actor", json_pack("{s:{s:s}}", "user", "name",
	    who ? who : ""));
	json_object_set_new(o, "device", json_pack("{s:s}", "name", sandbox));
	json_object_set_new(o, "unmapped", json_pack("{s:s, s:I, s:s}",
	    "sandbox", sandbox, "proposal_id", (json_int_t)id, "status",
	    status));
	emit(x, o);
}

/*
 * Events kept out by a flood cap (docs/operator.md, Floods): one line per
 * sandbox, kind and stored batch, OCSF's aggregate form (count,
 * start_time, end_time). Suppressed denials are Network Activity
 * refusals like the rest; suppressed proposals are config changes that
 * did not happen.
 */
void
moatd_export_suppressed(struct moatd_export *x, const char *sandbox,
    const char *kind, int64_t count, int64_t first_ms, int64_t last_ms)
{
	bool denials = strcmp(kind, MOAT_STORE_SUPPRESSED_DENIALS) == 0;
	json_t *o;
	char msg[512];

	if (x == NULL)
		return;
	snprintf(msg, sizeof(msg), "%lld more %s of %s suppressed (over "
	    "limits.%s)", (long long)count, denials ? "denials" :
	    strcmp(kind, MOAT_STORE_SUPPRESSED_AGENT) == 0 ?
	    "agent proposal requests" : "proposals", sandbox, denials ?
	    "denials_per_minute" : strcmp(kind, MOAT_STORE_SUPPRESSED_AGENT) ==
	    0 ? "agent_proposals_per_minute" : "pending_proposals");
	if (denials)
		o = ocsf_base(OCSF_NETWORK_ACTIVITY, "Network Activity", 5,
		    "Refuse", last_ms, SEV_MEDIUM, "Failure", msg);
	else
		o = ocsf_base(OCSF_CONFIG_CHANGE, "Device Config State Change",
		    1, "Log", last_ms, SEV_INFO, "Failure", msg);
	if (o == NULL)
		return;
	json_object_set_new(o, "count", json_integer(count));
	json_object_set_new(o, "start_time", json_integer(first_ms));
	json_object_set_new(o, "end_time", json_integer(last_ms));
	if (denials) {
		json_object_set_new(o, "action", json_string("Denied"));
		json_object_set_new(o, "disposition", json_string("Blocked"));
		json_object_set_new(o, "src_endpoint", json_pack("{s:s}",
		    "name", sandbox));
	} else {
		json_object_set_new(o, "state", json_string("SUPPRESSED"));
		json_object_set_new(o, "device", json_pack("{s:s}", "name",
		    sandbox));
	}
	json_object_set_new(o, "unmapped", json_pack("{s:s, s:s, s:s}",
	    "sandbox", sandbox, "stage", "suppressed", "kind", kind));
	emit(x, o);
}
