/*
 * The control socket: a unix stream socket on moatd's loop, one JSON
 * request per line, one JSON reply per line. Every command is a row of
 * ctl_cmds with a permission flag (OpenSSH's monitor table): who may do
 * what is in the table, not in scattered ifs. The peer's identity comes
 * from SO_PEERCRED.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/jsonl.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "moatd/moatd.h"
#include "moatd/ctl.h"

#define CTL_MAX_CLIENTS 64

enum ctl_perm {
	CTL_ANY = 0,    /* anyone who can connect (the socket's mode) */
	CTL_CHANGE = 1, /* uid 0 or the control group */
};

struct ctl_cmd {
	const char *name;
	enum ctl_perm perm;
	ctl_handler *fn;
};

static ctl_handler ctl_ping;

static const struct ctl_cmd ctl_cmds[] = {
	{ "ping", CTL_ANY, ctl_ping },
	{ "sandboxes", CTL_ANY, moatd_ctl_sandboxes },
	{ "sandboxes.stop", CTL_CHANGE, moatd_ctl_sandboxes_stop },
	{ "sandboxes.start", CTL_CHANGE, moatd_ctl_sandboxes_start },
	{ "shutdown", CTL_CHANGE, moatd_ctl_shutdown },
	{ "policy.show", CTL_ANY, moatd_ctl_policy_show },
	{ "policy.history", CTL_ANY, moatd_ctl_policy_history },
	{ "policy.diff", CTL_ANY, moatd_ctl_policy_diff },
	{ "policy.set", CTL_CHANGE, moatd_ctl_policy_set },
	{ "proposals.list", CTL_ANY, moatd_ctl_proposals_list },
	{ "proposals.approve", CTL_CHANGE, moatd_ctl_proposals_approve },
	{ "proposals.reject", CTL_CHANGE, moatd_ctl_proposals_reject },
};

struct ctl_client {
	struct moatd_control *c;
	struct ctl_client *next;
	int fd;
	struct moat_jsonl *j;	/* requests in, replies out */
	struct ctl_peer peer;
};

struct moatd_control {
	struct moatd *d;
	int fd;
	int gid;
	char *path;
	struct ctl_client *clients;
	size_t nclients;
};

static int
ctl_ping(const struct ctl_peer *p, json_t *req, json_t *reply,
    struct moat_diags *diags, struct moat_cause *cause)
{
	json_object_set_new(reply, "pong", json_true());
	json_object_set_new(reply, "who", json_string(p->who));
	json_object_set_new(reply, "can_change", json_boolean(p->can_change));
	return MOAT_OK;
}

/* ---- helpers for handlers ---- */

const char *
ctl_str(json_t *req, const char *key, struct moat_cause *cause)
{
	const char *s = json_string_value(json_object_get(req, key));

	if (s == NULL || *s == '\0')
		moat_cause_set(cause, "request needs \"%s\" (a string)", key);
	return s != NULL && *s != '\0' ? s : NULL;
}

int
ctl_sandbox(const struct ctl_peer *p, json_t *req, const char **out,
    struct moat_cause *cause)
{
	const char *sb;

	if ((sb = ctl_str(req, "sandbox", cause)) == NULL)
		return MOAT_ERR_INVALID;
	if (!moatd_sandbox_exists(p->d, sb)) {
		moat_cause_set(cause, "no sandbox named '%s'", sb);
		return MOAT_ERR_NOTFOUND;
	}
	*out = sb;
	return MOAT_OK;
}

json_t *
ctl_diags_json(const struct moat_diags *diags)
{
	static const char *const lv[] = { "error", "warning", "note" };
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && diags != NULL && i < diags->n; i++) {
		const struct moat_diag *g = &diags->v[i];

		json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "level",
		    g->level <= MOAT_DIAG_NOTE ? lv[g->level] : "note",
		    "path", g->path ? g->path : "", "msg",
		    g->msg ? g->msg : ""));
	}
	return a;
}

static const char *
err_code(int r)
{
	switch (r) {
	case MOAT_ERR_INVALID:
		return "invalid";
	case MOAT_ERR_NOTFOUND:
		return "not_found";
	case MOAT_ERR_DENIED:
		return "denied";
	case MOAT_ERR_AGAIN:
		return "busy";
	case MOAT_ERR_EXISTS:
		return "exists";
	default:
		return "internal";
	}
}

static char *
error_reply(int r, const char *msg, const struct moat_diags *diags,
    json_t *tag)
{
	json_t *o;
	char *s;

	o = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", msg, "code",
	    err_code(r));
	if (o == NULL)
		return NULL;
	if (diags != NULL && diags->n > 0)
		json_object_set_new(o, "diags", ctl_diags_json(diags));
	if (tag != NULL)
		json_object_set(o, "tag", tag);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

