/*
 * The proxy object: sandboxes and their listeners, accepting (with a
 * pause on fd exhaustion instead of dying), connection caps, policy
 * swaps. Per-connection work is in conn.c.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proxy/internal.h"

#define ACCEPT_BATCH 64
#define EMFILE_PAUSE_MS 100

void
px_addr_str(const struct sockaddr *sa, char *out, size_t len)
{
	const void *a = sa->sa_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)sa)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;

	if (inet_ntop(sa->sa_family, a, out, (socklen_t)len) == NULL)
		moat_strlcpy(out, "?", len);
}

uint16_t
px_addr_port(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET ?
	    ((const struct sockaddr_in *)sa)->sin_port :
	    ((const struct sockaddr_in6 *)sa)->sin6_port);
}

void
px_addr_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	if (ss->ss_family != AF_INET6)
		return;
	memcpy(&s6, ss, sizeof(s6));
	if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
		return;
	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = s6.sin6_port;
	memcpy(&s4->sin_addr, &s6.sin6_addr.s6_addr[12], 4);
}

static bool
same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	    &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

bool
px_is_listen_addr(struct moat_proxy *p, const struct sockaddr *sa)
{
	struct sockaddr_storage ss;

	memcpy(&ss, sa, sa->sa_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	px_addr_unmap(&ss);
	for (struct px_sandbox *sb = p->sandboxes; sb != NULL; sb = sb->next)
		if (same_ip((struct sockaddr *)&ss,
		    (struct sockaddr *)&sb->listen_ss))
			return true;
	return false;
}

void
px_emit(struct moat_proxy *p, const struct moat_denial_event *ev)
{
	struct px_sandbox *sb = px_sandbox_find(p, ev->sandbox);

	/* Every denial passes here: policy.local's ring sees them all. */
	if (sb != NULL)
		px_ring_add(sb, ev);
	if (p->cfg.emit != NULL)
		p->cfg.emit(p->cfg.emit_arg, ev);
}

struct px_sandbox *
px_sandbox_find(struct moat_proxy *p, const char *name)
{
	for (struct px_sandbox *sb = p->sandboxes; sb != NULL; sb = sb->next)
		if (strcmp(sb->name, name) == 0)
			return sb;
	return NULL;
}

static void
set_accepting(struct moat_proxy *p, bool on)
{
	for (struct px_sandbox *sb = p->sandboxes; sb != NULL; sb = sb->next)
		moat_loop_mod_fd(p->loop, sb->lfd, on ? MOAT_EV_READ : 0);
	p->accept_paused = !on;
}

static void
resume_accept(struct moat_loop *l, void *arg)
{
	struct moat_proxy *p = arg;

	(void)l;
	p->resume_timer = NULL;
	set_accepting(p, true);
}

bool
px_out_of_fds(int e)
{
	return e == EMFILE || e == ENFILE;
}

const char *
px_burst_note(unsigned ended, char *buf, size_t len)
{
	if (ended <= 1)
		return "";
	snprintf(buf, len, " (the burst before refused %u)", ended);
	return buf;
}

bool
px_burst_start(struct px_burst *b, unsigned *ended)
{
	int64_t now = moat_now_ms();
	bool start = b->last_ms == 0 || now - b->last_ms > PX_BURST_GAP_MS;

	*ended = start ? b->n : 0;
	if (start)
		b->n = 0;
	b->n++;
	b->last_ms = now;
	return start;
}

/*
 * A connection over a cap: 503 with a JSON body naming the cap, and a
 * log line when a burst of these starts.
 */
static void
refuse(struct px_sandbox *sb, int fd, const char *cap, int limit,
    struct px_burst *b)
{
	size_t len = 0;
	unsigned ended;
	char *r = px_cap_response(cap, limit, sb->name, &len), note[64];

	if (px_burst_start(b, &ended))
		log_warn("sandbox %s: %s = %d reached: new connections get "
		    "503 until some close%s", sb->name, cap, limit,
		    px_burst_note(ended, note, sizeof(note)));
	/* Best effort: a fresh socket's send buffer takes a short reply. */
	if (r != NULL)
		(void)send(fd, r, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(r);
	close(fd);
}

static void
on_accept(struct moat_loop *l, int lfd, unsigned ev, void *arg)
{
	struct px_sandbox *sb = arg;
	struct moat_proxy *p = sb->p;

	(void)ev;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Never exit: back off, the loop keeps serving. */
				if (moat_ratelimit_ok(&p->rl))
					log_warn_errno("accept paused %d ms",
					    EMFILE_PAUSE_MS);
				set_accepting(p, false);
				if (p->resume_timer == NULL)
					p->resume_timer = moat_loop_timer(l,
					    EMFILE_PAUSE_MS, resume_accept, p);
			}
			return;
		}
		if (p->nconns >= p->cfg.max_conns_total) {
			refuse(sb, fd, "proxy.max_conns",
			    p->cfg.max_conns_total, &p->cap_burst);
			continue;
		}
		if (sb->nconns >= p->cfg.max_conns_per_sandbox) {
			refuse(sb, fd, "proxy.max_conns_per_sandbox",
			    p->cfg.max_conns_per_sandbox, &sb->cap_burst);
			continue;
		}
		px_addr_unmap(&peer);
		px_conn_accept(sb, fd, &peer);
	}
}

