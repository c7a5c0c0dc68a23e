/*
 * The sandbox CA: one EC P-256 certificate authority per sandbox, made
 * by moatd (or moat run) when the sandbox is made. The proxy signs the
 * leaf certificates of the TLS connections it terminates with it
 * (proxy/tls.c); the sandbox trusts it through the bundle.
 *
 * moat_ca_create() writes three files into dir (which the caller keeps
 * root-only, 0700):
 *
 *   ca.key         the private key, PEM, mode 0600; it never enters the
 *                  sandbox (only the proxy reads it)
 *   ca.pem         the certificate, PEM, mode 0644
 *   ca-bundle.pem  the system roots (roots, when readable) followed by
 *                  ca.pem, mode 0644
 *
 * Each call makes a new key: a sandbox's CA lives as long as the sandbox.
 */
#ifndef MOAT_PROXY_CA_H
#define MOAT_PROXY_CA_H

#include "common/errors.h"

#define MOAT_CA_KEY "ca.key"
#define MOAT_CA_CERT "ca.pem"
#define MOAT_CA_BUNDLE "ca-bundle.pem"

/*
 * Make the CA for sandbox `name` in dir (existing files are replaced
 * atomically). roots: the system trust store to bundle (NULL: none; a
 * missing file is a warning, and the bundle holds the CA alone).
 * MOAT_ERR_SYSTEM (a write failed, the cause names the file),
 * MOAT_ERR_INTERNAL (OpenSSL refused), MOAT_ERR_NOMEM.
 */
int moat_ca_create(const char *dir, const char *name, const char *roots,
    struct moat_cause *cause);

#endif
