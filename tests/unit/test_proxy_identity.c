/*
 * The proxy's caller identity: every holder of a socket, TOFU hashes
 * (changed binaries, approved hashes, fingerprints, big binaries off the
 * loop), bypass packets and the fields of denial events (fixture in
 * tests/unit/proxy_fixture.h).
 */
#include "tests/unit/proxy_fixture.h"

struct retrust {
	const char *path;
	char sha[65];
	int rc;
};

static void
retrust_fn(void *arg)
{
	struct retrust *rt = arg;

	rt->rc = moat_proxy_retrust(E.p, "box", rt->path,
	    rt->sha[0] ? rt->sha : NULL);
}

/* Serve "box" again, with trusted hashes kept from before. */
struct readd {
	struct moat_proxy_trusted kept[1];
	size_t nkept;
	int rc;
};

static void
readd_fn(void *arg)
{
	struct readd *ra = arg;
	struct moat_proxy_sandbox sb = { .name = "box", .listen_addr =
		"127.0.0.1", .netns_fd = -1 };

	sb.port = (uint16_t)E.port;
	sb.procs_path = E.cg.procs;
	sb.trust = ra->kept;
	sb.ntrust = ra->nkept;
	moat_proxy_remove_sandbox(E.p, "box");
	ra->rc = moat_proxy_add_sandbox(E.p, &sb, NULL);
}

/*
 * A restarted proxy gets the hashes moatd kept with the sandbox: a file
 * changed since is "binary changed" on its first connection.
 */
static void
test_kept_trust(const char *bin, const char *extra)
{
	struct readd ra = { .nkept = 1 };
	char out[65536], sha[65], bad[65];
	int rc, n0;

	pthread_mutex_lock(&E.mu);
	n0 = E.ntrusted;
	pthread_mutex_unlock(&E.mu);
	sh("cp /usr/bin/curl %s.t && printf kept >> %s.t && mv %s.t %s", bin,
	    bin, bin, bin);
	ra.kept[0].path = bin;
	memset(bad, 'a', 64);
	bad[64] = '\0';
	ra.kept[0].sha256 = bad;
	in_loop(readd_fn, &ra);
	ok(ra.rc == 0 && set_policy(base_policy(extra, false)) == 0,
	    "box served again with a kept hash for tcurl");
	rc = curl(bin, "http://upstream.test:8080/k1", false, out, sizeof(out));
	ok(has(out, "binary changed") && !has(out, "GET /k1"),
	    "a file whose hash differs from the kept one: binary changed at "
	    "its first connection");
	pthread_mutex_lock(&E.mu);
	ok(E.ntrusted == n0, "and nothing was trusted on first use");
	moat_strlcpy(sha, E.nev > 0 ? E.ev[E.nev - 1].sha256 : "",
	    sizeof(sha));
	pthread_mutex_unlock(&E.mu);
	ra.kept[0].sha256 = sha;
	in_loop(readd_fn, &ra);
	ok(ra.rc == 0 && set_policy(base_policy(extra, false)) == 0,
	    "served again with its real hash kept");
	rc = curl(bin, "http://upstream.test:8080/k2", false, out, sizeof(out));
	ok(rc == 0 && has(out, "GET /k2"), "the kept hash is trusted");
	ra.kept[0].sha256 = "not-a-hash";
	in_loop(readd_fn, &ra);
	is_int(ra.rc, MOAT_ERR_INVALID, "a malformed kept hash is refused");
	ra.nkept = 0;
	in_loop(readd_fn, &ra);
	ok(ra.rc == 0 && set_policy(base_policy(NULL, false)) == 0,
	    "box served again as the other tests expect");
}

