#include <sys/stat.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "sandbox/sandbox.h"
#include "moatd/config.h"
#include "proxy/proxy.h"


/* What the embedded default looks like as a file (docs/operator.md). */
static const char default_config_json[] =
    "{\"state_dir\":\"var\","
    "\"listen\":[{\"addr\":\"127.0.0.1\",\"port\":2222}],"
    "\"sandboxes\":[{\"name\":\"dev\",\"workspace\":\"var/workspaces/dev\"}]}";

struct cfgctx {
	const char *file;
	struct moat_cause *cause;
};

static int
fail(struct cfgctx *x, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
fail(struct cfgctx *x, const char *field, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	moat_cause_set(x->cause, "%s: %s: %s", x->file, field, msg);
	return MOAT_ERR_INVALID;
}

static int
check_keys(struct cfgctx *x, json_t *obj, const char *where,
    const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				ok = true;
		if (!ok) {
			char field[160];
			snprintf(field, sizeof(field), "%s%s%s", where,
			    *where ? "." : "", key);
			return fail(x, field, "unknown field");
		}
	}
	return MOAT_OK;
}

static int
get_str(struct cfgctx *x, json_t *obj, const char *key, const char *field,
    char **dst)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return MOAT_OK;
	if (!json_is_string(v) || json_string_length(v) == 0)
		return fail(x, field, "must be a non-empty string");
	free(*dst);
	if ((*dst = strdup(json_string_value(v))) == NULL)
		return MOAT_ERR_NOMEM;
	return MOAT_OK;
}

static int
get_int(struct cfgctx *x, json_t *obj, const char *key, const char *field,
    long long lo, long long hi, long long *dst)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return MOAT_OK;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return fail(x, field, "must be an integer in %lld..%lld", lo,
		    hi);
	*dst = json_integer_value(v);
	return MOAT_OK;
}

/* proxy.identity: "auto" (default), "bpf" (required), "proc" (no BPF). */
static int
get_identity(struct cfgctx *x, json_t *proxy, int *dst)
{
	static const struct {
		const char *name;
		enum moat_attrib_mode mode;
	} modes[] = {
		{ "auto", MOAT_ATTRIB_AUTO },
		{ "bpf", MOAT_ATTRIB_REQUIRE },
		{ "proc", MOAT_ATTRIB_OFF },
	};
	json_t *v = json_object_get(proxy, "identity");

	if (v == NULL || json_is_null(v))
		return MOAT_OK;
	for (size_t i = 0; json_is_string(v) && i < MOAT_NELEM(modes); i++)
		if (strcmp(json_string_value(v), modes[i].name) == 0) {
			*dst = (int)modes[i].mode;
			return MOAT_OK;
		}
	return fail(x, "proxy.identity", "must be \"auto\", \"bpf\" or "
	    "\"proc\"");
}

static int
parse_listen(struct cfgctx *x, json_t *v, const char *field,
    struct moatd_listen *l)
{
	static const char *const keys[] = { "addr", "port", NULL };
	long long port = 0;
	int r;

	if (!json_is_object(v))
		return fail(x, field, "must be an object {addr, port}");
	if ((r = check_keys(x, v, field, keys)) != 0)
		return r;
	l->addr = strdup("127.0.0.1");
	if (l->addr == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = get_str(x, v, "addr", field, &l->addr)) != 0)
		return r;
	if ((r = get_int(x, v, "port", field, 1, 65535, &port)) != 0)
		return r;
	if (port == 0)
		return fail(x, field, "port is required");
	l->port = (uint16_t)port;
	return MOAT_OK;
}

/* The invoking user's home: SUDO_USER's when run through sudo. */
static const char *
user_home(void)
{
	const char *su = getenv("SUDO_USER");
	struct passwd *pw = NULL;

	if (su != NULL && *su != '\0' && (pw = getpwnam(su)) != NULL)
		return pw->pw_dir;
	if (getenv("HOME") != NULL)
		return getenv("HOME");
	pw = getpwuid(getuid());
	return pw != NULL ? pw->pw_dir : "/";
}

