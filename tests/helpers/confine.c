/*
 * confine CASE [ARG...]: run inside `moat run`; exits 0 and prints "ok"
 * when the confinement named by CASE holds, else prints "fail: why" and
 * exits 1. tests/e2e/sandbox.t runs every case. A few cases end by being
 * killed (memory_hog, kill_all, compat_arch): the runner checks the
 * status.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/seccomp.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int
fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
fail(const char *fmt, ...)
{
	va_list ap;

	printf("fail: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 1;
}

/* The call must have failed with EPERM (what our seccomp filter says). */
static int
want_eperm(const char *what, long rv)
{
	if (rv >= 0)
		return fail("%s succeeded", what);
	if (errno != EPERM)
		return fail("%s: %s, not EPERM", what, strerror(errno));
	return 0;
}

static int
c_raw_socket(char **a)
{
	return want_eperm("socket(AF_INET, SOCK_RAW)",
	    socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP)) |
	    want_eperm("socket(AF_INET6, SOCK_RAW)",
	    socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
}

static int
c_packet_socket(char **a)
{
	return want_eperm("socket(AF_PACKET)",
	    socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)) |
	    want_eperm("socket(AF_INET, SOCK_PACKET)",
	    socket(AF_INET, SOCK_PACKET | SOCK_CLOEXEC, 0)) |
	    want_eperm("socket(AF_VSOCK)",
	    socket(40, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

static int
c_netlink_other(char **a)
{
	static const int protos[] = { NETLINK_AUDIT, NETLINK_NETFILTER,
		NETLINK_KOBJECT_UEVENT, NETLINK_SOCK_DIAG, NETLINK_XFRM };
	int r = 0;

	for (size_t i = 0; i < sizeof(protos) / sizeof(*protos); i++) {
		char what[64];

		snprintf(what, sizeof(what), "netlink protocol %d", protos[i]);
		r |= want_eperm(what, socket(AF_NETLINK, SOCK_RAW |
		    SOCK_CLOEXEC, protos[i]));
	}
	return r;
}

static int
c_netlink_route_ok(char **a)
{
	if (socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) < 0)
		return fail("NETLINK_ROUTE refused: %s", strerror(errno));
	return 0;
}

static int
cannot_create(const char *dir)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/moat-confine-%d", dir, (int)getpid());
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0644)) >= 0) {
		close(fd);
		unlink(path);
		return fail("created %s", path);
	}
	return 0;
}

static int
c_write_usr(char **a)
{
	return cannot_create("/usr") | cannot_create("/usr/bin") |
	    cannot_create("/usr/local/bin");
}

static int
c_write_etc(char **a)
{
	return cannot_create("/etc") | cannot_create("/etc/ssh");
}

static int
c_write_outside_workspace(char **a)
{
	static const char *const dirs[] = { "/", "/var", "/opt", "/home",
		"/root", "/run", "/dev", "/proc", "/sys", "/boot", "/srv" };
	char self[512];
	ssize_t n;
	int r = 0;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++)
		r |= cannot_create(dirs[i]);
	/* The host directory this program lives in (the build dir). */
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		r |= cannot_create(self);
	}
	return r;
}

static int
c_write_workspace(char **a)
{
	static const char *const files[] = { "/sandbox/f", "/tmp/f",
		"/var/tmp/f", "/dev/shm/f" };

	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		int fd = open(files[i], O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0600);

		if (fd < 0 || write(fd, "x", 1) != 1)
			return fail("write %s: %s", files[i], strerror(errno));
		close(fd);
		unlink(files[i]);
	}
	if (mkdir("/sandbox/d", 0700) != 0 || rmdir("/sandbox/d") != 0)
		return fail("mkdir in /sandbox: %s", strerror(errno));
	return 0;
}

