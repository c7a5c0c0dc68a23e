/*
 * The session processes' confinement, done once by the zygote (every
 * session process is its fork and inherits it) plus one filter per
 * session process. Steps, in order (moat_sshd_confine_self):
 *
 *   devnull   open /dev/null for the children's 0-2 (nothing opens later)
 *   filter    compile the session filter (libseccomp needs no file)
 *   root      check the directory (root's, writable by nobody else,
 *             empty), chroot into it, chdir("/")
 *   ids       no supplementary groups, the privsep gid and uid in all
 *             three slots, the capability bounding set cleared first;
 *             checked afterwards: setuid(0) must fail
 *   nnp       no_new_privs, not dumpable (no ptrace, no core), no core
 *   seccomp   the allowlist below; any other call kills the process
 *
 * The allowlist is what libssh, OpenSSL and glibc need to serve a
 * connection (read, write, poll, memory, time, randomness, signals for
 * the login grace), what sessions need (pipes, pty ioctls, fd flags,
 * half-close), and for the zygote alone fork and the per-child filter.
 * File opens and stats fail with EACCES instead of killing, so a
 * library's lazy attempt to read a file fails quietly (OpenSSH does the
 * same). Memory is never made executable.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/capability.h>
#include <linux/seccomp.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <seccomp.h>

#include "common/util.h"
#include "sshd/confine.h"

#define M32 0xffffffffULL

/* Allowed with any arguments. */
static const char *const allow[] = {
	"read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg",
	"sendmsg", "poll", "ppoll", "close", "pipe2", "shutdown", "getsockopt",
	"getpeername", "getsockname", "brk", "munmap", "mremap", "futex",
	"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep",
	"gettimeofday", "time", "getpid", "gettid", "getuid", "geteuid",
	"getgid", "getegid", "getrandom", "exit", "exit_group",
	"rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "alarm",
	"restart_syscall", "sched_yield", "uname", "lseek", "dup3",
	"close_range", "set_robust_list", "rseq", "sigaltstack",
};

/* Failed with EACCES: lazy file access in a library, not an attack. */
static const char *const eacces[] = {
	"open", "openat", "openat2", "stat", "lstat", "fstat", "newfstatat",
	"statx", "access", "faccessat", "faccessat2", "readlink",
	"readlinkat",
};

static const unsigned long fcntl_ok[] = {
	F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC,
};
static const unsigned long ioctl_ok[] = {
	TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCSWINSZ, FIONBIO,
	FIONREAD,
};
#ifndef __SANITIZE_ADDRESS__
static const unsigned long madvise_ok[] = {
	MADV_NORMAL, MADV_DONTNEED, MADV_FREE, MADV_DONTDUMP, MADV_DONTFORK,
	MADV_WIPEONFORK,
};
#endif
static const unsigned long sockopt_ok[][2] = {
	{ IPPROTO_TCP, TCP_NODELAY },
	{ SOL_SOCKET, SO_KEEPALIVE },
	{ IPPROTO_IP, IP_TOS },
	{ IPPROTO_IPV6, IPV6_TCLASS },
};

static int
nr_of(const char *name)
{
	return seccomp_syscall_resolve_name(name);
}

static int
allow_all(scmp_filter_ctx ctx, const char *const *names, size_t n,
    uint32_t act)
{
	for (size_t i = 0; i < n; i++) {
		int nr = nr_of(names[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;	/* this architecture lacks it */
		if (seccomp_rule_add(ctx, act, nr, 0) != 0)
			return -1;
	}
	return 0;
}

/* nr allowed when argument arg (32 bits) is one of vals. */
static int
allow_args(scmp_filter_ctx ctx, const char *name, unsigned arg,
    const unsigned long *vals, size_t n)
{
	int nr = nr_of(name);

	for (size_t i = 0; i < n; i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
		    SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, M32, vals[i])) != 0)
			return -1;
	return 0;
}

static int
add_session_rules(scmp_filter_ctx ctx)
{
	int r = 0;

	r |= allow_all(ctx, allow, MOAT_NELEM(allow), SCMP_ACT_ALLOW);
	r |= allow_all(ctx, eacces, MOAT_NELEM(eacces),
	    SCMP_ACT_ERRNO(EACCES));
	r |= allow_args(ctx, "fcntl", 1, fcntl_ok, MOAT_NELEM(fcntl_ok));
	r |= allow_args(ctx, "ioctl", 1, ioctl_ok, MOAT_NELEM(ioctl_ok));
#ifdef __SANITIZE_ADDRESS__
	/* ASan's allocator gives memory back with other advice (SAN=1). */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("madvise"), 0);
