/*
 * Events that cross process boundaries (proxy -> moatd, bypass monitor ->
 * moatd), framed as one JSON object per line over a socketpair. The
 * wire format is documented in docs/protocols.md.
 *
 * Fixed-size fields: building an event never allocates, so the proxy
 * can fill one per denied connection cheaply.
 */
#ifndef MOAT_COMMON_EVENT_H
#define MOAT_COMMON_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"

struct json_t; /* jansson's, for the JSON form */

#define MOAT_EV_MAX_ANCESTORS 8

/* One denial (or an audit-mode allow, stage "audit"). */
struct moat_denial_event {
	int64_t ts_ms;        /* wall clock, ms since the epoch */
	char sandbox[64];
	char stage[16];       /* connect, forward, ssrf, bypass, identity, audit */
	char binary[256];     /* exe of the caller, "" when unknown */
	char sha256[65];      /* hex of the binary, "" when unknown */
	char ancestors[MOAT_EV_MAX_ANCESTORS][256]; /* nearest first */
	int nancestors;
	int pid;              /* in the sandbox's pid namespace view, or host */
	int uid;
	char host[256];       /* name as requested, or the IP */
	char ip[46];          /* address dialled or attempted, "" if none */
	int port;
	char protocol[8];     /* tcp, udp, icmp, ... */
	char reason[512];
	int policy_version;   /* version that decided, 0 when unknown */
};

/*
 * ev as a JSON object (docs/protocols.md, "denial"); a new reference,
 * NULL when out of memory.
 */
struct json_t *moat_denial_event_json(const struct moat_denial_event *ev);

/*
 * Fill ev from a decoded object (unknown members, such as "type", are
 * ignored). MOAT_ERR_INVALID with a cause when sandbox or stage is
 * missing.
 */
int moat_denial_event_from_json(struct json_t *o,
    struct moat_denial_event *ev, struct moat_cause *cause);

/* moat_jsonl_decode() then moat_denial_event_from_json(). */
int moat_denial_event_decode(const char *line, size_t len,
    struct moat_denial_event *ev, struct moat_cause *cause);

/* Copy a string into a fixed field, truncating, always NUL-terminated. */
void moat_strlcpy(char *dst, const char *src, size_t size);

#endif