static int
add_key(struct moatd_sandbox_config *sb, const char *line)
{
	char **nk;
	const char *p = line;
	size_t n;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return MOAT_OK;
	/* Keep "type base64"; drop the comment. */
	n = strcspn(p, " \t");
	n += strspn(p + n, " \t");
	n += strcspn(p + n, " \t\r\n");
	if ((nk = realloc(sb->keys, (sb->nkeys + 1) * sizeof(*nk))) == NULL)
		return MOAT_ERR_NOMEM;
	sb->keys = nk;
	if ((sb->keys[sb->nkeys] = strndup(p, n)) == NULL)
		return MOAT_ERR_NOMEM;
	sb->nkeys++;
	return MOAT_OK;
}

static bool
looks_like_key(const char *s)
{
	return strncmp(s, "ssh-", 4) == 0 || strncmp(s, "ecdsa-", 6) == 0 ||
	    strncmp(s, "sk-", 3) == 0;
}

/* A key file (authorized_keys format or a single .pub). */
static int
load_key_file(struct cfgctx *x, const char *field, const char *path,
    struct moatd_sandbox_config *sb)
{
	char full[4096], *text = NULL, *save = NULL;
	struct moat_cause c2 = { { 0 } };
	int r;

	if (path[0] == '~' && path[1] == '/')
		snprintf(full, sizeof(full), "%s/%s", user_home(), path + 2);
	else
		snprintf(full, sizeof(full), "%s", path);
	if ((r = moat_read_file(full, 1 << 20, &text, NULL, &c2)) != 0)
		return fail(x, field, "%s", c2.msg);
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if ((r = add_key(sb, line)) != 0)
			break;
	}
	free(text);
	return r;
}

/* The embedded default's keys: every ~/.ssh/id_*.pub of the user. */
static int
default_keys(struct moatd_sandbox_config *sb)
{
	static const char *const names[] = { "id_ed25519.pub", "id_ecdsa.pub",
		"id_rsa.pub", "id_ed25519_sk.pub", "id_ecdsa_sk.pub" };
	const char *env = getenv("MOAT_AUTHORIZED_KEYS");
	struct cfgctx x = { "(embedded default)", NULL };
	char path[4096];

	if (env != NULL && *env != '\0')
		return load_key_file(&x, "MOAT_AUTHORIZED_KEYS", env, sb);
	for (size_t i = 0; i < MOAT_NELEM(names); i++) {
		snprintf(path, sizeof(path), "%s/.ssh/%s", user_home(),
		    names[i]);
		if (access(path, R_OK) == 0)
			load_key_file(&x, "keys", path, sb);
	}
	return MOAT_OK;
}

static bool
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

static bool
secret_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 128 || isdigit((unsigned char)*s))
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* "secrets": {"NAME": {"env": "VAR" | "file": "PATH", "hosts": [...]}} */
static int
parse_secrets(struct cfgctx *x, json_t *obj, const char *where,
    struct moatd_sandbox_config *sb)
{
	static const char *const skeys[] = { "env", "file", "hosts", NULL };
	char field[256];
	const char *name;
	json_t *v, *h, *hv;
	size_t i;
	int r;

