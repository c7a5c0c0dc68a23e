/*
 * sandbox/: the environment and passwd builders (pure), then (as root)
 * a real sandbox: create, spawn with captured output, a spawn from a
 * forked holder, a failing spawn, and free leaving nothing behind; then
 * a sandbox whose creator died, with and without live restore, adopted.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/internal.h"
#include "sandbox/sandbox.h"
#include "tests/unit/tap.h"

static const char *
env_get(char **env, const char *key)
{
	size_t n = strlen(key);

	for (; *env != NULL; env++)
		if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

static void
test_env(void)
{
	struct sandbox_user u = { 1000, 1000, "sandbox", "/bin/bash" };
	const char *extra[] = { "TERM=vt100", "HOME=/root", "HTTP_PROXY=x",
		"LANG=de_DE.UTF-8", "NOEQUALS", NULL };
	struct sandbox_env_in in = { &u, "/sandbox", "10.200.0.1", 3128,
		false, extra, false, NULL };
	char **env = sandbox_env_build(&in);

	ok(env != NULL, "env builds");
	is_str(env_get(env, "HOME"), "/sandbox", "HOME is not overridable");
	is_str(env_get(env, "HTTP_PROXY"), "http://10.200.0.1:3128",
	    "HTTP_PROXY is not overridable");
	is_str(env_get(env, "grpc_proxy"), "http://10.200.0.1:3128",
	    "grpc_proxy set");
	is_str(env_get(env, "no_proxy"), "127.0.0.1,localhost,::1",
	    "no_proxy set");
	is_str(env_get(env, "TERM"), "vt100", "TERM from the caller");
	is_str(env_get(env, "LANG"), "de_DE.UTF-8", "LANG replaced");
	ok(env_get(env, "NOEQUALS") == NULL, "entries without = dropped");
	free(env);
	in.proxy_addr = "";
	in.extra = NULL;
	in.pty = true;
	env = sandbox_env_build(&in);
	ok(env_get(env, "HTTP_PROXY") == NULL, "no proxy: no variables");
	is_str(env_get(env, "TERM"), "xterm-256color", "pty default TERM");
	ok(env_get(env, "SSL_CERT_FILE") == NULL, "no CA: no CA variables");
	free(env);
	{
		const char *fixed[] = { "GH_TOKEN=moat:resolve:env:GH_TOKEN",
			NULL };
		const char *ex2[] = { "GH_TOKEN=real", "SSL_CERT_FILE=/x",
			NULL };

		in.ca = true;
		in.fixed = fixed;
		in.extra = ex2;
		env = sandbox_env_build(&in);
		is_str(env_get(env, "SSL_CERT_FILE"), MOAT_SANDBOX_CA_BUNDLE,
		    "SSL_CERT_FILE names the bundle, not overridable");
		is_str(env_get(env, "REQUESTS_CA_BUNDLE"),
		    MOAT_SANDBOX_CA_BUNDLE, "REQUESTS_CA_BUNDLE");
		is_str(env_get(env, "CURL_CA_BUNDLE"), MOAT_SANDBOX_CA_BUNDLE,
		    "CURL_CA_BUNDLE");
		is_str(env_get(env, "GIT_SSL_CAINFO"), MOAT_SANDBOX_CA_BUNDLE,
		    "GIT_SSL_CAINFO");
		is_str(env_get(env, "NODE_EXTRA_CA_CERTS"),
		    MOAT_SANDBOX_CA_CERT, "NODE_EXTRA_CA_CERTS names the CA");
		is_str(env_get(env, "GH_TOKEN"), "moat:resolve:env:GH_TOKEN",
		    "a placeholder is fixed: the caller cannot replace it");
		free(env);
	}
}

static void
test_passwd(void)
{
	struct sandbox_user u = { 1000, 1000, "sandbox", "/bin/bash" };
	char dir[] = "/tmp/moat-ut-XXXXXX", path[64], *out = NULL;

	ok(mkdtemp(dir) != NULL, "tmp root");
	snprintf(path, sizeof(path), "%s/etc", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/etc/passwd", dir);
	moat_write_file(path, "", NULL); /* must exist for write_file */
	{
		FILE *f = fopen(path, "we");

		fputs("root:x:0:0:root:/root:/bin/sh\n"
		    "debian:x:1000:1000::/home/debian:/bin/bash\n"
		    "sandbox:x:77:77::/x:/bin/sh\nnobody:x:65534:65534::/:/\n",
		    f);
		fclose(f);
	}
	is_int(sandbox_user_passwd(&u, dir, &out, NULL), 0, "passwd built");
	is_str(out, "root:x:0:0:root:/root:/bin/sh\n"
	    "nobody:x:65534:65534::/:/\n"
	    "sandbox:x:1000:1000:sandbox:/sandbox:/bin/bash\n",
	    "same id and same name replaced, others kept");
	free(out);
	unlink(path);
	snprintf(path, sizeof(path), "%s/etc", dir);
	rmdir(path);
	rmdir(dir);
}

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

