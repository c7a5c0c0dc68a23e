/*
 * Credentials for the proxy to inject: read when a sandbox starts (from
 * moatd's environment or a file), handed to the proxy process only, and
 * represented in the sandbox by placeholders (NAME=moat:resolve:env:NAME).
 */
#ifndef MOAT_MOATD_SECRETS_H
#define MOAT_MOATD_SECRETS_H

#include <stddef.h>

#include "common/errors.h"
#include "proxy/proxy.h"

struct moatd_secret;

/*
 * Read the values of n configured secrets into *out (n entries, owned;
 * free with moatd_secrets_free). A file's one trailing newline is
 * dropped. MOAT_ERR_INVALID when a variable is unset, a file unreadable
 * or a value empty or holding a line break; the cause names the secret
 * and its source, never the value.
 */
int moatd_secrets_resolve(const struct moatd_secret *cfg, size_t n,
    struct moat_proxy_secret **out, struct moat_cause *cause);
/* Zero the values and free. NULL is fine. */
void moatd_secrets_free(struct moat_proxy_secret *v, size_t n);
/*
 * "NAME=moat:resolve:env:NAME" for each secret, NULL-terminated (the
 * sandbox's fixed variables); free with moatd_secrets_env_free.
 */
char **moatd_secrets_env(const struct moat_proxy_secret *v, size_t n);
void moatd_secrets_env_free(char **env);

#endif
