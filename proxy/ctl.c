/*
 * The proxy process: moatd forks it (no exec) with one end of a
 * socketpair, ctl_fd, and talks JSON lines both ways (docs/protocols.md,
 * "moatd <-> proxy control channel"). moatd sends sandboxes (with the
 * fds that travel with their lines: a sock_diag socket made in the
 * sandbox's netns, NFLOG, attribution maps, and the hashes trusted
 * before) and policies; the proxy answers
 * each request and writes every denial as {"type":"denial", ...event
 * fields}, bypasses included. An agent's policy.local proposal goes up
 * as {"type":"proposal"} and moatd's {"type":"proposal_result"} answers
 * the waiting HTTP request. A hash trusted on first use goes up as
 * {"type":"trusted"}; moatd keeps it and hands it back with the sandbox
 * ("trust") to the next proxy.
 *
 * Framing is common/jsonl.h: writes never block the loop; when moatd
 * stops reading for long, lines beyond the queue's bound are dropped and
 * counted in the log.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/jsonl.h"
#include "common/util.h"
#include "proxy/internal.h"

struct ctl {
	struct moat_loop *loop;
	struct moat_proxy *p;
	const struct moat_proxy_config *cfg;
	int fd;			/* the channel to moatd, or -1 between two */
	struct moat_jsonl *j;
	unsigned events;	/* what the loop watches ctl_fd for */
	unsigned long dropped;	/* lines the full queue refused */
	int lfd;		/* where the next moatd connects, or -1 */
	char **held;		/* lines waiting for the next moatd */
	size_t nheld;
	size_t heldcap;
	size_t held_bytes;
	unsigned long held_dropped; /* lines the full hold refused */
};

/* What waits for the next moatd while there is none: bounded. */
#define CTL_HELD_MAX_LINES 20000
#define CTL_HELD_MAX_BYTES (16u << 20)
/* Room kept for trust lines: a flood of denials cannot push them out. */
#define CTL_HELD_TRUST_LINES 4096
#define CTL_HELD_TRUST_BYTES (2u << 20)

/* Watch for writability exactly while output is queued. */
static void
ctl_watch(struct ctl *c)
{
	unsigned want = MOAT_EV_READ | (moat_jsonl_pending(c->j) > 0 ?
	    MOAT_EV_WRITE : 0);

	if (want != c->events && moat_loop_mod_fd(c->loop, c->fd, want) == 0)
		c->events = want;
}

/* Keep a line for the next moatd (live restore); trust: a trust line. */
static int
ctl_hold(struct ctl *c, json_t *o, bool trust)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	char **nh;
	size_t n = s != NULL ? strlen(s) : 0;
	size_t max_lines = CTL_HELD_MAX_LINES + (trust ?
	    CTL_HELD_TRUST_LINES : 0);
	size_t max_bytes = CTL_HELD_MAX_BYTES + (trust ?
	    CTL_HELD_TRUST_BYTES : 0);

	json_decref(o);
	if (s == NULL || c->nheld >= max_lines ||
	    c->held_bytes + n > max_bytes) {
		if (c->held_dropped++ % 1000 == 0)
			log_warn("no moatd: %lu lines dropped while waiting for "
			    "it", c->held_dropped);
		free(s);
		return -1;
	}
	if (c->nheld == c->heldcap) {
		size_t cap = c->heldcap ? c->heldcap * 2 : 64;

		if ((nh = realloc(c->held, cap * sizeof(*nh))) == NULL) {
			free(s);
			c->held_dropped++;
			return -1;
		}
		c->held = nh;
		c->heldcap = cap;
	}
	c->held[c->nheld++] = s;
	c->held_bytes += n;
	return 0;
}

/* One line, whole or not at all (0, or -1 when it was dropped). */
static int
ctl_send_line(struct ctl *c, json_t *o, bool trust)
{
	int r;

	if (c->fd < 0)
		return ctl_hold(c, o, trust);
	r = o != NULL ? moat_jsonl_send(c->j, o) : MOAT_ERR_NOMEM;

	json_decref(o);
	if (r == MOAT_ERR_AGAIN && c->dropped++ % 1000 == 0)
		log_warn("moatd is not reading; %lu lines dropped",
		    c->dropped);
	else if (r != 0 && r != MOAT_ERR_AGAIN)
		log_warn_r(r, "line to moatd not sent");
	ctl_watch(c);
	return r == 0 ? 0 : -1;
}

