/*
 * One client connection, as a state machine driven by two fd callbacks
 * (client, upstream), worker results and one timer:
 *
 *   HEAD -> IDENT -> HASH -> (TOFU, decide, code) -> RESOLVE -> (SSRF)
 *        -> CONNECT -> RELAY
 *   any step may end in RESPOND (an error or 403) -> LINGER -> freed
 *
 *   HEAD for http://policy.local -> (LBODY -> LWAIT, a proposal) -> RESPOND
 *
 * Nothing read after a malformed or denied head is ever forwarded: the
 * client fd is not read again except to discard while lingering.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#include "proxy/conn.h"

static void client_cb(struct moat_loop *, int, unsigned, void *);
static void upstream_cb(struct moat_loop *, int, unsigned, void *);
static void decide(struct px_conn *c);
static void try_connect(struct px_conn *c);

struct px_conn *
px_conn_next(struct px_conn *c)
{
	return c->next;
}

struct px_sandbox *
px_conn_sandbox(struct px_conn *c)
{
	return c->sb;
}

void
px_conn_arm(struct px_conn *c, int64_t ms, moat_timer_cb *cb)
{
	moat_loop_timer_cancel(c->p->loop, c->timer);
	c->timer = cb != NULL ? moat_loop_timer(c->p->loop, ms, cb, c) : NULL;
}

static void
close_upstream(struct px_conn *c)
{
	if (c->ufd < 0)
		return;
	moat_loop_del_fd(c->p->loop, c->ufd);
	close(c->ufd);
	c->ufd = -1;
}

static void
setup_free(struct px_conn *c)
{
	struct px_setup *st = c->s;

	if (st == NULL)
		return;
	px_work_cancel(st->rjob);
	px_work_cancel(st->ijob);
	px_identity_clear(&st->id);
	free(st->body);
	free(st->lresp);
	free(st->fhead);
	free(st);
	c->s = NULL;
}

void
px_conn_free(struct px_conn *c)
{
	if (c == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->p->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->p->nconns--;
	c->sb->nconns--;
	moat_loop_timer_cancel(c->p->loop, c->timer);
	setup_free(c);
	if (c->relay_on)
		px_relay_fini(&c->relay);
	px_l7_free(c->l7);
	close_upstream(c);
	moat_loop_del_fd(c->p->loop, c->cfd);
	close(c->cfd);
	moat_policy_free(c->pol);
	free(c->who);
	free(c->out);
	free(c);
}

static void
head_timeout(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;

	(void)l;
	c->timer = NULL;
	px_conn_free(c);
}

static void read_head(struct px_conn *c);

/* The listener is bound to one address (so it is every connection's). */
static bool
listen_is_one_addr(const struct px_sandbox *sb)
{
	const struct sockaddr_in *s4 = (const void *)&sb->listen_ss;
	const struct sockaddr_in6 *s6 = (const void *)&sb->listen_ss;

	if (sb->listen_ss.ss_family == AF_INET)
		return s4->sin_addr.s_addr != htonl(INADDR_ANY);
	return !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
}

void
px_conn_accept(struct px_sandbox *sb, int fd,
    const struct sockaddr_storage *peer)
{
	struct moat_proxy *p = sb->p;
	socklen_t len = sizeof(struct sockaddr_storage);
	struct px_conn *c;
	int r = 0;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->s = calloc(1, sizeof(*c->s))) == NULL) {
		free(c);
		close(fd);
		return;
	}
	c->p = p;
	c->sb = sb;
	c->cfd = fd;
	c->ufd = -1;
	c->s->peer = *peer;
	if (listen_is_one_addr(sb))
		memcpy(&c->s->local, &sb->listen_ss, sb->listen_len);
	else
		r = getsockname(fd, (struct sockaddr *)&c->s->local, &len);
	if (r == -1 ||
	    moat_loop_add_fd(p->loop, fd, MOAT_EV_READ, client_cb, c) != 0) {
		close(fd);
		free(c->s);
		free(c);
		return;
	}
	px_addr_unmap(&c->s->local);
	c->next = p->conns;
	if (p->conns != NULL)
		p->conns->prev = c;
	p->conns = c;
	p->nconns++;
	sb->nconns++;
	px_conn_arm(c, PX_HEAD_TIMEOUT_MS, head_timeout);
	/*
	 * A client sends its head right after connecting: by the time the
	 * accept is handled it has mostly arrived, and reading it now saves
	 * a turn of the loop (an EAGAIN costs one recv).
	 */
	read_head(c);
}

