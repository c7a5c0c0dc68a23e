/*
 * The proxy process's confinement (docs/proxy.md, "Privileges"), done
 * once at the start of moat_proxy_process_main, before any thread
 * exists (threads inherit credentials and filters). In order:
 *
 *   bounding  drop every capability but the kept ones from the bounding
 *             set (needs CAP_SETPCAP: while still root)
 *   ids       no supplementary groups; run_gid and run_uid in all three
 *             slots, keeping the permitted set across the change
 *   caps      permitted = effective = the kept set, nothing inheritable
 *             or ambient; checked afterwards, as is that setuid(0) fails;
 *             the parent-death signal (cleared by the id change) is set
 *             again
 *   nnp       no_new_privs, not dumpable
 *   seccomp   the allowlist below
 *
 * The kept capabilities and why: CAP_SYS_PTRACE to read
 * /proc/PID/{exe,stat,status,fd,maps,ns} and kcmp() the sandbox's
 * processes, which are not dumpable and belong to other uids;
 * CAP_DAC_READ_SEARCH to hash any executable a caller runs
 * (execute-only binaries, a workspace's own files), to resolve policy
 * paths under /proc/<init>/root and to read the sandbox CA's key;
 * CAP_BPF to look records up in the sandbox's attribution maps (the
 * kernel refuses bpf() without it while unprivileged BPF is disabled);
 * CAP_NET_BIND_SERVICE only when the proxy port is below 1024.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <seccomp.h>

#include "common/util.h"
#include "proxy/internal.h"

#define M32 0xffffffffULL

#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/* Allowed with any arguments. */
static const char *const allow[] = {
	/* I/O on fds it holds */
	"read", "write", "readv", "writev", "pread64", "close", "lseek",
	"splice", "pipe2", "dup", "dup3", "fcntl", "poll", "ppoll",
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"eventfd2", "timerfd_create", "timerfd_settime", "timerfd_gettime",
	"signalfd4",
	/* files: /proc of the sandboxes, executables to hash, resolv.conf */
	"openat", "open", "newfstatat", "fstat", "statx", "getdents64",
	"readlink", "readlinkat", "access", "faccessat", "faccessat2",
	/* the network it serves and dials */
	"connect", "accept4", "bind", "listen", "getsockopt", "setsockopt",
	"getsockname", "getpeername", "sendto", "recvfrom", "sendmsg",
	"recvmsg", "sendmmsg", "recvmmsg", "shutdown",
	/* callers: pinned and compared */
	"pidfd_open", "kcmp",
	/* memory, threads, time, signals */
	"brk", "munmap", "mremap", "madvise", "futex", "set_robust_list",
	"rseq", "exit", "exit_group", "rt_sigaction", "rt_sigprocmask",
	"rt_sigreturn", "sigaltstack", "restart_syscall", "clock_gettime",
	"clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid",
	"getegid", "getresuid", "getresgid", "getrandom", "uname",
	"sched_yield", "sched_getaffinity", "getrlimit", "prlimit64",
	"sysinfo", "membarrier", "tgkill",
};

/* Exploits reach for these first: the process dies on the attempt. */
static const char *const kill_list[] = {
	"execve", "execveat", "ptrace", "process_vm_readv",
	"process_vm_writev", "pidfd_getfd", "mount", "umount2", "pivot_root",
	"chroot", "setns", "unshare", "move_mount", "open_tree", "fsopen",
	"fsmount", "init_module", "finit_module", "kexec_load",
	"kexec_file_load", "keyctl", "add_key", "request_key", "userfaultfd",
	"io_uring_setup", "perf_event_open", "setuid", "setgid", "setreuid",
	"setregid", "setresuid", "setresgid", "setgroups", "capset",
};

static int
nr_of(const char *name)
{
	return seccomp_syscall_resolve_name(name);
}

