/*
 * Internal to proxy/: the structures shared by its mechanism files
 * (proxy.c listeners and sandboxes, conn.c connection state machine,
 * relay.c, resolve.c, identity.c, hash.c, deny.c, bypass.c, work.c).
 */
#ifndef MOAT_PROXY_INTERNAL_H
#define MOAT_PROXY_INTERNAL_H

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/types.h>

#include "common/event.h"
#include "common/loop.h"
#include "common/log.h"
#include "policies/policy.h"
#include "proxy/http.h"
#include "proxy/proxy.h"

#define PX_MAX_ANCESTORS 64
#define PX_MAX_ADDRS 16
#define PX_HEAD_TIMEOUT_MS 30000
#define PX_LINGER_MS 2000
/* From the head to the decision: identity and hashing. */
#define PX_IDENT_TIMEOUT_MS 30000

/* ---- work.c: a small thread pool whose results come back on the loop */

enum {
	PX_WORK_DONE = 0,
	PX_WORK_AGAIN = 1, /* run again later: back of its owner's queue */
};

struct px_pool;
struct px_work {
	int (*run)(struct px_work *w);   /* on a worker: PX_WORK_* */
	void (*done)(struct px_work *w); /* on the loop; frees w */
	atomic_bool cancelled;           /* done() must not touch its owner */
	const void *owner; /* whose queue (a sandbox); owners take turns */
	struct px_work *next;
};
/*
 * Confine the proxy process (confine.c): cfg->run_uid/run_gid, the
 * capabilities its work needs, no_new_privs, a seccomp allowlist. Call
 * before any thread starts. MOAT_ERR_SYSTEM with the step in the cause.
 */
int px_confine(const struct moat_proxy_config *cfg, struct moat_cause *cause);

/* Set w's callbacks and owner, not cancelled. */
void px_work_init(struct px_work *w, int (*run)(struct px_work *),
    void (*done)(struct px_work *), const void *owner);
/* cap: items one owner may have queued or running (0: no limit). */
int px_pool_new(struct moat_loop *l, int nthreads, int cap, const char *name,
    struct px_pool **out, struct moat_cause *cause);
/* MOAT_ERR_AGAIN (the owner's queue is full), MOAT_ERR_NOMEM: w not taken. */
int px_pool_submit(struct px_pool *pool, struct px_work *w);
/* Its done() will not call back; NULL is fine. Any thread. */
void px_work_cancel(struct px_work *w);
void px_pool_free(struct px_pool *pool);

/* ---- hash.c: TOFU SHA-256 of executables, cached by file fingerprint */

struct px_hasher;
int px_hasher_new(struct moat_loop *l, struct px_hasher **out,
    struct moat_cause *cause);
void px_hasher_free(struct px_hasher *h);
/* Cached hash for a fingerprint; true with sha filled. Any thread. */
bool px_hasher_cached(struct px_hasher *h, const struct stat *st,
    char sha[65]);
/* sha, or NULL with err saying why the file was not hashed. */
typedef void px_hash_cb(void *arg, int idx, const char *sha, const char *err);
/*
 * Hash fd (taken over) on a worker, in owner's queue (a sandbox); cb runs
 * on the loop. *out cancels (cb then never runs). MOAT_ERR_AGAIN (the
 * owner's queue is full), MOAT_ERR_NOMEM: fd closed, cb never runs.
 * px_work_cancel(*out) cancels.
 */
int px_hasher_submit(struct px_hasher *h, int fd, const struct stat *st,
    const void *owner, px_hash_cb *cb, void *arg, int idx,
    struct px_work **out);

/* ---- diag.c: the client's socket in the sandbox netns */

struct px_sock {
	uint64_t cookie;     /* 0 when unknown (/proc/net/tcp) */
	unsigned long inode;
};
/* The NETLINK_SOCK_DIAG socket opened inside netns_fd (-1: ours). */
int px_diag_open(int netns_fd, struct moat_cause *cause);
/*
 * The TCP socket local=src -> remote=dst, by an exact sock_diag lookup:
 * a reply for another tuple (a listener) or in a state outside states
 * (a mask of 1 << TCP_*) is MOAT_ERR_DENIED; none, MOAT_ERR_NOTFOUND.
 */
int px_diag_find(int fd, const struct sockaddr *src,
    const struct sockaddr *dst, unsigned states, struct px_sock *out,
    char *why, size_t whylen);