	if (!json_is_object(obj))
		return fail(x, where, "secrets must be an object NAME -> "
		    "{env|file, hosts}");
	if ((sb->secrets = calloc(json_object_size(obj) + 1,
	    sizeof(*sb->secrets))) == NULL)
		return MOAT_ERR_NOMEM;
	json_object_foreach(obj, name, v) {
		struct moatd_secret *s = &sb->secrets[sb->nsecrets++];

		snprintf(field, sizeof(field), "%s.secrets.%s", where, name);
		if ((s->name = strdup(name)) == NULL)
			return MOAT_ERR_NOMEM;
		if (!secret_name_ok(name))
			return fail(x, field, "a secret's name is letters, "
			    "digits and '_', not starting with a digit");
		if (!json_is_object(v))
			return fail(x, field, "must be an object");
		if ((r = check_keys(x, v, field, skeys)) != 0 ||
		    (r = get_str(x, v, "env", field, &s->env)) != 0 ||
		    (r = get_str(x, v, "file", field, &s->file)) != 0)
			return r;
		if ((s->env == NULL) == (s->file == NULL))
			return fail(x, field, "give exactly one of env and file");
		h = json_object_get(v, "hosts");
		if (!json_is_array(h) || json_array_size(h) == 0)
			return fail(x, field, "hosts must list where the secret "
			    "may be sent");
		if ((s->hosts = calloc(json_array_size(h),
		    sizeof(char *))) == NULL)
			return MOAT_ERR_NOMEM;
		json_array_foreach(h, i, hv) {
			if (!json_is_string(hv) || json_string_length(hv) == 0)
				return fail(x, field, "hosts[%zu] must be a "
				    "host name", i);
			if ((s->hosts[s->nhosts++] = strdup(
			    json_string_value(hv))) == NULL)
				return MOAT_ERR_NOMEM;
		}
	}
	return MOAT_OK;
}

static int
parse_sandbox(struct cfgctx *x, json_t *v, size_t idx,
    struct moatd_sandbox_config *sb, bool embedded)
{
	static const char *const keys[] = { "name", "policy", "workspace",
		"authorized_keys", "resources", "secrets", NULL };
	static const char *const rkeys[] = { "memory_mb", "pids_max",
		"cpu_percent", NULL };
	char field[96];
	json_t *ak, *res;
	long long n;
	int r;

	snprintf(field, sizeof(field), "sandboxes[%zu]", idx);
	if (!json_is_object(v))
		return fail(x, field, "must be an object");
	if ((r = check_keys(x, v, field, keys)) != 0)
		return r;
	if ((r = get_str(x, v, "name", field, &sb->name)) != 0)
		return r;
	if (sb->name == NULL || !valid_name(sb->name))
		return fail(x, field, "name must be 1-32 of [A-Za-z0-9_-], "
					"starting with a letter or digit");
	snprintf(field, sizeof(field), "sandboxes[%zu] (%s)", idx, sb->name);
	if ((r = get_str(x, v, "policy", field, &sb->policy_path)) != 0 ||
	    (r = get_str(x, v, "workspace", field, &sb->workspace)) != 0)
		return r;
	if (sb->workspace == NULL &&
	    asprintf(&sb->workspace, "var/workspaces/%s", sb->name) < 0)
		return MOAT_ERR_NOMEM;
	ak = json_object_get(v, "authorized_keys");
	if (ak == NULL && embedded)
		return default_keys(sb);
	if (json_is_string(ak)) {
		if ((r = load_key_file(x, field, json_string_value(ak), sb)) != 0)
			return r;
	} else if (json_is_array(ak)) {
		size_t i;
		json_t *k;
		json_array_foreach(ak, i, k) {
			if (!json_is_string(k))
				return fail(x, field, "authorized_keys[%zu] "
				    "must be a string", i);
			r = looks_like_key(json_string_value(k)) ?
			    add_key(sb, json_string_value(k)) :
			    load_key_file(x, field, json_string_value(k), sb);
			if (r != 0)
				return r;
		}
	} else if (ak != NULL) {
		return fail(x, field, "authorized_keys must be a file path or "
		    "a list of keys or paths");
	}
	if ((res = json_object_get(v, "resources")) != NULL) {
		if (!json_is_object(res))
			return fail(x, field, "resources must be an object");
		if ((r = check_keys(x, res, "resources", rkeys)) != 0)
			return r;
		n = 0;
		if ((r = get_int(x, res, "memory_mb", field, 1, 1 << 30, &n)))
			return r;
		sb->resources.memory_mb = (uint64_t)n;
		n = 0;
		if ((r = get_int(x, res, "pids_max", field, 1, 1 << 22, &n)))
			return r;
		sb->resources.pids_max = (uint64_t)n;
		n = 0;
		if ((r = get_int(x, res, "cpu_percent", field, 1, 100000, &n)))
			return r;
		sb->resources.cpu_percent = (uint32_t)n;
	}
	if ((res = json_object_get(v, "secrets")) != NULL)
		return parse_secrets(x, res, field, sb);
	return MOAT_OK;
}