static void
test_tofu(void)
{
	struct retrust rt = { 0 };
	char out[65536], bin[256], extra[300], tmp[300], v2[300];
	int rc, n0;

	snprintf(bin, sizeof(bin), "%s/tcurl", E.dir);
	sh("cp /usr/bin/curl %s", bin);
	snprintf(extra, sizeof(extra), ",{\"path\":\"%s\"}", bin);
	ok(set_policy(base_policy(extra, false)) == 0, "policy with tcurl");
	/* A first use that cannot be kept (moatd away, its queue full). */
	pthread_mutex_lock(&E.mu);
	E.trust_fails = true;
	pthread_mutex_unlock(&E.mu);
	rc = curl(bin, "http://upstream.test:8080/t0", false, out, sizeof(out));
	ok(has(out, "cannot be recorded now") && !has(out, "GET /t0"),
	    "a first use that cannot be kept is refused, not trusted");
	pthread_mutex_lock(&E.mu);
	E.trust_fails = false;
	pthread_mutex_unlock(&E.mu);
	rc = curl(bin, "http://upstream.test:8080/t1", false, out, sizeof(out));
	ok(rc == 0 && has(out, "GET /t1"), "tcurl allowed on first use");
	pthread_mutex_lock(&E.mu);
	ok(strcmp(E.trusted_path, bin) == 0 && strlen(E.trusted_sha) == 64,
	    "the first use is reported for keeping (%s)", E.trusted_path);
	pthread_mutex_unlock(&E.mu);
	/* Same path, new content (an "upgrade" inside the sandbox). */
	snprintf(tmp, sizeof(tmp), "%s.new", bin);
	sh("cp /usr/bin/curl %s && printf upgrade >> %s && mv %s %s", tmp, tmp,
	    tmp, bin);
	n0 = nevents();
	rc = curl(bin, "http://upstream.test:8080/t2", false, out, sizeof(out));
	ok(has(out, "binary changed") && !has(out, "GET /t2"),
	    "changed binary at the same path is denied: binary changed");
	pthread_mutex_lock(&E.mu);
	ok(E.nev > n0 && strcmp(E.ev[E.nev - 1].stage, "identity") == 0 &&
	    strlen(E.ev[E.nev - 1].sha256) == 64 &&
	    strcmp(E.ev[E.nev - 1].binary, bin) == 0,
	    "binary changed event carries the new sha256");
	memcpy(rt.sha, E.ev[E.nev - 1].sha256, 65);
	pthread_mutex_unlock(&E.mu);

	/* The operator approves that hash; then the file is swapped. */
	snprintf(v2, sizeof(v2), "%s.v2", bin);
	sh("cp %s %s", bin, v2);
	rt.path = bin;
	in_loop(retrust_fn, &rt);
	ok(rt.rc == 0, "retrust with the approved sha256");
	sh("cp /usr/bin/curl %s && printf swapped >> %s && mv %s %s", tmp, tmp,
	    tmp, bin);
	rc = curl(bin, "http://upstream.test:8080/t3", false, out, sizeof(out));
	ok(has(out, "binary changed") && !has(out, "GET /t3"),
	    "a file swapped in after the approval is still binary changed");
	sh("cp %s %s && mv %s %s", v2, tmp, tmp, bin);
	rc = curl(bin, "http://upstream.test:8080/t4", false, out, sizeof(out));
	ok(rc == 0 && has(out, "GET /t4"), "the approved file is allowed");
	memcpy(rt.sha, "xyz", 4);
	in_loop(retrust_fn, &rt);
	ok(rt.rc == MOAT_ERR_INVALID, "retrust refuses a malformed sha256");
	/* Without a hash: forget, and trust the next use (old behaviour). */
	sh("cp /usr/bin/curl %s && printf third >> %s && mv %s %s", tmp, tmp,
	    tmp, bin);
	rt.sha[0] = '\0';
	in_loop(retrust_fn, &rt);
	rc = curl(bin, "http://upstream.test:8080/t5", false, out, sizeof(out));
	ok(rt.rc == 0 && rc == 0 && has(out, "GET /t5"),
	    "retrust without a hash forgets: the next use is trusted");
	test_kept_trust(bin, extra);
}


struct hsub {
	int fd;
	struct stat st;
	struct stat stale;
	char sha[65];
	atomic_int done;
	bool cached_stale;
	bool cached_now;
	char cached_sha[65];
};

static void
hsub_cb(void *arg, int idx, const char *sha, const char *err)
{
	struct hsub *hs = arg;

	moat_strlcpy(hs->sha, sha != NULL ? sha : "", sizeof(hs->sha));
	atomic_store(&hs->done, 1);
}

