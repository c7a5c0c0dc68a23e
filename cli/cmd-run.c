/*
 * `moat run`: one command in a fresh sandbox, stdio inherited, then
 * everything torn down. The exit status is the command's (128+N when a
 * signal N killed it; 127 command not found, 126 not executable, 111
 * moat itself failed).
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/escape.h"
#include "common/log.h"
#include "common/util.h"
#include "policies/policy.h"
#include "sandbox/sandbox.h"
#include "moatd/config.h"
#include "moatd/oneshot.h"
#include "moatd/proxychan.h"
#include "moatd/secrets.h"
#include "cli/cli.h"


/* Host variables a command may see (the rest of the environment stays out). */
static const char *const pass_env[] = {
	"TERM", "LANG", "LC_ALL", "LC_CTYPE", "COLORTERM", "TZ",
};

/* The child, for the signal handler that forwards signals. */
static volatile sig_atomic_t run_child = -1;

/* The child leads its own process group (spawn always setsid()s). */
static void
forward(int sig)
{
	int e = errno;

	if (run_child > 0 && killpg((pid_t)run_child, sig) != 0)
		kill((pid_t)run_child, sig);
	errno = e;
}

/*
 * The run's egress proxy and bypass monitor (moatd/oneshot.c): moat run
 * is the orchestrator of its one sandbox.
 */
static int
run_start_proxy(struct moat_sandbox *sb, const char *name,
    struct moat_policy *p, const char *hosts,
    const struct moatd_oneshot_tls *tls, struct moatd_oneshot **out)
{
	struct moat_cause cause = { { 0 } };
	int r;

	if ((r = moatd_oneshot_start(sb, name, p, hosts, tls, out,
	    &cause)) != 0)
		fprintf(stderr, "moat run: proxy: %s\n",
		    moat_cause_str(&cause, r));
	return r;
}

#define MAX_SECRETS 32

/* The run's --secret NAME:HOST[,HOST...] options (values: $NAME). */
struct run_secrets {
	struct moatd_secret cfg[MAX_SECRETS];
	char *specs[MAX_SECRETS];
	char *hosts[MAX_SECRETS][16];
	size_t n;
	struct moat_proxy_secret *v; /* values, once read */
	char **env;                  /* the placeholders */
};

static int
add_secret(struct run_secrets *rs, const char *spec)
{
	struct moatd_secret *s = &rs->cfg[rs->n];
	char *c, *h, *save = NULL;

	if (rs->n == MAX_SECRETS || (c = strchr(spec, ':')) == NULL ||
	    c == spec || c[1] == '\0') {
		fprintf(stderr, "moat run: --secret %s: expected NAME:HOST"
		    "[,HOST...] (at most %d)\n", spec, MAX_SECRETS);
		return -1;
	}
	if ((rs->specs[rs->n] = strdup(spec)) == NULL)
		return -1;
	c = rs->specs[rs->n] + (c - spec);
	*c = '\0';
	s->name = s->env = rs->specs[rs->n];
	s->hosts = rs->hosts[rs->n];
	for (h = strtok_r(c + 1, ",", &save); h != NULL && s->nhosts < 16;
	    h = strtok_r(NULL, ",", &save))
		s->hosts[s->nhosts++] = h;
	rs->n++;
	return 0;
}

static int
read_secrets(struct run_secrets *rs)
{
	struct moat_cause cause = { { 0 } };
	int r;

	if (rs->n == 0)
		return 0;
	if ((r = moatd_secrets_resolve(rs->cfg, rs->n, &rs->v, &cause)) != 0) {
		fprintf(stderr, "moat run: %s (moat run takes a secret's "
		    "value from its own environment variable of that name)\n",
		    moat_cause_str(&cause, r));
		return -1;
	}
	if ((rs->env = moatd_secrets_env(rs->v, rs->n)) == NULL)
		return -1;
	return 0;
}

static void
free_secrets(struct run_secrets *rs)
{
	moatd_secrets_free(rs->v, rs->n);
	moatd_secrets_env_free(rs->env);
	for (size_t i = 0; i < rs->n; i++)
		free(rs->specs[i]);
}