/*
 * A step of identifying a caller had no file descriptor (EMFILE or
 * ENFILE): no verdict about the caller. Positive, like PX_IDENT_NOW, so
 * that it is never taken for a MOAT_ERR_* reason to deny.
 */
#define PX_NOFD 2
/* Is errno a shortage of file descriptors (ours or the system's)? */
bool px_out_of_fds(int e);

/*
 * The same from /proc/<init_pid>/net/tcp{,6} (init_pid 0: ours); PX_NOFD
 * when it could not be opened for want of an fd.
 */
int px_proc_find(pid_t init_pid, const struct sockaddr *src,
    const struct sockaddr *dst, unsigned states, struct px_sock *out,
    char *why, size_t whylen);

/* ---- scan.c: the /proc fallback, holders of a socket inode */

#define PX_MAX_OWNERS 16
struct px_scan;
/*
 * The processes to scan: procs_path (cgroup.procs), NULL: all of /proc.
 * MOAT_ERR_NOTFOUND when they cannot be listed, PX_NOFD for want of an fd.
 */
int px_scan_new(const char *procs_path, unsigned long inode,
    struct px_scan **out);
/*
 * One slice: MOAT_ERR_AGAIN (call again), MOAT_OK (every process looked
 * at), MOAT_ERR_DENIED with why (too many holders, over the budget),
 * PX_NOFD (no fd to open a process's fd table with).
 */
int px_scan_step(struct px_scan *s, char *why, size_t whylen);
size_t px_scan_owners(const struct px_scan *s, const pid_t **owners);
bool px_scan_has_pid(const struct px_scan *s, pid_t pid);
/* Does pid (any of its fd tables) hold the inode now? */
bool px_scan_holds(pid_t pid, unsigned long inode);
void px_scan_free(struct px_scan *s);

/* ---- identity.c: who holds the client's socket: exe and ancestors */

struct px_bin {
	char *path; /* /proc/PID/exe target, " (deleted)" stripped */
	pid_t pid;
	bool have_st; /* st is the running file's (else: unreadable) */
	struct stat st;
	int fd;       /* opened to be hashed, or -1 (cached, unreadable) */
	char sha[65];
	const char *hash_err; /* why it has no sha (static text), or NULL */
	struct px_work *job;
};

struct px_identity {
	pid_t pid;   /* host pid of the caller */
	int nspid;   /* pid inside the sandbox's pid namespace */
	int uid;
	struct px_bin bin[1 + PX_MAX_ANCESTORS]; /* [0] exe, then parents */
	size_t nbin;
	const char *anc[PX_MAX_ANCESTORS]; /* for moat_caller */
	/*
	 * The parents that grant the connection under this policy (a
	 * reference; NULL: none checked) run code from read-only mounts
	 * only: checked on the identity worker, pinned (px_code_upto).
	 */
	struct moat_policy *code_pol;
};

/*
 * What a per-caller check (the table caller_checks[] in identity.c) is
 * given: the caller's host pid, a pidfd pinning that process, and its
 * description (exe, parents).
 */
struct px_caller {
	pid_t pid;
	int pidfd;
	const struct px_identity *id;
	pid_t init_pid; /* the sandbox's init (0: none, a host caller) */
	bool bypass;    /* a rejected SYN's sender: denied anyway */
	size_t *budget; /* /proc bytes it may read (px_maps_check); AGAIN */
};

struct px_sandbox;
/*
 * rc 0: id describes the caller (take it with px_identity_move); else
 * why says why not (MOAT_ERR_NOTFOUND, MOAT_ERR_DENIED; PX_NOFD: the
 * proxy ran out of file descriptors, no verdict about the caller).
 */
typedef void px_identity_cb(void *arg, int rc, const char *why,
    struct px_identity *id);
/*
 * Start identifying the caller of the TCP connection local=src ->
 * remote=dst in the sandbox. bypass: src is a rejected SYN's sender (any
 * state, no hashing). The part on the loop is bounded: one sock_diag and
 * one map lookup, and for a recorded caller with a short parent chain
 * and short /proc files its description (PX_IDENT_NOW: *now holds it, cb
 * never runs). host and port (NULL, 0: none) is what the caller asks
 * for: the parents that grant it under the sandbox's policy have their
 * code checked (px_code_upto; id->code_pol). Else
 * MOAT_OK: the rest runs on the identity pool, in the sandbox's queue,
 * and cb runs on the loop unless cancelled (px_work_cancel(*out)). Or it
 * fails at once (cb never runs) with why: MOAT_ERR_NOTFOUND,
 * MOAT_ERR_DENIED, MOAT_ERR_AGAIN (the sandbox's queue is full),
 * MOAT_ERR_NOMEM, PX_NOFD (out of fds; cb gets that rc too).
 */