static void
hsub_submit(void *arg)
{
	struct hsub *hs = arg;

	struct px_work *job;

	if (px_hasher_submit(E.p->hasher, hs->fd, &hs->stale, NULL, hsub_cb,
	    hs, 0, &job) != 0)
		atomic_store(&hs->done, 1);
}

static void
hsub_check(void *arg)
{
	struct hsub *hs = arg;
	char sha[65];

	hs->cached_stale = px_hasher_cached(E.p->hasher, &hs->stale, sha);
	hs->cached_now = px_hasher_cached(E.p->hasher, &hs->st, hs->cached_sha);
}

/*
 * The fingerprint handed in no longer matches the file when the hash
 * is read (it changed in between): the hash must not be cached under
 * the old fingerprint, only under the one it was read with.
 */
static void
test_hash_fingerprint(void)
{
	struct hsub hs = { 0 };
	unsigned char md[32];
	char path[300], want[65];
	static const char body[] = "fingerprint test contents\n";

	snprintf(path, sizeof(path), "%s/fpfile", E.dir);
	sh("printf 'fingerprint test contents\\n' > %s", path);
	sha256(body, sizeof(body) - 1, md);
	for (int i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	hs.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (hs.fd < 0 || fstat(hs.fd, &hs.st) != 0) {
		skip("cannot open the test file");
		return;
	}
	hs.stale = hs.st;
	hs.stale.st_mtim.tv_sec -= 100;
	atomic_init(&hs.done, 0);
	in_loop(hsub_submit, &hs);
	for (int i = 0; i < 500 && !atomic_load(&hs.done); i++)
		usleep(10 * 1000);
	is_str(hs.sha, want, "hash of a file whose fingerprint moved");
	in_loop(hsub_check, &hs);
	ok(!hs.cached_stale, "not cached under the fingerprint taken before "
	    "the read");
	ok(hs.cached_now && strcmp(hs.cached_sha, want) == 0,
	    "cached under the fingerprint it was read with");
	unlink(path);
}


static void
test_big_hash(void)
{
	char bin[256], extra[300], out[4096], head[4096];
	char proxy[64], url[64];
	char *argv[] = { bin, "-sS", "-m", "30", "-o", "/dev/null", "-x",
		proxy, url, NULL };
	int64_t t0, t_base, t_small, t_big;
	int fd, st;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/bigcurl", E.dir);
	/* 100 MB of real (not sparse) bytes after the ELF image. */
	sh("cp /usr/bin/curl %s && head -c 100000000 /dev/urandom >> %s", bin,
	    bin);
	snprintf(extra, sizeof(extra), ",{\"path\":\"%s\"}", bin);
	set_policy(base_policy(extra, false));
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", E.port);
	snprintf(url, sizeof(url), "http://upstream.test:8080/big");
	sh("cat %s > /dev/null", bin); /* page cache: time the hash only */
	/* The same connection without a hash running, for comparison. */
	t_base = moat_now_ms();
	fd = dial(E.port);
	if (fd < 0 || !tunnel(fd, "upstream.test:9000", head, sizeof(head)))
		diag("the baseline connection failed");
	t_base = moat_now_ms() - t_base;
	moat_close(fd);
	t0 = moat_now_ms();
	if ((pid = fork()) == 0) {
		int dn = open("/dev/null", O_WRONLY | O_CLOEXEC);
		dup2(dn, 2);
		execv(bin, argv);
		_exit(127);
	}
	usleep(100 * 1000);
	t_small = moat_now_ms();
	fd = dial(E.port);
	ok(fd >= 0 && tunnel(fd, "upstream.test:9000", head, sizeof(head)),
	    "an allowed CONNECT while a 100 MB binary is hashed");
	t_small = moat_now_ms() - t_small;
	close(fd);
	waitpid(pid, &st, 0);
	t_big = moat_now_ms() - t0;
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the 100 MB binary is "
	    "allowed after hashing");
	diag("small connection %lld ms (alone %lld ms), 100 MB binary's "
	    "request %lld ms", (long long)t_small, (long long)t_base,
	    (long long)t_big);
	/* Stalled, it would wait for the hash: most of t_big. */
	ok(t_small < 100 || t_small * 3 < t_big ||
	    t_small < 2 * t_base + 50,
	    "hashing did not stall the other connection");
	(void)out;
}