static int
c_symlink_shadow(char **a)
{
	int fd;

	unlink("/sandbox/shadow-link");
	if (symlink("/etc/shadow", "/sandbox/shadow-link") != 0)
		return fail("symlink: %s", strerror(errno));
	fd = open("/sandbox/shadow-link", O_RDONLY | O_CLOEXEC);
	unlink("/sandbox/shadow-link");
	if (fd >= 0)
		return fail("read /etc/shadow through a symlink");
	if (open("/etc/shadow", O_RDONLY | O_CLOEXEC) >= 0)
		return fail("read /etc/shadow");
	return 0;
}

static int
c_setuid_copy(char **a)
{
	char out[64] = "";
	struct statvfs sv;
	FILE *p;

	if (system("cp /usr/bin/id /sandbox/id-suid && "
	    "chmod 4755 /sandbox/id-suid") != 0)
		return fail("could not make the setuid copy");
	if ((p = popen("/sandbox/id-suid -u", "r")) == NULL ||
	    fgets(out, sizeof(out), p) == NULL)
		return fail("could not run the setuid copy");
	pclose(p);
	unlink("/sandbox/id-suid");
	if ((uid_t)atoi(out) != getuid())
		return fail("euid became %s", out);
	/* Host setuid-root binaries gain nothing either: nosuid + NNP. */
	if (statvfs("/usr/bin", &sv) != 0 || !(sv.f_flag & ST_NOSUID))
		return fail("/usr/bin is not mounted nosuid");
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return fail("no_new_privs is not set");
	return 0;
}

static int
c_ptrace_outside(char **a)
{
	char buf[8];
	struct iovec l = { buf, sizeof(buf) }, r = { (void *)0x1000, 8 };

	return want_eperm("ptrace(ATTACH, 1)", ptrace(PTRACE_ATTACH, 1, 0,
	    0)) | want_eperm("ptrace(TRACEME)", ptrace(PTRACE_TRACEME, 0, 0,
	    0)) | want_eperm("process_vm_readv",
	    process_vm_readv(1, &l, 1, &r, 1, 0));
}

/*
 * No process may write another's memory through /proc: a child running
 * a real program is visible and readable, its mem files refuse writes.
 */
