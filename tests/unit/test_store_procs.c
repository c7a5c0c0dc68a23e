/*
 * The store under several processes: two writers adding versions at
 * once, a reader counting while a writer adds batches, and a writer
 * killed (SIGKILL) at random moments (test_store.c: the API in one
 * process).
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event.h"
#include "common/util.h"
#include "store/store.h"
#include "tests/unit/store_util.h"
#include "tests/unit/tap.h"

/* ---- processes: concurrent writers, reader during writes, crash ---- */

static pid_t
fork_child(void)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		alarm(60); /* a stuck child never outlives the test */
	return pid;
}

static int
count_versions(const struct moat_store_policy *p, void *arg)
{
	int *seen = arg;

	if (p->version >= 1 && p->version <= 80)
		seen[p->version]++;
	else
		seen[0]++;
	return 0;
}

static void
test_concurrent_policy(void)
{
	struct moat_cause c = { { 0 } };
	struct moat_store *s = NULL;
	char p[256];
	pid_t kids[2];
	int st, fails = 0, per = 40, seen[81] = { 0 }, dup = 0, miss = 0;

	db_path(p, sizeof(p), "race.db");
	if (moat_store_open(p, MOAT_STORE_CREATE, &s, &c) != 0) {
		ok(0, "open race db: %s", c.msg);
		return;
	}
	moat_store_close(s);
	for (int k = 0; k < 2; k++) {
		if ((kids[k] = fork_child()) == 0) {
			struct moat_store *cs = NULL;
			int v, r = 0;

			if (moat_store_open(p, 0, &cs, NULL) != 0)
				_exit(2);
			for (int i = 0; i < per && r == 0; i++)
				r = moat_store_policy_add(cs, "race", "{}",
				    "h", "operator", k ? "kid1" : "kid0",
				    NULL, &v, NULL);
			moat_store_close(cs);
			_exit(r == 0 ? 0 : 1);
		}
	}
	for (int k = 0; k < 2; k++)
		if (kids[k] < 0 || waitpid(kids[k], &st, 0) < 0 ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fails++;
	is_int(fails, 0, "two processes added %d versions each", per);
	moat_store_open(p, MOAT_STORE_RDONLY, &s, &c);
	if (s != NULL)
		moat_store_policy_list(s, "race", count_versions, seen, &c);
	for (int v = 1; v <= 2 * per; v++) {
		if (seen[v] == 0)
			miss++;
		if (seen[v] > 1)
			dup++;
	}
	ok(miss == 0 && dup == 0 && seen[0] == 0,
	    "versions 1..%d each exactly once (missing %d, duplicate %d, "
	    "beyond %d)", 2 * per, miss, dup, seen[0]);
	moat_store_close(s);
	rm_db(p);
}

/*
 * A writer process adds batches while this process, with a read-only
 * connection, counts: it must see the count grow, never an error.
 */
static void
test_reader_while_writing(void)
{
	struct moat_denial_event *v = NULL;
	struct moat_cause c = { { 0 } };
	struct moat_store *s = NULL, *ro = NULL;
	int64_t n = 0, last = -1, t0;
	int fd[2], st, errs = 0, changes = 0, batches = 40, per = 100;
	char p[256], b;
	pid_t kid;

	db_path(p, sizeof(p), "rw.db");
	if (moat_store_open(p, MOAT_STORE_CREATE, &s, &c) != 0 ||
	    pipe2(fd, O_CLOEXEC) != 0) {
		ok(0, "setup: %s", c.msg);
		return;
	}
	moat_store_close(s);
	if ((kid = fork_child()) == 0) {
		close(fd[0]);
		v = calloc((size_t)per, sizeof(*v));
		if (v == NULL || moat_store_open(p, 0, &s, NULL) != 0)
			_exit(2);
		for (int i = 0; i < per; i++)
			mkev(&v[i], 1000 + i, "rw", "/bin/x", "h", 1);
		b = 1;
		if (write(fd[1], &b, 1) != 1)
			_exit(3);
		for (int k = 0; k < batches; k++) {
			if (moat_store_denials_add(s, v, (size_t)per,
			    NULL) != 0)
				_exit(1);
			usleep(5000);
		}
		moat_store_close(s);
		_exit(0);
	}
	close(fd[1]);
	/* The reader opens only after the writer holds the database. */
	if (read(fd[0], &b, 1) != 1 ||
	    moat_store_open(p, MOAT_STORE_RDONLY, &ro, &c) != 0) {
		ok(0, "reader open: %s", c.msg);
		kill(kid, SIGKILL);
		waitpid(kid, &st, 0);
		close(fd[0]);
		return;
	}
	close(fd[0]);
	t0 = moat_now_ms();
	while (moat_now_ms() - t0 < 20000) {
		if (moat_store_denials_count(ro, NULL, &n, &c) != 0) {
			if (errs++ == 0)
				diag("reader: %s", c.msg);
		} else if (n != last) {
			if (n < last)
				errs++;
			changes++;
			last = n;
		}
		if (waitpid(kid, &st, WNOHANG) == kid)
			break;
		usleep(2000);
	}
	moat_store_denials_count(ro, NULL, &n, &c);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer finished");
	is_int(errs, 0, "reader never failed or went back");
	ok(changes >= 3, "reader saw the count grow (%d distinct counts)",
	    changes);
	is_int(n, (int64_t)batches * per, "reader sees every row at the end");
	moat_store_close(ro);
	rm_db(p);
}

/* ---- crash: SIGKILL a writer at random moments ---- */

#define CRASH_ROUNDS 30
#define CRASH_BATCH 25
#define CRASH_MAXB 4000

static void
crash_writer(const char *path, int round, int wfd)
{
	struct moat_denial_event v[CRASH_BATCH];
	struct moat_store *s = NULL;
	int64_t b;

	if (moat_store_open(path, MOAT_STORE_CREATE, &s, NULL) != 0)
		_exit(2);
	for (int k = 0; k < CRASH_MAXB; k++) {
		b = (int64_t)round * 100000 + k;
		for (int i = 0; i < CRASH_BATCH; i++) {
			mkev(&v[i], 1700000000000LL + b * 10 + i, "crash",
			    "/bin/w", "h", 1);
			v[i].pid = (int)b;
			v[i].uid = i;
		}
		if (moat_store_denials_add(s, v, CRASH_BATCH, NULL) != 0)
			_exit(1);
		/* Reported only after commit returned. */
		if (write(wfd, &b, sizeof(b)) != sizeof(b))
			_exit(3);
	}
	_exit(0);
}

struct tally {
	int (*n)[CRASH_MAXB];
	int bad;
};

static int
tally_cb(const struct moat_denial_event *ev, int64_t id, void *arg)
{
	struct tally *t = arg;
	int round = ev->pid / 100000, k = ev->pid % 100000;

	if (round < 0 || round >= CRASH_ROUNDS || k >= CRASH_MAXB)
		t->bad++;
	else
		t->n[round][k]++;
	return 0;
}

static void
test_crash(void)
{
	static int counts[CRASH_ROUNDS][CRASH_MAXB];
	static int reported[CRASH_ROUNDS];
	struct moat_cause c = { { 0 } };
	struct moat_store *s = NULL;
	struct topcheck tc = { 0 };
	struct tally t = { counts, 0 };
	int64_t b, total = 0, t0 = moat_now_ms();
	int fd[2], st, badcheck = 0, lost = 0, partial = 0, killed = 0;
	int rounds = 0, seed = (int)(getpid() ^ moat_now_us());
	char p[256];
	pid_t kid;

	srand((unsigned)seed);
	diag("crash test seed %d", seed);
	db_path(p, sizeof(p), "crash.db");
	for (int r = 0; r < CRASH_ROUNDS && moat_now_ms() - t0 < 60000; r++) {
		reported[r] = 0;
		if (pipe2(fd, O_CLOEXEC) != 0)
			break;
		if ((kid = fork_child()) == 0) {
			close(fd[0]);
			crash_writer(p, r, fd[1]);
		}
		close(fd[1]);
		/* 0..120 ms: some kills land in open or migration. */
		usleep((useconds_t)(rand() % 120000));
		kill(kid, SIGKILL);
		waitpid(kid, &st, 0);
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
			killed++;
		while (read(fd[0], &b, sizeof(b)) == sizeof(b))
			reported[r]++;
		close(fd[0]);
		rounds++;
		/* Every crash leaves a database that opens and checks. */
		if (moat_store_open(p, MOAT_STORE_CREATE, &s, &c) != 0 ||
		    moat_store_check(s, &c) != 0) {
			if (badcheck++ == 0)
				diag("round %d: %s", r, c.msg);
		}
		moat_store_close(s);
		s = NULL;
	}
	is_int(badcheck, 0, "%d crashes: store opens, integrity_check ok",
	    rounds);
	ok(killed >= rounds / 2, "%d of %d writers died by SIGKILL "
	    "mid-stream", killed, rounds);
	if (moat_store_open(p, MOAT_STORE_RDONLY, &s, &c) != 0) {
		ok(0, "reopen: %s", c.msg);
		return;
	}
	moat_store_denials_query(s, NULL, tally_cb, &t, &c);
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < CRASH_MAXB; k++) {
			if (k < reported[r] && counts[r][k] != CRASH_BATCH)
				lost++;
			if (counts[r][k] != 0 && counts[r][k] != CRASH_BATCH)
				partial++;
			total += counts[r][k];
		}
	}
	int nrep = 0;
	for (int r = 0; r < rounds; r++)
		nrep += reported[r];
	ok(nrep > 0, "%d batches reported committed", nrep);
	is_int(lost, 0, "every reported batch is fully present");
	is_int(partial + t.bad, 0, "no partial or foreign batch");
	moat_store_denials_top(s, NULL, top_cb, &tc, &c);
	is_int(tc.sum, total, "rollup counts match rows after crashes");
	moat_store_close(s);
	rm_db(p);
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/moat-test-store-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_concurrent_policy();
	test_reader_while_writing();
	test_crash();
	rmdir(dir);
	return done_testing();
}