static int
ctl_reply(struct ctl *c, json_t *o)
{
	return ctl_send_line(c, o, false);
}

static void
emit_event(void *arg, const struct moat_denial_event *ev)
{
	struct ctl *c = arg;
	json_t *o = moat_denial_event_json(ev);

	if (o != NULL)
		json_object_set_new(o, "type", json_string("denial"));
	ctl_reply(c, o);
}

/* An agent's proposal from policy.local: hand it to moatd. */
static int
ctl_propose(void *arg, const char *sandbox, uint64_t req, const char *body,
    size_t len)
{
	struct ctl *c = arg;

	/* Nobody to decide it: the agent hears so (503) at once. */
	if (c->fd < 0)
		return -1;
	return ctl_reply(c, json_pack("{s:s,s:s,s:I,s:s%}", "type",
	    "proposal", "sandbox", sandbox, "req", (json_int_t)req, "body",
	    body, len));
}

/*
 * A first use trusted a hash: moatd keeps it for the next proxy. -1 when
 * the line is neither sent nor held (the first use is then refused).
 */
static int
ctl_trusted(void *arg, const char *sandbox, const char *path,
    const char *sha256)
{
	struct ctl *c = arg;
	json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "type", "trusted",
	    "sandbox", sandbox, "binary", path, "sha256", sha256);

	/*
	 * A path that is not UTF-8 has no JSON spelling: it is trusted in
	 * this proxy only, as before (docs/proxy.md, TOFU).
	 */
	if (o == NULL)
		return 0;
	return ctl_send_line(c, o, true);
}

static const char *
jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static long long
jint(json_t *o, const char *k, long long def)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

/*
 * The fds a line names ("fds": names, "fd_seq": the number of the
 * first) into the fields of s they stand for. -1 and a cause when they
 * are not all there.
 */
static int
take_fds(struct ctl *c, json_t *o, struct moat_proxy_sandbox *s, int *fds,
    int *keep, size_t *nfds, struct moat_cause *cause)
{
	json_t *names = json_object_get(o, "fds"), *v;
	long long seq = jint(o, "fd_seq", -1);
	size_t i, n = json_array_size(names);

	*nfds = 0;
	if (n == 0)
		return 0;
	if (n > 16 || seq < 0 || moat_jsonl_take_fds(c->j,
	    (unsigned long long)seq, fds, n) != 0) {
		moat_cause_set(cause, "the sandbox's fds did not arrive");
		return -1;
	}
	*nfds = n;
	json_array_foreach(names, i, v) {
		const char *name = json_is_string(v) ? json_string_value(v) :
		    "";

		if (strcmp(name, "diag") == 0) {
			s->diag = true;
			s->diag_fd = fds[i];
		} else if (strcmp(name, "attrib") == 0)
			s->attrib_fd = fds[i];
		else if (strcmp(name, "attrib_tuple") == 0)
			s->attrib_tuple_fd = fds[i];
		else if (strcmp(name, "nflog") == 0)
			s->nflog_fd = fds[i];
		else if (strcmp(name, "keep") == 0 && s->nkeep < n)
			keep[s->nkeep++] = fds[i];
	}
	s->keep_fds = keep;
	s->attrib = s->attrib_fd >= 0;
	s->nflog = s->nflog_fd >= 0;
	return 0;
}