char *
moatd_control_handle(const struct ctl_peer *p, const char *line, size_t len)
{
	struct moat_cause cause = { { 0 } };
	struct moat_diags diags;
	const struct ctl_cmd *cmd = NULL;
	json_t *req = NULL, *reply = NULL, *tag = NULL;
	const char *name;
	char *s = NULL;
	int r;

	moat_diags_init(&diags);
	if (moat_jsonl_decode(line, len, &req, &cause) != 0) {
		char msg[300];

		snprintf(msg, sizeof(msg), "malformed request: %s", cause.msg);
		s = error_reply(MOAT_ERR_INVALID, msg, NULL, NULL);
		goto out;
	}
	tag = json_object_get(req, "tag");
	if ((name = json_string_value(json_object_get(req, "cmd"))) == NULL) {
		s = error_reply(MOAT_ERR_INVALID, "request needs \"cmd\"",
		    NULL, tag);
		goto out;
	}
	for (size_t i = 0; i < MOAT_NELEM(ctl_cmds); i++)
		if (strcmp(ctl_cmds[i].name, name) == 0)
			cmd = &ctl_cmds[i];
	if (cmd == NULL) {
		moat_cause_set(&cause, "unknown command '%.64s'", name);
		s = error_reply(MOAT_ERR_INVALID, cause.msg, NULL, tag);
		goto out;
	}
	if (cmd->perm == CTL_CHANGE && !p->can_change) {
		moat_cause_set(&cause, "%s: permission denied for %s (needs "
		    "root or the control group)", cmd->name, p->who);
		s = error_reply(MOAT_ERR_DENIED, cause.msg, NULL, tag);
		goto out;
	}
	if ((reply = json_pack("{s:b}", "ok", 1)) == NULL)
		goto out;
	if ((r = cmd->fn(p, req, reply, &diags, &cause)) != 0) {
		s = error_reply(r, moat_cause_str(&cause, r), &diags, tag);
		goto out;
	}
	if (cmd->perm == CTL_CHANGE)
		log_info("control: %s by %s (uid %u)", cmd->name, p->who,
		    (unsigned)p->uid);
	if (tag != NULL)
		json_object_set(reply, "tag", tag);
	s = json_dumps(reply, JSON_COMPACT);
out:
	moat_diags_free(&diags);
	json_decref(reply);
	json_decref(req);
	return s;
}

/* ---- peers ---- */

static bool
in_group(const char *user, gid_t primary, gid_t want)
{
	gid_t groups[256];
	int n = (int)MOAT_NELEM(groups);

	if (primary == want)
		return true;
	if (getgrouplist(user, primary, groups, &n) == -1)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == want)
			return true;
	return false;
}

static int
peer_identify(struct moatd_control *c, int fd, struct ctl_peer *p)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1)
		return MOAT_ERR_SYSTEM;
	memset(p, 0, sizeof(*p));
	p->d = c->d;
	p->uid = uc.uid;
	p->gid = uc.gid;
	p->pid = uc.pid;
	if (getpwuid_r(uc.uid, &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL)
		moat_strlcpy(p->who, pw.pw_name, sizeof(p->who));
	else
		snprintf(p->who, sizeof(p->who), "uid:%u", (unsigned)uc.uid);
	p->can_change = uc.uid == 0 || (c->gid >= 0 && (uc.gid ==
	    (gid_t)c->gid || (res != NULL && in_group(pw.pw_name, pw.pw_gid,
	    (gid_t)c->gid))));
	return MOAT_OK;
}