/* ---- answering the client ourselves ---- */

static void
linger_timeout(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;

	(void)l;
	c->timer = NULL;
	px_conn_free(c);
}

static void
respond_io(struct px_conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->cfd, c->out + c->outoff,
		    c->outlen - c->outoff, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			moat_loop_mod_fd(c->p->loop, c->cfd, MOAT_EV_WRITE);
			return;
		}
		if (n <= 0) {
			px_conn_free(c);
			return;
		}
		c->outoff += (size_t)n;
	}
	/*
	 * Half-close and drain: closing with unread bytes would send a
	 * reset that can destroy the response before the client reads it.
	 */
	shutdown(c->cfd, SHUT_WR);
	c->st = ST_LINGER;
	moat_loop_mod_fd(c->p->loop, c->cfd, MOAT_EV_READ);
	px_conn_arm(c, PX_LINGER_MS, linger_timeout);
}

static void
linger_io(struct px_conn *c)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = recv(c->cfd, buf, sizeof(buf), 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		c->discarded += n > 0 ? (size_t)n : 0;
		if (n <= 0 || c->discarded > 256 * 1024) {
			px_conn_free(c);
			return;
		}
	}
}

/* Answer with a whole response (taken over) and close. */
void
px_conn_respond(struct px_conn *c, char *resp, size_t len)
{
	if (resp == NULL) {
		px_conn_free(c);
		return;
	}
	if (c->s != NULL) {
		/* Nothing started for this connection may call back now. */
		px_work_cancel(c->s->rjob);
		c->s->rjob = NULL;
		px_work_cancel(c->s->ijob);
		c->s->ijob = NULL;
		for (size_t i = 0; i < c->s->id.nbin; i++) {
			px_work_cancel(c->s->id.bin[i].job);
			c->s->id.bin[i].job = NULL;
		}
	}
	if (c->relay_on) {
		px_relay_fini(&c->relay);
		c->relay_on = false;
	}
	close_upstream(c);
	free(c->out);
	c->out = resp;
	c->outlen = len;
	c->outoff = 0;
	c->st = ST_RESPOND;
	px_conn_arm(c, PX_LINGER_MS * 5, linger_timeout);
	respond_io(c);
}

static void
respond_error(struct px_conn *c, int status, const char *error,
    const char *detail)
{
	size_t len = 0;
	char *r = px_simple_response(status, error, detail, &len);

	px_conn_respond(c, r, len);
}

static const char *
method_of(const struct px_conn *c)
{
	return c->s->req.method[0] != '\0' ? c->s->req.method : "CONNECT";
}