int
moat_proxy_new(struct moat_loop *l, const struct moat_proxy_config *c,
    struct moat_proxy **out, struct moat_cause *cause)
{
	struct moat_proxy *p;
	int r;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return MOAT_ERR_NOMEM;
	p->loop = l;
	p->cfg = *c;
	if (p->cfg.port == 0)
		p->cfg.port = 3128;
	if (p->cfg.connect_timeout_ms <= 0)
		p->cfg.connect_timeout_ms = 10000;
	if (p->cfg.idle_timeout_ms <= 0)
		p->cfg.idle_timeout_ms = 300000;
	if (p->cfg.proposal_timeout_ms <= 0)
		p->cfg.proposal_timeout_ms = PX_LOCAL_WAIT_MS;
	if (p->cfg.max_conns_total <= 0)
		p->cfg.max_conns_total = MOAT_PROXY_DEFAULT_MAX_CONNS;
	if (p->cfg.max_conns_per_sandbox <= 0)
		p->cfg.max_conns_per_sandbox =
		    MOAT_PROXY_DEFAULT_MAX_CONNS_SANDBOX;
	p->rl.burst = 10;
	if ((r = px_guard_init(p, c->deny_cidr, cause)) != 0 ||
	    (r = px_hasher_new(l, &p->hasher, cause)) != 0 ||
	    (r = px_identity_pool_new(l, &p->ident_pool, cause)) != 0 ||
	    (r = px_resolver_new(l, c->hosts_file, &p->resolver, cause)) != 0 ||
	    (r = px_tls_new(c->upstream_ca_file, c->max_leaves,
	    c->lazy_trust_store, &p->tls, cause)) != 0) {
		moat_proxy_free(p);
		return r;
	}
	*out = p;
	return MOAT_OK;
}