static void
client_free(struct ctl_client *cl)
{
	struct ctl_client **pp;

	for (pp = &cl->c->clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	cl->c->nclients--;
	moat_loop_del_fd(moatd_loop(cl->c->d), cl->fd);
	moat_close(cl->fd);
	moat_jsonl_free(cl->j);
	free(cl);
}

/* Queue the reply text (freed here); MOAT_ERR_* when it cannot go. */
static int
send_reply(struct ctl_client *cl, char *s)
{
	int r;

	if (s == NULL)
		return MOAT_ERR_NOMEM;
	r = moat_jsonl_send_line(cl->j, s, strlen(s));
	free(s);
	return r;
}

/*
 * Answer buffered requests in order, one at a time: while a reply is
 * still queued no further request is served (backpressure: a client
 * that does not read its replies gets no more of them).
 */
static int
serve(struct ctl_client *cl)
{
	const char *line;
	size_t len;
	int r;

	while (moat_jsonl_pending(cl->j) == 0 &&
	    (r = moat_jsonl_next(cl->j, &line, &len)) != 0) {
		if (r < 0) {
			char msg[64];

			snprintf(msg, sizeof(msg), "request larger than %u MiB "
			    "refused", MOAT_JSONL_MAX_LINE >> 20);
			r = send_reply(cl, error_reply(MOAT_ERR_INVALID, msg,
			    NULL, NULL));
		} else
			r = send_reply(cl, moatd_control_handle(&cl->peer,
			    line, len));
		if (r != 0)
			return r;
	}
	return MOAT_OK;
}

/* Serve, read and write what we can; false when the client is done. */
static bool
client_step(struct ctl_client *cl, unsigned events)
{
	int r;

	if ((events & MOAT_EV_WRITE) &&
	    moat_jsonl_flush(cl->j) == MOAT_ERR_SYSTEM)
		return false;
	for (int turns = 0; turns < 16; turns++) {
		if (serve(cl) != 0)
			return false;
		if (moat_jsonl_pending(cl->j) > 0 || moat_jsonl_eof(cl->j))
			break;
		if ((r = moat_jsonl_read(cl->j, NULL)) == MOAT_ERR_AGAIN)
			break;
		if (r < 0)
			return false;
	}
	/* After the client's EOF: done once every reply is out. */
	return !moat_jsonl_eof(cl->j) || moat_jsonl_pending(cl->j) > 0;
}

static void
client_ready(struct moat_loop *l, int fd, unsigned events, void *arg)
{
	struct ctl_client *cl = arg;

	if (!client_step(cl, events)) {
		client_free(cl);
		return;
	}
	/* While a reply is pending, stop reading. */
	moat_loop_mod_fd(l, fd, moat_jsonl_pending(cl->j) > 0 ?
	    MOAT_EV_WRITE : MOAT_EV_READ);
}

static void
control_accept(struct moat_loop *l, int lfd, unsigned events, void *arg)
{
	struct moatd_control *c = arg;
	struct ctl_client *cl;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1) {
		if (c->nclients >= CTL_MAX_CLIENTS ||
		    (cl = calloc(1, sizeof(*cl))) == NULL) {
			log_warn("control: too many clients, closing one");
			close(fd);
			continue;
		}
		cl->c = c;
		cl->fd = fd;
		if ((cl->j = moat_jsonl_new(fd)) == NULL ||
		    peer_identify(c, fd, &cl->peer) != 0 ||
		    moat_loop_add_fd(l, fd, MOAT_EV_READ, client_ready,
		    cl) != 0) {
			close(fd);
			moat_jsonl_free(cl->j);
			free(cl);
			continue;
		}
		cl->next = c->clients;
		c->clients = cl;
		c->nclients++;
	}
}

static int
bind_socket(struct moatd_control *c, struct moat_cause *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int r;

	if (strlen(c->path) >= sizeof(sun.sun_path)) {
		moat_cause_set(cause, "control socket path too long: %s",
		    c->path);
		return MOAT_ERR_INVALID;
	}
	strcpy(sun.sun_path, c->path);
	/* A stale socket from a crash is ours to replace; a file is not. */
	if (lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(c->path);
	old = umask(0177);
	r = bind(c->fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r == -1) {
		moat_cause_errno(cause, "bind control socket %s", c->path);
		return MOAT_ERR_SYSTEM;
	}
	if (c->gid >= 0 && (chown(c->path, 0, (gid_t)c->gid) == -1 ||
	    chmod(c->path, 0660) == -1)) {
		moat_cause_errno(cause, "give control socket %s to group %d",
		    c->path, c->gid);
		return MOAT_ERR_SYSTEM;
	}
	if (listen(c->fd, 16) == -1) {
		moat_cause_errno(cause, "listen on %s", c->path);
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

int
moatd_control_new(struct moatd *d, const char *path, int gid,
    struct moatd_control **out, struct moat_cause *cause)
{
	struct moatd_control *c = NULL;
	int r = MOAT_ERR_NOMEM;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->fd = -1;
	if ((c->path = strdup(path)) == NULL)
		goto fail;
	c->d = d;
	c->gid = gid;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (c->fd == -1) {
		moat_cause_errno(cause, "socket(AF_UNIX)");
		r = MOAT_ERR_SYSTEM;
		goto fail;
	}
	if ((r = bind_socket(c, cause)) != 0)
		goto fail;
	if ((r = moat_loop_add_fd(moatd_loop(d), c->fd, MOAT_EV_READ,
	    control_accept, c)) != 0) {
		moat_cause_set(cause, "control socket: cannot join the loop");
		goto fail;
	}
	*out = c;
	return MOAT_OK;
fail:
	if (c != NULL) {
		moat_close(c->fd);
		free(c->path);
		free(c);
	}
	return r;
}

void
moatd_control_free(struct moatd_control *c)
{
	if (c == NULL)
		return;
	while (c->clients != NULL)
		client_free(c->clients);
	moat_loop_del_fd(moatd_loop(c->d), c->fd);
	moat_close(c->fd);
	unlink(c->path);
	free(c->path);
	free(c);
}