void
px_conn_event(struct px_conn *c, struct moat_denial_event *ev,
    const char *stage, const char *reason, const char *ip)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = moat_wall_ms();
	moat_strlcpy(ev->sandbox, c->sb->name, sizeof(ev->sandbox));
	moat_strlcpy(ev->stage, stage, sizeof(ev->stage));
	ev->pid = 0;
	ev->uid = -1;
	/* Sandbox text goes through the setter: cut or escaped, and said. */
	if (c->s != NULL && c->s->id.nbin > 0) {
		const struct px_identity *id = &c->s->id;
		moat_denial_event_set(ev, MOAT_EVF_BINARY, id->bin[0].path);
		moat_strlcpy(ev->sha256, id->bin[0].sha, sizeof(ev->sha256));
		for (size_t i = 1; i < id->nbin; i++)
			moat_denial_event_set(ev, MOAT_EVF_ANCESTORS,
			    id->bin[i].path);
		ev->pid = id->nspid;
		ev->uid = id->uid;
	} else if (c->s == NULL) {
		const struct px_who *w = c->who;
		moat_denial_event_set(ev, MOAT_EVF_BINARY, w->exe);
		moat_strlcpy(ev->sha256, w->sha, sizeof(ev->sha256));
		for (size_t i = 0; i < w->nanc; i++)
			moat_denial_event_set(ev, MOAT_EVF_ANCESTORS, w->anc[i]);
		ev->pid = w->nspid;
		ev->uid = w->uid;
	}
	moat_denial_event_set(ev, MOAT_EVF_HOST, c->s == NULL ?
	    c->who->host : c->s->host[0] ? c->s->host : c->s->req.host);
	moat_strlcpy(ev->ip, ip != NULL ? ip : "", sizeof(ev->ip));
	ev->port = c->port;
	moat_strlcpy(ev->protocol, "tcp", sizeof(ev->protocol));
	moat_denial_event_set(ev, MOAT_EVF_REASON, reason);
	ev->policy_version = c->pol != NULL ? c->version : c->sb->version;
}

/*
 * Deny: emit the event, answer 403 in OpenShell's shape, close. stage
 * is the event's; error is "policy_denied" or "ssrf_denied".
 */
static void
deny_event(struct px_conn *c, const struct moat_denial_event *ev,
    const char *error, const char *reason, const char *policy)
{
	struct px_deny d = { 0 };
	size_t len = 0;
	char *r;

	px_emit(c->p, ev);
	d.error = error;
	d.method = method_of(c);
	d.host = ev->host;
	d.port = c->port;
	d.reason = reason;
	d.binary = c->s->id.nbin > 0 ? c->s->id.bin[0].path : ev->binary;
	d.ancestors = c->s->id.nbin > 1 ? c->s->id.anc : NULL;
	d.nancestors = c->s->id.nbin > 1 ? c->s->id.nbin - 1 : 0;
	d.policy = policy;
	r = px_deny_response(&d, &len);
	px_conn_respond(c, r, len);
}

void
px_conn_deny(struct px_conn *c, const char *stage, const char *error,
    const char *reason, const char *ip, const char *policy)
{
	struct moat_denial_event ev;

	px_conn_event(c, &ev, stage, reason, ip);
	deny_event(c, &ev, error, reason, policy);
}

static const char *
policy_stage(const struct px_conn *c)
{
	return c->kind == MOAT_HTTP_CONNECT ? "connect" : "forward";
}

/* ---- identity and TOFU ---- */

static void
after_hash(struct px_conn *c)
{
	char why[512], was[65];
	int r;

	for (size_t i = 0; i < c->s->id.nbin; i++) {
		struct px_bin *b = &c->s->id.bin[i];
		struct moat_denial_event ev;

		/* Ancestors grant access too: none may skip the check. */
		if (b->sha[0] == '\0') {
			snprintf(why, sizeof(why), "cannot verify the caller's "
			    "%s %s: %s", i == 0 ? "executable" : "ancestor",
			    b->path, b->hash_err != NULL ? b->hash_err :
			    "cannot read it");
			px_conn_deny(c, "identity", "policy_denied", why, NULL, NULL);
			return;
		}
		if ((r = px_trust_check(c->sb, b->path, b->sha, was)) == 0)
			continue;
		if (r == MOAT_ERR_NOMEM) {
			respond_error(c, 503, "out_of_memory", "out of memory");
			return;
		}
		if (r == MOAT_ERR_AGAIN) {
			respond_error(c, 503, "busy", "the first use of this "
			    "binary cannot be recorded now: try again");
			return;
		}
		snprintf(why, sizeof(why), "binary changed: %s (sha256 "
		    "%.12s... was trusted, now %.12s...); an operator must "
		    "approve the new binary", b->path, was, b->sha);
		/* The event names the changed file and its new hash (an
		 * ancestor's, maybe): that is what an approval pins. */
		px_conn_event(c, &ev, "identity", why, NULL);
		ev.cut &= ~MOAT_EVF_BIT(MOAT_EVF_BINARY);
		ev.escaped &= ~MOAT_EVF_BIT(MOAT_EVF_BINARY);
		moat_denial_event_set(&ev, MOAT_EVF_BINARY, b->path);
		moat_strlcpy(ev.sha256, b->sha, sizeof(ev.sha256));
		deny_event(c, &ev, "policy_denied", why, NULL);
		return;
	}
	decide(c);
}