/* "start:rate:full" as OpenSSH's MaxStartups, or just "full". */
static int
parse_max_startups(struct cfgctx *x, json_t *v, struct moatd_config *c)
{
	int st = 0, rate = 0, full = 0, end = 0;
	const char *s;

	if (!json_is_string(v))
		return fail(x, "max_startups", "must be a string "
		    "\"start:rate:full\" (e.g. \"10:30:100\") or \"N\"");
	s = json_string_value(v);
	if (sscanf(s, "%d:%d:%d%n", &st, &rate, &full, &end) == 3 &&
	    s[end] == '\0') {
		if (st < 1 || full < st || full > 10000 || rate < 1 ||
		    rate > 100)
			return fail(x, "max_startups", "'%s': need 1 <= start <= "
			    "full <= 10000 and rate in 1..100", s);
	} else if (sscanf(s, "%d%n", &full, &end) == 1 && s[end] == '\0' &&
	    full >= 1 && full <= 10000) {
		st = full;
		rate = 100;
	} else {
		return fail(x, "max_startups", "'%s' is not \"start:rate:full\" "
		    "or a count in 1..10000", s);
	}
	c->max_startups[0] = st;
	c->max_startups[1] = rate;
	c->max_startups[2] = full;
	return MOAT_OK;
}

static int
parse_startups(struct cfgctx *x, json_t *doc, struct moatd_config *c)
{
	json_t *v = json_object_get(doc, "max_startups");
	long long n;
	int r;

	if (v != NULL && !json_is_null(v) &&
	    (r = parse_max_startups(x, v, c)) != 0)
		return r;
	n = c->max_startups_per_source;
	if ((r = get_int(x, doc, "max_startups_per_source",
	    "max_startups_per_source", 0, 10000, &n)) != 0)
		return r;
	c->max_startups_per_source = (int)n;
	n = c->ssh_privsep_uid;
	if ((r = get_int(x, doc, "ssh_privsep_uid", "ssh_privsep_uid", 1,
	    4294967294LL, &n)) != 0)
		return r;
	c->ssh_privsep_uid = (uint32_t)n;
	return MOAT_OK;
}

static int
parse_limits(struct cfgctx *x, json_t *v, struct moatd_limits *l)
{
	static const char *const keys[] = { "denials_per_minute",
		"pending_proposals", "agent_proposals_per_minute", NULL };
	long long n;
	int r;

	if (v == NULL)
		return MOAT_OK;
	if (!json_is_object(v))
		return fail(x, "limits", "must be an object");
	if ((r = check_keys(x, v, "limits", keys)) != 0)
		return r;
	n = l->denials_per_minute;
	if ((r = get_int(x, v, "denials_per_minute",
	    "limits.denials_per_minute", 1, 10000000, &n)) != 0)
		return r;
	l->denials_per_minute = (int)n;
	n = l->pending_proposals;
	if ((r = get_int(x, v, "pending_proposals",
	    "limits.pending_proposals", 1, 100000, &n)) != 0)
		return r;
	l->pending_proposals = (int)n;
	n = l->agent_proposals_per_minute;
	if ((r = get_int(x, v, "agent_proposals_per_minute",
	    "limits.agent_proposals_per_minute", 1, 100000, &n)) != 0)
		return r;
	l->agent_proposals_per_minute = (int)n;
	return MOAT_OK;
}