#define PX_IDENT_NOW 1
int px_identity_start(struct px_sandbox *sb, const struct sockaddr *src,
    const struct sockaddr *dst, bool bypass, const char *host,
    uint16_t port, px_identity_cb *cb, void *arg, struct px_work **out,
    struct px_identity *now, char *why, size_t whylen);
/*
 * How many parents of id must run code from read-only mounts for a
 * connection to host:port under pol (the nearest one whose binary
 * grants it, and those below): 0 when the caller's own binary grants
 * it, or when the connection is not allowed (or only audited).
 */
size_t px_code_upto(const struct moat_policy *pol,
    const struct px_identity *id, const char *host, uint16_t port);
void px_identity_move(struct px_identity *dst, struct px_identity *src);
void px_identity_clear(struct px_identity *id);
int px_identity_pool_new(struct moat_loop *l, struct px_pool **out,
    struct moat_cause *cause);

/* ---- maps.c: code loaded into a caller from a writable place */

/*
 * Does process pid (running exe, as /proc/PID/exe names it, inode
 * exe_ino: exempt as that file only) execute code
 * from outside the read-only mounts of its own mount namespace? Reads
 * /proc/PID/maps and /proc/PID/mountinfo, at most *budget bytes of them
 * (less what was read is left there); pidfd (or -1) pins the process:
 * it must still run after the reads. MOAT_OK; MOAT_ERR_DENIED with why
 * "code from PATH loaded into EXE" (or memfd:NAME, or more than 8 MiB
 * of mappings); MOAT_ERR_AGAIN when the files are larger than *budget
 * (read them where more may be spent: a worker); MOAT_ERR_NOTFOUND when
 * they cannot be read or the process is gone (why says so);
 * MOAT_ERR_NOMEM.
 */
#define PX_MAPS_ANY ((size_t)-1)
/* What the loop reads per connection: node or python fit in a tenth. */
#define PX_MAPS_LOOP_MAX ((size_t)64 << 10)
int px_maps_check(pid_t pid, int pidfd, const char *exe,
    unsigned long long exe_ino, size_t *budget, char *why, size_t whylen);
/* The same on the two texts (both cut up in place); for tests, fuzzing. */
int px_maps_scan(char *maps, char *mountinfo, const char *exe,
    unsigned long long exe_ino, char *why, size_t whylen);

/* ---- resolve.c: hosts-file override, then getaddrinfo on a worker */

struct px_resolver;
int px_resolver_new(struct moat_loop *l, const char *hosts_file,
    struct px_resolver **out, struct moat_cause *cause);
void px_resolver_free(struct px_resolver *r);
/* Literal or hosts-file answer: MOAT_OK with *n set, else NOTFOUND. */
int px_resolve_local(struct px_resolver *r, const char *host, uint16_t port,
    struct sockaddr_storage *addrs, size_t max, size_t *n);
/* getaddrinfo on a worker, in owner's queue; NULL when it is full. */
struct px_work *px_resolve(struct px_resolver *r, const char *host,
    uint16_t port, const void *owner, void (*cb)(void *arg, int rc,
    const struct sockaddr_storage *addrs, size_t n), void *arg);

/* ---- deny.c: response bodies */

struct px_deny {
	const char *error;  /* "policy_denied", "ssrf_denied" */
	const char *method; /* "CONNECT", "GET", ... */
	const char *host;
	uint16_t port;
	const char *reason;
	const char *binary;
	const char *const *ancestors;
	size_t nancestors;
	const char *policy; /* may be NULL */
	const char *path;   /* an L7 denial: the request's path, else NULL */
};
/* A whole HTTP response (head and body), malloc'd; NULL on ENOMEM. */
char *px_deny_response(const struct px_deny *d, size_t *len);
char *px_response(int status, const char *ctype, const char *body,
    size_t blen, size_t *len);
char *px_simple_response(int status, const char *error, const char *detail,
    size_t *len);
/*
 * 503 too_many_connections for a connection over a cap: the JSON names
 * the cap's config field and its value ({"error", "detail", "cap",
 * "limit"}). Caller frees; NULL when out of memory.
 */
char *px_cap_response(const char *cap, int limit, const char *sandbox,
    size_t *len);
const char *px_status_text(int status);

/* ---- relay.c: splice relay of two sockets through pipes */