static void
do_sandbox(struct ctl *c, json_t *o)
{
	struct moat_proxy_sandbox s = { 0 };
	struct moat_proxy_trusted *kept = NULL;
	struct moat_cause cause = { { 0 } };
	int fds[16], keep[16], r = MOAT_ERR_INVALID;
	size_t nfds = 0, i;
	json_t *trust, *t;

	s.name = jstr(o, "name");
	s.listen_addr = jstr(o, "listen");
	s.port = (uint16_t)jint(o, "port", 0);
	s.netns_fd = -1;
	/*
	 * Confined, only moatd's sock_diag socket (or none: the /proc
	 * fallback), never one of its own netns; unconfined (a test's
	 * proxy serving its own netns), its own unless one came.
	 */
	s.diag = c->cfg->run_uid != 0;
	s.diag_fd = -1;
	s.procs_path = jstr(o, "procs");
	s.init_pid = (pid_t)jint(o, "init_pid", 0);
	s.attrib_fd = s.attrib_tuple_fd = s.nflog_fd = -1;
	s.cgroup_id = (uint64_t)jint(o, "cgroup_id", 0);
	trust = json_object_get(o, "trust");
	if (json_array_size(trust) > 0 && (kept = calloc(json_array_size(trust),
	    sizeof(*kept))) == NULL) {
		ctl_reply(c, json_pack("{s:s,s:s?,s:s}", "type",
		    "sandbox_error", "name", s.name, "error", "out of memory"));
		return;
	}
	json_array_foreach(trust, i, t) {
		kept[i].path = jstr(t, "binary");
		kept[i].sha256 = jstr(t, "sha256");
	}
	s.trust = kept;
	s.ntrust = json_array_size(trust);
	s.ca_cert = jstr(o, "ca_cert");
	s.ca_key = jstr(o, "ca_key");
	if (take_fds(c, o, &s, fds, keep, &nfds, &cause) == 0)
		r = moat_proxy_add_sandbox(c->p, &s, &cause);
	free(kept);
	/* The proxy keeps its own copies (dup). */
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (r == 0)
		ctl_reply(c, json_pack("{s:s,s:s}", "type", "sandbox_ok", "name",
		    s.name));
	else
		ctl_reply(c, json_pack("{s:s,s:s?,s:s}", "type",
		    "sandbox_error", "name", s.name, "error",
		    moat_cause_str(&cause, r)));
}

/* The sandbox's credentials: values are never logged or echoed. */
static void
do_secrets(struct ctl *c, json_t *o)
{
	const char *name = jstr(o, "sandbox");
	json_t *a = json_object_get(o, "secrets"), *e;
	struct moat_proxy_secret *v = NULL;
	const char **hosts = NULL;
	struct moat_cause cause = { { 0 } };
	size_t i, nh = 0, k = 0;
	int r;

	if (name == NULL || !json_is_array(a))
		return;
	json_array_foreach(a, i, e)
		nh += json_array_size(json_object_get(e, "hosts"));
	v = calloc(json_array_size(a) + 1, sizeof(*v));
	hosts = calloc(nh + 1, sizeof(*hosts));
	if (v == NULL || hosts == NULL)
		goto out;
	json_array_foreach(a, i, e) {
		json_t *h = json_object_get(e, "hosts"), *hv;
		json_t *val = json_object_get(e, "value");
		size_t j;

		v[i].name = jstr(e, "name");
		v[i].value = json_string_value(val);
		v[i].vlen = json_string_length(val);
		v[i].hosts = &hosts[k];
		json_array_foreach(h, j, hv)
			if (json_is_string(hv))
				hosts[k + v[i].nhosts++] = json_string_value(hv);
		k += v[i].nhosts;
		if (v[i].name == NULL || v[i].value == NULL)
			goto out;
	}
	if ((r = moat_proxy_set_secrets(c->p, name, v, json_array_size(a),
	    &cause)) != 0)
		log_warn("sandbox %s: secrets refused: %s", name,
		    moat_cause_str(&cause, r));
out:
	free(v);
	free(hosts);
}

static void
do_policy(struct ctl *c, json_t *o)
{
	const char *name = jstr(o, "sandbox"), *js = jstr(o, "json");
	int version = (int)jint(o, "version", 0);
	struct px_sandbox *sb = name ? px_sandbox_find(c->p, name) : NULL;
	struct moat_policy_opts opts = { 0 };
	struct moat_policy *pol = NULL;
	struct moat_diags d;
	char root[64] = "/";
	json_t *errs;

	if (sb == NULL || js == NULL) {
		ctl_reply(c, json_pack("{s:s,s:s?,s:i,s:s}", "type",
		    "policy_error", "sandbox", name, "version", version,
		    "error", sb == NULL ? "unknown sandbox" : "no json"));
		return;
	}
	if (sb->init_pid > 0)
		snprintf(root, sizeof(root), "/proc/%d/root", (int)sb->init_pid);
	opts.binary_root = root;
	opts.no_fs = false;
	moat_diags_init(&d);
	if (moat_policy_load_string(js, strlen(js), "moatd", &opts, &pol, &d) !=
	    0) {
		errs = json_array();
		for (size_t i = 0; i < d.n; i++)
			if (d.v[i].level == MOAT_DIAG_ERROR)
				json_array_append_new(errs, json_pack(
				    "{s:s?,s:s?}", "path", d.v[i].path, "msg",
				    d.v[i].msg));
		log_warn("sandbox %s: policy version %d rejected; keeping "
		    "version %d", name, version, sb->version);
		ctl_reply(c, json_pack("{s:s,s:s,s:i,s:s,s:o}", "type",
		    "policy_error", "sandbox", name, "version", version, "error",
		    "invalid policy", "errors", errs));
	} else {
		moat_proxy_set_policy(c->p, name, pol, version);
		moat_policy_free(pol);
		ctl_reply(c, json_pack("{s:s,s:s,s:i}", "type", "policy_ok",
		    "sandbox", name, "version", version));
	}
	moat_diags_free(&d);
}

