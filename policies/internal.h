/*
 * Private to policies/: the snapshot's layout and the helpers the loader,
 * the validator and the decider share. Nothing outside policies/ includes
 * this file; everyone else uses policies/policy.h.
 *
 * Everything the decider needs is computed at load (lowercase hosts,
 * split labels, parsed addresses, resolved binary paths), so deciding
 * only compares.
 */
#ifndef MOAT_POLICIES_INTERNAL_H
#define MOAT_POLICIES_INTERNAL_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "policies/policy.h"

#define POL_MAX_PATH 4096
#define POL_MAX_FS_PATHS 256
#define POL_HOST_MAX 253
#define POL_MAX_LABELS 128
#define POL_JPATH 512 /* room for one JSON path in a message */

/* An address as 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d). */
struct pol_ip {
	uint8_t a[16];
};

struct pol_cidr {
	struct pol_ip ip; /* host bits cleared */
	unsigned prefix;  /* 0..128, in the mapped space for IPv4 */
};

struct pol_label {
	const char *s; /* points into pol_host.name */
	size_t len;
};

enum pol_host_kind {
	POL_HOST_ANY = 0, /* empty host; allowed_ips is set */
	POL_HOST_EXACT,   /* a name, lowercase, no trailing dot */
	POL_HOST_IP,      /* an IP literal */
	POL_HOST_WILD,    /* a name with '*' labels */
};

struct pol_host {
	enum pol_host_kind kind;
	char *name; /* normalised text; "" for POL_HOST_ANY */
	size_t len;
	struct pol_ip ip;          /* POL_HOST_IP */
	bool deep;                 /* POL_HOST_WILD: first label is "**" */
	struct pol_label *labels;  /* POL_HOST_WILD */
	size_t nlabels;
};

enum pol_access {
	POL_ACCESS_NONE = 0,
	POL_ACCESS_READ_ONLY,
	POL_ACCESS_READ_WRITE,
	POL_ACCESS_FULL,
};

struct pol_rule;

/* One query matcher: the parameter's decoded name, any-of globs. */
struct pol_qmatch {
	char *name;
	char **globs;
	size_t nglobs;
};

/* One L7 rule (an allow or a deny): every part given must match. */
struct pol_l7rule {
	char *method;          /* NULL: any method */
	char *path;            /* canonical glob, NULL: any path */
	struct pol_seg *segs;  /* path split for pol_segs_match */
	size_t nsegs;
	struct pol_qmatch *query;
	size_t nquery;
};

enum pol_l7kind {
	POL_L7_NONE = 0,  /* plain L4: no request is looked at */
	POL_L7_REST,      /* rest: every request decided */
	POL_L7_WEBSOCKET, /* websocket: the upgrade decided, frames relayed */
	POL_L7_UNENFORCED, /* fields moat cannot enforce: fail closed */
};

struct pol_endpoint {
	const struct pol_rule *rule; /* the network policy holding it */
	size_t index;                /* in rule->eps, for messages */
	struct pol_host host;
	uint16_t *ports;
	size_t nports;
	char *protocol; /* "" for plain L4 */
	enum pol_access access;
	bool has_rules;
	/* How requests on it are decided; POL_L7_UNENFORCED names its
	 * reason in l7why ("protocol graphql", ...) and fails closed. */
	enum pol_l7kind l7;
	const char *l7why;
	struct pol_l7rule *allow; /* rules[].allow */
	size_t nallow;
	struct pol_l7rule *deny;  /* deny_rules */
	size_t ndeny;
	struct pol_seg *psel;     /* the path selector, split */
	size_t npsel;
	bool audit;     /* enforcement "audit"; moat's default is enforce */
	bool tls_skip;
	bool allow_encoded_slash;
	char *path;     /* L7 path selector, or NULL */
	struct pol_cidr *allowed; /* allowed_ips */
	size_t nallowed;
	/*
	 * "public_only": an exact host reaches public addresses only
	 * (internal ones need allowed_ips); rules from proposals carry it.
	 */
	bool public_only;
};

