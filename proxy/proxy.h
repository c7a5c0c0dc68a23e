/*
 * moat's egress proxy: one epoll loop that listens on every sandbox's
 * host-side address, identifies the calling binary of each connection,
 * decides it with the sandbox's policy snapshot, checks every address it
 * would dial (SSRF), and tunnels (CONNECT) or forwards (absolute-form
 * http://) the allowed ones. Every denial becomes a moat_denial_event.
 *
 * All calls run on the loop's thread. Handling is described in
 * docs/proxy.md; the control channel of the proxy process in
 * docs/protocols.md ("moatd <-> proxy control channel").
 *
 * This is the network side: it never includes sshd/, sessions/ or
 * sandbox/ headers.
 */
#ifndef MOAT_PROXY_PROXY_H
#define MOAT_PROXY_PROXY_H

#include <sys/types.h>

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/errors.h"
#include "common/event.h"
#include "common/loop.h"

struct moat_policy;
struct moat_proxy;

/* Connection caps when the config gives none (docs/proxy.md). */
#define MOAT_PROXY_DEFAULT_MAX_CONNS 16384
#define MOAT_PROXY_DEFAULT_MAX_CONNS_SANDBOX 4096

struct moat_proxy_config {
	uint16_t port;            /* default listen port, 3128 when 0 */
	const char *hosts_file;   /* resolver override ("IP name..."), NULL */
	int connect_timeout_ms;   /* upstream connect, 10000 when 0 */
	int idle_timeout_ms;      /* tunnel without traffic, 300000 when 0 */
	/*
	 * Caps on open client connections, all sandboxes together and per
	 * sandbox; a connection over a cap gets 503 too_many_connections
	 * naming the cap. MOAT_PROXY_DEFAULT_MAX_CONNS(_SANDBOX) when 0.
	 */
	int max_conns_total;
	int max_conns_per_sandbox;
	/*
	 * moat_proxy_process_main() raises its RLIMIT_NOFILE: the hard limit
	 * to this (when it may: as root; bounded by fs.nr_open; 0: leave
	 * it), the soft limit to the hard one.
	 */
	unsigned long max_open_files;
	/* Called on the loop thread for every denial (and audit allow). */
	void (*emit)(void *arg, const struct moat_denial_event *ev);
	void *emit_arg;
	/*
	 * Called on the loop thread with an agent's POST to
	 * http://policy.local/v1/proposals (body: len bytes of UTF-8, no
	 * NUL, at most 64 KiB; not NUL-terminated). Return 0 when it was
	 * handed on: the agent's request then waits up to 10 s for
	 * moat_proxy_proposal_result() with the same req. Nonzero, or
	 * NULL here (no moatd, as in moat run): the agent gets 503
	 * gateway_unavailable.
	 */
	int (*propose)(void *arg, const char *sandbox, uint64_t req,
	    const char *body, size_t len);
	void *propose_arg;
	int proposal_timeout_ms;  /* moatd's answer to a proposal, 10000 */
	/*
	 * Called on the loop thread when a binary's hash is trusted on
	 * first use (path as /proc/PID/exe names it, 64 hex digits), so
	 * the orchestrator can keep it: the next proxy gets it back with
	 * the sandbox (moat_proxy_sandbox.trust). 0: it will be kept;
	 * -1: it cannot be now (the first use is then not trusted, and
	 * the connection is refused: a hash the store never got would be
	 * trusted again, whatever the file, after the next start). May be
	 * NULL.
	 */
	int (*trusted)(void *arg, const char *sandbox, const char *path,
	    const char *sha256);
	void *trusted_arg;
	/*
	 * Addresses never dialled whatever the policy says: the sandbox
	 * address pool, as CIDRs separated by commas or spaces
	 * ("10.200.0.0/16"); NULL: none. The host's own addresses and the
	 * proxy's listen addresses are always refused.
	 */
	const char *deny_cidr;
	/*
	 * Certificates (PEM) trusted for upstreams besides the system
	 * roots, when the proxy terminates TLS; NULL: the system roots.
	 */
	const char *upstream_ca_file;
	size_t max_leaves;        /* cached leaf certificates, 1024 when 0 */
	/*
	 * Read the system's trust store for upstreams (25-45 ms of
	 * parsing here) at the first terminated connection instead of at
	 * start: for a one-shot proxy (moat run) that may never need it.
	 * A long-running one reads it at start, never on a busy loop.
	 */
	bool lazy_trust_store;
	/*
	 * Live restore (the proxy process only): when moatd's channel
	 * ends, serve on and accept the next moatd on this unix socket
	 * (root only, mode 0600); denials meanwhile wait for it, bounded.
	 * NULL: the proxy process exits when the channel ends.
	 */
	const char *ctl_path;
	/*
	 * moat_proxy_process_main confines the process before it serves
	 * (docs/proxy.md, "Privileges"): these uid and gid, only the
	 * capabilities its work needs, no_new_privs, a seccomp allowlist.
	 * run_uid 0: no confinement (only for tests of the proxy library).
	 */
	uid_t run_uid;
	gid_t run_gid;
};

