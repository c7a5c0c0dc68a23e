/*
 * The `moat` side of moatd's control socket: one JSON request line, one
 * JSON reply line (docs/control.md). Changes (approve, reject, policy
 * set) go through here; read-only commands read the store directly.
 */
#ifndef MOAT_CLI_CONTROL_H
#define MOAT_CLI_CONTROL_H

#include <jansson.h>

#include "common/errors.h"

struct moat_store;

/*
 * Send req to moatd at path (NULL: moat_cli_control_path()) and wait for
 * its reply (*reply: a new reference). MOAT_ERR_SYSTEM with a cause like
 * "cannot reach moatd at var/moatd.sock: ... (is moatd running?)".
 * A reply with "ok": false is still MOAT_OK here; see
 * moat_cli_control_report.
 */
int moat_cli_control_call(const char *path, json_t *req, json_t **reply,
    struct moat_cause *cause);

/*
 * Print a failed reply's error and diags to stderr as "moat CMD: ..."
 * and return the exit code for it (MOAT_EXIT_NO or MOAT_EXIT_USAGE).
 */
int moat_cli_control_report(const char *cmd, json_t *reply);

/* Print "moat CMD: MSG" to stderr with MSG escaped (common/escape.h). */
void moat_cli_eprint(const char *cmd, const char *msg);

/* Open the store read-only at path (NULL: moat_cli_store_path()),
 * printing why not; returns NULL on failure. */
struct moat_store *moat_cli_store_open(const char *cmd, const char *path);

/* Parse a positive decimal id; false if s is not one. */
int moat_cli_parse_id(const char *s, long long *out);

#endif
