/*
 * The channel to a proxy process: fork it (no exec; it keeps none of
 * moatd's fds, each sandbox's come with its line), tell it about
 * sandboxes, policies and trusted hashes as JSON lines, and read its denial events and
 * requests back on a loop. Used by moatd and by `moat run` (which acts as
 * the orchestrator of its one run). Wire format: docs/protocols.md.
 */
#ifndef MOAT_MOATD_PROXYCHAN_H
#define MOAT_MOATD_PROXYCHAN_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/errors.h"
#include "common/event.h"
#include "sandbox/sandbox.h"

struct moat_loop;
struct moat_proxy_config;
struct moat_proxy_secret;
struct moat_sandbox;
struct moatd_proxychan;

struct moatd_proxychan_cbs {
	void *arg;
	void (*event)(void *arg, const struct moat_denial_event *ev);
	/* Any line with a "type" (policy_error, proposal, ...); may be NULL. */
	void (*message)(void *arg, json_t *msg);
	/*
	 * An adopted proxy (moatd_proxychan_connect) exited; may be NULL.
	 * A forked one is reaped by its parent (SIGCHLD) instead.
	 */
	void (*exited)(void *arg);
};

/*
 * Fork the proxy process; it keeps none of the caller's fds but its
 * channel, and confines itself as pc says (run_uid: docs/proxy.md,
 * "Privileges"). The child's comm is "moat-proxy".
 */
int moatd_proxychan_start(struct moat_loop *l,
    const struct moat_proxy_config *pc,
    const struct moatd_proxychan_cbs *cbs, struct moatd_proxychan **out,
    struct moat_cause *cause);
/*
 * Live restore: connect to a proxy that a previous moatd started with
 * ctl_path (it must run as uid, the proxy's, or root; its pidfd is
 * watched, see cbs->exited). MOAT_ERR_NOTFOUND when nobody answers on
 * path, MOAT_ERR_DENIED when the peer is another user.
 */
int moatd_proxychan_connect(struct moat_loop *l, const char *path, uid_t uid,
    const struct moatd_proxychan_cbs *cbs, struct moatd_proxychan **out,
    struct moat_cause *cause);
/*
 * The proxy's "ready" line (borrowed), waiting up to timeout_ms for it:
 * its pid, "proto", config and the sandboxes it serves
 * (docs/protocols.md). NULL when it did not come.
 */
const json_t *moatd_proxychan_ready(struct moatd_proxychan *ch,
    int timeout_ms);
/* Connected to (adopted), not forked. */
bool moatd_proxychan_adopted(const struct moatd_proxychan *ch);
/*
 * End the process (SIGTERM; a forked one is reaped, an adopted one
 * waited for by its pidfd, at most MOATD_PROXYCHAN_STOP_MS, then
 * SIGKILL) and free. NULL is fine.
 */
void moatd_proxychan_stop(struct moatd_proxychan *ch);
#define MOATD_PROXYCHAN_STOP_MS 5000
/* Close the channel and free, leaving the process running (live
 * restore: the next moatd connects to it). NULL is fine. */
void moatd_proxychan_detach(struct moatd_proxychan *ch);
pid_t moatd_proxychan_pid(const struct moatd_proxychan *ch);
/* The process was reaped by someone else (SIGCHLD handler): forget it. */
void moatd_proxychan_reaped(struct moatd_proxychan *ch);

int moatd_proxychan_send(struct moatd_proxychan *ch, json_t *msg); /* steals */
/*
 * Have the proxy serve a sandbox: its addresses, and its fds (a
 * sock_diag socket made in its netns, attribution maps and the links
 * that keep their programs attached, nflog_fd: its NFLOG socket or -1)
 * travel along the line; trust
 * (stolen, may be NULL) is a JSON array of {"binary", "sha256"} the
 * proxy trusts before it listens; ca_dir: the sandbox's CA files
 * (proxy/ca.h), or NULL for none. 0, or MOAT_ERR_* when the line could
 * not go.
 */
int moatd_proxychan_sandbox(struct moatd_proxychan *ch, const char *name,
    struct moat_sandbox *sb, int nflog_fd, json_t *trust, const char *ca_dir);
/* How long a line with fds waits for earlier queued lines to go. */
#define MOATD_PROXYCHAN_FLUSH_MS 2000
/* Say how the sandbox's callers are identified (mode: as configured). */
void moatd_log_identity(const char *name, const struct moat_sandbox *sb,
    enum moat_attrib_mode mode);
/* The sandbox's credentials (values cross the channel, nowhere else). */
void moatd_proxychan_secrets(struct moatd_proxychan *ch, const char *name,
    const struct moat_proxy_secret *v, size_t n);
int moatd_proxychan_policy(struct moatd_proxychan *ch, const char *sandbox,
    int version, const char *json);
/*
 * Wait up to timeout_ms for lines from the proxy and handle what came
 * (callbacks run as from the loop). 0, or MOAT_ERR_NOTFOUND once the
 * channel is closed. For a caller that needs an answer before it goes
 * on; everyone else lets the loop read.
 */
int moatd_proxychan_wait(struct moatd_proxychan *ch, int timeout_ms);
int moatd_proxychan_trust(struct moatd_proxychan *ch, const char *sandbox,
    const char *binary, const char *sha256);

#endif
