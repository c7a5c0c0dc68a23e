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
struct moatd_proxychan;

struct moatd_sandbox {
	const struct moatd_sandbox_config *cfg;
	struct moatd *owner;
	struct moat_sandbox *sb;    /* NULL in unit tests */
	struct moat_policy *policy; /* current snapshot (one ref) */
	int version;                /* its version in the store */
	char *file_hash;            /* hash of the policy file last read */
	int nflog_fd;               /* bypass monitor socket, or -1 */
	pid_t init_pid;             /* the sandbox's PID 1 (host view), 0 if none */
};

struct moatd {
	struct moatd_config *cfg;
	struct moat_loop *loop;
	struct moat_store *store;
	struct moatd_sandbox *sandboxes;
	size_t nsandboxes;
	struct moatd_aggregator *agg;
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
	/* Wired by moatd/daemon.c to the proxy channel; NULL in tests. */
	void (*push_policy)(struct moatd *d, const struct moatd_sandbox *s);
	int (*send_trust)(struct moatd *d, const char *sandbox,
	    const char *binary, const char *sha256, struct moat_cause *cause);
	bool stopping;
};

struct moatd_sandbox *moatd_sandbox_find(struct moatd *d, const char *name);

/* Messages to the proxy process (no-ops without one; moatd/proxyctl.c). */
void moatd_proxy_push_policy(struct moatd *d, const struct moatd_sandbox *s);
int moatd_proxy_send_trust(struct moatd *d, const char *sandbox,
    const char *binary, const char *sha256, struct moat_cause *cause);

#endif