struct px_half {
	int from;
	int to;
	int pipefd[2];  /* -1 until a read fills the copy buffer */
	size_t inpipe;
	char *pre; /* bytes to send to `to` before relaying */
	size_t prelen;
	size_t preoff;
	size_t precap;
	uint64_t limit; /* bytes of `from` still to forward; UINT64_MAX */
	struct moat_http_chunked *chunk; /* framed body: copy, not splice */
	bool eof;
	bool done;
	bool shut_on_done; /* shutdown(to, SHUT_WR) when done by EOF */
	bool grown;        /* the pipe was offered PIPE_BIG */
	uint64_t total;
};

struct px_relay {
	struct px_half up;   /* client -> upstream */
	struct px_half down; /* upstream -> client */
	int64_t last_ms;
};

int px_relay_init(struct px_relay *r, int cfd, int ufd);
/* Queue bytes to send before relaying on a half (copied). */
int px_relay_prefix(struct px_half *h, const void *buf, size_t len);
/*
 * Move what the event (fd, MOAT_EV_*; ev 0: the first step) allows:
 * 1 both halves done, 0 continue, <0 error.
 */
int px_relay_step(struct px_relay *r, int fd, unsigned ev);
unsigned px_relay_mask(const struct px_relay *r, int fd);
void px_relay_fini(struct px_relay *r);

/* ---- guard.c: addresses never dialled (own, sandbox pool, host) */

#define PX_MAX_DENY_CIDRS 16


/* Parse the config's deny_cidr list (comma or space separated). */
int px_guard_init(struct moat_proxy *p, const char *list,
    struct moat_cause *cause);
void px_guard_free(struct moat_proxy *p);
/* true with why filled when sa (an answer for host) is never dialled. */
bool px_guard_refuses(struct moat_proxy *p, const char *host,
    const struct sockaddr *sa, char *why, size_t len);

/* ---- ca.c, tls.c: the sandbox CA, leaves, the two SSL_CTXs */

EVP_PKEY *px_ca_new_key(void);
/* A leaf for host (DNS name or IP) signed by ca; NULL on failure. */
X509 *px_ca_mint(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *leaf_key,
    const char *host);
int px_ca_load(const char *cert_path, const char *key_path, X509 **cert,
    EVP_PKEY **key, struct moat_cause *cause);

struct px_tls;
struct px_tls_ca;
/* What the servername callback of one terminated connection needs. */
struct px_tls_peer {
	struct px_tls_ca *ca;
	const char *host;  /* the decided CONNECT host */
	char sni[256];     /* what the client asked for, printable */
	bool sni_mismatch;
};
int px_tls_new(const char *upstream_ca_file, size_t max_leaves, bool lazy,
    struct px_tls **out, struct moat_cause *cause);
void px_tls_free(struct px_tls *t);
void px_tls_stats(const struct px_tls *t, uint64_t *minted, uint64_t *hits,
    size_t *cached);
int px_tls_ca_load(struct px_tls *t, const char *cert, const char *key,
    struct px_tls_ca **out, struct moat_cause *cause);
void px_tls_ca_free(struct px_tls *t, struct px_tls_ca *ca);
/* Server side toward the sandbox (pe must outlive the SSL). */
SSL *px_tls_server(struct px_tls *t, struct px_tls_peer *pe, int fd);
/* Client side toward the upstream, verifying host. */
SSL *px_tls_client(struct px_tls *t, const char *host, int fd);
void px_tls_client_error(SSL *s, char *why, size_t len);

/* ---- resp.c: where a response ends */

enum {
	PX_RESP_MORE = 0, /* all consumed, the response goes on */
	PX_RESP_DONE,     /* the response ended at *used */
	PX_RESP_UPGRADE,  /* 101: its head ended at *used; now raw */
	PX_RESP_BAD,      /* not HTTP/1.x as we can frame it */
};
struct px_resp {
	int state;
	bool head_req; /* the request was HEAD: no body */
	bool upgrade;  /* the request asked for a WebSocket upgrade */
	bool cr;
	int status;
	int minor;
	int64_t cl;
	bool te;
	bool chunked;
	bool close;
	uint64_t left;
	size_t head_bytes;
	size_t llen;
	char line[1024];
	struct moat_http_chunked ch;
};
void px_resp_start(struct px_resp *r, bool head_req, bool upgrade);
int px_resp_feed(struct px_resp *r, const char *buf, size_t n, size_t *used);
/* The body ends when the upstream closes. */
bool px_resp_until_eof(const struct px_resp *r);