static int
parse_top(struct cfgctx *x, json_t *doc, struct moatd_config *c, bool embedded)
{
	static const char *const keys[] = { "state_dir", "store",
		"control_socket", "control_group", "listen", "relay", "proxy",
		"net_pool", "retention_days", "events", "login_grace_s",
		"max_auth_tries", "max_startups", "max_startups_per_source",
		"ssh_privsep_uid", "hostkey", "limits", "live_restore",
		"sandboxes", "max_open_files", NULL };
	static const char *const rkeys[] = { "socket", "tcp", "secret_file",
		NULL };
	static const char *const pkeys[] = { "port", "hosts_file", "identity",
		"upstream_ca_file", "max_conns", "max_conns_per_sandbox", NULL };
	json_t *v, *relay, *proxy;
	long long n;
	size_t i;
	int r;

	if (!json_is_object(doc))
		return fail(x, "(top)", "must be a JSON object");
	if ((r = check_keys(x, doc, "", keys)) != 0)
		return r;
	if ((r = get_str(x, doc, "state_dir", "state_dir", &c->state_dir)) ||
	    (r = get_str(x, doc, "store", "store", &c->store_path)) ||
	    (r = get_str(x, doc, "control_socket", "control_socket",
		 &c->control_path)) ||
	    (r = get_str(x, doc, "net_pool", "net_pool", &c->net_pool)) ||
	    (r = get_str(x, doc, "events", "events", &c->events_path)) ||
	    (r = get_str(x, doc, "hostkey", "hostkey", &c->hostkey_path)))
		return r;
	if ((v = json_object_get(doc, "control_group")) != NULL &&
	    !json_is_null(v)) {
		struct group *g;
		if (!json_is_string(v) ||
		    (g = getgrnam(json_string_value(v))) == NULL)
			return fail(x, "control_group", "no such group");
		c->control_gid = (int)g->gr_gid;
	}
	if ((v = json_object_get(doc, "live_restore")) != NULL &&
	    !json_is_null(v)) {
		if (!json_is_boolean(v))
			return fail(x, "live_restore", "must be true or false");
		c->live_restore = json_is_true(v);
	}
	n = c->retention_days;
	if ((r = get_int(x, doc, "retention_days", "retention_days", 1, 36500,
		 &n)))
		return r;
	c->retention_days = (int)n;
	n = c->login_grace_s;
	if ((r = get_int(x, doc, "login_grace_s", "login_grace_s", 1, 3600, &n)))
		return r;
	c->login_grace_s = (int)n;
	n = c->max_auth_tries;
	if ((r = get_int(x, doc, "max_auth_tries", "max_auth_tries", 1, 100,
		 &n)))
		return r;
	c->max_auth_tries = (int)n;
	if ((r = parse_startups(x, doc, c)) != 0)
		return r;
	n = (long long)c->max_open_files;
	if ((r = get_int(x, doc, "max_open_files", "max_open_files", 1024,
		 1 << 30, &n)))
		return r;
	c->max_open_files = (unsigned long)n;

	if ((r = parse_limits(x, json_object_get(doc, "limits"),
	    &c->limits)) != 0)
		return r;

	v = json_object_get(doc, "listen");
	if (v != NULL && !json_is_array(v))
		return fail(x, "listen", "must be a list of {addr, port}");
	if (v != NULL && json_array_size(v) > 0) {
		c->listen = calloc(json_array_size(v), sizeof(*c->listen));
		if (c->listen == NULL)
			return MOAT_ERR_NOMEM;
		for (i = 0; i < json_array_size(v); i++) {
			char field[32];
			snprintf(field, sizeof(field), "listen[%zu]", i);
			c->nlisten++;
			if ((r = parse_listen(x, json_array_get(v, i), field,
				 &c->listen[i])) != 0)
				return r;
		}
	}
	if ((relay = json_object_get(doc, "relay")) != NULL) {
		if (!json_is_object(relay))
			return fail(x, "relay", "must be an object");
		if ((r = check_keys(x, relay, "relay", rkeys)) != 0)
			return r;
		if ((r = get_str(x, relay, "socket", "relay.socket",
			 &c->relay_socket)) ||
		    (r = get_str(x, relay, "secret_file", "relay.secret_file",
			 &c->relay_secret_path)))
			return r;
		if ((v = json_object_get(relay, "tcp")) != NULL &&
		    !json_is_null(v) &&
		    (r = parse_listen(x, v, "relay.tcp", &c->relay_tcp)) != 0)
			return r;
	}
	if ((proxy = json_object_get(doc, "proxy")) != NULL) {
		if (!json_is_object(proxy))
			return fail(x, "proxy", "must be an object");
		if ((r = check_keys(x, proxy, "proxy", pkeys)) != 0)
			return r;
		n = c->proxy_port;
		if ((r = get_int(x, proxy, "port", "proxy.port", 1, 65535, &n)))
			return r;
		c->proxy_port = (uint16_t)n;
		n = c->proxy_uid;
		if ((r = get_int(x, proxy, "uid", "proxy.uid", 1, 4294967294LL,
		    &n)))
			return r;
		c->proxy_uid = (uint32_t)n;
		if ((r = get_str(x, proxy, "hosts_file", "proxy.hosts_file",
			 &c->hosts_file)) ||
		    (r = get_str(x, proxy, "upstream_ca_file",
			 "proxy.upstream_ca_file", &c->upstream_ca_file)))
			return r;
		if ((r = get_identity(x, proxy, &c->identity)) != 0)
			return r;
		n = c->proxy_max_conns;
		if ((r = get_int(x, proxy, "max_conns", "proxy.max_conns", 1,
			 1 << 20, &n)))
			return r;
		c->proxy_max_conns = (int)n;
		n = c->proxy_max_conns_per_sandbox;
		if ((r = get_int(x, proxy, "max_conns_per_sandbox",
			 "proxy.max_conns_per_sandbox", 1, 1 << 20, &n)))
			return r;
		c->proxy_max_conns_per_sandbox = (int)n;
	}
	v = json_object_get(doc, "sandboxes");
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(x, "sandboxes", "must be a non-empty list");
	if ((c->sandboxes = calloc(json_array_size(v),
		 sizeof(*c->sandboxes))) == NULL)
		return MOAT_ERR_NOMEM;
	for (i = 0; i < json_array_size(v); i++) {
		c->nsandboxes++;
		if ((r = parse_sandbox(x, json_array_get(v, i), i,
			 &c->sandboxes[i], embedded)) != 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->sandboxes[j].name,
				c->sandboxes[i].name) == 0)
				return fail(x, "sandboxes", "name '%s' appears "
				    "twice", c->sandboxes[i].name);
	}
	return MOAT_OK;
}

