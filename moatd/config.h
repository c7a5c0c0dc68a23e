/*
 * moatd's configuration: a JSON file, or the embedded default that
 * `make run` uses (one sandbox "dev", SSH on 127.0.0.1:2222, state under
 * ./var). Errors name the file and the field; moatd refuses to start on
 * any of them. The format is documented in docs/operator.md.
 */
#ifndef MOAT_MOATD_CONFIG_H
#define MOAT_MOATD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"
#include "policies/policy.h"

/* The SSH session processes' uid and gid unless the config names one. */
#define MOATD_PRIVSEP_UID 59999
/* The proxy process's uid and gid unless the config names one. */
#define MOATD_PROXY_UID 59998

struct moatd_listen {
	char *addr;
	uint16_t port;
};

/*
 * A credential for the proxy to inject (docs/operator.md, "Secrets"):
 * the value comes from moatd's environment variable env or from file,
 * read when the sandbox starts; it never enters the sandbox.
 */
struct moatd_secret {
	char *name;    /* [A-Za-z_][A-Za-z0-9_]*, the placeholder's NAME */
	char *env;     /* or NULL */
	char *file;    /* or NULL */
	char **hosts;  /* where it may be sent */
	size_t nhosts;
};

struct moatd_sandbox_config {
	char *name;
	char *policy_path;     /* NULL: the embedded deny-all preset */
	char *workspace;       /* host directory, created if missing */
	char **keys;           /* authorized keys, "type base64" each */
	size_t nkeys;
	struct moat_resources resources; /* overrides the policy's when set */
	struct moatd_secret *secrets;
	size_t nsecrets;
};

/*
 * Flood caps, per sandbox (docs/operator.md, "Floods"). 0 means no cap
 * (only moatd_new_for_test leaves them so; the config file cannot).
 */
struct moatd_limits {
	int denials_per_minute;     /* denial rows stored per minute */
	int pending_proposals;      /* pending proposals at once */
	int agent_proposals_per_minute; /* policy.local proposal requests */
};

#define MOATD_DEFAULT_DENIALS_PER_MINUTE 600
#define MOATD_DEFAULT_PENDING_PROPOSALS 100
#define MOATD_DEFAULT_AGENT_PROPOSALS_PER_MINUTE 10

struct moatd_config {
	char *source;          /* the file, or "(embedded default)" */
	char *state_dir;
	char *store_path;
	char *control_path;
	int control_gid;       /* -1: root only (0600) */
	struct moatd_listen *listen;
	size_t nlisten;
	char *relay_socket;    /* root-only unix socket; NULL: none */
	struct moatd_listen relay_tcp; /* port 0: off */
	char *relay_secret_path;
	char *hostkey_path;
	uint16_t proxy_port;
	char *hosts_file;      /* resolver override; NULL: system DNS */
	int identity;          /* proxy.identity: MOAT_ATTRIB_* (sandbox.h) */
	char *upstream_ca_file; /* extra roots for upstream TLS; NULL: none */
	int proxy_max_conns;   /* proxy.max_conns: all sandboxes together */
	int proxy_max_conns_per_sandbox; /* proxy.max_conns_per_sandbox */
	/* RLIMIT_NOFILE hard limit moatd and the proxy raise to as root. */
	unsigned long max_open_files;
	char *net_pool;
	int retention_days;
	char *events_path;     /* OCSF-style export; NULL: off, "-": stdout */
	/*
	 * Sandboxes (and the proxy, and SSH sessions) outlive moatd: a
	 * SIGTERM or a crash leaves them running and the next moatd adopts
	 * them. false: a SIGTERM tears everything down and a crash kills
	 * the sandboxes with moatd. `moat shutdown` always tears down.
	 */
	bool live_restore;
	int login_grace_s;
	int max_auth_tries;
	struct moatd_limits limits;
	int max_startups[3];   /* start:rate:full, default 10:30:100 */
	int max_startups_per_source; /* 0: no limit; default 5 */
	uint32_t ssh_privsep_uid; /* uid and gid of SSH session processes */
	uint32_t proxy_uid;    /* uid and gid of the proxy process */
	struct moatd_sandbox_config *sandboxes;
	size_t nsandboxes;
};

/* path NULL: the embedded default. */
int moatd_config_load(const char *path, struct moatd_config **out,
    struct moat_cause *cause);
void moatd_config_free(struct moatd_config *c);

#endif
