/*
 * Events that cross process boundaries (proxy -> moatd, bypass monitor ->
 * moatd), framed as one JSON object per line over a socketpair. The
 * wire format is documented in docs/protocols.md.
 *
 * Fixed-size fields, so an event's JSON line is bounded and always fits
 * the channel. Text from the sandbox (paths, hosts, reasons) is set with
 * moat_denial_event_set(): what does not fit is cut, bytes that are not
 * UTF-8 are escaped, and the event says which fields were, so nothing
 * is dropped and nothing is changed silently.
 */
#ifndef MOAT_COMMON_EVENT_H
#define MOAT_COMMON_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"

struct json_t; /* jansson's, for the JSON form */

#define MOAT_EV_MAX_ANCESTORS 8

/*
 * The text fields, for the per-field marks below. The numbers are kept
 * in the store (bit i is field i): append, never renumber.
 */
enum moat_ev_field {
	MOAT_EVF_SANDBOX = 0,
	MOAT_EVF_STAGE,
	MOAT_EVF_BINARY,
	MOAT_EVF_SHA256,
	MOAT_EVF_ANCESTORS,	/* one more ancestor; cut: some left out */
	MOAT_EVF_HOST,
	MOAT_EVF_IP,
	MOAT_EVF_PROTOCOL,
	MOAT_EVF_REASON,
	MOAT_EVF_COUNT,
};
#define MOAT_EVF_BIT(f) (1u << (f))

/* One denial (or an audit-mode allow, stage "audit"). */
struct moat_denial_event {
	int64_t ts_ms;        /* wall clock, ms since the epoch */
	char sandbox[64];
	char stage[16];       /* connect, forward, ssrf, bypass, identity, audit,
				 l7, credential, tls */
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
	uint32_t cut;         /* MOAT_EVF_BIT of each field cut to fit */
	uint32_t escaped;     /* ... of each field whose bytes that were not
			       * UTF-8 now read \xNN */
	/* L7 (stage l7, credential, audit of a request): the request's
	 * method and canonical path, never its query; "" otherwise. */
	char method[16];
	char path[256];
};

/*
 * Set text field f of ev from src (MOAT_EVF_ANCESTORS appends one).
 * Bytes that are not UTF-8 become \xNN (the field is marked escaped);
 * text longer than the field keeps its start and its end around "..."
 * (marked cut), never split inside a character. An ancestor beyond
 * MOAT_EV_MAX_ANCESTORS marks the ancestors cut.
 */
void moat_denial_event_set(struct moat_denial_event *ev,
    enum moat_ev_field f, const char *src);

/* The field's name in JSON and for the operator ("binary", ...). */
const char *moat_denial_event_field(enum moat_ev_field f);

/*
 * For the operator: "cut: binary, reason; not UTF-8: binary", or ""
 * when the event's text is whole (buf always NUL-terminated).
 */
void moat_denial_event_marks(const struct moat_denial_event *ev, char *buf,
    size_t len);

/* The names of the fields in bits (ev->cut or ev->escaped), a new JSON
 * array. */
struct json_t *moat_denial_event_marks_json(uint32_t bits);

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