static int
path_default(char **dst, const char *dir, const char *file)
{
	if (*dst != NULL)
		return MOAT_OK;
	return asprintf(dst, "%s/%s", dir, file) < 0 ? MOAT_ERR_NOMEM : 0;
}

int
moatd_config_load(const char *path, struct moatd_config **out,
    struct moat_cause *cause)
{
	struct moatd_config *c = NULL;
	struct cfgctx x = { path ? path : "(embedded default)", cause };
	json_error_t jerr;
	json_t *doc = NULL;
	int r = MOAT_ERR_NOMEM;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto out;
	c->control_gid = -1;
	c->proxy_port = 3128;
	c->retention_days = 30;
	c->login_grace_s = 30;
	c->max_auth_tries = 6;
	c->limits.denials_per_minute = MOATD_DEFAULT_DENIALS_PER_MINUTE;
	c->limits.pending_proposals = MOATD_DEFAULT_PENDING_PROPOSALS;
	c->limits.agent_proposals_per_minute =
	    MOATD_DEFAULT_AGENT_PROPOSALS_PER_MINUTE;
	c->max_startups[0] = 10;
	c->max_startups[1] = 30;
	c->max_startups[2] = 100;
	c->max_startups_per_source = 5;
	c->ssh_privsep_uid = MOATD_PRIVSEP_UID;
	c->proxy_max_conns = MOAT_PROXY_DEFAULT_MAX_CONNS;
	c->proxy_max_conns_per_sandbox = MOAT_PROXY_DEFAULT_MAX_CONNS_SANDBOX;
	c->max_open_files = 1048576;
	c->proxy_uid = MOATD_PROXY_UID;
	if ((c->source = strdup(x.file)) == NULL)
		goto out;
	doc = path ? json_load_file(path, JSON_REJECT_DUPLICATES, &jerr) :
	    json_loads(default_config_json, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		if (jerr.line < 0)
			moat_cause_set(cause, "%s: %s", x.file, jerr.text);
		else
			moat_cause_set(cause, "%s:%d:%d: %s", x.file, jerr.line,
			    jerr.column, jerr.text);
		r = MOAT_ERR_INVALID;
		goto out;
	}
	if ((r = parse_top(&x, doc, c, path == NULL)) != 0)
		goto out;
	r = MOAT_ERR_NOMEM;
	if (c->state_dir == NULL && (c->state_dir = strdup("var")) == NULL)
		goto out;
	/*
	 * Everything under it is named by paths built from it, some of them
	 * resolved elsewhere (inside a sandbox's new root, by the proxy):
	 * relative to where moatd started ("var" in the embedded config),
	 * made absolute once, here.
	 */
	if (c->state_dir[0] != '/') {
		char cwd[4096], *abs = NULL;

		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			r = fail(&x, "state_dir", "relative, and the current "
			    "directory is unknown: %s", strerror(errno));
			goto out;
		}
		if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd,
		    c->state_dir) < 0)
			goto out;
		free(c->state_dir);
		c->state_dir = abs;
	}
	if (path_default(&c->store_path, c->state_dir, "moat.db") ||
	    path_default(&c->control_path, c->state_dir, "moatd.sock") ||
	    path_default(&c->relay_socket, c->state_dir, "relay.sock") ||
	    path_default(&c->relay_secret_path, c->state_dir, "relay.secret") ||
	    path_default(&c->hostkey_path, c->state_dir, "ssh_host_ed25519_key"))
		goto out;
	if (c->net_pool == NULL && (c->net_pool = strdup("10.200.0.0/16")) ==
	    NULL)
		goto out;
	if (c->nlisten == 0 && c->relay_socket == NULL) {
		r = fail(&x, "listen", "no SSH listener and no relay socket");
		goto out;
	}
	*out = c;
	c = NULL;
	r = MOAT_OK;