static void
hash_cb(void *arg, int idx, const char *sha, const char *err)
{
	struct px_conn *c = arg;
	struct px_bin *b = &c->s->id.bin[idx];

	b->job = NULL;
	moat_strlcpy(b->sha, sha != NULL ? sha : "", sizeof(b->sha));
	b->hash_err = err;
	if (--c->s->hash_pending == 0)
		after_hash(c);
}

static void
ident_timeout(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;

	(void)l;
	c->timer = NULL;
	px_conn_deny(c, "identity", "policy_denied", c->st == ST_IDENT ?
	    "the caller could not be identified in time" :
	    "the caller's executables could not be verified in time", NULL,
	    NULL);
}

/* The caller is in c->s->id: hash what the cache does not know. */
static void
identified(struct px_conn *c)
{
	int rc;

	c->st = ST_HASH;
	for (size_t i = 0; i < c->s->id.nbin; i++) {
		struct px_bin *b = &c->s->id.bin[i];

		/* Unreadable or cached: no fd, and after_hash decides. */
		if (b->sha[0] != '\0' || b->fd < 0)
			continue;
		rc = px_hasher_submit(c->p->hasher, moat_steal_fd(&b->fd),
		    &b->st, c->sb, hash_cb, c, (int)i, &b->job);
		if (rc != 0) {
			respond_error(c, 503, "busy", rc == MOAT_ERR_AGAIN ?
			    "too many binaries of this sandbox are being "
			    "verified" : "out of memory");
			return;
		}
		c->s->hash_pending++;
	}
	if (c->s->hash_pending == 0)
		after_hash(c);
}

static void
ident_cb(void *arg, int rc, const char *why, struct px_identity *id)
{
	struct px_conn *c = arg;

	c->s->ijob = NULL;
	if (rc == PX_NOFD) {
		px_conn_respond_nofd(c, "caller identity");
		return;
	}
	if (rc != MOAT_OK) {
		px_conn_deny(c, "identity", "policy_denied", why, NULL, NULL);
		return;
	}
	px_identity_move(&c->s->id, id);
	identified(c);
}

static void
start(struct px_conn *c)
{
	char why[512] = "";
	int rc;

	moat_loop_mod_fd(c->p->loop, c->cfd, 0);
	rc = px_identity_start(c->sb, (struct sockaddr *)&c->s->peer,
	    (struct sockaddr *)&c->s->local, false, c->s->req.host, c->port,
	    ident_cb, c, &c->s->ijob, &c->s->id, why, sizeof(why));
	if (rc == PX_IDENT_NOW) {
		px_conn_arm(c, PX_IDENT_TIMEOUT_MS, ident_timeout);
		identified(c);
		return;
	}
	if (rc == MOAT_ERR_AGAIN || rc == MOAT_ERR_NOMEM) {
		respond_error(c, 503, "busy", why);
		return;
	}
	if (rc != MOAT_OK) {
		ident_cb(c, rc, why, NULL); /* a denial, or PX_NOFD */
		return;
	}
	c->st = ST_IDENT;
	px_conn_arm(c, PX_IDENT_TIMEOUT_MS, ident_timeout);
}

/* ---- decision, resolution, SSRF ---- */

static void
resolve_timeout(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;

	(void)l;
	c->timer = NULL;
	respond_error(c, 504, "upstream_timeout",
	    c->st == ST_RESOLVE ? "name resolution timed out" :
				  "upstream connect timed out");
}

