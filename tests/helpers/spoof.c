/*
 * Caller-identity spoofing, for tests/e2e/identity.t: run inside a
 * sandbox as a binary the policy does not allow, each mode tries to
 * make its own connection to the proxy look like ALLOWED's (a copy of
 * this program that the policy does allow).
 *
 *	spoof direct TARGET            CONNECT TARGET itself
 *	spoof direct6 TARGET           the same from an AF_INET6 socket
 *	                               (the proxy's v4-mapped address)
 *	spoof hold                     sleep, holding inherited fds
 *	spoof bypass ADDR PORT         connect to ADDR:PORT without the proxy
 *	                               (the ruleset refuses it), stay 2 s
 *	spoof sendfd FD TARGET         CONNECT TARGET on the inherited fd FD
 *	spoof recvfd FD TARGET         receive a socket over FD (SCM_RIGHTS),
 *	                               CONNECT TARGET on it
 *	spoof listener ALLOWED TARGET  listener substitution: ALLOWED holds a
 *	                               listener on the client's port, the
 *	                               client is bound with SO_BINDTODEVICE
 *	spoof thread ALLOWED TARGET    a thread with its own fd table connects,
 *	                               ALLOWED forked from it is the only
 *	                               other holder
 *	spoof tables ALLOWED TARGET    the same from a thread whose fd table
 *	                               is the process's 71st (70 idle threads
 *	                               with tables of their own come first)
 *	spoof zombie ALLOWED TARGET    the same with a zombie thread group
 *	                               leader (the main thread exited)
 *	spoof scm ALLOWED TARGET       connect, hand the socket to ALLOWED
 *	                               (SCM_RIGHTS), which sends the request
 *	spoof exec ALLOWED TARGET      connect, then exec ALLOWED, which sends
 *	                               the request on the inherited socket
 *	spoof forkexec ALLOWED TARGET  fork, then exec ALLOWED hold: the child
 *	                               (still this program) connects once its
 *	                               parent runs ALLOWED
 *	spoof reaper ALLOWED TARGET    the same through a subreaper: an orphan
 *	                               reparented to this process (which then
 *	                               execs ALLOWED), with exec counts that
 *	                               agree (its parent exec'd once)
 *	spoof dlopen LIB DIR TARGET    make DIR/ready, wait for DIR/go, dlopen
 *	                               LIB, then CONNECT TARGET
 *	spoof burst K TARGET [FD]      K CONNECTs sent at once (a byte on FD
 *	                               when all are sent); prints the codes
 *	spoof stall N K PROG VICTIM TARGET
 *	                               map N more regions (a long
 *	                               /proc/PID/maps), then K CONNECTs sent
 *	                               at once by this process (PROG "-") or
 *	                               by a child running PROG burst; then
 *	                               time VICTIM direct TARGET: prints
 *	                               victim_ms=N
 *
 * The proxy comes from $HTTP_PROXY. Prints "code=N" (0 when no answer)
 * and the response; exits 0 once it printed, 2 when the setup failed.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *g_allowed, *g_target;

static void
die(const char *what)
{
	printf("setup-failed: %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(2);
}

static void
proxy_addr(struct sockaddr_in *sa)
{
	const char *p = getenv("HTTP_PROXY");
	char host[64];
	int port = 0;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (p == NULL || sscanf(p, "http://%63[0-9.]:%d", host, &port) != 2 ||
	    inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
		errno = EINVAL;
		die("HTTP_PROXY");
	}
	sa->sin_port = htons((uint16_t)port);
}

static int
dial(int fd)
{
	struct sockaddr_in sa;

	proxy_addr(&sa);
	if (fd < 0 && (fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect to the proxy");
	return fd;
}

/* A dual-stack socket to the proxy's IPv4 address, v4-mapped. */
static int
dial6(void)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in sa;
	int fd, off = 0;

	proxy_addr(&sa);
	s6.sin6_port = sa.sin_port;
	s6.sin6_addr.s6_addr[10] = s6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&s6.sin6_addr.s6_addr[12], &sa.sin_addr, 4);
	if ((fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0)
		die("AF_INET6 socket");
	if (connect(fd, (struct sockaddr *)&s6, sizeof(s6)) != 0)
		die("connect to the proxy's v4-mapped address");
	return fd;
}

