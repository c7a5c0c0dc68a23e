/*
 * `moat run`'s orchestration of its one sandbox: the proxy process, the
 * bypass monitor, and the run's denials, written to the store when the
 * command ends (moat run acts as the orchestrator of its one run, so
 * `moat denials` shows them afterwards).
 */
#ifndef MOAT_MOATD_ONESHOT_H
#define MOAT_MOATD_ONESHOT_H

#include <sys/types.h>

#include "common/errors.h"

struct moat_policy;
struct moat_sandbox;
struct moatd_oneshot;

struct moat_proxy_secret;

/* What the run's proxy needs to look into TLS (all may be NULL/0). */
struct moatd_oneshot_tls {
	const char *ca_dir;      /* the sandbox CA's files (proxy/ca.h) */
	const char *upstream_ca; /* extra roots for upstreams */
	const struct moat_proxy_secret *secrets;
	size_t nsecrets;
};

/*
 * A CA for a run's sandbox, in a new private directory under /tmp
 * (*dir, malloc'd); moatd_oneshot_ca_remove deletes it and frees dir.
 */
int moatd_oneshot_ca(const char *name, char **dir, struct moat_cause *cause);
void moatd_oneshot_ca_remove(char *dir);

/* Start the proxy for sb with policy p (hosts_file may be NULL). */
int moatd_oneshot_start(struct moat_sandbox *sb, const char *name,
    const struct moat_policy *p, const char *hosts_file,
    const struct moatd_oneshot_tls *tls, struct moatd_oneshot **out,
    struct moat_cause *cause);
/*
 * Serve the proxy and the bypass monitor until child exits; *status is
 * its wait status. Events that arrive are kept for moatd_oneshot_finish.
 */
int moatd_oneshot_wait(struct moatd_oneshot *o, pid_t child, int *status);
/*
 * Stop the proxy, then write the run's denials to the store at
 * store_path (created if missing); NULL skips storing. Frees o.
 */
int moatd_oneshot_finish(struct moatd_oneshot *o, const char *store_path,
    struct moat_cause *cause);

#endif