/* ---- inject.c: credential placeholders */

struct px_secrets;
int px_secrets_new(const struct moat_proxy_secret *v, size_t n,
    struct px_secrets **out, struct moat_cause *cause);
void px_secrets_free(struct px_secrets *s);
bool px_secrets_any(const struct px_secrets *s);
bool px_secret_name_ok(const char *name);
enum px_ictx {
	PX_I_RAW = 0, /* a header value */
	PX_I_PCT,     /* a request target, a form body */
	PX_I_JSON,    /* inside a JSON string */
};
struct px_ibuf {
	char *p;
	size_t len;
	size_t cap;
};
struct px_inject_err {
	char name[130]; /* the secret named by the refused placeholder */
	const char *why; /* credential_endpoint_mismatch, invalid_... */
};
/*
 * Replace the placeholders of in[0..n) for host, appending to out:
 * the number replaced (0: out untouched), -1 refused (err says which
 * secret and why), -2 out of memory.
 */
int px_inject(const struct px_secrets *s, const char *host, const char *in,
    size_t n, enum px_ictx ctx, struct px_ibuf *out,
    struct px_inject_err *err);
/* The same inside the base64 of a Basic credential (out: new base64). */
int px_inject_basic(const struct px_secrets *s, const char *host,
    const char *b64, size_t n, struct px_ibuf *out,
    struct px_inject_err *err);
/* Any placeholder prefix in buf (raw or %3A-encoded)? */
bool px_inject_marker(const char *buf, size_t n);
#define PX_INJECT_HOLD 27 /* longest prefix ("openshell%3A...%3A") - 1 */
/* Append n bytes (NUL kept after them): 0, or -1 out of memory. */
int px_ibuf_put(struct px_ibuf *b, const void *s, size_t n);
void px_ibuf_free(struct px_ibuf *b);

/* ---- proxy.c, conn.c */

struct px_trust {
	char *path;
	char sha[65];
	struct px_trust *next;
};

struct px_conn;

/*
 * Refusals of one kind (a cap reached, no fds) are logged once per
 * burst, not once per connection: a burst ends after PX_BURST_GAP_MS
 * without one.
 */
#define PX_BURST_GAP_MS 1000
struct px_burst {
	int64_t last_ms; /* the latest refusal; 0: none yet */
	unsigned n;      /* refusals in the current burst */
};
/*
 * Count one refusal. true when it starts a burst (log it then); *ended
 * gets the number of refusals of the burst before (0: none).
 */
bool px_burst_start(struct px_burst *b, unsigned *ended);
/* " (the burst before refused N)" in buf for a log line; "" if N <= 1. */
const char *px_burst_note(unsigned ended, char *buf, size_t len);

struct px_sandbox {
	struct moat_proxy *p;
	char name[64];
	char listen_str[64];
	struct sockaddr_storage listen_ss;
	socklen_t listen_len;
	int lfd;
	int diag_fd;
	int attrib_fd;      /* BPF map: cookie -> moat_attrib; -1: /proc scan */
	int tuple_fd;       /* BPF LRU: SYN 4-tuple -> moat_attrib, or -1 */
	uint64_t cgroup_id; /* the sandbox's cgroup v2 id, 0 unknown */
	char *procs_path;
	pid_t init_pid;
	dev_t pidns_dev;    /* the sandbox's pid namespace (ino 0: none) */
	ino_t pidns_ino;
	struct moat_policy *policy;
	int version;
	int nconns;
	struct px_burst cap_burst; /* refusals at max_conns_per_sandbox */
	struct px_trust *trust;
	struct px_ring *ring; /* recent denials, for policy.local */
	int nbypass;          /* bypass events waiting for identity */
	int nflog_fd;         /* the sandbox's NFLOG socket, or -1 */
	struct px_tls_ca *ca; /* NULL: TLS is relayed, never terminated */
	struct px_secrets *secrets;
	int keep[8];          /* only held (moat_proxy_sandbox.keep_fds) */
	size_t nkeep;
	struct px_sandbox *next;
};