struct bp {
	struct moat_proxy_bypass_pkt pkt;
};

static void
bypass_fn(void *arg)
{
	moat_proxy_bypass(E.p, "box", &((struct bp *)arg)->pkt);
}

static void
test_bypass(void)
{
	struct sockaddr_in local;
	socklen_t sl = sizeof(local);
	struct bp b = { 0 };
	int fd, n0;

	fd = dial(E.port);
	getsockname(fd, (struct sockaddr *)&local, &sl);
	b.pkt.family = AF_INET;
	b.pkt.l4proto = IPPROTO_TCP;
	b.pkt.src.v4 = local.sin_addr;
	inet_pton(AF_INET, "127.0.0.1", &b.pkt.dst.v4);
	b.pkt.sport = ntohs(local.sin_port);
	b.pkt.dport = (uint16_t)E.port;
	b.pkt.uid = -1;
	n0 = nevents();
	in_loop(bypass_fn, &b);
	/* The sender is named on a worker: the event follows. */
	for (int i = 0; i < 500 && nevents() == n0; i++)
		usleep(10 * 1000);
	pthread_mutex_lock(&E.mu);
	ok(E.nev == n0 + 1 && strcmp(E.ev[n0].stage, "bypass") == 0 &&
	    strcmp(E.ev[n0].binary, E.self) == 0 &&
	    strcmp(E.ev[n0].protocol, "tcp") == 0 && E.ev[n0].port == E.port,
	    "TCP bypass event names the owning binary");
	pthread_mutex_unlock(&E.mu);
	close(fd);
	b.pkt.l4proto = IPPROTO_UDP;
	b.pkt.dport = 53;
	in_loop(bypass_fn, &b);
	pthread_mutex_lock(&E.mu);
	ok(E.nev == n0 + 2 && strcmp(E.ev[n0 + 1].protocol, "udp") == 0 &&
	    E.ev[n0 + 1].port == 53 && has(E.ev[n0 + 1].reason, "bypassed"),
	    "UDP bypass event");
	pthread_mutex_unlock(&E.mu);
}


/*
 * A denial as the store gets it. The caller is this process, whose
 * parent (prove) is outside the fixture's cgroup, the "sandbox": no
 * ancestors (a lineage ends at the sandbox's edge).
 */
static void
test_events(void)
{
	int n0 = nevents();
	char *r = xfers("CONNECT upstream.test:9001 HTTP/1.1\r\n"
	    "Host: upstream.test:9001\r\n\r\n");
	struct moat_denial_event *ev;

	free(r);
	pthread_mutex_lock(&E.mu);
	ev = &E.ev[E.nev - 1];
	ok(E.nev == n0 + 1 && strcmp(ev->stage, "connect") == 0 &&
	    strcmp(ev->binary, E.self) == 0 && strlen(ev->sha256) == 64 &&
	    ev->nancestors == 0 && ev->pid > 0 && ev->uid >= 0 &&
	    strcmp(ev->host, "upstream.test") == 0 && ev->port == 9001 &&
	    strcmp(ev->protocol, "tcp") == 0 && ev->reason[0] != '\0' &&
	    ev->policy_version == E.policy_version,
	    "denial event has every field");
	pthread_mutex_unlock(&E.mu);
}


/* Wait (bounded) until pid runs an executable whose path ends in tail. */
static bool
wait_exe(pid_t pid, const char *tail)
{
	char path[64], buf[512];

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	for (int i = 0; i < 200; i++) {
		ssize_t n = readlink(path, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			if (strlen(buf) >= strlen(tail) &&
			    strcmp(buf + strlen(buf) - strlen(tail), tail) == 0)
				return true;
		}
		usleep(10 * 1000);
	}
	return false;
}

struct ident {
	struct px_sandbox *sb;
	struct sockaddr_in src;
	struct sockaddr_in dst;
	struct px_work *job;
	int rc;
	char why[512];
	struct px_identity id;
	atomic_int done;
};

static void
ident_cb(void *arg, int rc, const char *why, struct px_identity *id)
{
	struct ident *x = arg;

	x->rc = rc;
	moat_strlcpy(x->why, why, sizeof(x->why));
	if (rc == 0)
		px_identity_move(&x->id, id);
	atomic_store(&x->done, 1);
}