static int
add_list(scmp_filter_ctx ctx, const char *const *names, size_t n,
    uint32_t act)
{
	for (size_t i = 0; i < n; i++) {
		int nr = nr_of(names[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;	/* not on this architecture */
		if (seccomp_rule_add(ctx, act, nr, 0) != 0)
			return -1;
	}
	return 0;
}

static int
add_rules(scmp_filter_ctx ctx)
{
	static const unsigned long fam[] = { AF_INET, AF_INET6, AF_UNIX,
		AF_NETLINK };
	int r = 0;

	r |= add_list(ctx, allow, MOAT_NELEM(allow), SCMP_ACT_ALLOW);
	r |= add_list(ctx, kill_list, MOAT_NELEM(kill_list),
	    SCMP_ACT_KILL_PROCESS);
	/* Sockets of the families it uses (netlink: sock_diag fallback). */
	for (size_t i = 0; i < MOAT_NELEM(fam); i++)
		r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("socket"), 1,
		    SCMP_CMP(0, SCMP_CMP_MASKED_EQ, M32, fam[i]));
	/* Memory: never executable. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("mmap"), 1,
	    SCMP_CMP(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("mprotect"), 1,
	    SCMP_CMP(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* Threads only (the worker pools): never a new process. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("clone"), 1,
	    SCMP_CMP(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* Its flags sit in memory seccomp cannot read: glibc falls back. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr_of("clone3"), 0);
	/* bpf(): only reading the attribution maps it was handed. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("bpf"), 1,
	    SCMP_CMP(0, SCMP_CMP_MASKED_EQ, M32, BPF_MAP_LOOKUP_ELEM));
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("ioctl"), 1,
	    SCMP_CMP(1, SCMP_CMP_MASKED_EQ, M32, FIONREAD));
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("ioctl"), 1,
	    SCMP_CMP(1, SCMP_CMP_MASKED_EQ, M32, FIONBIO));
	/* Naming its threads. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr_of("prctl"), 1,
	    SCMP_CMP(0, SCMP_CMP_MASKED_EQ, M32, PR_SET_NAME));
	return r;
}

static uint64_t
kept_caps(const struct moat_proxy_config *cfg)
{
	uint64_t keep = (1ULL << CAP_SYS_PTRACE) |
	    (1ULL << CAP_DAC_READ_SEARCH) | (1ULL << CAP_BPF);

	if ((cfg->port != 0 ? cfg->port : 3128) < 1024)
		keep |= 1ULL << CAP_NET_BIND_SERVICE;
	return keep;
}

static int
set_caps(uint64_t keep, struct moat_cause *cause)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	d[0].permitted = d[0].effective = (uint32_t)keep;
	d[1].permitted = d[1].effective = (uint32_t)(keep >> 32);
	if (syscall(SYS_capset, &h, d) != 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
		moat_cause_errno(cause, "proxy: set capabilities");
		return MOAT_ERR_SYSTEM;
	}
	/* Read back: exactly the kept set, nothing more. */
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) != 0 ||
	    ((uint64_t)d[1].effective << 32 | d[0].effective) != keep ||
	    ((uint64_t)d[1].permitted << 32 | d[0].permitted) != keep ||
	    d[0].inheritable != 0 || d[1].inheritable != 0) {
		moat_cause_set(cause, "proxy: capabilities are not the kept set");
		return MOAT_ERR_SYSTEM;
	}
	return 0;
}

static int
drop_ids(const struct moat_proxy_config *cfg, uint64_t keep,
    struct moat_cause *cause)
{
	uid_t ru, eu, su;

	for (unsigned long cap = 0; cap < 64; cap++) {
		if ((keep >> cap) & 1)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
			moat_cause_errno(cause, "proxy: drop capability %lu",
			    cap);
			return MOAT_ERR_SYSTEM;
		}
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 ||
	    setgroups(0, NULL) != 0 ||
	    setresgid(cfg->run_gid, cfg->run_gid, cfg->run_gid) != 0 ||
	    setresuid(cfg->run_uid, cfg->run_uid, cfg->run_uid) != 0 ||
	    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) {
		moat_cause_errno(cause, "proxy: become uid %u gid %u",
		    (unsigned)cfg->run_uid, (unsigned)cfg->run_gid);
		return MOAT_ERR_SYSTEM;
	}
	if (getresuid(&ru, &eu, &su) != 0 || ru != cfg->run_uid ||
	    eu != cfg->run_uid || su != cfg->run_uid ||
	    getegid() != cfg->run_gid) {
		moat_cause_set(cause, "proxy: ids are not what was set");
		return MOAT_ERR_SYSTEM;
	}
	return 0;
}

int
px_confine(const struct moat_proxy_config *cfg, struct moat_cause *cause)
{
	uint64_t keep = kept_caps(cfg);
	scmp_filter_ctx ctx = NULL;
	pid_t parent = getppid();
	int r, deathsig = 0;

	if ((ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM))) == NULL) {
		moat_cause_set(cause, "proxy: cannot initialise libseccomp");
		return MOAT_ERR_NOMEM;
	}
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS) != 0 || seccomp_attr_set(ctx,
	    SCMP_FLTATR_CTL_NNP, 0) != 0 || add_rules(ctx) != 0) {
		moat_cause_set(cause, "proxy: cannot build the seccomp filter");
		r = MOAT_ERR_INTERNAL;
		goto out;
	}
	/* Changing ids clears the parent-death signal: set it again. */
	(void)prctl(PR_GET_PDEATHSIG, &deathsig, 0, 0, 0);
	if ((r = drop_ids(cfg, keep, cause)) != 0 ||
	    (r = set_caps(keep, cause)) != 0)
		goto out;
	if (deathsig != 0 && (prctl(PR_SET_PDEATHSIG, deathsig, 0, 0, 0) != 0 ||
	    getppid() != parent)) {
		moat_cause_set(cause, "proxy: the parent went away");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	if (setuid(0) == 0) {
		moat_cause_set(cause, "proxy: could become root again");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		moat_cause_errno(cause, "proxy: no_new_privs");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	if (seccomp_load(ctx) != 0) {
		moat_cause_set(cause, "proxy: cannot install the seccomp filter");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	r = 0;
out:
	seccomp_release(ctx);
	return r;
}