static void
got_addrs(void *arg, int rc, const struct sockaddr_storage *addrs, size_t n)
{
	struct px_conn *c = arg;
	char ip[64], why[512];

	c->s->rjob = NULL;
	if (rc != MOAT_OK || n == 0) {
		respond_error(c, 502, "dns_failed", "cannot resolve the host");
		return;
	}
	/* All or nothing: one bad answer refuses the name (rebinding). */
	for (size_t i = 0; i < n && i < PX_MAX_ADDRS; i++) {
		struct moat_decision d = c->s->dec;
		const struct sockaddr *sa = (const struct sockaddr *)&addrs[i];

		px_addr_str(sa, ip, sizeof(ip));
		if (!moat_policy_check_addr(&d, sa)) {
			px_conn_deny(c, "ssrf", "ssrf_denied", d.text, ip, d.policy);
			return;
		}
		/* Whatever the policy allows: not us, a sandbox or the host. */
		if (px_guard_refuses(c->p, c->s->host, sa, why,
		    sizeof(why))) {
			px_conn_deny(c, "ssrf", "ssrf_denied", why, ip, d.policy);
			return;
		}
		c->s->addrs[i] = addrs[i];
	}
	c->s->naddrs = n < PX_MAX_ADDRS ? n : PX_MAX_ADDRS;
	c->s->ai = 0;
	try_connect(c);
}

/*
 * Code loaded into a caller does not inherit its rights (proxy/maps.c):
 * identity checked the caller itself, and each parent up to the nearest
 * one whose binary grants the connection under the policy it was given
 * (id->code_pol), on its worker, pinned. Only when the policy changed in
 * between are those parents checked here, as much as the loop may read
 * (PX_MAPS_LOOP_MAX; more: 503, try again). false: denied and answered.
 */
static bool
code_ok(struct px_conn *c)
{
	const struct px_identity *id = &c->s->id;
	size_t upto, budget = PX_MAPS_LOOP_MAX;
	char why[1024];
	int r;

	/*
	 * Audit allows whoever calls: there is no grant to take over. A
	 * sandbox without an init has no filesystem view of its own to
	 * judge code by (only the unit tests' host callers).
	 */
	if (c->s->dec.audit || c->sb->init_pid <= 0)
		return true;
	upto = px_code_upto(c->pol, id, c->s->host, c->port);
	if (upto == 0 || id->code_pol == c->pol)
		return true;
	for (size_t i = 1; i <= upto && i < id->nbin; i++) {
		r = px_maps_check(id->bin[i].pid, -1, id->bin[i].path,
		    id->bin[i].st.st_ino, &budget, why, sizeof(why));
		if (r == MOAT_ERR_AGAIN) {
			respond_error(c, 503, "busy", "the policy changed while "
			    "the caller was identified: try again");
			return false;
		}
		if (r != MOAT_OK) {
			px_conn_deny(c, "identity", "policy_denied", why, NULL,
			    c->s->dec.policy);
			return false;
		}
	}
	return true;
}