static void
ident_start_fn(void *arg)
{
	struct ident *x = arg;

	x->job = NULL;
	x->rc = px_identity_start(x->sb, (struct sockaddr *)&x->src,
	    (struct sockaddr *)&x->dst, false, NULL, 0, ident_cb, x, &x->job,
	    &x->id, x->why, sizeof(x->why));
	if (x->rc == PX_IDENT_NOW)
		x->rc = 0;
	if (x->rc != 0 || x->job == NULL)
		atomic_store(&x->done, 1);
}

static void
ident_clear_fn(void *arg)
{
	px_identity_clear(&((struct ident *)arg)->id);
}

/* Identify the client of src -> dst in sb, as the proxy would. */
static int
identify(struct ident *x)
{
	memset(&x->id, 0, sizeof(x->id));
	x->why[0] = '\0';
	atomic_store(&x->done, 0);
	in_loop(ident_start_fn, x);
	for (int i = 0; i < 1000 && !atomic_load(&x->done); i++)
		usleep(10 * 1000);
	if (!atomic_load(&x->done))
		return -100;
	return x->rc;
}

/*
 * A socket held by the real caller and by many co-holders of another
 * binary (listed first, as a hostile cgroup.procs order could): the
 * owner scan must see them all and call it ambiguous, not name the
 * co-holders' binary.
 */
static void
test_owners(void)
{
	enum { NHOLD = 16 };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct px_sandbox sb;
	struct ident x;
	pid_t kids[NHOLD] = { 0 };
	char procs[128];
	int lfd, cfd, afd, rc, nk = 0;
	FILE *f;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* No CLOEXEC: the children keep the client socket across exec. */
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 4) != 0 || getsockname(lfd, (struct sockaddr *)&sa,
	    &len) != 0 || connect(cfd, (struct sockaddr *)&sa,
	    sizeof(sa)) != 0 || (afd = accept4(lfd, NULL, NULL,
	    SOCK_CLOEXEC)) < 0) {
		skip("loopback socket pair");
		return;
	}
	memset(&x, 0, sizeof(x));
	len = sizeof(x.src);
	getsockname(cfd, (struct sockaddr *)&x.src, &len);
	x.dst = sa;
	memset(&sb, 0, sizeof(sb));
	sb.p = E.p;
	sb.diag_fd = px_diag_open(-1, NULL);
	sb.attrib_fd = sb.tuple_fd = -1;
	snprintf(procs, sizeof(procs), "%s/procs", E.dir);
	sb.procs_path = procs;
	x.sb = &sb;

	/* Alone, this process is the caller. */
	f = fopen(procs, "we");
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	rc = identify(&x);
	ok(rc == 0 && x.id.nbin > 0 && strcmp(x.id.bin[0].path, E.self) == 0,
	    "a socket held by one process names it");
	in_loop(ident_clear_fn, &x);

	for (nk = 0; nk < NHOLD; nk++) {
		if ((kids[nk] = fork()) == 0) {
			execl("/bin/sleep", "sleep", "30", (char *)NULL);
			_exit(127);
		}
		if (kids[nk] < 0 || !wait_exe(kids[nk], "/sleep"))
			break;
	}
	f = fopen(procs, "we");
	for (int i = 0; i < nk; i++)
		fprintf(f, "%d\n", (int)kids[i]);
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	rc = identify(&x);
	ok(nk == NHOLD && rc == MOAT_ERR_DENIED &&
	    strstr(x.why, "ambiguous") != NULL,
	    "16 co-holders listed before the caller: ambiguous, not 'sleep'");
	if (rc == 0)
		diag("identity: %s", x.id.bin[0].path);
	else
		diag("%s", x.why);
	in_loop(ident_clear_fn, &x);

	for (int i = 0; i < nk; i++) {
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	}
	close(afd);
	close(cfd);
	close(lfd);
	close(sb.diag_fd);
	unlink(procs);
}


int
main(void)
{
	if (!fixture_start())
		return done_testing();
	test_owners();
	test_events();
	test_tofu();
	test_hash_fingerprint();
	test_big_hash();
	test_bypass();
	fixture_stop();
	return done_testing();
}
