/*
 * The proxy's confinement (proxy/confine.c), checked in forked children:
 * its uid and capabilities afterwards, and that the seccomp allowlist
 * refuses what the proxy never needs (exec, new namespaces, raw
 * sockets, BPF beyond map lookups) while its own work goes on.
 */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/bpf.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proxy/internal.h"
#include "proxy/proxy.h"
#include "tests/unit/tap.h"

#define UID 59998

/* A BPF map made before the confinement, as moatd hands one over. */
static int map_fd = -1;

/* Confine, then run fn; the child's exit code is fn's, 99 if confining failed. */
static int
in_child(int (*fn)(void))
{
	struct moat_proxy_config cfg = { .port = 3128, .run_uid = UID,
		.run_gid = UID };
	struct moat_cause cause = { "" };
	int st;
	pid_t p = fork();

	if (p == 0) {
		if (px_confine(&cfg, &cause) != 0) {
			fprintf(stderr, "# %s\n", cause.msg);
			_exit(99);
		}
		_exit(fn());
	}
	waitpid(p, &st, 0);
	return st;
}

static int
ids_and_caps(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	int ok = 0;

	if (f == NULL)
		return 1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strcmp(line, "Uid:\t59998\t59998\t59998\t59998\n") == 0 ||
		    strcmp(line, "CapEff:\t0000008000080004\n") == 0 ||
		    strcmp(line, "CapBnd:\t0000008000080004\n") == 0 ||
		    strcmp(line, "NoNewPrivs:\t1\n") == 0 ||
		    strcmp(line, "Seccomp:\t2\n") == 0)
			ok++;
	}
	fclose(f);
	return ok == 5 ? 0 : 1;
}

static int
work_goes_on(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int fd = open("/proc/1/stat", O_RDONLY | O_CLOEXEC);

	return s >= 0 && fd >= 0 ? 0 : 1;
}

static void *
nothing(void *arg)
{
	return arg;
}

/* The worker pools and the resolver (hosts file, then DNS) still work. */
static int
threads_and_names(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	pthread_t t;
	int r;

	if (pthread_create(&t, NULL, nothing, NULL) != 0 ||
	    pthread_join(t, NULL) != 0)
		return 1;
	r = getaddrinfo("localhost", "80", &hints, &ai);
	if (ai != NULL)
		freeaddrinfo(ai);
	return r == 0 ? 0 : 2;
}

/* Looking a record up in an attribution map it was handed. */
static int
map_lookup(void)
{
	union bpf_attr a;
	uint32_t key = 0;
	uint64_t val = 1;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)map_fd;
	a.key = (uint64_t)(uintptr_t)&key;
	a.value = (uint64_t)(uintptr_t)&val;
	return map_fd >= 0 && syscall(SYS_bpf, BPF_MAP_LOOKUP_ELEM, &a,
	    sizeof(a)) == 0 && val == 0 ? 0 : 1;
}

static int
exec_it(void)
{
	execl("/bin/true", "true", (char *)NULL);
	return 0;
}

static int
enter_netns(void)
{
	(void)unshare(CLONE_NEWNET);
	return 0;
}

static int
raw_socket(void)
{
	return socket(AF_PACKET, SOCK_RAW, 0) < 0 && errno == EPERM ? 0 : 1;
}

static int
bpf_load(void)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	return syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof(a)) < 0 &&
	    errno == EPERM ? 0 : 1;
}

static int
fork_it(void)
{
	pid_t p = fork();

	if (p == 0)
		_exit(0);
	return p < 0 && errno == EPERM ? 0 : 1;
}

static int
regain_root(void)
{
	(void)setuid(0);
	return 0;
}

static bool
killed(int st)
{
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS;
}

static bool
exited0(int st)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int
main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root (it changes ids)\n");
		return 0;
	}
	ok(exited0(in_child(ids_and_caps)),
	    "uid 59998, only DAC_READ_SEARCH SYS_PTRACE BPF, nnp, seccomp");
	{
		union bpf_attr a;

		memset(&a, 0, sizeof(a));
		a.map_type = BPF_MAP_TYPE_ARRAY;
		a.key_size = 4;
		a.value_size = 8;
		a.max_entries = 1;
		map_fd = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a));
	}
	ok(exited0(in_child(work_goes_on)), "sockets and /proc still work");
	ok(exited0(in_child(threads_and_names)), "threads start and names "
	    "resolve");
	ok(exited0(in_child(map_lookup)), "a BPF map lookup works");
	ok(killed(in_child(exec_it)), "exec kills the proxy");
	ok(killed(in_child(enter_netns)), "unshare kills the proxy");
	ok(killed(in_child(regain_root)), "setuid kills the proxy");
	ok(exited0(in_child(raw_socket)), "a packet socket is refused");
	ok(exited0(in_child(bpf_load)), "bpf() other than a map lookup is "
	    "refused");
	ok(exited0(in_child(fork_it)), "fork (not a thread) is refused");
	return done_testing();
}