struct pol_seg {
	const char *s; /* points into pol_binary.path */
	size_t len;
	bool deep; /* the whole segment is "**" */
};

struct pol_binary {
	char *path;
	bool glob;
	struct pol_seg *segs; /* glob only */
	size_t nsegs;
	char *resolved; /* symlink target when it differs from path, or NULL */
};

struct pol_rule {
	char *key;
	char *name;
	struct pol_endpoint *eps;
	size_t neps;
	struct pol_binary *bins;
	size_t nbins;
	bool any_symlink; /* some binary resolved to another path */
};

struct moat_policy {
	unsigned refs;
	char *json;
	char hash[65];
	bool include_workdir;
	char **ro; /* NULL-terminated */
	char **rw;
	enum moat_landlock_compat landlock;
	char *run_as_user;
	char *run_as_group;
	struct moat_resources res;
	struct pol_rule *rules; /* sorted by key */
	size_t nrules;
	size_t nendpoints;
};

/* host.c */
/* Validate and compile a policy host; on failure *err says why (no path). */
bool pol_host_compile(const char *raw, struct pol_host *h, char *err,
    size_t errlen);
void pol_host_clear(struct pol_host *h);
/* The request's host split for matching; filled by pol_req_init. */
struct pol_req {
	const char *name; /* normalised */
	size_t len;
	bool is_ip;
	struct pol_ip ip;
	size_t nlabels;
	struct pol_label labels[POL_MAX_LABELS];
};
bool pol_req_init(struct pol_req *r, const char *host, char *buf,
    size_t buflen);
bool pol_host_match(const struct pol_host *h, const struct pol_req *r);
bool pol_glob_segment(const char *p, size_t pl, const char *t, size_t tl);

/* binary.c */
/*
 * Split a '/'-path into segments pointing into path ("**" as a whole
 * segment is deep); false on ENOMEM. Match: a deep segment matches
 * zero or more segments, any other one segment with '*' inside it.
 */
bool pol_segs_compile(const char *path, struct pol_seg **out, size_t *n);
bool pol_segs_match(const struct pol_seg *segs, size_t nsegs,
    const char *text);
bool pol_binary_compile(const char *raw, struct pol_binary *b, char *err,
    size_t errlen);
void pol_binary_clear(struct pol_binary *b);
bool pol_has_dotdot(const char *path);
bool pol_binary_match(const struct pol_binary *b, const char *exe);
/* moat_policy_binary_writable on a compiled binary and read_write list. */
bool pol_binary_writable(const struct pol_binary *b, const char *const *rw,
    char *where, size_t len);
/*
 * Is the binary (resolved; not a glob) or a directory above it owned by
 * uid, looked at under rootfd? true with which filled.
 */
bool pol_binary_owned_by(int rootfd, const struct pol_binary *b, uid_t uid,
    char *which, size_t len);
enum pol_resolve {
	POL_RESOLVE_SAME = 0, /* exists, not a symlink */
	POL_RESOLVE_LINK,     /* *out holds the target */
	POL_RESOLVE_MISSING,
	POL_RESOLVE_ERROR,    /* err says why */
};
enum pol_resolve pol_binary_resolve(int rootfd, const char *path, char **out,
    char *err, size_t errlen);

/* addr.c */
bool pol_ip_parse(const char *s, struct pol_ip *ip);
void pol_ip_format(const struct pol_ip *ip, char *out, size_t len);
bool pol_cidr_parse(const char *s, struct pol_cidr *c);
bool pol_cidr_contains(const struct pol_cidr *c, const struct pol_ip *ip);
/* The name of an always-blocked or metadata range c overlaps, or NULL. */
const char *pol_cidr_blocked_overlap(const struct pol_cidr *c);
enum moat_addr_class pol_ip_classify(const struct pol_ip *ip);
/*
 * The SSRF checks decide() applies to an allowed request before any
 * resolution: a blocked name, a control-plane port, and a literal host's
 * own address, with the mode of d->endpoint. On refusal d is denied with
 * MOAT_REASON_SSRF; returns d->allow.
 */