struct pong {
	struct ctl *c;
	long long seq;
};

static void
send_pong(void *arg)
{
	struct pong *pg = arg;

	ctl_reply(pg->c, json_pack("{s:s, s:I}", "type", "pong", "seq",
	    (json_int_t)pg->seq));
	free(pg);
}

/*
 * A pong follows every event caused by the lines before the ping: bypass
 * packets whose sender is still being named are waited for.
 */
static void
do_ping(struct ctl *c, long long seq)
{
	struct pong *pg = calloc(1, sizeof(*pg));

	if (pg == NULL)
		return;
	pg->c = c;
	pg->seq = seq;
	if (moat_proxy_flush(c->p, send_pong, pg) != 0)
		free(pg);
}

static void
handle_msg(struct ctl *c, json_t *o)
{
	const char *type = moat_jsonl_type(o);

	if (type == NULL) {
		log_warn("control message without a type");
	} else if (strcmp(type, "sandbox") == 0) {
		do_sandbox(c, o);
	} else if (strcmp(type, "sandbox_remove") == 0) {
		const char *n = jstr(o, "name");
		if (n != NULL)
			moat_proxy_remove_sandbox(c->p, n);
	} else if (strcmp(type, "policy") == 0) {
		do_policy(c, o);
	} else if (strcmp(type, "secrets") == 0) {
		do_secrets(c, o);
	} else if (strcmp(type, "proposal_result") == 0) {
		moat_proxy_proposal_result(c->p, (uint64_t)jint(o, "req", 0),
		    json_is_true(json_object_get(o, "ok")), jint(o, "id", 0),
		    jstr(o, "error"));
	} else if (strcmp(type, "ping") == 0) {
		do_ping(c, jint(o, "seq", 0));
	} else if (strcmp(type, "exit") == 0) {
		log_info("moatd asks the proxy to exit");
		moat_loop_stop(c->loop);
	} else if (strcmp(type, "retrust") == 0) {
		const char *n = jstr(o, "sandbox"), *b = jstr(o, "binary");
		const char *h = jstr(o, "sha256");
		if (h != NULL && h[0] == '\0')
			h = NULL;
		if (n != NULL && b != NULL &&
		    moat_proxy_retrust(c->p, n, b, h) == MOAT_ERR_INVALID)
			log_warn("retrust %s: sha256 is not 64 hex digits", b);
	} else {
		log_warn("unknown control message type %.64s", type);
	}
}

static void
ctl_line(void *arg, const char *line, size_t len)
{
	struct moat_cause cause = { { 0 } };
	struct ctl *c = arg;
	json_t *o = NULL;

	if (line == NULL)
		log_warn("control line over %u bytes discarded",
		    MOAT_JSONL_MAX_LINE);
	else if (moat_jsonl_decode(line, len, &o, &cause) != 0)
		log_warn("control line: %s", cause.msg);
	else
		handle_msg(c, o);
	json_decref(o);
}

static void ctl_cb(struct moat_loop *l, int fd, unsigned ev, void *arg);

/*
 * The channel ended: without a socket for the next moatd the proxy has
 * no reason to live on; with one (live restore) it serves on and holds
 * what it would send.
 */
static void
ctl_lost(struct ctl *c, const char *why)
{
	if (c->lfd < 0) {
		moat_loop_stop(c->loop);
		return;
	}
	log_warn("moatd's channel ended (%s): serving on, waiting for the "
	    "next moatd on %s", why, c->cfg->ctl_path);
	moat_loop_del_fd(c->loop, c->fd);
	moat_close(c->fd);
	c->fd = -1;
	moat_jsonl_free(c->j);
	c->j = NULL;
	c->events = 0;
}

