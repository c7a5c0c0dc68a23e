/*
 * Private to conn.c and conn-local.c: one client connection's state
 * (the machine is described in conn.c).
 */
#ifndef MOAT_PROXY_CONN_H
#define MOAT_PROXY_CONN_H

#include "proxy/internal.h"

enum px_state {
	ST_HEAD = 0,
	ST_IDENT, /* the caller is being identified (identity.c) */
	ST_HASH,
	ST_RESOLVE,
	ST_CONNECT,
	ST_RELAY,
	ST_RESPOND,
	ST_LINGER,
	ST_LBODY, /* reading a policy.local proposal's body */
	ST_LWAIT, /* waiting for moatd's answer to it */
	ST_L7,    /* a tunnel looked into (l7.c) */
};

/*
 * What an open tunnel keeps of its caller, to decide again after a
 * policy swap and to name the caller in events: one block, with the
 * strings after the ancestors' pointers.
 */
struct px_who {
	int nspid;
	int uid;
	char sha[65]; /* of the exe */
	const char *exe;
	const char *host; /* moat_host_normalize'd */
	size_t nanc;
	const char *anc[];
};

/*
 * Everything a connection needs only until its relay starts (the head,
 * the parsed request, the full identity with its hashes, the decision,
 * the answers): allocated at accept, freed when the relay starts, so an
 * open tunnel keeps only its fds, relay, timer and its px_who.
 */
struct px_setup {
	struct sockaddr_storage peer;  /* the client, as the sandbox sees it */
	struct sockaddr_storage local; /* our listen address */
	char head[MOAT_HTTP_HEAD_MAX];
	size_t hlen;
	struct moat_http_req req;
	char host[MOAT_HTTP_HOST_MAX]; /* moat_host_normalize'd */
	struct px_identity id;
	struct px_work *ijob; /* the identity job, until it answers */
	int hash_pending;
	struct px_work *rjob;
	struct moat_decision dec;
	struct sockaddr_storage addrs[PX_MAX_ADDRS];
	size_t naddrs;
	size_t ai; /* the address being dialled */
	char *body; /* policy.local proposal */
	size_t blen;
	size_t bneed;
	uint64_t preq;
	bool answered;
	char *lresp;
	size_t lresplen;
	char *fhead;   /* a forward request's head as decided and rewritten */
	size_t fhlen;
};

struct px_conn {
	struct moat_proxy *p;
	struct px_sandbox *sb;
	struct px_conn *prev;
	struct px_conn *next;
	enum px_state st;
	enum moat_http_kind kind;
	uint16_t port;
	int cfd;
	int ufd;
	struct px_setup *s;      /* until the relay starts */
	struct px_who *who;      /* the caller and host, once decided */
	struct moat_policy *pol; /* the snapshot the decision came from */
	int version;
	struct sockaddr_storage dialled;
	char *out;
	size_t outlen;
	size_t outoff;
	size_t discarded;
	struct px_relay relay;
	bool relay_on;
	struct px_l7 *l7;        /* ST_L7 only */
	struct moat_timer *timer;
};

/* Replace the connection's timer (cb NULL: none). */
void px_conn_arm(struct px_conn *c, int64_t ms, moat_timer_cb *cb);
/* Answer with a whole response (taken over; NULL: close) and linger. */
void px_conn_respond(struct px_conn *c, char *resp, size_t len);
/*
 * The proxy had no fd for a step of this connection (what): 503
 * proxy_out_of_fds, and a log line when a burst of these starts. Never a
 * denial: nothing was decided about the caller (deny.c).
 */
void px_conn_respond_nofd(struct px_conn *c, const char *what);

/* An event about this connection (its caller, host, port; ip or NULL). */
void px_conn_event(struct px_conn *c, struct moat_denial_event *ev,
    const char *stage, const char *reason, const char *ip);
/*
 * Deny: emit the event, answer 403 in OpenShell's shape, close. stage
 * is the event's; error is "policy_denied" or "ssrf_denied".
 */
void px_conn_deny(struct px_conn *c, const char *stage, const char *error,
    const char *reason, const char *ip, const char *policy);
/* Relay the tunnel's bytes untouched from now on (the 200 was sent). */
void px_conn_start_relay(struct px_conn *c);

/* l7.c: tunnels the proxy looks into */
struct px_l7;
/* Should an allowed CONNECT be looked into (TLS, L7, credentials)? */
bool px_l7_wanted(const struct px_conn *c);
/*
 * Take over a connected CONNECT (c->who set, setup still there): 0
 * taken (or answered), 1 declined (relay it untouched as before).
 */
int px_l7_begin(struct px_conn *c, const char *extra, size_t nextra);
void px_l7_io(struct px_conn *c, int fd, unsigned ev);
/* Are this tunnel's requests read and decided one by one? */
bool px_l7_inspects(const struct px_conn *c);
/*
 * A forward request to an endpoint with L7 rules, or in a sandbox with
 * credentials: decide it (the canonical target), replace placeholders,
 * and keep the head to send in c->s->fhead. 0, or -1 answered.
 */
int px_l7_forward(struct px_conn *c);
/*
 * After an allowing decision: what L7 needs before dialling (a forward
 * request decided and rewritten; a CONNECT to an L7 endpoint without a
 * CA denied). 0 go on, -1 answered.
 */
int px_l7_decided(struct px_conn *c);
void px_l7_free(struct px_l7 *x);

/* conn-local.c: policy.local requests (routes and bodies in local.c) */
void px_conn_local_start(struct px_conn *c);
void px_conn_local_scheme(struct px_conn *c);
void px_conn_read_body(struct px_conn *c);

#endif