/* A binary's trusted hash, as kept by the orchestrator. */
struct moat_proxy_trusted {
	const char *path;   /* as /proc/PID/exe names it */
	const char *sha256; /* 64 lowercase hex digits */
};

/* The control channel's protocol; a moatd adopts only a proxy of its own. */
#define MOAT_PROXY_CTL_PROTO 2

struct moat_proxy_sandbox {
	const char *name;
	const char *listen_addr; /* IPv4 or IPv6 literal */
	uint16_t port;           /* 0: the config's port */
	int netns_fd;            /* sandbox netns (for sock_diag); -1: ours */
	const char *procs_path;  /* cgroup.procs of the sandbox; NULL: all */
	pid_t init_pid;          /* sandbox init (ancestor walk stops); 0 */
	/*
	 * Kernel attribution (docs/proxy.md, "Caller identity"): when true,
	 * attrib_fd is the sandbox's BPF map of connections to the proxy
	 * (4-tuple -> struct moat_attrib, common/attrib.h), attrib_tuple_fd
	 * its map of rejected SYNs' senders (-1: none), both dup'ed;
	 * cgroup_id the sandbox's cgroup v2 id that every record must
	 * carry. false: the /proc scan.
	 */
	bool attrib;
	int attrib_fd;
	int attrib_tuple_fd;
	uint64_t cgroup_id;
	/*
	 * When true, nflog_fd is the sandbox's NFLOG socket (sandbox/net.h),
	 * dup'ed: the proxy reads it and turns each packet into a "bypass"
	 * denial, as moat_proxy_bypass() does.
	 */
	bool nflog;
	int nflog_fd;
	/* Hashes trusted before (first use or approved): installed before
	 * the sandbox is served, so no restart trusts a changed file. */
	const struct moat_proxy_trusted *trust;
	size_t ntrust;
	/*
	 * When true, diag_fd is a NETLINK_SOCK_DIAG socket already made in
	 * the sandbox's netns (dup'ed), so the proxy never enters the netns
	 * itself (that needs CAP_SYS_ADMIN, which a confined proxy lacks);
	 * -1 there: none (the /proc/<init>/net fallback). false: one is made
	 * with netns_fd.
	 */
	bool diag;
	int diag_fd;
	/*
	 * The sandbox CA (proxy/ca.h): certificate and key files. With
	 * them TLS inside CONNECT is terminated (unless the endpoint says
	 * tls skip) and L7 rules and credentials apply; NULL: TLS is
	 * relayed untouched and endpoints with L7 rules fail closed.
	 */
	const char *ca_cert;
	const char *ca_key;
	/*
	 * Fds the proxy only holds (dup'ed), to keep what they stand for
	 * alive while it serves the sandbox: the BPF links that keep the
	 * attribution programs attached once moatd is gone (live restore).
	 */
	const int *keep_fds;
	size_t nkeep;
};

/* A credential the proxy puts in place of its placeholder. */
struct moat_proxy_secret {
	const char *name;   /* [A-Za-z_][A-Za-z0-9_]* */
	const char *value;  /* no CR, LF or NUL */
	size_t vlen;
	const char *const *hosts; /* exact names, or "*.x.com" */
	size_t nhosts;
};

