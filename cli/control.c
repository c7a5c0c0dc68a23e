#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/escape.h"
#include "common/jsonl.h"
#include "common/util.h"
#include "store/store.h"
#include "cli/cli.h"
#include "cli/control.h"

#define REPLY_TIMEOUT_S 60

static int
unreachable(struct moat_cause *cause, const char *path)
{
	int e = errno;

	/* The socket is root-only unless moatd's config names a group. */
	moat_cause_set(cause, "cannot reach moatd at %s: %s (%s)", path,
	    strerror(e), e == EACCES || e == EPERM ? "the control socket is "
	    "root-only: run as root, or set control_group in moatd's config" :
	    "is moatd running?");
	return MOAT_ERR_SYSTEM;
}

/* Wait for moatd's one reply line and decode it. */
static int
read_reply(struct moat_jsonl *j, const char *path, json_t **out,
    struct moat_cause *cause)
{
	struct moat_cause c2 = { { 0 } };
	const char *line;
	size_t len;
	int r;

	/* Bounded: each read either brings bytes or ends the wait. */
	for (;;) {
		if ((r = moat_jsonl_next(j, &line, &len)) != 0)
			break;
		if (moat_jsonl_eof(j)) {
			moat_cause_set(cause, "moatd at %s closed the "
			    "connection without a reply", path);
			return MOAT_ERR_SYSTEM;
		}
		if ((r = moat_jsonl_read(j, &c2)) < 0) {
			moat_cause_set(cause, "no reply from moatd at %s%s%s",
			    path, r == MOAT_ERR_AGAIN ? " within 60 s" : ": ",
			    r == MOAT_ERR_AGAIN ? "" : moat_cause_str(&c2, r));
			return MOAT_ERR_SYSTEM;
		}
	}
	if (r < 0) {
		moat_cause_set(cause, "reply from moatd at %s larger than %u "
		    "MiB", path, MOAT_JSONL_MAX_LINE >> 20);
		return MOAT_ERR_INVALID;
	}
	if ((r = moat_jsonl_decode(line, len, out, &c2)) != 0)
		moat_cause_set(cause, "moatd at %s sent a malformed reply: %s",
		    path, c2.msg);
	return r;
}

int
moat_cli_control_call(const char *path, json_t *req, json_t **reply,
    struct moat_cause *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = REPLY_TIMEOUT_S };
	_moat_autoclose int fd = -1;
	struct moat_jsonl *j = NULL;
	json_t *rep = NULL;
	int r;

	if (path == NULL)
		path = moat_cli_control_path();
	if (strlen(path) >= sizeof(sun.sun_path)) {
		moat_cause_set(cause, "control socket path too long: %s",
		    path);
		return MOAT_ERR_INVALID;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return unreachable(cause, path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		return unreachable(cause, path);
	if ((j = moat_jsonl_new(fd)) == NULL)
		return MOAT_ERR_NOMEM;
	/* A blocking fd: the request is written whole or the call fails. */
	if ((r = moat_jsonl_send(j, req)) == MOAT_ERR_INVALID) {
		moat_cause_set(cause, "request larger than %u MiB",
		    MOAT_JSONL_MAX_LINE >> 20);
	} else if (r != 0) {
		moat_cause_errno(cause, "send to moatd at %s", path);
		r = MOAT_ERR_SYSTEM;
	} else if ((r = read_reply(j, path, &rep, cause)) == 0) {
		*reply = rep;
	}
	moat_jsonl_free(j);
	return r;
}

int
moat_cli_control_report(const char *cmd, json_t *reply)
{
	const char *err = json_string_value(json_object_get(reply, "error"));
	const char *code = json_string_value(json_object_get(reply, "code"));
	json_t *diags = json_object_get(reply, "diags"), *g;
	size_t i;

	/* Errors may quote sandbox text (a binary path in a rule). */
	moat_cli_eprint(cmd, err ? err : "failed");
	json_array_foreach(diags, i, g) {
		char *level = moat_escape_str(json_string_value(
		    json_object_get(g, "level")));
		char *path = moat_escape_str(json_string_value(
		    json_object_get(g, "path")));
		char *msg = moat_escape_str(json_string_value(
		    json_object_get(g, "msg")));

		fprintf(stderr, "  %s: %s%s%s\n", level ? level : "?",
		    path ? path : "", path && *path ? ": " : "",
		    msg ? msg : "?");
		free(level);
		free(path);
		free(msg);
	}
	return code != NULL && strcmp(code, "invalid") == 0 &&
	    err != NULL && strncmp(err, "request needs", 13) == 0 ?
	    MOAT_EXIT_USAGE : MOAT_EXIT_NO;
}

void
moat_cli_eprint(const char *cmd, const char *msg)
{
	char *e = moat_escape_str(msg);

	fprintf(stderr, "moat %s: %s\n", cmd, e != NULL ? e : "?");
	free(e);
}

struct moat_store *
moat_cli_store_open(const char *cmd, const char *path)
{
	struct moat_store *s = NULL;
	struct moat_cause cause = { { 0 } };
	int r;

	if (path == NULL)
		path = moat_cli_store_path();
	if ((r = moat_store_open(path, MOAT_STORE_RDONLY, &s, &cause)) != 0) {
		fprintf(stderr, "moat %s: %s\n", cmd, moat_cause_str(&cause,
		    r));
		return NULL;
	}
	return s;
}

int
moat_cli_parse_id(const char *s, long long *out)
{
	char *end = NULL;
	long long v;

	if (s != NULL && *s == '#')
		s++;
	if (s == NULL || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return 0;
	*out = v;
	return 1;
}
