/*
 * The definition of struct moatd, shared by moatd/main.c and the
 * registry only; the other parts of moatd use the accessors of moatd.h.
 */
#ifndef MOAT_MOATD_STATE_H
#define MOAT_MOATD_STATE_H

#include <sys/types.h>

#include "moatd/config.h"
#include "moatd/moatd.h"

struct moat_sandbox;
struct moat_timer;
struct moatd_proxychan;

struct moatd_sandbox {
	const struct moatd_sandbox_config *cfg;
	struct moatd *owner;
	struct moat_sandbox *sb;    /* NULL in unit tests */
	struct moat_policy *policy; /* current snapshot (one ref) */
	int version;                /* its version in the store */
	char *file_hash;            /* hash of the policy file last read */
	int nflog_fd;               /* bypass monitor socket, or -1 */
	bool nflog_warned;          /* said once why it has none */
	bool adopted;               /* taken over from a previous moatd */
	bool proxy_served;          /* an adopted proxy serves it as it runs */
	pid_t init_pid;             /* the sandbox's PID 1 (host view), 0 if none */
	int proxy_version;          /* what the proxy last acknowledged, 0 none */
	char proxy_error[256];      /* its last refusal, or "" */
	int ack_wait;               /* the version an install waits for, or 0 */
	int ack_result;             /* 0 waiting, 1 installed, -1 refused */
	char *ca_dir;               /* its CA (proxy/ca.h), or NULL */
	struct moat_proxy_secret *secrets; /* values read at start */
	size_t nsecrets;
};

struct moatd {
	struct moatd_config *cfg;
	struct moat_loop *loop;
	struct moat_store *store;
	struct moatd_sandbox *sandboxes;
	size_t nsandboxes;
	struct moatd_aggregator *agg;
	struct moatd_agentq *agentq;   /* policy.local proposals */
	struct moatd_control *ctl;
	struct moatd_retention *ret;
	struct moatd_export *exp;
	struct moatd_proxychan *proxy; /* the proxy process, or NULL */
	int sess_fd;                /* datagrams from connection processes */
	int sess_wfd;               /* their end, inherited by each fork */
	struct moat_relay_cache *relay_cache;
	struct moatd_sessmap *sessions; /* connection key -> store row */
	int listen_fds[8];
	size_t nlisten;
	int relay_fd;
	int relay_tcp_fd;
	bool for_test;              /* borrowed loop and store */
	/*
	 * Wired by moatd/daemon.c to the proxy channel; NULL in tests
	 * (then the store's word is final). Send the policy to the proxy
	 * and, when wait_ms > 0, wait that long for its answer: 0 when
	 * it installed the version, MOAT_ERR_INVALID when it refused
	 * (cause says why), MOAT_ERR_AGAIN when it did not answer in
	 * time, MOAT_ERR_SYSTEM when there is no proxy to ask.
	 */
	int (*install_policy)(struct moatd *d, const char *sandbox,
	    int version, const char *json, int wait_ms,
	    struct moat_cause *cause);
	int (*send_trust)(struct moatd *d, const char *sandbox,
	    const char *binary, const char *sha256, struct moat_cause *cause);
	bool stopping;
	bool shutdown;              /* `moat shutdown`: tear down, always */
	int lock_fd;                /* holds the state directory's lock */
	bool detaching;             /* stopping with live restore */
	unsigned long nofile_soft; /* RLIMIT_NOFILE soft limit at start */
};


struct moatd_sandbox *moatd_sandbox_find(struct moatd *d, const char *name);

/*
 * Stop one sandbox (moatd/daemon.c): with detach its handles are only
 * released (live restore: it runs on for the next moatd), else it is
 * torn down (processes, cgroups, network, state record) and the proxy
 * stops serving it. MOAT_ERR_NOTFOUND when it is not running.
 */
int moatd_sandbox_stop(struct moatd *d, struct moatd_sandbox *s, bool detach);
/* Open its NFLOG socket for the proxy, unless it has one (daemon.c). */
void moatd_sandbox_nflog(struct moatd *d, struct moatd_sandbox *s);
/* Start (create) a stopped sandbox and have the proxy serve it. */
int moatd_sandbox_start(struct moatd *d, struct moatd_sandbox *s,
    struct moat_cause *cause);
/* Tell the proxy about a running sandbox and its active policy, or that
 * one is gone (moatd/proxyctl.c). */
void moatd_proxy_add_sandbox(struct moatd *d, struct moatd_sandbox *s);
void moatd_proxy_remove_sandbox(struct moatd *d, const char *name);

/* Messages to the proxy process (moatd/proxyctl.c). */
int moatd_proxy_install_policy(struct moatd *d, const char *sandbox,
    int version, const char *json, int wait_ms, struct moat_cause *cause);
int moatd_proxy_send_trust(struct moatd *d, const char *sandbox,
    const char *binary, const char *sha256, struct moat_cause *cause);
void moatd_proxy_agent_reply(struct moatd *d, const char *sandbox,
    int64_t req, int r, int64_t id, const char *error);

#endif