static void
decide(struct px_conn *c)
{
	struct px_sandbox *sb = c->sb;
	struct moat_caller caller = { 0 };
	struct sockaddr_storage addrs[PX_MAX_ADDRS];
	size_t n = 0;
	char why[128];

	if (!moat_host_normalize(c->s->req.host, c->s->host, sizeof(c->s->host))) {
		px_conn_deny(c, policy_stage(c), "policy_denied", "not a valid host",
		    NULL, NULL);
		return;
	}
	if (sb->policy == NULL) {
		snprintf(why, sizeof(why), "no policy is loaded for sandbox %s",
		    sb->name);
		px_conn_deny(c, policy_stage(c), "policy_denied", why, NULL, NULL);
		return;
	}
	moat_policy_free(c->pol);
	c->pol = moat_policy_ref(sb->policy);
	c->version = sb->version;
	caller.exe = c->s->id.bin[0].path;
	caller.ancestors = c->s->id.anc;
	caller.nancestors = c->s->id.nbin - 1;
	moat_policy_decide(c->pol, &caller, c->s->host, c->port, &c->s->dec);
	if (!c->s->dec.allow && c->s->dec.reason == MOAT_REASON_SSRF) {
		/* A literal, a blocked name or a control-plane port. */
		px_conn_deny(c, "ssrf", "ssrf_denied", c->s->dec.text,
		    moat_host_is_ip_literal(c->s->host) ? c->s->host : NULL,
		    c->s->dec.policy);
		return;
	}
	if (!c->s->dec.allow) {
		px_conn_deny(c, policy_stage(c), "policy_denied", c->s->dec.text, NULL,
		    c->s->dec.policy);
		return;
	}
	if (!code_ok(c))
		return;
	if (c->s->dec.audit) {
		struct moat_denial_event ev;
		px_conn_event(c, &ev, "audit", c->s->dec.text, NULL);
		px_emit(c->p, &ev);
	}
	if (px_l7_decided(c) != 0)
		return;
	if (px_resolve_local(c->p->resolver, c->s->host, c->port, addrs,
	    PX_MAX_ADDRS, &n) == MOAT_OK) {
		got_addrs(c, MOAT_OK, addrs, n);
		return;
	}
	c->st = ST_RESOLVE;
	c->s->rjob = px_resolve(c->p->resolver, c->s->host, c->port, c->sb,
	    got_addrs, c);
	if (c->s->rjob == NULL) {
		respond_error(c, 503, "busy", "too many names of this sandbox "
		    "are being resolved");
		return;
	}
	px_conn_arm(c, c->p->cfg.connect_timeout_ms, resolve_timeout);
}

/* ---- connecting and relaying ---- */

static void
idle_check(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;
	int64_t idle = moat_now_ms() - c->relay.last_ms;

	(void)l;
	c->timer = NULL;
	if (idle >= c->p->cfg.idle_timeout_ms) {
		px_conn_free(c);
		return;
	}
	px_conn_arm(c, c->p->cfg.idle_timeout_ms - idle, idle_check);
}

static void
relay_io(struct px_conn *c, int fd, unsigned ev)
{
	int rc = px_relay_step(&c->relay, fd, ev & ~MOAT_EV_ERROR);

	if (rc != 0 || (ev & MOAT_EV_ERROR) ||
	    (c->kind == MOAT_HTTP_FORWARD && c->relay.down.done)) {
		px_conn_free(c);
		return;
	}
	moat_loop_mod_fd(c->p->loop, c->cfd, px_relay_mask(&c->relay, c->cfd));
	moat_loop_mod_fd(c->p->loop, c->ufd, px_relay_mask(&c->relay, c->ufd));
}

static int
setup_forward(struct px_conn *c, const char *extra, size_t nextra)
{
	struct px_half *up = &c->relay.up;
	size_t hl = 0, take = nextra;
	char *h;
	int rc;

	if (c->s->fhead != NULL)
		rc = px_relay_prefix(up, c->s->fhead, c->s->fhlen);
	else if ((h = px_forward_head(&c->s->req, c->s->head, &hl)) == NULL)
		return MOAT_ERR_NOMEM;
	else {
		rc = px_relay_prefix(up, h, hl);
		free(h);
	}
	if (rc != 0)
		return rc;
	if (c->s->req.chunked) {
		if ((up->chunk = calloc(1, sizeof(*up->chunk))) == NULL)
			return MOAT_ERR_NOMEM;
		moat_http_chunked_init(up->chunk);
		if (moat_http_chunked_feed(up->chunk, extra, nextra, &take) != 0)
			return MOAT_ERR_INVALID;
		up->limit = moat_http_chunked_done(up->chunk) ? 0 : UINT64_MAX;
	} else {
		uint64_t cl = c->s->req.content_length > 0 ?
		    (uint64_t)c->s->req.content_length : 0;
		if (take > cl)
			take = (size_t)cl;
		up->limit = cl - take;
	}
	/* The request's end is not the end of the client's stream. */
	up->shut_on_done = false;
	return px_relay_prefix(up, extra, take);
}