/* CONNECT on fd; print the status code and what came back. */
static void
request(int fd)
{
	struct timeval tv = { 5, 0 };
	char buf[8192];
	size_t len = 0;
	ssize_t n;
	int code = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = snprintf(buf, sizeof(buf), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
	    g_target, g_target);
	if (write(fd, buf, (size_t)n) != n)
		die("write the request");
	while (len < sizeof(buf) - 1 &&
	    (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += (size_t)n;
		buf[len] = '\0';
		/* A tunnel stays open: its head is the whole answer. */
		if (strncmp(buf, "HTTP/1.1 200", 12) == 0 &&
		    strstr(buf, "\r\n\r\n") != NULL)
			break;
	}
	buf[len] = '\0';
	sscanf(buf, "HTTP/1.%*d %d", &code);
	printf("code=%d\n%s\n", code, buf);
	fflush(stdout);
}

/* Is pid running path yet? (bounded wait) */
static void
wait_exe(pid_t pid, const char *path)
{
	char link[64], buf[4096];

	char last[160] = "nothing read";
	int e = 0;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	for (int i = 0; i < 300; i++) {
		ssize_t n = readlink(link, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			if (strcmp(buf, path) == 0)
				return;
			snprintf(last, sizeof(last), "it runs %.120s", buf);
		} else {
			e = errno;
			snprintf(last, sizeof(last), "readlink %s: %s", link,
			    strerror(e));
		}
		usleep(10000);
	}
	/* Say what was seen last: a flake in CI then says why. */
	printf("setup-failed: the allowed holder did not start in 3 s (pid "
	    "%d, %s)\n", (int)pid, last);
	fflush(stdout);
	exit(2);
}

/* ALLOWED hold, inheriting every fd that is not close-on-exec. */
static pid_t
spawn_hold(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		execl(g_allowed, g_allowed, "hold", (char *)NULL);
		_exit(127);
	}
	wait_exe(pid, g_allowed);
	return pid;
}

static void
reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The first interface that is up and not loopback. */
static void
ifname(char *out, size_t len)
{
	struct ifaddrs *ifa, *i;

	out[0] = '\0';
	if (getifaddrs(&ifa) != 0)
		die("getifaddrs");
	for (i = ifa; i != NULL && out[0] == '\0'; i = i->ifa_next)
		if (i->ifa_addr != NULL && i->ifa_addr->sa_family == AF_INET &&
		    (i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK))
			snprintf(out, len, "%s", i->ifa_name);
	freeifaddrs(ifa);
	if (out[0] == '\0') {
		errno = ENODEV;
		die("no interface");
	}
}