/* One packet the sandbox ruleset rejected (NFLOG), parsed by moatd. */
struct moat_proxy_bypass_pkt {
	int family;      /* AF_INET or AF_INET6 */
	int l4proto;     /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, ... */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} src, dst;
	uint16_t sport;  /* host order; 0 when the protocol has none */
	uint16_t dport;
	int uid;         /* NFULA_UID when present, else -1 */
};

/*
 * Create a proxy on loop l (the config is copied; strings must outlive
 * the proxy). No listener until a sandbox is added.
 */
int moat_proxy_new(struct moat_loop *l, const struct moat_proxy_config *c,
    struct moat_proxy **out, struct moat_cause *cause);

/*
 * Listen for sandbox s (strings are copied; netns_fd is dup'ed).
 * MOAT_ERR_EXISTS for a known name, MOAT_ERR_SYSTEM when bind fails,
 * MOAT_ERR_INVALID for a trusted hash that is not 64 hex digits.
 * Until a policy is set, every connection of the sandbox is denied.
 */
int moat_proxy_add_sandbox(struct moat_proxy *p,
    const struct moat_proxy_sandbox *s, struct moat_cause *cause);

/*
 * Replace the sandbox's secrets (copied; the old values are zeroed).
 * MOAT_ERR_NOTFOUND, MOAT_ERR_INVALID (a bad name or value, in cause).
 */
int moat_proxy_set_secrets(struct moat_proxy *p, const char *sandbox,
    const struct moat_proxy_secret *v, size_t n, struct moat_cause *cause);

/* Stop listening for a sandbox and close its connections. */
int moat_proxy_remove_sandbox(struct moat_proxy *p, const char *sandbox);

/*
 * Install a policy snapshot for a sandbox. The proxy takes its own
 * reference (the caller keeps and frees its own). Open CONNECT tunnels
 * are decided again with their caller and host:port and closed when the
 * new snapshot denies them. MOAT_ERR_NOTFOUND for an unknown sandbox.
 */
int moat_proxy_set_policy(struct moat_proxy *p, const char *sandbox,
    struct moat_policy *snap, int version);

/*
 * An operator approved a changed binary: trust exactly sha256 (64 hex
 * digits, the hash the operator saw) for path in the sandbox; any other
 * hash stays "binary changed". sha256 NULL forgets the trusted hash, so
 * the path's next use is trusted on first use again.
 * MOAT_ERR_NOTFOUND (unknown sandbox, or nothing to forget),
 * MOAT_ERR_INVALID (sha256 is not 64 hex digits).
 */
int moat_proxy_retrust(struct moat_proxy *p, const char *sandbox,
    const char *path, const char *sha256);

/*
 * Turn a packet that bypassed the proxy into a "bypass" denial event (a
 * TCP one once its sender is named: see moat_proxy_flush).
 */
void moat_proxy_bypass(struct moat_proxy *p, const char *sandbox,
    const struct moat_proxy_bypass_pkt *pkt);

/*
 * cb(arg) on the loop once every bypass packet handed in so far has
 * become an event (naming its sender can take a worker's turn); at once
 * when none is pending. MOAT_ERR_NOMEM.
 */
int moat_proxy_flush(struct moat_proxy *p, void (*cb)(void *arg), void *arg);

/*
 * moatd's answer to proposal req: ok with the stored proposal's id (the
 * agent gets 202), or not ok with a sentence (400 invalid_proposal). An
 * unknown or expired req is ignored. Loop thread only.
 */
void moat_proxy_proposal_result(struct moat_proxy *p, uint64_t req, bool ok,
    int64_t id, const char *error);

/* Live connection count (all sandboxes, or one). */
int moat_proxy_conn_count(const struct moat_proxy *p, const char *sandbox);

/* Close everything, stop the worker threads. NULL is fine. */
void moat_proxy_free(struct moat_proxy *p);

/*
 * The proxy process: a loop, a proxy, and the control channel ctl_fd
 * (JSON lines, docs/protocols.md). Returns when ctl_fd reaches EOF
 * (with c->ctl_path: on SIGTERM or an "exit" line), 0; 111 when the
 * loop, proxy or socket could not start.
 */
int moat_proxy_process_main(int ctl_fd, const struct moat_proxy_config *c);

#endif