out:
	json_decref(doc);
	moatd_config_free(c);
	return r;
}

void
moatd_config_free(struct moatd_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nsandboxes; i++) {
		struct moatd_sandbox_config *sb = &c->sandboxes[i];
		free(sb->name);
		free(sb->policy_path);
		free(sb->workspace);
		for (size_t k = 0; k < sb->nkeys; k++)
			free(sb->keys[k]);
		free(sb->keys);
		for (size_t k = 0; k < sb->nsecrets; k++) {
			struct moatd_secret *s = &sb->secrets[k];

			free(s->name);
			free(s->env);
			free(s->file);
			for (size_t j = 0; j < s->nhosts; j++)
				free(s->hosts[j]);
			free(s->hosts);
		}
		free(sb->secrets);
	}
	free(c->sandboxes);
	for (size_t i = 0; i < c->nlisten; i++)
		free(c->listen[i].addr);
	free(c->listen);
	free(c->relay_tcp.addr);
	free(c->source);
	free(c->state_dir);
	free(c->store_path);
	free(c->control_path);
	free(c->relay_socket);
	free(c->relay_secret_path);
	free(c->hostkey_path);
	free(c->hosts_file);
	free(c->upstream_ca_file);
	free(c->net_pool);
	free(c->events_path);
	free(c);
}