static void
mode_listener(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	char dev[IFNAMSIZ];
	int one = 1, l, c;
	pid_t holder;

	/* Not close-on-exec: the allowed holder inherits the listener. */
	if ((l = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(l, 1) != 0 || getsockname(l, (struct sockaddr *)&sa,
	    &sl) != 0)
		die("listener");
	holder = spawn_hold();
	close(l);
	ifname(dev, sizeof(dev));
	/* The client: same port, bound to the device, so the exact lookup
	 * of its connection misses and finds the listener instead. */
	if ((c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(c, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    setsockopt(c, SOL_SOCKET, SO_BINDTODEVICE, dev,
	    (socklen_t)strlen(dev) + 1) != 0 ||
	    bind(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("client bound to the listener's port and the device");
	request(dial(c));
	reap(holder);
}

/*
 * A thread cloned without CLONE_FILES: it has a copy of the fd table,
 * and what it opens is in no other thread's. The main thread waits in a
 * read(2) while it runs, so the two never use libc at the same time.
 */
static int g_done[2];

static int
nofiles_main(void *arg)
{
	pid_t holder;
	int s;
	char b = 1;

	(void)arg;
	s = dial(-1); /* not close-on-exec: the holder inherits it */
	holder = spawn_hold();
	request(s);
	reap(holder);
	if (write(g_done[1], &b, 1) != 1)
		_exit(2);
	syscall(SYS_exit, 0);
	return 0;
}

static void
mode_thread(void)
{
	static char stack[256 * 1024] __attribute__((aligned(16)));
	char b;

	if (pipe(g_done) != 0)
		die("pipe");
	if (clone(nofiles_main, stack + sizeof(stack), CLONE_VM | CLONE_FS |
	    CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM, NULL) == -1)
		die("clone without CLONE_FILES");
	if (syscall(SYS_read, g_done[0], &b, 1) != 1)
		_exit(2);
}

/*
 * An idle thread with a table of its own: raw syscalls only, no libc. It
 * waits on a pipe of its own (never written; _exit ends it): on g_done it
 * would take the byte meant for the main thread, which then waited for
 * the caller's timeout.
 */
static int g_idle[2];

static int
idle_main(void *arg)
{
	char b;

	(void)arg;
	syscall(SYS_read, g_idle[0], &b, 1);
	syscall(SYS_exit, 0);
	return 0;
}

static void
mode_tables(void)
{
	enum { NIDLE = 70, STACK = 64 * 1024 };
	static char stack[256 * 1024] __attribute__((aligned(16)));
	static char idle[NIDLE][STACK] __attribute__((aligned(16)));
	int flags = CLONE_VM | CLONE_FS | CLONE_SIGHAND | CLONE_THREAD |
	    CLONE_SYSVSEM;
	char b;

	if (pipe(g_done) != 0 || pipe(g_idle) != 0)
		die("pipe");
	for (int i = 0; i < NIDLE; i++)
		if (clone(idle_main, idle[i] + STACK, flags, NULL) == -1)
			die("clone an idle thread without CLONE_FILES");
	if (clone(nofiles_main, stack + sizeof(stack), flags, NULL) == -1)
		die("clone without CLONE_FILES");
	if (syscall(SYS_read, g_done[0], &b, 1) != 1)
		_exit(2);
	_exit(0);
}

static void *
zombie_main(void *arg)
{
	pid_t holder;
	int s;

	(void)arg;
	usleep(100000); /* the main thread exits first */
	s = dial(-1);
	holder = spawn_hold();
	request(s);
	reap(holder);
	exit(0);
}

static void
mode_zombie(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, zombie_main, NULL) != 0)
		die("pthread_create");
	pthread_exit(NULL); /* the leader becomes a zombie */
}

static void
mode_scm(void)
{
	char cbuf[CMSG_SPACE(sizeof(int))], one = 'x';
	struct iovec iov = { &one, 1 };
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;
	int sp[2], s, st;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
		die("socketpair");
	if ((pid = fork()) == 0) {
		dup2(sp[1], 3);
		execl(g_allowed, g_allowed, "recvfd", "3", g_target,
		    (char *)NULL);
		_exit(127);
	}
	s = dial(-1);
	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &s, sizeof(int));
	if (sendmsg(sp[0], &mh, 0) != 1)
		die("sendmsg");
	/* Only the allowed binary holds it now. */
	close(s);
	waitpid(pid, &st, 0);
	exit(WIFEXITED(st) ? WEXITSTATUS(st) : 2);
}

static void
mode_recvfd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))], one;
	struct iovec iov = { &one, 1 };
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;
	int fd;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1 ||
	    (cm = CMSG_FIRSTHDR(&mh)) == NULL || cm->cmsg_type != SCM_RIGHTS)
		die("recvmsg");
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	request(fd);
}

static void
mode_exec(void)
{
	char arg[16];
	int s = dial(-1); /* not close-on-exec */

	snprintf(arg, sizeof(arg), "%d", s);
	execl(g_allowed, g_allowed, "sendfd", arg, g_target, (char *)NULL);
	die("exec");
}