static int
c_proc_mem(char **a)
{
	char path[64], *argv[] = { "sleep", "30", NULL };
	int r = 0, fd;
	pid_t pid;

	if ((pid = fork()) < 0)
		return fail("fork: %s", strerror(errno));
	if (pid == 0) {
		execv("/bin/sleep", argv);
		_exit(127);
	}
	/* Until the child has exec'd, its mem is ours (same mm). */
	for (int i = 0; i < 200; i++) {
		char exe[64] = "";
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		if ((n = readlink(path, exe, sizeof(exe) - 1)) > 0 &&
		    strstr(exe, "sleep") != NULL)
			break;
		usleep(10000);
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		r = fail("cannot even read %s (%s): the test proves nothing",
		    path, strerror(errno));
	else
		close(fd);
	if ((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0) {
		r = fail("%s opened for writing", path);
		close(fd);
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/mem", (int)pid,
	    (int)pid);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
		r = fail("%s opened for writing", path);
		close(fd);
	}
	if ((fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC)) >= 0) {
		r = fail("/proc/self/mem opened for writing");
		close(fd);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return r;
}

static int
c_proc_hidden(char **a)
{
	struct dirent *e;
	char comm[64] = "";
	int n = 0, fd;
	DIR *d = opendir("/proc");

	if (d == NULL)
		return fail("opendir /proc: %s", strerror(errno));
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
			n++;
	closedir(d);
	if (n >= 20)
		return fail("/proc lists %d processes", n);
	if ((fd = open("/proc/1/comm", O_RDONLY | O_CLOEXEC)) >= 0) {
		ssize_t k = read(fd, comm, sizeof(comm) - 1);

		comm[k > 0 ? k : 0] = '\0';
		close(fd);
	}
	if (a[0] != NULL && strncmp(comm, a[0], strlen(a[0])) != 0)
		return fail("pid 1 is '%s', not '%s'", comm, a[0]);
	return 0;
}

static int
c_kill_all(char **a)
{
	pid_t pid = fork();

	if (pid == 0) {
		kill(-1, SIGKILL);
		_exit(0);
	}
	/* kill(-1) takes us too: the runner expects 137. */
	sleep(5);
	return fail("still alive after kill(-1, SIGKILL)");
}

static int
c_unshare_user(char **a)
{
	return want_eperm("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER)) |
	    want_eperm("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS)) |
	    want_eperm("clone(CLONE_NEWUSER)", syscall(SYS_clone,
	    CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)) |
	    want_eperm("clone(CLONE_NEWNET)", syscall(SYS_clone,
	    CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
}

static int
c_mount(char **a)
{
	return want_eperm("mount tmpfs", mount("none", "/tmp", "tmpfs", 0,
	    NULL)) | want_eperm("umount2", umount2("/tmp", MNT_DETACH)) |
	    want_eperm("fsopen", syscall(SYS_fsopen, "tmpfs", 0)) |
	    want_eperm("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/tmp",
	    0)) | want_eperm("pivot_root", syscall(SYS_pivot_root, "/tmp",
	    "/tmp"));
}

static int
c_setns(char **a)
{
	int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fail("open ns: %s", strerror(errno));
	return want_eperm("setns", setns(fd, 0));
}

static int
c_keyctl(char **a)
{
	return want_eperm("keyctl", syscall(SYS_keyctl, 0, -3, 0)) |
	    want_eperm("add_key", syscall(SYS_add_key, "user", "k", "v", 1,
	    -3)) | want_eperm("request_key", syscall(SYS_request_key,
	    "user", "k", NULL, 0));
}

static int
c_bpf(char **a)
{
	char attr[128];

	memset(attr, 0, sizeof(attr));
	return want_eperm("bpf", syscall(SYS_bpf, 0, attr, sizeof(attr)));
}

static int
c_io_uring_setup(char **a)
{
	char params[120];

	memset(params, 0, sizeof(params));
	return want_eperm("io_uring_setup", syscall(SYS_io_uring_setup, 4,
	    params)) | want_eperm("io_uring_enter",
	    syscall(SYS_io_uring_enter, 0, 0, 0, 0, NULL, 0));
}

static int
c_perf_event_open(char **a)
{
	char attr[128];

	memset(attr, 0, sizeof(attr));
	return want_eperm("perf_event_open", syscall(SYS_perf_event_open,
	    attr, 0, -1, -1, 0)) | want_eperm("userfaultfd",
	    syscall(SYS_userfaultfd, 0));
}

static int
c_tiocsti(char **a)
{
	char c = 'x';

	return want_eperm("ioctl(TIOCSTI)", ioctl(0, TIOCSTI, &c)) |
	    want_eperm("ioctl(0xffffffff00005412)", syscall(SYS_ioctl, 0,
	    0xffffffff00005412UL, &c)) | want_eperm("ioctl(TIOCLINUX)",
	    ioctl(0, TIOCLINUX, &c));
}

/* confine tfo ADDR PORT: a port the sandbox may not reach. */
static int
c_tfo(char **a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (a[0] == NULL || a[1] == NULL)
		return fail("usage: tfo ADDR PORT");
	sin.sin_port = htons((uint16_t)atoi(a[1]));
	inet_pton(AF_INET, a[0], &sin.sin_addr);
	return want_eperm("sendto(MSG_FASTOPEN)", sendto(s, "x", 1,
	    MSG_FASTOPEN, (struct sockaddr *)&sin, sizeof(sin))) |
	    want_eperm("setsockopt(TCP_FASTOPEN_CONNECT)", setsockopt(s,
	    IPPROTO_TCP, 30, &one, sizeof(one)));
}

static int
c_clone3_enosys(char **a)
{
	struct clone_args ca;
	long r;

	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r == 0)
		_exit(0);
	if (r > 0)
		return fail("clone3 worked");
	if (errno != ENOSYS)
		return fail("clone3: %s, not ENOSYS", strerror(errno));
	/* and glibc still forks (through clone) */
	if ((r = fork()) == 0)
		_exit(0);
	if (r < 0)
		return fail("fork: %s", strerror(errno));
	waitpid((pid_t)r, NULL, 0);
	return 0;
}

static int
c_personality(char **a)
{
	if (personality(0xffffffff) < 0)
		return fail("personality query: %s", strerror(errno));
	if (personality(PER_LINUX) < 0)
		return fail("personality(PER_LINUX): %s", strerror(errno));
	return want_eperm("personality(ADDR_NO_RANDOMIZE)",
	    personality(ADDR_NO_RANDOMIZE)) |
	    want_eperm("personality(PER_LINUX32)", personality(PER_LINUX32));
}

static int
c_seccomp(char **a)
{
	struct sock_filter f = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog p = { 1, &f };

	/* The kernel reads op and option as 32 bits: high bits are noise. */
	unsigned long hi = sizeof(long) > 4 ? ~0UL << 31 << 1 : 0;

	return want_eperm("seccomp(SET_MODE_FILTER)", syscall(SYS_seccomp,
	    SECCOMP_SET_MODE_FILTER, 0, &p)) |
	    want_eperm("prctl(PR_SET_SECCOMP)", prctl(PR_SET_SECCOMP,
	    SECCOMP_MODE_FILTER, &p, 0, 0)) |
	    want_eperm("seccomp(high bits | SET_MODE_FILTER)",
	    syscall(SYS_seccomp, hi | SECCOMP_SET_MODE_FILTER, 0, &p)) |
	    want_eperm("prctl(high bits | PR_SET_SECCOMP)", syscall(SYS_prctl,
	    hi | PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p, 0, 0));
}

static int
c_fork_bomb(char **a)
{
	pid_t kids[512];
	int n = 0, r = 1;

	while (n < 512) {
		pid_t p = fork();

		if (p == 0) {
			pause();
			_exit(0);
		}
		if (p < 0) {
			r = errno == EAGAIN ? 0 :
			    fail("fork: %s, not EAGAIN", strerror(errno));
			break;
		}
		kids[n++] = p;
	}
	if (n == 512)
		r = fail("512 forks and no limit");
	for (int i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
	if (r == 0)
		printf("limit after %d children\n", n);
	return r;
}

static int
c_memory_hog(char **a)
{
	size_t mb = a[0] != NULL ? (size_t)atoi(a[0]) : 256;
	char *p = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return fail("mmap: %s", strerror(errno));
	for (size_t i = 0; i < mb << 20; i += 4096)
		p[i] = 1;
	return fail("touched %zu MB and lived", mb);
}

static int
c_id(char **a)
{
	struct passwd *pw = getpwuid(getuid());
	const char *home = getenv("HOME");

	if (getuid() == 0 || geteuid() == 0 || getgid() == 0)
		return fail("running as root");
	if (pw == NULL || strcmp(pw->pw_name, "sandbox") != 0)
		return fail("whoami is %s", pw ? pw->pw_name : "(none)");
	if (strcmp(pw->pw_dir, "/sandbox") != 0 || home == NULL ||
	    strcmp(home, "/sandbox") != 0)
		return fail("HOME is %s", home ? home : "(unset)");
	if (setuid(0) == 0)
		return fail("setuid(0) worked");
	return 0;
}

static int
c_ip_link_down(char **a)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
		return fail("SIOCGIFFLAGS: %s", strerror(errno));
	ifr.ifr_flags &= ~IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) == 0)
		return fail("took lo down");
	return 0;
}

static int
c_hostname(char **a)
{
	char h[256] = "";

	gethostname(h, sizeof(h) - 1);
	if (a[0] == NULL || strcmp(h, a[0]) != 0)
		return fail("hostname is '%s'", h);
	return 0;
}

static int
c_fds(char **a)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int r = 0;

	if (d == NULL)
		return fail("opendir: %s", strerror(errno));
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
			continue;
		r = fail("fd %d is open", fd);
	}
	closedir(d);
	return r;
}