bool pol_ssrf_request(struct moat_decision *d, const struct pol_req *r);
/* An endpoint every connection to which is refused (load warnings):
 * true with the reason in why. */
bool pol_endpoint_never(const struct pol_endpoint *ep, char *why,
    size_t len);
/* The control-plane service ep's mode refuses on port, or NULL. */
const char *pol_endpoint_port_refused(const struct pol_endpoint *ep,
    uint16_t port);

/* load.c: the state of one load, shared with load-net.c */
struct pol_ctx {
	struct moat_diags *d;
	const struct moat_policy_opts *o;
	struct moat_policy *p;
	int rootfd; /* binary_root, or -1 with no_fs */
	bool oom;
};
/* Build a snapshot from a parsed document (borrowed); d is not NULL. */
int pol_load_doc(json_t *doc, const struct moat_policy_opts *o,
    struct moat_policy **out, struct moat_diags *d);
void pol_policy_destroy(struct moat_policy *p);
void pol_path(char *out, size_t n, const char *parent, const char *key);
/* snprintf for JSON paths: a path cut short is fine in a message. */
void pol_pathf(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A member of obj, or NULL when absent or (an error) of another type;
 * JSON_TRUE stands for either boolean. */
json_t *pol_get(struct pol_ctx *c, json_t *obj, const char *key,
    const char *parent, json_type type);
bool pol_get_uint(struct pol_ctx *c, json_t *obj, const char *key,
    const char *parent, uint64_t max, uint64_t *out);
void pol_err(struct pol_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pol_warn(struct pol_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pol_note(struct pol_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Report every key of obj not in the NULL-terminated list. */
void pol_check_keys(struct pol_ctx *c, json_t *obj, const char *path,
    const char *const *known);
char *pol_strdup(struct pol_ctx *c, const char *s);
void *pol_calloc(struct pol_ctx *c, size_t n, size_t size);

/* l7.c */
/* Load rules (allow: the {"allow": {...}} form) or deny_rules into
 * *out for endpoint ep of protocol proto. */
void pol_l7_load(struct pol_ctx *c, json_t *arr, const char *path,
    bool allow, struct pol_endpoint *ep);
void pol_l7_clear(struct pol_endpoint *ep);
/* Compile a path glob (canonicalised); false with err. */
bool pol_l7_path_compile(const char *raw, char **path, struct pol_seg **segs,
    size_t *nsegs, char *err, size_t errlen);
enum pol_l7verdict {
	POL_L7_ALLOW = 0, /* an allow rule (or the access preset) matched */
	POL_L7_DENIED,    /* a deny rule matched */
	POL_L7_NOMATCH,   /* no allow rule matched */
	POL_L7_SKIP,      /* the path selector excludes this request */
};
/*
 * Judge rq against ep. plain: rq->path without its ";parameters" (NULL
 * when it has none): a server may read the path either way, so the
 * request passes only if both readings do and is denied if either is.
 */
enum pol_l7verdict pol_l7_judge(const struct pol_endpoint *ep,
    const struct moat_l7_request *rq, const char *plain);
/*
 * The canonical path with each segment's ";parameters" dropped (Tomcat,
 * Jetty and Spring route on that) and the empty segments this leaves
 * collapsed, into out. 1 it differs, 0 it is the same, -1 too long.
 */
int pol_l7_plain_path(const char *path, char *out, size_t outlen);

/* load-net.c */
void pol_load_network(struct pol_ctx *c, json_t *obj);
void pol_rule_clear(struct pol_rule *r);

#endif