static char *
put_str(char *p, const char *s, const char **at)
{
	size_t n = strlen(s) + 1;

	memcpy(p, s, n);
	*at = p;
	return p + n;
}

/* The caller and host of a decided connection, for its tunnel. */
static struct px_who *
who_new(const struct px_setup *s)
{
	const struct px_identity *id = &s->id;
	size_t nanc = id->nbin - 1, len = strlen(s->host) + 1;
	struct px_who *w;
	char *p;

	for (size_t i = 0; i < id->nbin; i++)
		len += strlen(id->bin[i].path) + 1;
	if ((w = malloc(sizeof(*w) + nanc * sizeof(w->anc[0]) + len)) == NULL)
		return NULL;
	w->nspid = id->nspid;
	w->uid = id->uid;
	memcpy(w->sha, id->bin[0].sha, sizeof(w->sha));
	w->nanc = nanc;
	p = put_str((char *)&w->anc[nanc], s->host, &w->host);
	p = put_str(p, id->bin[0].path, &w->exe);
	for (size_t i = 0; i < nanc; i++)
		p = put_str(p, id->bin[i + 1].path, &w->anc[i]);
	return w;
}

static void
connected(struct px_conn *c)
{
	static const char ok200[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	const char *extra = c->s->head + c->s->req.head_len;
	size_t nextra = c->s->hlen - c->s->req.head_len;
	int rc, one = 1;

	moat_loop_timer_cancel(c->p->loop, c->timer);
	c->timer = NULL;
	/* Handshakes and requests are small writes: no Nagle delays. */
	(void)setsockopt(c->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->kind == MOAT_HTTP_CONNECT && px_l7_wanted(c)) {
		if ((c->who = who_new(c->s)) == NULL) {
			respond_error(c, 503, "out_of_memory", "out of memory");
			return;
		}
		c->dialled = c->s->addrs[c->s->ai];
		if (px_l7_begin(c, extra, nextra) == 0) {
			if (c->st == ST_L7)
				setup_free(c);
			return;
		}
	}
	if (px_relay_init(&c->relay, c->cfd, c->ufd) != 0) {
		respond_error(c, 502, "internal", "out of pipes");
		return;
	}
	c->relay_on = true;
	if (c->kind == MOAT_HTTP_CONNECT) {
		rc = px_relay_prefix(&c->relay.down, ok200, sizeof(ok200) - 1);
		if (rc == 0 && nextra > 0)
			rc = px_relay_prefix(&c->relay.up, extra, nextra);
	} else {
		rc = setup_forward(c, extra, nextra);
	}
	if (rc != 0) {
		respond_error(c, 400, "bad_request", "malformed request body");
		return;
	}
	if (c->who == NULL && (c->who = who_new(c->s)) == NULL) {
		respond_error(c, 503, "out_of_memory", "out of memory");
		return;
	}
	c->dialled = c->s->addrs[c->s->ai];
	setup_free(c);
	c->st = ST_RELAY;
	px_conn_arm(c, c->p->cfg.idle_timeout_ms, idle_check);
	relay_io(c, -1, 0);
}

void
px_conn_start_relay(struct px_conn *c)
{
	if (px_relay_init(&c->relay, c->cfd, c->ufd) != 0) {
		px_conn_free(c);
		return;
	}
	c->relay_on = true;
	px_l7_free(c->l7);
	c->l7 = NULL;
	c->st = ST_RELAY;
	px_conn_arm(c, c->p->cfg.idle_timeout_ms, idle_check);
	relay_io(c, -1, 0);
}

static void
connect_failed(struct px_conn *c)
{
	close_upstream(c);
	c->s->ai++;
	try_connect(c);
}

static void
upstream_cb(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	struct px_conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)l;
	if (c->st == ST_L7) {
		px_l7_io(c, fd, ev);
		return;
	}
	if (c->st == ST_RELAY) {
		if (ev & MOAT_EV_ERROR) {
			/*
			 * Reset or hang-up: deliver what is already in the
			 * pipe to the client, then finish; stop watching the
			 * fd so its error does not spin the loop.
			 */
			c->relay.down.eof = true;
			c->relay.up.done = true;
			moat_loop_del_fd(c->p->loop, fd);
		}
		relay_io(c, fd, ev & ~MOAT_EV_ERROR);
		return;
	}
	if (c->st != ST_CONNECT)
		return;
	/* Writable without an error or hang-up: the connect succeeded. */
	if ((ev & MOAT_EV_ERROR) && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
	    &len) == -1 || err != 0 || !(ev & MOAT_EV_WRITE))) {
		connect_failed(c);
		return;
	}
	connected(c);
}