static int
c_caps(char **a)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	int r = 0;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Cap", 3) == 0 &&
		    strstr(line, "0000000000000000") == NULL)
			r = fail("%s", line);
	if (f != NULL)
		fclose(f);
	return r;
}

/* confine connect ADDR PORT: refused, and fast (not a timeout). */
static int
c_connect_refused(char **a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timespec t0, t1;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	double ms;

	if (a[0] == NULL || a[1] == NULL)
		return fail("usage: connect ADDR PORT");
	sin.sin_port = htons((uint16_t)atoi(a[1]));
	inet_pton(AF_INET, a[0], &sin.sin_addr);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		return fail("connected to %s:%s", a[0], a[1]);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (ms > 1000)
		return fail("took %.0f ms (%s)", ms, strerror(errno));
	return 0;
}

/* confine udp ADDR PORT: a datagram out is refused. */
static int
c_udp_refused(char **a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char buf[16];

	if (a[0] == NULL || a[1] == NULL)
		return fail("usage: udp ADDR PORT");
	sin.sin_port = htons((uint16_t)atoi(a[1]));
	inet_pton(AF_INET, a[0], &sin.sin_addr);
	if (sendto(s, "q", 1, 0, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		return 0;
	/* Sent: then nothing may come back within a second. */
	struct timeval tv = { 1, 0 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (recv(s, buf, sizeof(buf), 0) > 0)
		return fail("got an answer from %s:%s", a[0], a[1]);
	return 0;
}

#if defined(__x86_64__)
/* An i386 syscall from a 64-bit process: the filter kills us (SIGSYS). */
static int
c_compat_arch(char **a)
{
	long r = 20; /* __NR_getpid on i386 */

	__asm__ volatile("int $0x80" : "+a"(r) : : "memory");
	return fail("int 0x80 returned %ld", r);
}
#endif

static const struct {
	const char *name;
	int (*fn)(char **);
} cases[] = {
	{ "raw_socket", c_raw_socket },
	{ "packet_socket", c_packet_socket },
	{ "netlink_other", c_netlink_other },
	{ "netlink_route_ok", c_netlink_route_ok },
	{ "write_usr", c_write_usr },
	{ "write_etc", c_write_etc },
	{ "write_outside_workspace", c_write_outside_workspace },
	{ "write_workspace", c_write_workspace },
	{ "symlink_shadow", c_symlink_shadow },
	{ "setuid_copy", c_setuid_copy },
	{ "ptrace_outside", c_ptrace_outside },
	{ "proc_hidden", c_proc_hidden },
	{ "proc_mem", c_proc_mem },
	{ "kill_all", c_kill_all },
	{ "unshare_user", c_unshare_user },
	{ "mount", c_mount },
	{ "setns", c_setns },
	{ "keyctl", c_keyctl },
	{ "bpf", c_bpf },
	{ "io_uring_setup", c_io_uring_setup },
	{ "perf_event_open", c_perf_event_open },
	{ "tiocsti", c_tiocsti },
	{ "tfo", c_tfo },
	{ "clone3_enosys", c_clone3_enosys },
	{ "personality", c_personality },
	{ "seccomp", c_seccomp },
	{ "fork_bomb", c_fork_bomb },
	{ "memory_hog", c_memory_hog },
	{ "id", c_id },
	{ "ip_link_down", c_ip_link_down },
	{ "hostname", c_hostname },
	{ "fds", c_fds },
	{ "caps", c_caps },
	{ "connect", c_connect_refused },
	{ "udp", c_udp_refused },
#if defined(__x86_64__)
	{ "compat_arch", c_compat_arch },
#endif
};

/* Under SAN=1: LeakSanitizer needs ptrace, which the sandbox denies. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: confine CASE [ARG...]\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		if (strcmp(argv[1], cases[i].name) != 0)
			continue;
		if (cases[i].fn(argv + 2) != 0)
			return 1;
		printf("ok\n");
		return 0;
	}
	fprintf(stderr, "confine: unknown case %s\n", argv[1]);
	return 2;
}