/* Each sandbox has its own uid, one no entry of passwd/group has. */
static void
test_uid(void)
{
	struct sandbox_user u;
	char dir[] = "/tmp/moat-ut-XXXXXX", path[64];

	ok(mkdtemp(dir) != NULL, "tmp etc root");
	snprintf(path, sizeof(path), "%s/etc", dir);
	mkdir(path, 0755);
	is_int(sandbox_user_resolve(NULL, 77, dir, &u, NULL), 0, "resolve");
	is_int((int)u.uid, SANDBOX_UID_BASE + 77, "no files: base + index");
	is_int((int)u.gid, SANDBOX_UID_BASE + 77, "gid the same");
	snprintf(path, sizeof(path), "%s/etc/passwd", dir);
	put(path, "root:x:0:0::/root:/bin/sh\n"
	    "op:x:60077:1000::/home/op:/bin/sh\n");
	snprintf(path, sizeof(path), "%s/etc/group", dir);
	put(path, "g:x:76461:\n");
	is_int(sandbox_user_resolve(NULL, 77, dir, &u, NULL), 0, "resolve");
	is_int((int)u.uid, SANDBOX_UID_BASE + 77 + 2 * SANDBOX_UID_STRIDE,
	    "ids in passwd or group are skipped, by stride");
	is_int(sandbox_user_resolve(NULL, 78, dir, &u, NULL), 0, "resolve");
	is_int((int)u.uid, SANDBOX_UID_BASE + 78, "the next index is free");
	unlink(path);
	snprintf(path, sizeof(path), "%s/etc/passwd", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/etc", dir);
	rmdir(path);
	rmdir(dir);
}

static int
read_all(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return (int)n;
}

/* Spawn `sh -c script` with stdout on a pipe; returns its exit status. */
static int
run(struct moat_sandbox *sb, const char *script, char *out, size_t len)
{
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct moat_spawn s = { .argv = argv, .fds = { -1, -1, 2 } };
	struct moat_cause cause = { { 0 } };
	int p[2], st = -1;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	s.fds[1] = p[1];
	if (moat_sandbox_spawn(sb, &s, &pid, &cause) != 0) {
		diag("spawn: %s", cause.msg);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	close(p[1]);
	read_all(p[0], out, len);
	close(p[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
test_sandbox(void)
{
	char ws[] = "/tmp/moat-ut-ws-XXXXXX", name[32], out[512], cg[128];
	struct moat_sandbox_config c = { .name = name, .net_index = 77 };
	struct moat_cause cause = { { 0 } };
	struct moat_sandbox *sb = NULL;
	const char *argv[] = { "/no/such/binary", NULL };
	struct moat_spawn bad = { .argv = argv, .fds = { -1, -1, -1 } };
	int64_t t0;
	pid_t pid, holder;
	int r, st;

	snprintf(name, sizeof(name), "ut%d", (int)getpid() % 100000);
	ok(mkdtemp(ws) != NULL, "workspace");
	c.workspace = ws;
	t0 = moat_now_us();
	r = moat_sandbox_create(&c, &sb, &cause);
	is_int(r, 0, "create: %s", cause.msg);
	if (r != 0)
		return;
	diag("create took %lld us", (long long)(moat_now_us() - t0));
	is_str(moat_sandbox_name(sb), name, "name");
	is_str(moat_sandbox_home(sb), "/sandbox", "home");
	ok(moat_sandbox_uid(sb) >= SANDBOX_UID_BASE &&
	    (moat_sandbox_uid(sb) - SANDBOX_UID_BASE) % SANDBOX_UID_STRIDE ==
	    77, "uid %u is the sandbox's own", (unsigned)moat_sandbox_uid(sb));
	ok(chown(ws, moat_sandbox_uid(sb), moat_sandbox_gid(sb)) == 0,
	    "workspace owned by the sandbox user");
	ok(moat_sandbox_init_pid(sb) > 0, "init pid");
	ok(moat_sandbox_netns_fd(sb) >= 0, "netns fd");
	ok(moat_sandbox_host_addr(sb)[0] != '\0', "host addr %s",
	    moat_sandbox_host_addr(sb));
	{
		char *procs = NULL;
		char want[16];

		snprintf(want, sizeof(want), "%d\n",
		    (int)moat_sandbox_init_pid(sb));
		moat_read_file(moat_sandbox_procs_path(sb), 4096, &procs, NULL,
		    NULL);
		ok(procs != NULL && strstr(procs, want) != NULL,
		    "init is listed in %s", moat_sandbox_procs_path(sb));
		free(procs);
	}
	t0 = moat_now_us();
	is_int(run(sb, "id -un; hostname; echo $HOME", out, sizeof(out)), 0,
	    "spawn runs");
	diag("spawn+run took %lld us", (long long)(moat_now_us() - t0));
	snprintf(cg, sizeof(cg), "sandbox\n%s\n/sandbox\n", name);
	is_str(out, cg, "user, hostname, HOME");
	is_int(run(sb, "exit 3", out, sizeof(out)), 3, "exit status");

	/* A pty from the sandbox's devpts: tty names it, the user owns it. */
	{
		const char *targv[] = { "/bin/sh", "-c",
		    "tty; stat -c %U /proc/self/fd/0", NULL };
		struct moat_spawn ts = { .argv = targv, .pty = true };
		int m = -1, sl = -1;

		r = moat_sandbox_openpty(sb, &m, &sl, &cause);
		is_int(r, 0, "openpty: %s", cause.msg);
		ts.fds[0] = ts.fds[1] = ts.fds[2] = sl;
		if (r == 0 && moat_sandbox_spawn(sb, &ts, &pid, &cause) == 0) {
			close(sl);
			waitpid(pid, &st, 0);
			memset(out, 0, sizeof(out));
			(void)!read(m, out, sizeof(out) - 1);
			ok(strncmp(out, "/dev/pts/0\r\nsandbox", 19) == 0,
			    "tty inside is /dev/pts/0 owned by sandbox");
			diag("%s", out);
		} else
			ok(0, "pty spawn: %s", cause.msg);
		if (m >= 0)
			close(m);
	}

	/* A forked holder spawns and reaps its own child. */
	if ((holder = fork()) == 0) {
		int rc = run(sb, "echo holder", out, sizeof(out));

		_exit(rc == 0 && strcmp(out, "holder\n") == 0 ? 0 : 1);
	}
	waitpid(holder, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "spawn from a forked holder");

	r = moat_sandbox_spawn(sb, &bad, &pid, &cause);
	is_int(r, MOAT_ERR_NOTFOUND, "missing command is NOTFOUND");
	ok(strstr(cause.msg, "spawn step 'exec'") != NULL, "cause: %s",
	    cause.msg);
	/* init is our only child left, and alive: no zombie to collect */
	ok(waitpid(-1, NULL, WNOHANG) == 0, "the failed child was reaped");

	/* A background process is killed by free. */
	is_int(run(sb, "sleep 100 </dev/null >/dev/null 2>&1 &", out,
	    sizeof(out)), 0, "background job started");
	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/unified/moat/%s", name);
	t0 = moat_now_us();
	moat_sandbox_free(sb);
	diag("free took %lld us", (long long)(moat_now_us() - t0));
	ok(access(cg, F_OK) != 0, "cgroup %s removed", cg);
	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/pids/moat/%s", name);
	ok(access(cg, F_OK) != 0, "cgroup %s removed", cg);
	snprintf(cg, sizeof(cg), "/run/netns/moat-%s", name);
	ok(access(cg, F_OK) != 0, "netns %s removed", cg);
	rmdir(ws);

	c.name = "Bad Name";
	is_int(moat_sandbox_create(&c, &sb, &cause), MOAT_ERR_INVALID,
	    "bad name refused");
	moat_sandbox_free(NULL);
}

/*
 * In a child, as moatd does: create with a state record, then die
 * without freeing (a crash). Returns init's pid, or -1.
 */
static pid_t
create_and_die(struct moat_sandbox_config *c)
{
	int fds[2], st;
	pid_t child, init = -1;

	if (pipe(fds) != 0)
		return -1;
	if ((child = fork()) == 0) {
		struct moat_sandbox *sb = NULL;
		struct moat_cause cause = { { 0 } };

		close(fds[0]);
		if (moat_sandbox_create(c, &sb, &cause) != 0) {
			diag("create in the child: %s", cause.msg);
			_exit(1);
		}
		init = moat_sandbox_init_pid(sb);
		(void)!write(fds[1], &init, sizeof(init));
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &init, sizeof(init)) != sizeof(init))
		init = -1;
	close(fds[0]);
	waitpid(child, &st, 0);
	return init;
}

static bool
gone_within(pid_t pid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (kill(pid, 0) != 0)
			return true;
		usleep(10000);
	}
	return false;
}

static void
test_adopt(void)
{
	char ws[] = "/tmp/moat-ut-ws-XXXXXX", sd[] = "/tmp/moat-ut-st-XXXXXX";
	char name[32], out[256], path[512];
	struct moat_sandbox_config c = { .name = name, .net_index = 78 };
	struct moat_cause cause = { { 0 } };
	struct moat_sandbox *sb = NULL;
	pid_t init;
	int r;

	snprintf(name, sizeof(name), "ua%d", (int)getpid() % 100000);
	ok(mkdtemp(ws) != NULL && mkdtemp(sd) != NULL, "dirs");
	c.workspace = ws;
	c.state_dir = sd;
	snprintf(path, sizeof(path), "%s/%s", sd, MOAT_SANDBOX_STATE_FILE);

	/* Without live restore the sandbox dies with its creator. */
	init = create_and_die(&c);
	ok(init > 0, "created in a child that then died");
	ok(init > 0 && gone_within(init, 3000), "its init died with it");
	r = moat_sandbox_adopt(&c, &sb, &cause);
	is_int(r, MOAT_ERR_NOTFOUND, "nothing to adopt: %s", cause.msg);
	ok(strstr(cause.msg, "is gone") != NULL, "cause says init is gone");
	cause.msg[0] = '\0';
	is_int(moat_sandbox_purge(name, &cause), 0, "purge: %s", cause.msg);
	unlink(path);

	/* With it, the sandbox outlives its creator and is adopted. */
	c.outlive_creator = true;
	init = create_and_die(&c);
	ok(init > 0 && !gone_within(init, 300), "init outlived its creator");
	c.net_index = 79;
	r = moat_sandbox_adopt(&c, &sb, &cause);
	is_int(r, MOAT_ERR_INVALID, "a changed network slot is refused");
	ok(strstr(cause.msg, "network slot") != NULL, "cause: %s", cause.msg);
	ok(kill(init, 0) == 0, "and the sandbox was left alone");
	c.net_index = 78;
	cause.msg[0] = '\0';
	r = moat_sandbox_adopt(&c, &sb, &cause);
	is_int(r, 0, "adopt: %s", cause.msg);
	if (r != 0) {
		moat_sandbox_purge(name, NULL);
		return;
	}
	is_int(moat_sandbox_init_pid(sb), init, "the same init");
	ok(moat_sandbox_uid(sb) >= SANDBOX_UID_BASE, "its uid %u",
	    (unsigned)moat_sandbox_uid(sb));
	ok(chown(ws, moat_sandbox_uid(sb), moat_sandbox_gid(sb)) == 0,
	    "workspace owned by the sandbox user");
	is_int(run(sb, "id -un; echo $HTTP_PROXY", out, sizeof(out)), 0,
	    "spawn into the adopted sandbox");
	snprintf(path, sizeof(path), "sandbox\nhttp://%s:3128\n",
	    moat_sandbox_host_addr(sb));
	is_str(out, path, "as its user, with its proxy address");
	is_int(run(sb, "cat /proc/self/status | grep -c '^Seccomp:.*2'", out,
	    sizeof(out)), 0, "seccomp is applied");
	moat_sandbox_detach(sb);
	ok(kill(init, 0) == 0, "detach leaves it running");
	r = moat_sandbox_adopt(&c, &sb, &cause);
	is_int(r, 0, "adopted again: %s", cause.msg);
	if (r != 0) {
		moat_sandbox_purge(name, NULL);
		return;
	}
	moat_sandbox_free(sb);
	ok(gone_within(init, 3000), "free kills an adopted sandbox");
	snprintf(path, sizeof(path), "/run/netns/moat-%s", name);
	ok(access(path, F_OK) != 0, "netns removed");
	snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/moat/%s", name);
	ok(access(path, F_OK) != 0, "cgroup removed");
	snprintf(path, sizeof(path), "%s/%s", sd, MOAT_SANDBOX_STATE_FILE);
	ok(access(path, F_OK) != 0, "state record removed");
	rmdir(ws);
	rmdir(sd);
}

/*
 * Init fails building the view (a CA file that is not there): create
 * says so, whichever of init's failure and the parent's wiring came
 * first (the parent used to report its own "open /proc/N/ns/net" then).
 * Several rounds, for both orders.
 */
static void
test_init_fails(void)
{
	char ws[] = "/tmp/moat-ut-ws-XXXXXX", name[32];
	struct moat_sandbox_config c = { .name = name, .net_index = 79 };
	struct moat_cause cause = { { 0 } };
	struct moat_sandbox *sb = NULL;
	int bad = 0, rounds = 6;

	snprintf(name, sizeof(name), "uf%d", (int)getpid() % 100000);
	if (!ok(mkdtemp(ws) != NULL, "workspace"))
		return;
	c.workspace = ws;
	c.ca_cert = "/nonexistent/moat-ut-ca.pem";
	c.ca_bundle = "/nonexistent/moat-ut-bundle.pem";
	for (int i = 0; i < rounds; i++) {
		cause.msg[0] = '\0';
		if (moat_sandbox_create(&c, &sb, &cause) == 0) {
			moat_sandbox_free(sb);
			sb = NULL;
			bad++;
			continue;
		}
		if (strstr(cause.msg, "sandbox filesystem") == NULL ||
		    strstr(cause.msg, "moat-ut-ca.pem") == NULL) {
			diag("round %d: %s", i, cause.msg);
			bad++;
		}
		moat_sandbox_purge(name, NULL);
	}
	is_int(bad, 0, "init's own reason, %d rounds of %d", rounds - bad,
	    rounds);
	rmdir(ws);
}

int
main(void)
{
	test_env();
	test_passwd();
	test_uid();
	if (geteuid() != 0)
		skip("a real sandbox needs root");
	else {
		test_sandbox();
		test_adopt();
		test_init_fails();
	}
	return done_testing();
}