struct moat_proxy {
	struct moat_loop *loop;
	struct moat_proxy_config cfg;
	struct px_sandbox *sandboxes;
	struct px_conn *conns; /* doubly linked */
	int nconns;
	struct px_burst cap_burst;  /* refusals at max_conns */
	struct px_burst nofd_burst; /* 503s for want of an fd */
	bool accept_paused;
	struct moat_timer *resume_timer;
	struct px_hasher *hasher;
	struct px_pool *ident_pool;
	struct px_resolver *resolver;
	struct moat_ratelimit rl;
	uint64_t next_req; /* proposal request ids, from 1 */
	struct moat_cidr deny[PX_MAX_DENY_CIDRS]; /* cfg.deny_cidr */
	size_t ndeny;
	struct moat_cidr *local; /* the host's addresses (getifaddrs), /128s */
	size_t nlocal;
	int64_t local_ms;     /* when local was read */
	struct px_bypass *bypass; /* bypass events waiting for identity */
	int nbypass;
	struct px_flush *flush;   /* moat_proxy_flush callers waiting */
	struct px_tls *tls;
};

struct px_sandbox *px_sandbox_find(struct moat_proxy *p, const char *name);
/*
 * TOFU for one binary of a caller: MOAT_OK when sha is the trusted hash
 * of path (the first hash seen is recorded and trusted), MOAT_ERR_DENIED
 * with the trusted hash in was when it differs, MOAT_ERR_NOMEM.
 */
int px_trust_check(struct px_sandbox *sb, const char *path, const char *sha,
    char was[65]);
bool px_is_listen_addr(struct moat_proxy *p, const struct sockaddr *sa);
void px_emit(struct moat_proxy *p, const struct moat_denial_event *ev);

/* Run the flush callbacks when no bypass event is pending. */
void px_flush_check(struct moat_proxy *p);

/* bypass.c: cancel and drop pending bypass events (sb NULL: all). */
struct px_bypass;
void px_bypass_free_all(struct moat_proxy *p, struct px_sandbox *sb);
/* Read the sandbox's NFLOG socket (arg: the sandbox), bounded per call. */
void px_bypass_read(struct moat_loop *l, int fd, unsigned ev, void *arg);

/* conn.c */
void px_conn_accept(struct px_sandbox *sb, int fd,
    const struct sockaddr_storage *peer);
void px_conn_free(struct px_conn *c);
struct px_conn *px_conn_next(struct px_conn *c);
struct px_sandbox *px_conn_sandbox(struct px_conn *c);
/* Decide an open tunnel again after a policy swap; closes it if denied. */
void px_conn_redecide(struct px_conn *c);

/*
 * A proposal's answer (a whole response, taken over; NULL: out of
 * memory) for the connection waiting on request id req, if any.
 */
void px_conn_proposal_result(struct moat_proxy *p, uint64_t req, char *resp,
    size_t len);

/* ---- local.c: policy.local, the proxy's own API for agents */

#define PX_RING_MAX 100
#define PX_LOCAL_BODY_MAX (64 * 1024)
#define PX_LOCAL_BODY_TIMEOUT_MS 15000
#define PX_LOCAL_WAIT_MS 10000

enum px_local {
	PX_LOCAL_NO = 0, /* not for policy.local */
	PX_LOCAL_YES,    /* http://policy.local[:80]/... */
	PX_LOCAL_SCHEME, /* CONNECT policy.local:PORT: 400 */
};

struct px_ring;
/* Keep a denial (not an audit allow) in its sandbox's ring. */
void px_ring_add(struct px_sandbox *sb, const struct moat_denial_event *ev);
void px_ring_free(struct px_ring *r);

enum px_local px_local_match(const struct moat_http_req *r);
/* Does a head the parser refused ask for https://policy.local? */
bool px_local_https(const char *buf, size_t len);
/*
 * Answer a policy.local request: a whole response (malloc'd), or NULL
 * with *propose set when it is a proposal whose Content-Length body must
 * be read and forwarded (NULL without *propose: out of memory).
 */
char *px_local_answer(struct px_sandbox *sb, const struct moat_http_req *r,
    const char *buf, size_t *len, bool *propose);
bool px_local_body_ok(const char *body, size_t n);
char *px_local_scheme_error(size_t *len);
char *px_local_invalid(const char *detail, size_t *len);
char *px_local_unavailable(const char *detail, size_t *len);
char *px_local_timeout(size_t *len);

/* forward.c: the rewritten head of a forward request; malloc'd. */
char *px_forward_head(const struct moat_http_req *r, const char *buf,
    size_t *len);

/* Lowest-common helpers */
void px_addr_str(const struct sockaddr *sa, char *out, size_t len);
uint16_t px_addr_port(const struct sockaddr *sa);
/* An IPv4-mapped IPv6 address is turned into plain IPv4. */
void px_addr_unmap(struct sockaddr_storage *ss);

#endif
