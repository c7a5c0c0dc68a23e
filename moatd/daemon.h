/* moatd's lifecycle, used by moatd/main.c (moatd/daemon.c, sshhooks.c). */
#ifndef MOAT_MOATD_DAEMON_H
#define MOAT_MOATD_DAEMON_H

#include <sys/types.h>

#include "common/errors.h"
#include "moatd/config.h"

struct moatd;

/* Bring everything up in order; on failure the caller calls moatd_stop. */
int moatd_start(struct moatd *d, struct moat_cause *cause);
/* Tear everything down (safe on a half-started moatd). */
void moatd_stop(struct moatd *d);
void moatd_print_ready(const struct moatd *d);
/* SIGHUP: re-read every policy file; apply changed valid ones. */
void moatd_reload_policies(struct moatd *d);
/* Validate every sandbox's policy file (moatd --check); 0 when all load. */
int moatd_check_policies(const struct moatd_config *c);
/* A child that is not the proxy ended (a connection process, ...). */
void moatd_child_exited(struct moatd *d, pid_t pid, int status);

/* moatd/proxyctl.c */
int moatd_proxy_start(struct moatd *d, struct moat_cause *cause);
void moatd_proxy_stop(struct moatd *d);

/* moatd/sshhooks.c: listeners, accept + fork, session records. */
int moatd_ssh_start(struct moatd *d, struct moat_cause *cause);
/*
 * Is id free for a confined process (the proxy, the SSH session
 * processes): no host user and no sandbox has it? MOAT_ERR_INVALID with
 * a cause naming field and the owner otherwise.
 */
int moatd_uid_unused(struct moatd *d, uint32_t id, const char *field,
    struct moat_cause *cause);
void moatd_ssh_stop(struct moatd *d);
/* A sandbox was stopped or started: new monitors must see it so. */
void moatd_ssh_sandboxes_changed(struct moatd *d);
/*
 * Connection process pid ended with wait status `status`: close every
 * session row it left running, saying how it died.
 */
void moatd_sessions_conn_ended(struct moatd *d, pid_t pid, int status);

#endif