/* The child connects once its parent runs ALLOWED (hold). */
static void
mode_forkexec(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		wait_exe(getppid(), g_allowed);
		request(dial(-1));
		kill(getppid(), SIGKILL); /* done: the holder need not wait */
		exit(0);
	}
	execl(g_allowed, g_allowed, "hold", (char *)NULL);
	die("exec");
}

/*
 * A subreaper forks a middle process, which execs itself once (so the
 * orphan's parent_exec_id matches the subreaper's after its own exec),
 * forks the caller and exits; the orphan is reparented to the
 * subreaper, which then execs ALLOWED.
 */
static void
mode_reaper(const char *self)
{
	pid_t pid;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		die("PR_SET_CHILD_SUBREAPER");
	if ((pid = fork()) < 0)
		die("fork");
	if (pid == 0) {
		execl(self, self, "reaper-mid", g_allowed, g_target,
		    (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	execl(g_allowed, g_allowed, "hold", (char *)NULL);
	die("exec");
}

static void
mode_reaper_mid(void)
{
	/* Before the fork: in the child, getppid() is this process until
	 * it exits (a race the test lost under load). */
	pid_t reaper = getppid(), pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		while (getppid() != reaper)
			usleep(1000);
		wait_exe(reaper, g_allowed);
		request(dial(-1));
		kill(reaper, SIGKILL);
		exit(0);
	}
	exit(0);
}

static void
mode_dlopen(const char *lib, const char *dir)
{
	char path[4096];
	int fd, i;

	snprintf(path, sizeof(path), "%s/ready", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0)
		die("ready");
	close(fd);
	snprintf(path, sizeof(path), "%s/go", dir);
	for (i = 0; i < 500 && access(path, F_OK) != 0; i++)
		usleep(10000);
	if (i == 500) {
		errno = ETIMEDOUT;
		die("wait for go");
	}
	if (dlopen(lib, RTLD_NOW) == NULL) {
		printf("setup-failed: dlopen: %s\n", dlerror());
		exit(2);
	}
	request(dial(-1));
}

/* n more regions: pages of our own file, each its own line in maps. */
static void
map_many(long n)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *base;
	int fd;

	if ((fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)) < 0 ||
	    (base = mmap(NULL, (size_t)(n * 2 * pg), PROT_NONE, MAP_PRIVATE |
	    MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		die("reserve");
	/* Every other page: the PROT_NONE ones keep them from merging. */
	for (long i = 0; i < n; i++)
		if (mmap(base + i * 2 * pg, (size_t)pg, PROT_READ, MAP_PRIVATE |
		    MAP_FIXED, fd, 0) == MAP_FAILED)
			die("map");
	close(fd);
}

/* k CONNECTs written at once; the sockets are returned in s. */
static void
burst_send(int *s, int k)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n"
	    "\r\n", g_target, g_target);
	for (int i = 0; i < k; i++)
		s[i] = dial(-1);
	for (int i = 0; i < k; i++)
		if (write(s[i], buf, (size_t)n) != n)
			die("write a request");
}

static void
burst_read(int *s, int k)
{
	struct timeval tv = { 60, 0 };
	int ok = 0, denied = 0, other = 0;

	for (int i = 0; i < k; i++) {
		char buf[64] = "";
		int code = 0;

		setsockopt(s[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (read(s[i], buf, sizeof(buf) - 1) > 0)
			sscanf(buf, "HTTP/1.%*d %d", &code);
		*(code == 200 ? &ok : code == 403 ? &denied : &other) += 1;
		close(s[i]);
	}
	printf("burst 200=%d 403=%d other=%d\n", ok, denied, other);
	fflush(stdout);
}

static void
mode_burst(int k, int fd)
{
	int s[256];

	if (k < 1 || k > 256)
		die("burst size");
	burst_send(s, k);
	if (fd >= 0 && write(fd, "x", 1) != 1)
		die("signal the burst");
	burst_read(s, k);
}

static void
mode_stall(long n, int k, const char *prog, const char *victim)
{
	struct timespec t0, t1;
	int s[256], pp[2], st;
	pid_t burst = -1, v;
	char b, karg[16], farg[16];

	if (k < 1 || k > 256 || pipe(pp) != 0)
		die("stall setup");
	map_many(n);
	if (strcmp(prog, "-") == 0) {
		burst_send(s, k);
	} else if ((burst = fork()) == 0) {
		snprintf(karg, sizeof(karg), "%d", k);
		snprintf(farg, sizeof(farg), "%d", pp[1]);
		execl(prog, prog, "burst", karg, g_target, farg, (char *)NULL);
		_exit(127);
	} else if (burst < 0 || read(pp[0], &b, 1) != 1) {
		die("the burst did not start");
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((v = fork()) == 0) {
		execl(victim, victim, "direct", g_target, (char *)NULL);
		_exit(127);
	}
	if (v < 0)
		die("fork the victim");
	waitpid(v, &st, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("victim_ms=%ld\n", (long)((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000));
	fflush(stdout);
	if (burst < 0)
		burst_read(s, k);
	else
		waitpid(burst, &st, 0);
}

int
main(int argc, char **argv)
{
	const char *m = argc > 1 ? argv[1] : "";

	signal(SIGPIPE, SIG_IGN);
	if (strcmp(m, "hold") == 0) {
		sleep(20);
		return 0;
	}
	if (argc == 4 && strcmp(m, "bypass") == 0) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		sa.sin_port = htons((uint16_t)atoi(argv[3]));
		if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1)
			die("bypass address");
		printf("connect=%d\n", connect(s, (struct sockaddr *)&sa,
		    sizeof(sa)) == 0 ? 0 : errno);
		fflush(stdout);
		sleep(2);
		return 0;
	}
	if (argc == 3 && strcmp(m, "direct") == 0) {
		g_target = argv[2];
		request(dial(-1));
		return 0;
	}
	if (argc == 3 && strcmp(m, "direct6") == 0) {
		g_target = argv[2];
		request(dial6());
		return 0;
	}
	if (argc == 4 && (strcmp(m, "sendfd") == 0 ||
	    strcmp(m, "recvfd") == 0)) {
		g_target = argv[3];
		if (m[0] == 's')
			request(atoi(argv[2]));
		else
			mode_recvfd(atoi(argv[2]));
		return 0;
	}
	if ((argc == 4 || argc == 5) && strcmp(m, "burst") == 0) {
		g_target = argv[3];
		mode_burst(atoi(argv[2]), argc == 5 ? atoi(argv[4]) : -1);
		return 0;
	}
	if (argc == 5 && strcmp(m, "dlopen") == 0) {
		g_target = argv[4];
		mode_dlopen(argv[2], argv[3]);
		return 0;
	}
	if (argc == 7 && strcmp(m, "stall") == 0) {
		g_target = argv[6];
		mode_stall(atol(argv[2]), atoi(argv[3]), argv[4], argv[5]);
		return 0;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: spoof MODE [ALLOWED] TARGET\n");
		return 2;
	}
	g_allowed = argv[2];
	g_target = argv[3];
	if (strcmp(m, "listener") == 0)
		mode_listener();
	else if (strcmp(m, "thread") == 0)
		mode_thread();
	else if (strcmp(m, "zombie") == 0)
		mode_zombie();
	else if (strcmp(m, "tables") == 0)
		mode_tables();
	else if (strcmp(m, "scm") == 0)
		mode_scm();
	else if (strcmp(m, "exec") == 0)
		mode_exec();
	else if (strcmp(m, "forkexec") == 0)
		mode_forkexec();
	else if (strcmp(m, "reaper") == 0)
		mode_reaper(argv[0]);
	else if (strcmp(m, "reaper-mid") == 0)
		mode_reaper_mid();
	else
		return 2;
	return 0;
}