/* What moatd needs to adopt this proxy: who, how, what it serves. */
static json_t *
ready_msg(struct ctl *c)
{
	json_t *sbs = json_array();

	for (struct px_sandbox *sb = c->p != NULL ? c->p->sandboxes : NULL;
	    sb != NULL; sb = sb->next)
		json_array_append_new(sbs, json_pack("{s:s, s:s, s:i, s:i,"
		    " s:i}", "name", sb->name, "listen", sb->listen_str,
		    "port", (int)px_addr_port((struct sockaddr *)
		    &sb->listen_ss), "init_pid", (int)sb->init_pid,
		    "version", sb->version));
	return json_pack("{s:s, s:i, s:i, s:i, s:s?, s:s?, s:s?, s:i, s:i,"
	    " s:I, s:o, s:I, s:I}", "type", "ready", "pid", (int)getpid(),
	    "proto", MOAT_PROXY_CTL_PROTO, "port", (int)c->cfg->port,
	    "hosts_file", c->cfg->hosts_file, "deny_cidr", c->cfg->deny_cidr,
	    "upstream_ca_file", c->cfg->upstream_ca_file, "max_conns",
	    c->cfg->max_conns_total, "max_conns_per_sandbox",
	    c->cfg->max_conns_per_sandbox, "max_open_files",
	    (json_int_t)c->cfg->max_open_files, "sandboxes", sbs, "held",
	    (json_int_t)c->nheld, "dropped", (json_int_t)c->held_dropped);
}

/* A moatd's channel: ready first, then what was held for it. */
static int
ctl_attach(struct ctl *c, int fd)
{
	size_t i;

	moat_fd_nonblock(fd);
	if ((c->j = moat_jsonl_new(fd)) == NULL)
		return -1;
	moat_jsonl_recv_fds(c->j);
	if (moat_loop_add_fd(c->loop, fd, MOAT_EV_READ, ctl_cb, c) != 0) {
		moat_jsonl_free(c->j);
		c->j = NULL;
		return -1;
	}
	c->fd = fd;
	c->events = MOAT_EV_READ;
	ctl_reply(c, ready_msg(c));
	for (i = 0; i < c->nheld; i++) {
		if (moat_jsonl_send_line(c->j, c->held[i],
		    strlen(c->held[i])) != 0)
			c->dropped++;
		free(c->held[i]);
	}
	if (c->nheld > 0 || c->held_dropped > 0)
		log_info("%zu lines held for moatd sent, %lu dropped", c->nheld,
		    c->held_dropped);
	c->nheld = c->held_bytes = 0;
	c->held_dropped = 0;
	ctl_watch(c);
	return 0;
}

/*
 * The next moatd connects: root only (SO_PEERCRED), or our own uid when
 * unconfined as another user (a test's).
 */
static void
ctl_accept(struct moat_loop *l, int lfd, unsigned ev, void *arg)
{
	struct ctl *c = arg;
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	int fd;

	(void)l;
	(void)ev;
	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) != 0 ||
	    (uc.uid != 0 && (c->cfg->run_uid != 0 || uc.uid != geteuid()))) {
		log_warn("control socket: refused a peer (uid %d)",
		    ul == sizeof(uc) ? (int)uc.uid : -1);
		close(fd);
		return;
	}
	/* One moatd per state dir (its lock): a new one means the old died. */
	if (c->fd >= 0)
		ctl_lost(c, "a new moatd connected");
	log_info("moatd (pid %d) connected", (int)uc.pid);
	if (ctl_attach(c, fd) != 0) {
		log_error("cannot serve moatd's channel");
		close(fd);
	}
}

static void
ctl_cb(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	struct moat_cause cause = { { 0 } };
	struct ctl *c = arg;
	int r;

	if ((ev & MOAT_EV_WRITE) &&
	    moat_jsonl_flush(c->j) == MOAT_ERR_SYSTEM) {
		ctl_lost(c, "moatd stopped reading");
		return;
	}
	ctl_watch(c);
	if (!(ev & (MOAT_EV_READ | MOAT_EV_ERROR)))
		return;
	/* Bounded per turn so that moatd cannot starve the proxy's loop. */
	if ((r = moat_jsonl_pump(c->j, 64, ctl_line, c, &cause)) ==
	    MOAT_ERR_AGAIN || c->fd != fd)
		return;
	if (r < 0)
		log_error("control channel: %s", moat_cause_str(&cause, r));
	ctl_lost(c, r < 0 ? "error" : "end of file");
}

