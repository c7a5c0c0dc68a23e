/*
 * The control socket's internals (moatd/control.c and moatd/ctl-*.c).
 * One JSON object per line each way; docs/control.md is the protocol.
 * Internal to moatd/.
 */
#ifndef MOAT_MOATD_CTL_H
#define MOAT_MOATD_CTL_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/errors.h"
#include "policies/policy.h"

struct moatd;

/* Who is asking: from SO_PEERCRED, never from the request. */
struct ctl_peer {
	struct moatd *d;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char who[64];    /* user name, or "uid:N" */
	bool can_change; /* uid 0 or member of the control group */
};

/*
 * A handler reads req, adds its fields to reply and returns 0; or returns
 * a MOAT_ERR_* with cause (and diags for a refused policy) filled.
 */
typedef int ctl_handler(const struct ctl_peer *p, json_t *req, json_t *reply,
    struct moat_diags *diags, struct moat_cause *cause);

ctl_handler moatd_ctl_sandboxes;
ctl_handler moatd_ctl_sandboxes_stop;
ctl_handler moatd_ctl_sandboxes_start;
ctl_handler moatd_ctl_shutdown;
ctl_handler moatd_ctl_policy_show;
ctl_handler moatd_ctl_policy_set;
ctl_handler moatd_ctl_policy_history;
ctl_handler moatd_ctl_policy_diff;
ctl_handler moatd_ctl_proposals_list;
ctl_handler moatd_ctl_proposals_approve;
ctl_handler moatd_ctl_proposals_reject;

/*
 * Answer one request line: the reply JSON text without '\n' (caller
 * frees). Never fails except for memory (NULL).
 */
char *moatd_control_handle(const struct ctl_peer *p, const char *line,
    size_t len);

/* Helpers for handlers: required string / optional int fields. */
const char *ctl_str(json_t *req, const char *key, struct moat_cause *cause);
int ctl_sandbox(const struct ctl_peer *p, json_t *req, const char **out,
    struct moat_cause *cause);
json_t *ctl_diags_json(const struct moat_diags *diags);

#endif
