/*
 * The policy model: load a JSON policy (OpenShell's schema plus moat's
 * additions, docs/policy.md), validate it, and decide connections.
 *
 * A loaded policy is an immutable, reference-counted snapshot: the proxy
 * holds one reference per connection, so a hot swap never frees a policy
 * that a live connection still decides with. Deciding never allocates.
 *
 * One decision function serves `moat policy check`, `moat policy explain`
 * and the proxy, so what the operator checks is what the proxy does.
 */
#ifndef MOAT_POLICIES_POLICY_H
#define MOAT_POLICIES_POLICY_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"

struct moat_policy;

/* ---- diagnostics: every problem found, not only the first ---- */

enum moat_diag_level {
	MOAT_DIAG_ERROR = 0,   /* the policy is refused */
	MOAT_DIAG_WARNING = 1, /* loads, but probably not what was meant */
	MOAT_DIAG_NOTE = 2,    /* information (a symlinked binary resolved) */
};

struct moat_diag {
	enum moat_diag_level level;
	char *path; /* JSON path: network_policies.npm.endpoints[2].port */
	char *msg;  /* the rule broken, in the user's terms */
};

struct moat_diags {
	struct moat_diag *v;
	size_t n;
	size_t cap;
};

void moat_diags_init(struct moat_diags *d);
void moat_diags_free(struct moat_diags *d); /* frees entries, keeps d */
void moat_diags_add(struct moat_diags *d, enum moat_diag_level level,
    const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
size_t moat_diags_count(const struct moat_diags *d, enum moat_diag_level lvl);

/* ---- loading ---- */

struct moat_policy_opts {
	/*
	 * Root against which binary paths are resolved for symlinks and
	 * existence ("/" or NULL for the host; /proc/PID/root for a sandbox
	 * with its own rootfs).
	 */
	const char *binary_root;
	/* Skip the symlink/existence pass (the fuzzer, tests of pure logic). */
	bool no_fs;
};

/*
 * Parse and validate. On success *out holds a snapshot with one reference.
 * Errors, warnings and notes go to d (may be NULL); any error means
 * MOAT_ERR_INVALID and *out is untouched. `source` names the input in
 * messages (a file name, "operator", "proposal 12").
 */
int moat_policy_load_file(const char *path, const struct moat_policy_opts *o,
    struct moat_policy **out, struct moat_diags *d);
int moat_policy_load_string(const char *json, size_t len, const char *source,
    const struct moat_policy_opts *o, struct moat_policy **out,
    struct moat_diags *d);

struct moat_policy *moat_policy_ref(struct moat_policy *p);
void moat_policy_free(struct moat_policy *p); /* drops one ref; NULL ok */

/*
 * Canonical JSON of the policy as loaded (sorted keys, no whitespace), and
 * the lowercase hex SHA-256 of that text. Owned by the snapshot.
 */
const char *moat_policy_json(const struct moat_policy *p);
const char *moat_policy_hash(const struct moat_policy *p);

/* Pretty JSON (indent 2), for `moat policy show`; caller frees. */
char *moat_policy_json_pretty(const struct moat_policy *p);

/*
 * Merge one network_policies entry (a JSON object {"KEY": {rule}}) into
 * base and validate the result: a new snapshot in *out. A key that
 * exists takes the rule only when the rule has the same endpoints (its
 * binaries are added) or the same binaries (its endpoints are added);
 * otherwise MOAT_ERR_INVALID: the union would grant more than the rule.
 * Used by `moat approve` and policy.local proposals.
 */
int moat_policy_merge_rule(const struct moat_policy *base,
    const char *rule_json, const struct moat_policy_opts *o,
    struct moat_policy **out, struct moat_diags *d);

/*
 * The built-in deny-all policy (policies/presets/deny-all.json): used
 * when no policy file is named.
 */
extern const char moat_policy_default_json[];

/* ---- the static sections, for the sandbox ---- */

enum moat_landlock_compat {
	MOAT_LANDLOCK_BEST_EFFORT = 0,
	MOAT_LANDLOCK_HARD_REQUIREMENT = 1,
};

bool moat_policy_include_workdir(const struct moat_policy *p);
/* NULL-terminated arrays owned by the snapshot. */
const char *const *moat_policy_read_only(const struct moat_policy *p);
const char *const *moat_policy_read_write(const struct moat_policy *p);
enum moat_landlock_compat moat_policy_landlock(const struct moat_policy *p);
/* "sandbox", a numeric id as text, or NULL when not set. */
const char *moat_policy_run_as_user(const struct moat_policy *p);
const char *moat_policy_run_as_group(const struct moat_policy *p);

struct moat_resources {
	uint64_t memory_mb;   /* 0: no limit */
	uint64_t pids_max;    /* 0: no limit */
	uint32_t cpu_percent; /* of one CPU, 1..(100*ncpu); 0: no limit */
};
void moat_policy_resources(const struct moat_policy *p,
    struct moat_resources *out);

/*
 * The places every sandbox can write besides its policy's read_write
 * paths, NULL-terminated: the workspace /sandbox, /tmp, /var/tmp and
 * /dev/shm (sandbox/landlock.c grants exactly these).
 */
extern const char *const moat_policy_sandbox_writable[];

/*
 * Could a process in a sandbox under p (NULL: only the places above)
 * write the binary at path (a policy binary path; a glob counts when it
 * could match inside such a place)? true with where filled ("/tmp",
 * "/srv/x (a read_write path)"): whatever is put there gets the access
 * granted to path. `moat policy check` and proposals warn about it.
 */
bool moat_policy_binary_writable(const struct moat_policy *p,
    const char *path, char *where, size_t len);

/*
 * Is the binary an interpreter (python*, node, bash, ...)? Allowing one
 * allows every script it runs: moat sees the interpreter, not the script.
 */
bool moat_binary_is_interpreter(const char *path);

/* Number of network policies (size report for benchmarks and `check`). */
size_t moat_policy_count(const struct moat_policy *p);
size_t moat_policy_endpoint_count(const struct moat_policy *p);

/* ---- deciding ---- */

/*
 * Who is connecting. exe is the kernel's /proc/PID/exe of the process
 * holding the socket (already resolved); ancestors are the exe paths of
 * its parent, grandparent, ... nearest first. cmdline_paths are collected
 * for messages only and never grant access (argv[0] can lie).
 */
struct moat_caller {
	const char *exe;
	const char *const *ancestors;
	size_t nancestors;
	const char *const *cmdline_paths;
	size_t ncmdline;
};

enum moat_verdict_reason {
	MOAT_REASON_ALLOWED = 0,
	MOAT_REASON_NO_POLICIES,    /* no network_policies at all */
	MOAT_REASON_NO_ENDPOINT,    /* no policy has host:port */
	MOAT_REASON_BINARY,         /* endpoint in policy X, binary not in X */
	MOAT_REASON_BAD_HOST,       /* the host is not a valid name or IP */
	MOAT_REASON_BINARY_CHANGED, /* set by the proxy: TOFU hash mismatch */
	MOAT_REASON_AMBIGUOUS,      /* set by the proxy: socket shared */
	MOAT_REASON_UNKNOWN_CALLER, /* set by the proxy: no owner found */
	MOAT_REASON_SSRF,           /* set by moat_policy_check_addr */
	MOAT_REASON_L7_UNENFORCED,  /* L7 fields moat cannot enforce */
	MOAT_REASON_L7_DENY,        /* a request matched a deny rule */
	MOAT_REASON_L7_NOT_ALLOWED, /* a request matched no allow rule */
	MOAT_REASON_L7_BAD_REQUEST, /* set by the proxy: bad target */
};

struct moat_decision {
	bool allow;
	/*
	 * Allowed only because the endpoint that matched has
	 * "enforcement": "audit"; the caller logs an audit event.
	 */
	bool audit;
	/*
	 * Allowed, and each request must be decided with
	 * moat_policy_decide_request(): the endpoint has L7 rules.
	 */
	bool l7;
	/* The endpoint says "tls": "skip": relay TLS untouched. */
	bool tls_skip;
	enum moat_verdict_reason reason;
	/* The matched policy key (allow), or the policy whose endpoint
	 * matched but not the binary (MOAT_REASON_BINARY); else NULL.
	 * Points into the snapshot. */
	const char *policy;
	/* The endpoint that matched (for moat_policy_check_addr); opaque. */
	const void *endpoint;
	/* One sentence for humans and the 403 body. */
	char text[512];
	/* The host as decided (normalised) and the port, for the SSRF
	 * messages of moat_policy_check_addr. */
	char host[256];
	uint16_t port;
};

/*
 * Decide (caller, host, port). host may be a name (case-folded, a trailing
 * dot dropped) or an IP literal (IPv6 without brackets). Fills *out and
 * returns MOAT_OK; never allocates.
 */
int moat_policy_decide(const struct moat_policy *p,
    const struct moat_caller *c, const char *host, uint16_t port,
    struct moat_decision *out);

/* ---- L7: requests inside an allowed connection ---- */

/*
 * One HTTP request, as the proxy read it from a connection that
 * moat_policy_decide() allowed with l7 set (and every request of any
 * connection the proxy terminates). path is canonical (moat_l7_canon),
 * query the raw text after '?' (NULL or "" when none).
 */
struct moat_l7_request {
	const char *method;
	const char *path;
	const char *query;
	bool encoded_slash; /* the path holds %2F or %5C (moat_l7_canon) */
	bool websocket;     /* an Upgrade: websocket request */
	/* Values of the request's method-override headers
	 * (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override). */
	const char *const *overrides;
	size_t noverrides;
};

/*
 * Decide one request of (caller, host, port): the endpoints that
 * moat_policy_decide() would match, their rules and deny_rules (deny
 * wins), access presets, HEAD as GET, enforcement audit (allow with
 * out->audit and the would-be denial in text). An L4 endpoint of a
 * policy holding the caller allows any request. Where servers read a
 * request differently it must pass every reading: a path is matched
 * with and without its ";parameters", a method with lower-case letters
 * is denied, and a method named by an override header or a "_method"
 * query parameter must be allowed too. Never allocates.
 */
int moat_policy_decide_request(const struct moat_policy *p,
    const struct moat_caller *c, const char *host, uint16_t port,
    const struct moat_l7_request *rq, struct moat_decision *out);

/*
 * Canonicalise an origin-form request target (docs/policy.md, "L7
 * rules") into out: the canonical path, then "?query" as sent. *pathlen
 * is the path's length; *encoded_slash says whether it holds %2F/%5C.
 * MOAT_ERR_INVALID with why for a target no rule may see (bad escapes,
 * backslash, "..;", %00, not a path).
 */
int moat_l7_canon(const char *target, size_t len, char *out, size_t outlen,
    size_t *pathlen, bool *encoded_slash, char *why, size_t whylen);

/*
 * Walk a query string ("a=1&b=%20x"): the next parameter's decoded
 * name and value (truncated to the buffers); false at the end.
 */
bool moat_l7_query_next(const char **q, char *name, size_t nlen,
    char *value, size_t vlen);

/* ---- SSRF: addresses, checked after resolution ---- */

enum moat_addr_class {
	MOAT_ADDR_PUBLIC = 0,
	MOAT_ADDR_INTERNAL,       /* RFC 1918, CGNAT, ULA, test nets, ... */
	MOAT_ADDR_ALWAYS_BLOCKED, /* loopback, link-local, unspecified */
	MOAT_ADDR_METADATA,       /* 169.254.169.254 and mapped forms */
};
enum moat_addr_class moat_addr_classify(const struct sockaddr *sa);
const char *moat_addr_class_name(enum moat_addr_class c);

/*
 * May a connection that d allowed dial address sa? Applies the address
 * modes of docs/policy.md (allowed_ips, IP-literal host, declared exact
 * host unless public_only, default public only). On refusal sets d->allow = false,
 * d->reason = MOAT_REASON_SSRF and d->text, and returns false.
 */
bool moat_policy_check_addr(struct moat_decision *d,
    const struct sockaddr *sa);

/*
 * An address range as allowed_ips holds them (IPv4 mapped into IPv6, so
 * both families compare alike); shared with the proxy's own guard.
 */
struct moat_cidr {
	uint8_t a[16];
	unsigned prefix; /* 0..128, in the mapped space for IPv4 */
};
/* "10.0.0.0/8", "fd00::/8", or one address (a /32 or /128). */
bool moat_cidr_parse(const char *s, struct moat_cidr *out);
/* The single address of sa, as a /128; false for other families. */
bool moat_cidr_from_sockaddr(const struct sockaddr *sa, struct moat_cidr *out);
bool moat_cidr_contains(const struct moat_cidr *c, const struct sockaddr *sa);

/* Host helpers shared with the proxy: normalise (lowercase, drop one
 * trailing dot) into out; false when the name is not a valid host. */
bool moat_host_normalize(const char *in, char *out, size_t outlen);
bool moat_host_is_ip_literal(const char *host);
/*
 * Is host (a name, a wildcard pattern or an IP literal, in any case,
 * with or without one trailing dot) one the proxy always refuses: a
 * loopback or metadata name (localhost and its subdomains,
 * metadata.google.internal) or an always-blocked or metadata address?
 */
bool moat_host_always_refused(const char *host);

#endif