static void
on_signal(struct moat_loop *l, int signo, void *arg)
{
	(void)signo;
	(void)arg;
	moat_loop_stop(l);
}

/* The socket the next moatd connects to (0600 in its 0700 state dir). */
static int
ctl_listen(struct ctl *c, struct moat_cause *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = c->cfg->ctl_path;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		moat_cause_set(cause, "control socket path too long: %s", path);
		return MOAT_ERR_INVALID;
	}
	strcpy(sun.sun_path, path);
	/* A socket nobody answers on: a dead proxy's. */
	unlink(path);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (c->lfd == -1 || bind(c->lfd, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1 || chmod(path, 0600) == -1 ||
	    listen(c->lfd, 4) == -1 || moat_loop_add_fd(c->loop, c->lfd,
	    MOAT_EV_READ, ctl_accept, c) != 0) {
		moat_cause_errno(cause, "control socket %s", path);
		moat_close(c->lfd);
		c->lfd = -1;
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

/* Remove our socket, unless a newer proxy already made its own there. */
static void
ctl_unlisten(struct ctl *c)
{
	struct stat a, b;

	if (c->lfd < 0)
		return;
	moat_loop_del_fd(c->loop, c->lfd);
	if (fstat(c->lfd, &a) == 0 && stat(c->cfg->ctl_path, &b) == 0 &&
	    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		unlink(c->cfg->ctl_path);
	close(c->lfd);
	c->lfd = -1;
}

int
moat_proxy_process_main(int ctl_fd, const struct moat_proxy_config *cfg)
{
	struct moat_cause cause = { { 0 } };
	struct moat_proxy_config pc = *cfg;
	struct ctl c = { 0 };
	int r, rc = 111;

	signal(SIGPIPE, SIG_IGN);
	/*
	 * Whoever started us, tunnels are bounded by fds: take them all,
	 * while CAP_SYS_RESOURCE is still there to raise the hard limit.
	 */
	if (moat_nofile_raise(pc.max_open_files, NULL, NULL, NULL,
	    &cause) != 0)
		log_warn("open files limit unchanged: %s", cause.msg);
	c.fd = -1;
	c.lfd = -1;
	c.cfg = cfg;
	if ((r = moat_loop_new(&c.loop, &cause)) != 0) {
		log_error("proxy loop: %s", moat_cause_str(&cause, r));
		return 111;
	}
	/* Bound while root: the socket lives in moatd's 0700 state dir. */
	if (cfg->ctl_path != NULL && (r = ctl_listen(&c, &cause)) != 0) {
		log_error("proxy: %s", moat_cause_str(&cause, r));
		goto out;
	}
	/* Before any thread (the pools): threads inherit the confinement. */
	if (pc.run_uid != 0 && (r = px_confine(&pc, &cause)) != 0) {
		log_error("proxy: %s", moat_cause_str(&cause, r));
		goto out;
	}
	pc.emit = emit_event;
	pc.emit_arg = &c;
	pc.propose = ctl_propose;
	pc.propose_arg = &c;
	pc.trusted = ctl_trusted;
	pc.trusted_arg = &c;
	if ((r = moat_proxy_new(c.loop, &pc, &c.p, &cause)) != 0) {
		log_error("proxy: %s", moat_cause_str(&cause, r));
		goto out;
	}
	moat_loop_signal(c.loop, SIGTERM, on_signal, NULL);
	moat_loop_signal(c.loop, SIGINT, on_signal, NULL);
	if (ctl_attach(&c, ctl_fd) != 0)
		goto out;
	rc = moat_loop_run(c.loop) == 0 ? 0 : 111;
out:
	ctl_unlisten(&c);
	if (c.fd >= 0)
		moat_loop_del_fd(c.loop, c.fd);
	moat_proxy_free(c.p);
	moat_loop_free(c.loop);
	moat_jsonl_free(c.j);
	for (size_t i = 0; i < c.nheld; i++)
		free(c.held[i]);
	free(c.held);
	return rc;
}