static int
load_policy(const char *path, struct moat_policy **out)
{
	struct moat_policy_opts o = { .binary_root = NULL, .no_fs = true };
	struct moat_diags d;
	int r;

	moat_diags_init(&d);
	if (path != NULL)
		r = moat_policy_load_file(path, &o, out, &d);
	else
		r = moat_policy_load_string(moat_policy_default_json,
		    strlen(moat_policy_default_json), "deny-all", &o, out, &d);
	for (size_t i = 0; i < d.n; i++) {
		char *at, *msg;

		if (d.v[i].level != MOAT_DIAG_ERROR)
			continue;
		/* The policy's text may come from a sandbox: escaped. */
		msg = moat_escape_str(d.v[i].msg);
		/* A file-level error (missing, not JSON) has no JSON path. */
		if (d.v[i].path == NULL || d.v[i].path[0] == '\0' ||
		    strcmp(d.v[i].path, path ? path : "") == 0)
			fprintf(stderr, "moat run: %s\n", msg ? msg : "?");
		else {
			at = moat_escape_str(d.v[i].path);
			fprintf(stderr, "moat run: %s: %s: %s\n",
			    path ? path : "deny-all", at ? at : "?",
			    msg ? msg : "?");
			free(at);
		}
		free(msg);
	}
	moat_diags_free(&d);
	return r;
}