#else
	r |= allow_args(ctx, "madvise", 2, madvise_ok, MOAT_NELEM(madvise_ok));
#endif
	for (size_t i = 0; i < MOAT_NELEM(sockopt_ok); i++)
		r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("setsockopt"),
		    2, SCMP_CMP(1, SCMP_CMP_MASKED_EQ, M32, sockopt_ok[i][0]),
		    SCMP_CMP(2, SCMP_CMP_MASKED_EQ, M32, sockopt_ok[i][1]));
	/* Memory: never executable. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("mmap"), 1,
	    SCMP_CMP(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("mprotect"), 1,
	    SCMP_CMP(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* The zygote's fork (glibc's flags exactly) and child filter. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("clone"), 1,
	    SCMP_CMP(0, SCMP_CMP_MASKED_EQ, M32,
		CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD));
	/* Its flags sit in memory seccomp cannot read: glibc falls back. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr_of("clone3"),
	    0);
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("seccomp"), 1,
	    SCMP_CMP(0, SCMP_CMP_MASKED_EQ, M32, SECCOMP_SET_MODE_FILTER));
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("prctl"), 1,
	    SCMP_CMP(0, SCMP_CMP_MASKED_EQ, M32, PR_SET_NAME));
	return r;
}

/* The session process's own filter, stacked on the zygote's. */
static int
add_child_rules(scmp_filter_ctx ctx)
{
	static const char *const deny[] = { "clone", "clone3", "fork",
		"vfork", "seccomp", "prctl", "execve", "execveat" };

	return allow_all(ctx, deny, MOAT_NELEM(deny),
	    SCMP_ACT_KILL_PROCESS);
}

static int
build(uint32_t def, int (*rules)(scmp_filter_ctx), scmp_filter_ctx *out,
    struct moat_cause *cause)
{
	scmp_filter_ctx ctx = seccomp_init(def);

	if (ctx == NULL) {
		moat_cause_set(cause, "seccomp: cannot initialise libseccomp");
		return MOAT_ERR_NOMEM;
	}
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS) != 0 || seccomp_attr_set(ctx,
	    SCMP_FLTATR_CTL_NNP, 0) != 0 || rules(ctx) != 0) {
		moat_cause_set(cause, "seccomp: cannot build the filter");
		seccomp_release(ctx);
		return MOAT_ERR_INTERNAL;
	}
	*out = ctx;
	return 0;
}

/* Compile to a program the child installs with one call. */
static int
export(scmp_filter_ctx ctx, struct sock_fprog *prog, struct moat_cause *cause)
{
	struct sock_filter *f = NULL;
	off_t len;
	int fd;

	if ((fd = memfd_create("moat-ssh-seccomp", MFD_CLOEXEC)) < 0 ||
	    seccomp_export_bpf(ctx, fd) != 0 ||
	    (len = lseek(fd, 0, SEEK_CUR)) <= 0 ||
	    len % (off_t)sizeof(*f) != 0 || len > 65536 ||
	    (f = malloc((size_t)len)) == NULL ||
	    pread(fd, f, (size_t)len, 0) != len) {
		moat_cause_errno(cause, "seccomp: export the session filter");
		free(f);
		moat_close(fd);
		return MOAT_ERR_SYSTEM;
	}
	close(fd);
	prog->len = (unsigned short)(len / (off_t)sizeof(*f));
	prog->filter = f;
	return 0;
}

int
moat_sshd_confine_warm(ssh_bind b, struct moat_cause *cause)
{
	static const char *const ciphers[] = { "ChaCha20", "AES-128-CTR",
		"AES-256-CTR", "AES-128-GCM", "AES-256-GCM" };
	static const char *const digests[] = { "SHA1", "SHA256", "SHA384",
		"SHA512" };
	unsigned char rnd[32];
	EVP_PKEY *k = NULL;
	ssh_key key = NULL;

	(void)b;
	/* The DRBG seeds itself from getrandom(), allowed later too. */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		moat_cause_set(cause, "no randomness");
		return MOAT_ERR_SYSTEM;
	}
	for (size_t i = 0; i < MOAT_NELEM(ciphers); i++)
		EVP_CIPHER_free(EVP_CIPHER_fetch(NULL, ciphers[i], NULL));
	for (size_t i = 0; i < MOAT_NELEM(digests); i++)
		EVP_MD_free(EVP_MD_fetch(NULL, digests[i], NULL));
	EVP_MAC_free(EVP_MAC_fetch(NULL, "HMAC", NULL));
	EVP_MAC_free(EVP_MAC_fetch(NULL, "POLY1305", NULL));
	/* Key exchange and signature key types: their keymgmt and fetches. */
	EVP_PKEY_free(EVP_PKEY_Q_keygen(NULL, NULL, "X25519"));
	EVP_PKEY_free(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY_free(k);
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) == SSH_OK)
		ssh_key_free(key);
	explicit_bzero(rnd, sizeof(rnd));
	return 0;
}

