/*
 * The relay preface: one line a trusted relay (`moat ssh-proxy`, a
 * gateway) sends before the SSH stream on the relay socket, proving it
 * holds the relay secret and naming the sandbox (docs/ssh.md):
 *
 *	MOAT1 <sandbox> <unix-ts> <nonce-hex32> <hmac-hex64>\n
 *
 * hmac = HMAC-SHA256(key = secret text, msg = "MOAT1|sandbox|ts|nonce").
 * The server answers "OK\n" and then speaks SSH, or "ERR <reason>\n" and
 * closes. A client must not send SSH bytes before reading "OK\n".
 *
 * Replays: every connection has its own monitor process, which checks
 * the line (the session process only reads it), so the nonce cache
 * lives in a MAP_SHARED anonymous mapping made by the listening parent
 * before it forks; each monitor checks and inserts its nonce under a
 * process-shared robust mutex, so a second use of a
 * nonce is refused whichever process sees it, and a process killed while
 * holding the lock does not wedge the others. Entries expire when their
 * timestamp leaves the skew window (after that the timestamp check
 * refuses the line anyway). A full cache refuses new prefaces.
 */
#ifndef MOAT_SSHD_RELAY_H
#define MOAT_SSHD_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"

#define MOAT_RELAY_LINE_MAX 1024

struct moat_relay_cache;

/* Shared nonce cache for `slots` nonces (0: 16384); call before forking. */
int moat_relay_cache_new(size_t slots, struct moat_relay_cache **out,
    struct moat_cause *cause);
void moat_relay_cache_free(struct moat_relay_cache *rc);

/*
 * Client side: write the preface line (with its '\n') for sandbox into
 * out. Returns its length, or a negative MOAT_ERR_* code.
 */
int moat_relay_preface_make(const char *sandbox, const char *secret,
    char *out, size_t len);

/*
 * Check one line (without '\n') at wall time `now`: fields, skew, HMAC
 * (constant time), then the nonce against the cache. On success the
 * sandbox name is copied to sandbox (sblen bytes).
 */
int moat_relay_preface_verify(const char *line, const char *secret,
    int skew_s, int64_t now, struct moat_relay_cache *rc, char *sandbox,
    size_t sblen, struct moat_cause *cause);

/*
 * Server side, on the blocking connection fd: read the line (at most
 * MOAT_RELAY_LINE_MAX bytes, never past its '\n') into line (size at
 * least MOAT_RELAY_LINE_MAX + 1), without '\n' or a trailing '\r'. A
 * longer line is answered "ERR line too long" here. The caller verifies
 * it (the monitor holds the secret) and answers "OK\n" or
 * "ERR <reason>\n".
 */
int moat_relay_preface_read(int fd, char *line, size_t size,
    struct moat_cause *cause);

#endif