/* MOAT_IDENTITY: auto (default), bpf (required) or proc (no BPF). */
static int
identity_mode(enum moat_attrib_mode *mode)
{
	const char *v = getenv("MOAT_IDENTITY");

	if (v == NULL || v[0] == '\0' || strcmp(v, "auto") == 0)
		*mode = MOAT_ATTRIB_AUTO;
	else if (strcmp(v, "bpf") == 0)
		*mode = MOAT_ATTRIB_REQUIRE;
	else if (strcmp(v, "proc") == 0)
		*mode = MOAT_ATTRIB_OFF;
	else {
		fprintf(stderr, "moat run: MOAT_IDENTITY: '%s' is not auto, bpf "
		    "or proc\n", v);
		return MOAT_ERR_INVALID;
	}
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/*
 * Sandboxes of moat runs that were killed (SIGKILL leaves no chance to
 * tear down): run-PID whose PID is gone. Their processes died with their
 * init (PDEATHSIG); the cgroups and network are removed here.
 */
static void
purge_stale_runs(void)
{
	glob_t g;

	if (glob("/sys/fs/cgroup/*/moat/run-*", GLOB_NOSORT, NULL, &g) != 0 &&
	    glob("/sys/fs/cgroup/moat/run-*", GLOB_NOSORT, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *name = strrchr(g.gl_pathv[i], '/') + 1;
		struct moat_cause cause = { { 0 } };
		char *end = NULL;
		long pid = strtol(name + 4, &end, 10);

		if (end == name + 4 || *end != '\0' || pid <= 0 ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (moat_sandbox_purge(name, &cause) != 0)
			log_warn("stale sandbox %s: %s", name, cause.msg);
	}
	globfree(&g);
}

/* Does the v2 cgroup of sandbox name hold a process now? */
static bool
cgroup_busy(const char *name)
{
	static const char *const dirs[] = {
		"/sys/fs/cgroup/unified/moat", "/sys/fs/cgroup/moat",
	};
	char path[512], *procs = NULL;
	bool busy = false;

	for (size_t i = 0; i < MOAT_NELEM(dirs) && !busy; i++) {
		snprintf(path, sizeof(path), "%s/%s/cgroup.procs", dirs[i],
		    name);
		if (moat_read_file(path, 1 << 20, &procs, NULL, NULL) != 0)
			continue;
		busy = procs[0] != '\0';
		free(procs);
	}
	return busy;
}

/*
 * A sandbox of this name left behind by a killed run (no process in its
 * cgroup any more)? Then it is ours to clear; a live one is not. The
 * processes of a run killed just now are still exiting (the kernel
 * kills a pid namespace's processes when its init dies, and tearing down
 * their mounts takes a while): give them two seconds, bounded (under
 * load one was not always enough).
 */
static bool
purge_if_stale(const char *name)
{
	struct moat_cause cause = { { 0 } };
	int64_t deadline = moat_now_ms() + 2000;

	while (cgroup_busy(name)) {
		if (moat_now_ms() >= deadline)
			return false;
		usleep(10000);
	}
	if (moat_sandbox_purge(name, &cause) != 0) {
		log_warn("stale sandbox %s: %s", name, cause.msg);
		return false;
	}
	return true;
}

static int
wait_child(struct moatd_oneshot *o, pid_t pid)
{
	int status = 0;

	if (moatd_oneshot_wait(o, pid, &status) != 0)
		return MOAT_EXIT_SYSTEM;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static int
spawn_wait(struct moat_sandbox *sb, struct moatd_oneshot *o, char **cmd)
{
	const char *env[MOAT_NELEM(pass_env) + 1];
	char envbuf[MOAT_NELEM(pass_env)][512];
	struct moat_spawn s = {
		.argv = (const char *const *)cmd,
		.env = env,
		.fds = { 0, 1, 2 },
		.pty = false,
		.login = cmd == NULL,
	};
	struct moat_cause cause = { { 0 } };
	size_t n = 0;
	pid_t pid;
	int r;

	for (size_t i = 0; i < MOAT_NELEM(pass_env); i++) {
		const char *v = getenv(pass_env[i]);

		if (v != NULL && snprintf(envbuf[n], sizeof(envbuf[n]),
		    "%s=%s", pass_env[i], v) < (int)sizeof(envbuf[n]))
			env[n] = envbuf[n], n++;
	}
	env[n] = NULL;
	if ((r = moat_sandbox_spawn(sb, &s, &pid, &cause)) != 0) {
		fprintf(stderr, "moat run: %s: %s\n", cmd ? cmd[0] : "shell",
		    moat_cause_str(&cause, r));
		return r == MOAT_ERR_NOTFOUND ? 127 :
		    r == MOAT_ERR_DENIED ? 126 : MOAT_EXIT_SYSTEM;
	}
	run_child = pid;
	return wait_child(o, pid);
}

static int
run_exec(int argc, char **argv)
{
	const char *policy = NULL, *ws = NULL, *name = NULL, *hosts = NULL;
	struct moatd_oneshot_tls tls = { NULL, NULL, NULL, 0 };
	struct run_secrets rs = { .n = 0 };
	char *ca_dir = NULL, cert[4200], bundle[4200];
	struct moatd_oneshot *o = NULL;
	struct moat_sandbox_config c;
	struct moat_sandbox *sb = NULL;
	struct moat_policy *p = NULL;
	struct moat_cause cause = { { 0 } };
	char defname[32], tmpws[] = "/tmp/moat-run-XXXXXX";
	bool own_ws = false;
	int i, r, rc = MOAT_EXIT_SYSTEM;
	struct sigaction sa;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (argv[i][0] != '-')
			break;
		if (i + 1 >= argc)
			return moat_cli_usage(&moat_cmd_run);
		if (strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--policy") == 0)
			policy = argv[++i];
		else if (strcmp(argv[i], "-w") == 0 ||
		    strcmp(argv[i], "--workspace") == 0)
			ws = argv[++i];
		else if (strcmp(argv[i], "--name") == 0)
			name = argv[++i];
		else if (strcmp(argv[i], "--hosts") == 0)
			hosts = argv[++i];
		else if (strcmp(argv[i], "--upstream-ca") == 0)
			tls.upstream_ca = argv[++i];
		else if (strcmp(argv[i], "--secret") == 0) {
			if (add_secret(&rs, argv[++i]) != 0) {
				free_secrets(&rs);
				return MOAT_EXIT_USAGE;
			}
		} else {
			free_secrets(&rs);
			return moat_cli_usage(&moat_cmd_run);
		}
	}
	/* A closed 0-2 would be taken by our fds and handed to the command. */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 &&
		    open("/dev/null", O_RDWR | O_CLOEXEC) != fd)
			return MOAT_EXIT_SYSTEM;
	if (geteuid() != 0) {
		fprintf(stderr, "moat run: must run as root: it creates "
				"namespaces, cgroups and nftables rules (try sudo)\n");
		return MOAT_EXIT_USAGE;
	}
	if (tls.upstream_ca != NULL && access(tls.upstream_ca, R_OK) != 0) {
		fprintf(stderr, "moat run: --upstream-ca %s: %s\n",
		    tls.upstream_ca, strerror(errno));
		free_secrets(&rs);
		return MOAT_EXIT_USAGE;
	}
	if (read_secrets(&rs) != 0 || load_policy(policy, &p) != 0) {
		free_secrets(&rs);
		return MOAT_EXIT_USAGE;
	}
	if (name == NULL) {
		snprintf(defname, sizeof(defname), "run-%d", (int)getpid());
		name = defname;
	}
	if (ws == NULL) {
		if (mkdtemp(tmpws) == NULL) {
			fprintf(stderr, "moat run: mkdtemp: %s\n",
			    strerror(errno));
			goto out;
		}
		ws = tmpws;
		own_ws = true;
	}
	moat_sandbox_protect_self();
	purge_stale_runs();
	memset(&c, 0, sizeof(c));
	if (identity_mode(&c.attrib) != 0) {
		rc = MOAT_EXIT_USAGE;
		goto out;
	}
	if ((r = moatd_oneshot_ca(name, &ca_dir, &cause)) != 0) {
		fprintf(stderr, "moat run: sandbox CA: %s\n",
		    moat_cause_str(&cause, r));
		goto out;
	}
	snprintf(cert, sizeof(cert), "%s/ca.pem", ca_dir);
	snprintf(bundle, sizeof(bundle), "%s/ca-bundle.pem", ca_dir);
	c.ca_cert = cert;
	c.ca_bundle = bundle;
	c.env = (const char *const *)rs.env;
	tls.ca_dir = ca_dir;
	tls.secrets = rs.v;
	tls.nsecrets = rs.n;
	c.name = name;
	c.policy = p;
	c.workspace = ws;
	c.net_index = (uint32_t)getpid() % 16384;
	r = moat_sandbox_create(&c, &sb, &cause);
	if (r == MOAT_ERR_EXISTS && purge_if_stale(name)) {
		memset(&cause, 0, sizeof(cause));
		r = moat_sandbox_create(&c, &sb, &cause);
	}
	if (r != 0) {
		fprintf(stderr, "moat run: %s\n", moat_cause_str(&cause, r));
		rc = r == MOAT_ERR_INVALID ? MOAT_EXIT_USAGE : MOAT_EXIT_SYSTEM;
		goto out;
	}
	moatd_log_identity(name, sb, c.attrib);
	if (own_ws && chown(ws, moat_sandbox_uid(sb),
	    moat_sandbox_gid(sb)) != 0) {
		fprintf(stderr, "moat run: chown %s: %s\n", ws,
		    strerror(errno));
		goto out;
	}
	if (run_start_proxy(sb, name, p, hosts, &tls, &o) != 0)
		goto out;
	/*
	 * The terminal's ^C and ^\ are for the command; it has a session
	 * of its own (not the terminal's foreground group), so we pass them.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	rc = spawn_wait(sb, o, i < argc ? argv + i : NULL);
out:
	if (o != NULL && moatd_oneshot_finish(o, moat_cli_store_path(),
	    &cause) != 0)
		fprintf(stderr, "moat run: denials not stored: %s\n",
		    cause.msg);
	moat_sandbox_free(sb);
	moat_policy_free(p);
	moatd_oneshot_ca_remove(ca_dir);
	free_secrets(&rs);
	if (own_ws)
		nftw(tmpws, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

const struct moat_cli_cmd moat_cmd_run = {
	"run",
	"run [-p POLICY] [-w WORKSPACE] [--name NAME] [--hosts FILE] "
	"[--upstream-ca FILE] [--secret NAME:HOST[,HOST...]]... [--] "
	"[CMD [ARGS...]]",
	"run a command (default: a shell) in a fresh sandbox",
	run_exec,
};