static void
try_connect(struct px_conn *c)
{
	for (; c->s->ai < c->s->naddrs; c->s->ai++) {
		const struct sockaddr *sa = (struct sockaddr *)&c->s->addrs[c->s->ai];
		socklen_t sl = sa->sa_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);

		if (fd == -1 && px_out_of_fds(errno)) {
			px_conn_respond_nofd(c, "upstream socket");
			return;
		}
		if (fd == -1)
			continue;
		if (connect(fd, sa, sl) == -1 && errno != EINPROGRESS) {
			close(fd);
			continue;
		}
		if (moat_loop_add_fd(c->p->loop, fd, MOAT_EV_WRITE, upstream_cb,
		    c) != 0) {
			close(fd);
			continue;
		}
		c->ufd = fd;
		c->st = ST_CONNECT;
		px_conn_arm(c, c->p->cfg.connect_timeout_ms, resolve_timeout);
		return;
	}
	respond_error(c, 502, "upstream_connect_failed",
	    "no address of the host accepted the connection");
}

/* ---- reading the head ---- */

static void
read_head(struct px_conn *c)
{
	struct moat_cause cause = { { 0 } };
	int status = 0, rc;
	ssize_t n;

	n = recv(c->cfd, c->s->head + c->s->hlen, sizeof(c->s->head) - c->s->hlen, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		px_conn_free(c);
		return;
	}
	c->s->hlen += (size_t)n;
	rc = moat_http_parse(c->s->head, c->s->hlen, &c->s->req, &status, &cause);
	if (rc == MOAT_ERR_AGAIN)
		return;
	if (rc != MOAT_OK) {
		moat_loop_mod_fd(c->p->loop, c->cfd, 0);
		if (status == 400 && px_local_https(c->s->head, c->s->hlen)) {
			px_conn_local_scheme(c);
			return;
		}
		respond_error(c, status, status == 431 ?
		    "request_header_too_large" : "bad_request", cause.msg);
		return;
	}
	c->kind = c->s->req.kind;
	c->port = c->s->req.port;
	/* policy.local is answered here: no identity, policy or DNS. */
	switch (px_local_match(&c->s->req)) {
	case PX_LOCAL_YES:
		px_conn_local_start(c);
		return;
	case PX_LOCAL_SCHEME:
		px_conn_local_scheme(c);
		return;
	default:
		break;
	}
	start(c);
}

static void
client_cb(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	struct px_conn *c = arg;

	(void)l;
	(void)fd;
	switch (c->st) {
	case ST_HEAD:
		read_head(c);
		break;
	case ST_RELAY:
		relay_io(c, fd, ev);
		break;
	case ST_RESPOND:
		respond_io(c);
		break;
	case ST_LINGER:
		linger_io(c);
		break;
	case ST_LBODY:
		px_conn_read_body(c);
		break;
	case ST_L7:
		px_l7_io(c, fd, ev);
		break;
	default:
		/* Not reading while deciding; a hang-up ends the work. */
		if (ev & MOAT_EV_ERROR)
			px_conn_free(c);
		break;
	}
}