static int
listen_on(struct px_sandbox *sb, uint16_t port, struct moat_cause *cause)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&sb->listen_ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sb->listen_ss;
	int one = 1;

	memset(&sb->listen_ss, 0, sizeof(sb->listen_ss));
	if (inet_pton(AF_INET, sb->listen_str, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sb->listen_len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, sb->listen_str, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sb->listen_len = sizeof(*s6);
	} else {
		moat_cause_set(cause, "sandbox %s: listen address %s is not an "
		    "IP address", sb->name, sb->listen_str);
		return MOAT_ERR_INVALID;
	}
	sb->lfd = socket(sb->listen_ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (sb->lfd == -1) {
		moat_cause_errno(cause, "socket");
		return MOAT_ERR_SYSTEM;
	}
	setsockopt(sb->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(sb->lfd, (struct sockaddr *)&sb->listen_ss, sb->listen_len) ==
	    -1 || listen(sb->lfd, 1024) == -1) {
		moat_cause_errno(cause, "sandbox %s: listen on %s:%u", sb->name,
		    sb->listen_str, (unsigned)port);
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

static void
sandbox_free(struct px_sandbox *sb)
{
	struct px_trust *t, *next;

	if (sb == NULL)
		return;
	if (sb->lfd >= 0) {
		moat_loop_del_fd(sb->p->loop, sb->lfd);
		close(sb->lfd);
	}
	moat_close(sb->diag_fd);
	moat_close(sb->attrib_fd);
	moat_close(sb->tuple_fd);
	for (size_t i = 0; i < sb->nkeep; i++)
		close(sb->keep[i]);
	if (sb->nflog_fd >= 0) {
		moat_loop_del_fd(sb->p->loop, sb->nflog_fd);
		close(sb->nflog_fd);
	}
	for (t = sb->trust; t != NULL; t = next) {
		next = t->next;
		free(t->path);
		free(t);
	}
	moat_policy_free(sb->policy);
	px_ring_free(sb->ring);
	px_tls_ca_free(sb->p->tls, sb->ca);
	px_secrets_free(sb->secrets);
	free(sb->procs_path);
	free(sb);
}

/* Kernel attribution's maps, and the pid namespace parents stop at. */
static int
attrib_fds(struct px_sandbox *sb, const struct moat_proxy_sandbox *s,
    struct moat_cause *cause)
{
	char path[64];
	struct stat st;

	if (s->init_pid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)s->init_pid);
		if (stat(path, &st) == 0) {
			sb->pidns_dev = st.st_dev;
			sb->pidns_ino = st.st_ino;
		}
	}
	if (!s->attrib)
		return MOAT_OK;
	if ((sb->attrib_fd = fcntl(s->attrib_fd, F_DUPFD_CLOEXEC, 3)) == -1 ||
	    (s->attrib_tuple_fd >= 0 && (sb->tuple_fd = fcntl(
	    s->attrib_tuple_fd, F_DUPFD_CLOEXEC, 3)) == -1)) {
		moat_cause_errno(cause, "sandbox %s: the attribution maps",
		    sb->name);
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

/* The bypass monitor: the sandbox's NFLOG socket, read on the loop. */
static int
watch_nflog(struct px_sandbox *sb, const struct moat_proxy_sandbox *s,
    struct moat_cause *cause)
{
	if (!s->nflog)
		return MOAT_OK;
	if ((sb->nflog_fd = fcntl(s->nflog_fd, F_DUPFD_CLOEXEC, 3)) == -1) {
		moat_cause_errno(cause, "sandbox %s: the NFLOG socket",
		    sb->name);
		return MOAT_ERR_SYSTEM;
	}
	moat_fd_nonblock(sb->nflog_fd);
	if (moat_loop_add_fd(sb->p->loop, sb->nflog_fd, MOAT_EV_READ,
	    px_bypass_read, sb) != 0) {
		moat_close(sb->nflog_fd);
		sb->nflog_fd = -1;
		moat_cause_set(cause, "sandbox %s: cannot watch the NFLOG "
		    "socket", sb->name);
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

static bool sha_ok(const char *s);
static struct px_trust *trust_find(struct px_sandbox *sb, const char *path);
static struct px_trust *trust_add(struct px_sandbox *sb, const char *path);

/* The hashes the orchestrator kept, before anything is served. */
static int
install_trust(struct px_sandbox *sb, const struct moat_proxy_sandbox *s,
    struct moat_cause *cause)
{
	for (size_t i = 0; i < s->ntrust; i++) {
		const struct moat_proxy_trusted *k = &s->trust[i];
		struct px_trust *t;

		if (k->path == NULL || k->sha256 == NULL || !sha_ok(k->sha256)) {
			moat_cause_set(cause, "sandbox %s: trusted hash %zu is "
			    "not a path and 64 hex digits", sb->name, i);
			return MOAT_ERR_INVALID;
		}
		if ((t = trust_find(sb, k->path)) == NULL &&
		    (t = trust_add(sb, k->path)) == NULL)
			return MOAT_ERR_NOMEM;
		memcpy(t->sha, k->sha256, 65);
	}
	return MOAT_OK;
}

int
moat_proxy_set_secrets(struct moat_proxy *p, const char *sandbox,
    const struct moat_proxy_secret *v, size_t n, struct moat_cause *cause)
{
	struct px_sandbox *sb = px_sandbox_find(p, sandbox);
	struct px_secrets *s = NULL;
	int r;

	if (sb == NULL) {
		moat_cause_set(cause, "no sandbox %s", sandbox);
		return MOAT_ERR_NOTFOUND;
	}
	if ((r = px_secrets_new(v, n, &s, cause)) != 0)
		return r;
	px_secrets_free(sb->secrets);
	sb->secrets = s;
	return MOAT_OK;
}

int
moat_proxy_add_sandbox(struct moat_proxy *p, const struct moat_proxy_sandbox *s,
    struct moat_cause *cause)
{
	struct px_sandbox *sb;
	struct moat_cause dc = { { 0 } };
	int r;

	if (s->name == NULL || s->listen_addr == NULL) {
		moat_cause_set(cause, "sandbox needs a name and a listen address");
		return MOAT_ERR_INVALID;
	}
	if (px_sandbox_find(p, s->name) != NULL) {
		moat_cause_set(cause, "sandbox %s is already served", s->name);
		return MOAT_ERR_EXISTS;
	}
	if ((sb = calloc(1, sizeof(*sb))) == NULL)
		return MOAT_ERR_NOMEM;
	sb->p = p;
	sb->lfd = -1;
	sb->diag_fd = -1;
	sb->attrib_fd = -1;
	sb->tuple_fd = -1;
	sb->nflog_fd = -1;
	sb->init_pid = s->init_pid;
	sb->cgroup_id = s->cgroup_id;
	moat_strlcpy(sb->name, s->name, sizeof(sb->name));
	moat_strlcpy(sb->listen_str, s->listen_addr, sizeof(sb->listen_str));
	if (s->procs_path != NULL &&
	    (sb->procs_path = strdup(s->procs_path)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto fail;
	}
	if (s->ca_cert != NULL && s->ca_key != NULL &&
	    (r = px_tls_ca_load(p->tls, s->ca_cert, s->ca_key, &sb->ca,
	    cause)) != 0)
		goto fail;
	if ((r = install_trust(sb, s, cause)) != 0 ||
	    (r = listen_on(sb, s->port ? s->port : p->cfg.port, cause)) != 0)
		goto fail;
	/* Without sock_diag the /proc/<init>/net/tcp fallback still works. */
	if (s->diag && s->diag_fd < 0) {
		moat_cause_set(&dc, "no sock_diag socket from moatd");
	} else if (s->diag) {
		if ((sb->diag_fd = fcntl(s->diag_fd, F_DUPFD_CLOEXEC, 3)) == -1)
			moat_cause_errno(&dc, "dup the sock_diag socket");
	} else {
		sb->diag_fd = px_diag_open(s->netns_fd, &dc);
	}
	if (sb->diag_fd == -1)
		log_warn("sandbox %s: %s; using /proc/net/tcp", sb->name,
		    dc.msg);
	if ((r = attrib_fds(sb, s, cause)) != 0 ||
	    (r = watch_nflog(sb, s, cause)) != 0)
		goto fail;
	for (size_t i = 0; i < s->nkeep && sb->nkeep < MOAT_NELEM(sb->keep);
	    i++)
		if ((sb->keep[sb->nkeep] = fcntl(s->keep_fds[i],
		    F_DUPFD_CLOEXEC, 3)) >= 0)
			sb->nkeep++;
	if (moat_loop_add_fd(p->loop, sb->lfd, p->accept_paused ? 0 :
	    MOAT_EV_READ, on_accept, sb) != 0) {
		moat_cause_set(cause, "sandbox %s: cannot watch the listener",
		    sb->name);
		r = MOAT_ERR_SYSTEM;
		goto fail;
	}
	sb->next = p->sandboxes;
	p->sandboxes = sb;
	log_info("sandbox %s: proxy listening on %s:%u", sb->name,
	    sb->listen_str, (unsigned)px_addr_port((struct sockaddr *)
	    &sb->listen_ss));
	return MOAT_OK;
fail:
	if (sb->lfd >= 0) {
		close(sb->lfd);
		sb->lfd = -1;
	}
	sandbox_free(sb);
	return r;
}

struct px_flush {
	void (*cb)(void *arg);
	void *arg;
	struct px_flush *next;
};

void
px_flush_check(struct moat_proxy *p)
{
	struct px_flush *f;

	if (p->nbypass > 0)
		return;
	while ((f = p->flush) != NULL) {
		p->flush = f->next;
		f->cb(f->arg);
		free(f);
	}
}

int
moat_proxy_flush(struct moat_proxy *p, void (*cb)(void *arg), void *arg)
{
	struct px_flush *f;

	/* Packets already logged come first. */
	for (struct px_sandbox *sb = p->sandboxes; sb != NULL; sb = sb->next)
		if (sb->nflog_fd >= 0)
			px_bypass_read(p->loop, sb->nflog_fd, MOAT_EV_READ, sb);
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return MOAT_ERR_NOMEM;
	f->cb = cb;
	f->arg = arg;
	f->next = p->flush;
	p->flush = f;
	px_flush_check(p);
	return MOAT_OK;
}

static void
close_conns_of(struct moat_proxy *p, struct px_sandbox *sb)
{
	struct px_conn *c, *next;

	for (c = p->conns; c != NULL; c = next) {
		next = px_conn_next(c);
		if (sb == NULL || px_conn_sandbox(c) == sb)
			px_conn_free(c);
	}
}

int
moat_proxy_remove_sandbox(struct moat_proxy *p, const char *sandbox)
{
	struct px_sandbox **pp;

	for (pp = &p->sandboxes; *pp != NULL; pp = &(*pp)->next) {
		struct px_sandbox *sb = *pp;
		if (strcmp(sb->name, sandbox) != 0)
			continue;
		close_conns_of(p, sb);
		px_bypass_free_all(p, sb);
		*pp = sb->next;
		sandbox_free(sb);
		px_flush_check(p);
		return MOAT_OK;
	}
	return MOAT_ERR_NOTFOUND;
}

int
moat_proxy_set_policy(struct moat_proxy *p, const char *sandbox,
    struct moat_policy *snap, int version)
{
	struct px_sandbox *sb = px_sandbox_find(p, sandbox);
	struct px_conn *c, *next;

	if (sb == NULL)
		return MOAT_ERR_NOTFOUND;
	moat_policy_free(sb->policy);
	sb->policy = snap != NULL ? moat_policy_ref(snap) : NULL;
	sb->version = version;
	log_info("sandbox %s: policy version %d installed", sb->name, version);
	for (c = p->conns; c != NULL; c = next) {
		next = px_conn_next(c);
		if (px_conn_sandbox(c) == sb)
			px_conn_redecide(c);
	}
	return MOAT_OK;
}

static struct px_trust *
trust_find(struct px_sandbox *sb, const char *path)
{
	for (struct px_trust *t = sb->trust; t != NULL; t = t->next)
		if (strcmp(t->path, path) == 0)
			return t;
	return NULL;
}

static struct px_trust *
trust_add(struct px_sandbox *sb, const char *path)
{
	struct px_trust *t;

	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->path = strdup(path)) == NULL) {
		free(t);
		return NULL;
	}
	t->next = sb->trust;
	sb->trust = t;
	return t;
}

int
px_trust_check(struct px_sandbox *sb, const char *path, const char *sha,
    char was[65])
{
	struct moat_proxy *p = sb->p;
	struct px_trust *t = trust_find(sb, path);

	if (t == NULL) {
		/* First use: trust on first use, and have it kept. */
		if ((t = trust_add(sb, path)) == NULL)
			return MOAT_ERR_NOMEM;
		moat_strlcpy(t->sha, sha, sizeof(t->sha));
		if (p->cfg.trusted != NULL && p->cfg.trusted(p->cfg.trusted_arg,
		    sb->name, path, sha) != 0) {
			/* Not kept: not trusted either (t is first). */
			sb->trust = t->next;
			free(t->path);
			free(t);
			return MOAT_ERR_AGAIN;
		}
		return MOAT_OK;
	}
	if (strcmp(t->sha, sha) == 0)
		return MOAT_OK;
	memcpy(was, t->sha, 65);
	return MOAT_ERR_DENIED;
}

static bool
sha_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 64;
}

int
moat_proxy_retrust(struct moat_proxy *p, const char *sandbox,
    const char *path, const char *sha256)
{
	struct px_sandbox *sb = px_sandbox_find(p, sandbox);
	struct px_trust **pp, *t;

	if (sb == NULL)
		return MOAT_ERR_NOTFOUND;
	if (sha256 != NULL) {
		/*
		 * Pin what was approved: forgetting would trust whatever
		 * file is at the path at its next use.
		 */
		if (!sha_ok(sha256))
			return MOAT_ERR_INVALID;
		if ((t = trust_find(sb, path)) == NULL &&
		    (t = trust_add(sb, path)) == NULL)
			return MOAT_ERR_NOMEM;
		memcpy(t->sha, sha256, 65);
		log_info("sandbox %s: %s trusted with sha256 %.12s...",
		    sb->name, path, sha256);
		return MOAT_OK;
	}
	for (pp = &sb->trust; *pp != NULL; pp = &(*pp)->next) {
		t = *pp;
		if (strcmp(t->path, path) == 0) {
			*pp = t->next;
			free(t->path);
			free(t);
			return MOAT_OK;
		}
	}
	return MOAT_ERR_NOTFOUND;
}

int
moat_proxy_conn_count(const struct moat_proxy *p, const char *sandbox)
{
	if (sandbox == NULL)
		return p->nconns;
	for (struct px_sandbox *sb = p->sandboxes; sb != NULL; sb = sb->next)
		if (strcmp(sb->name, sandbox) == 0)
			return sb->nconns;
	return 0;
}

void
moat_proxy_free(struct moat_proxy *p)
{
	struct px_sandbox *sb, *next;

	if (p == NULL)
		return;
	close_conns_of(p, NULL);
	/* Its workers read the hasher's cache: stop them first. */
	px_pool_free(p->ident_pool);
	px_bypass_free_all(p, NULL);
	while (p->flush != NULL) {
		struct px_flush *f = p->flush;
		p->flush = f->next;
		free(f);
	}
	for (sb = p->sandboxes; sb != NULL; sb = next) {
		next = sb->next;
		sandbox_free(sb);
	}
	moat_loop_timer_cancel(p->loop, p->resume_timer);
	px_hasher_free(p->hasher);
	px_resolver_free(p->resolver);
	px_guard_free(p);
	px_tls_free(p->tls);
	free(p);
}