static int
check_root_dir(const char *dir, struct moat_cause *cause)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int n = 0;

	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		moat_cause_errno(cause, "privsep directory %s", dir);
		return MOAT_ERR_SYSTEM;
	}
	if (st.st_uid != 0 || (st.st_mode & 022) != 0) {
		moat_cause_set(cause, "privsep directory %s must belong to root "
		    "and be writable by nobody else", dir);
		return MOAT_ERR_INVALID;
	}
	if ((d = opendir(dir)) == NULL) {
		moat_cause_errno(cause, "privsep directory %s", dir);
		return MOAT_ERR_SYSTEM;
	}
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	if (n != 0) {
		moat_cause_set(cause, "privsep directory %s must be empty", dir);
		return MOAT_ERR_INVALID;
	}
	return 0;
}

static int
drop_ids(const struct moat_sshd_confine *c, struct moat_cause *cause)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	uid_t ru, eu, su;

	if (c->uid == 0 || c->gid == 0) {
		moat_cause_set(cause, "privsep uid and gid must not be 0");
		return MOAT_ERR_INVALID;
	}
	for (unsigned long cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
		    errno != EINVAL) {
			moat_cause_errno(cause, "drop capability %lu", cap);
			return MOAT_ERR_SYSTEM;
		}
	if (setgroups(0, NULL) != 0 || setresgid(c->gid, c->gid, c->gid) != 0 ||
	    setresuid(c->uid, c->uid, c->uid) != 0) {
		moat_cause_errno(cause, "become uid %u gid %u",
		    (unsigned)c->uid, (unsigned)c->gid);
		return MOAT_ERR_SYSTEM;
	}
	/* setresuid cleared permitted and effective; inheritable too. */
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) != 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
		moat_cause_errno(cause, "clear capabilities");
		return MOAT_ERR_SYSTEM;
	}
	if (setuid(0) == 0 || getresuid(&ru, &eu, &su) != 0 || ru != c->uid ||
	    eu != c->uid || su != c->uid || getegid() != c->gid) {
		moat_cause_set(cause, "privileges still there after the drop");
		return MOAT_ERR_SYSTEM;
	}
	return 0;
}

int
moat_sshd_confine_self(struct moat_sshd_confine *c, int *devnull,
    struct moat_cause *cause)
{
	struct rlimit zero = { 0, 0 };
	scmp_filter_ctx self = NULL, child = NULL;
	int r;

	if ((*devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		moat_cause_errno(cause, "open /dev/null");
		return MOAT_ERR_SYSTEM;
	}
	if ((r = build(SCMP_ACT_ALLOW, add_child_rules, &child, cause)) != 0 ||
	    (r = export(child, &c->child, cause)) != 0 ||
	    (r = build(SCMP_ACT_KILL_PROCESS, add_session_rules, &self,
		cause)) != 0)
		goto out;
	if (c->privileged) {
		if ((r = check_root_dir(c->dir, cause)) != 0)
			goto out;
		if (chroot(c->dir) != 0 || chdir("/") != 0) {
			moat_cause_errno(cause, "chroot %s", c->dir);
			r = MOAT_ERR_SYSTEM;
			goto out;
		}
		if ((r = drop_ids(c, cause)) != 0)
			goto out;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
	    setrlimit(RLIMIT_CORE, &zero) != 0) {
		moat_cause_errno(cause, "no_new_privs");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	if (seccomp_load(self) != 0) {
		moat_cause_set(cause, "seccomp: cannot install the allowlist");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	r = 0;
out:
	seccomp_release(self);
	seccomp_release(child);
	return r;
}

int
moat_sshd_confine_child(const struct moat_sshd_confine *c)
{
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &c->child) != 0)
		return MOAT_ERR_SYSTEM;
	return 0;
}
