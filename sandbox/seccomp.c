/*
 * The seccomp filter of every sandboxed process: default allow, with the
 * calls that reach the kernel's riskiest surfaces or would let a process
 * leave the sandbox refused with EPERM (docs/sandbox.md, "seccomp").
 *
 * The filter is compiled once per sandbox with libseccomp for the native
 * architecture; any other architecture's syscall ABI (i386 on x86_64,
 * arm32 on aarch64, x32) kills the process, so nothing can use a compat
 * entry point to dodge the list. The child only installs the compiled
 * program. Names are resolved per architecture by libseccomp; a name the
 * architecture lacks is skipped.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <linux/seccomp.h>

#include <errno.h>
#include <stddef.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <seccomp.h>

#include "common/util.h"
#include "sandbox/internal.h"

#define M32 0xffffffffULL

static const char *const denied[] = {
	/* other processes' memory */
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	/* kernel attack surface */
	"bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
	"io_uring_enter", "io_uring_register", "keyctl", "add_key",
	"request_key", "open_by_handle_at", "name_to_handle_at",
	"lookup_dcookie", "syslog", "uselib",
	/* the mount table and namespaces */
	"mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount",
	"fspick", "move_mount", "open_tree", "mount_setattr", "setns",
	"unshare", "chroot",
	/* the machine */
	"kexec_load", "kexec_file_load", "init_module", "finit_module",
	"delete_module", "acct", "swapon", "swapoff", "reboot", "quotactl",
};

/* The CLONE_NEW* flags clone() can carry (NEWTIME is clone3-only). */
static const unsigned long clone_new[] = {
	CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
	CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
};

/* Both data always given: clang warns about the half-filled struct. */
#define CMP(n, op, a) ((struct scmp_arg_cmp){ (n), (op), (a), 0 })
#define MASKED(n, m, v) \
	((struct scmp_arg_cmp){ (n), SCMP_CMP_MASKED_EQ, (m), (v) })

#define RULE(ctx, name, ...)                                                 \
	rule((ctx), (name), SCMP_ACT_ERRNO(EPERM),                           \
	    (const struct scmp_arg_cmp[]){ __VA_ARGS__ },                    \
	    sizeof((const struct scmp_arg_cmp[]){ __VA_ARGS__ }) /           \
	    sizeof(struct scmp_arg_cmp))

static int
rule(scmp_filter_ctx ctx, const char *name, uint32_t act,
    const struct scmp_arg_cmp *cmp, unsigned n)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0;
	if (seccomp_rule_add_array(ctx, act, nr, n, cmp) != 0 && nr >= 0)
		return -1;
	return 0;
}

static int
add_socket_rules(scmp_filter_ctx ctx)
{
	static const unsigned long inet[] = { AF_INET, AF_INET6 };
	int r = 0;

	/* Families: only unix, inet, inet6 and netlink. */
	r |= RULE(ctx, "socket", CMP(0, SCMP_CMP_GE, AF_NETLINK + 1));
	for (unsigned long af = 0; af < AF_NETLINK; af++) {
		if (af == AF_UNIX || af == AF_INET || af == AF_INET6)
			continue;
		r |= RULE(ctx, "socket", MASKED(0, M32, af));
	}
	/* Netlink: routing only (getifaddrs); never audit, netfilter, ... */
	r |= RULE(ctx, "socket", MASKED(0, M32, AF_NETLINK),
	    CMP(2, SCMP_CMP_NE, 0));
	/* No raw IP sockets (netlink is SOCK_RAW too: getifaddrs, ip). */
	for (size_t i = 0; i < MOAT_NELEM(inet); i++) {
		r |= RULE(ctx, "socket", MASKED(0, M32, inet[i]),
		    MASKED(1, 0xf, SOCK_RAW));
		r |= RULE(ctx, "socket", MASKED(0, M32, inet[i]),
		    MASKED(1, 0xf, SOCK_PACKET));
	}
	/* TCP Fast Open puts data in the SYN, before any decision. */
	r |= RULE(ctx, "sendto", MASKED(3, MSG_FASTOPEN, MSG_FASTOPEN));
	r |= RULE(ctx, "sendmsg", MASKED(2, MSG_FASTOPEN, MSG_FASTOPEN));
	r |= RULE(ctx, "sendmmsg", MASKED(3, MSG_FASTOPEN, MSG_FASTOPEN));
	r |= RULE(ctx, "setsockopt", MASKED(1, M32, 6),
	    MASKED(2, M32, 30)); /* TCP_FASTOPEN_CONNECT */
	return r;
}

static int
add_rules(scmp_filter_ctx ctx)
{
	int r = 0;

	for (size_t i = 0; i < MOAT_NELEM(denied); i++)
		r |= rule(ctx, denied[i], SCMP_ACT_ERRNO(EPERM), NULL, 0);
	for (size_t i = 0; i < MOAT_NELEM(clone_new); i++)
		r |= RULE(ctx, "clone", MASKED(0, clone_new[i], clone_new[i]));
	/* Its flags sit in memory seccomp cannot read: glibc falls back. */
	r |= rule(ctx, "clone3", SCMP_ACT_ERRNO(ENOSYS), NULL, 0);
	/* Typing into the terminal of whoever reads it. */
	r |= RULE(ctx, "ioctl", MASKED(1, M32, 0x5412));
	r |= RULE(ctx, "ioctl", MASKED(1, M32, 0x541C));
	/*
	 * No filters of its own: they could hide calls from ours' logs.
	 * The kernel reads op and option as 32-bit ints: compare only those
	 * bits, or high garbage walks past a 64-bit comparison.
	 */
	r |= RULE(ctx, "seccomp", MASKED(0, M32, SECCOMP_SET_MODE_FILTER));
	r |= RULE(ctx, "prctl", MASKED(0, M32, PR_SET_SECCOMP));
	r |= add_socket_rules(ctx);
	return r;
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO (offsetof(struct seccomp_data, args[0]))
#define ARG0_HI (offsetof(struct seccomp_data, args[0]) + 4)
#else
#define ARG0_LO (offsetof(struct seccomp_data, args[0]) + 4)
#define ARG0_HI (offsetof(struct seccomp_data, args[0]))
#endif

/*
 * personality(): only PER_LINUX (0) and the 0xffffffff query. That is
 * two comparisons of one argument, which libseccomp 2.5 refuses in one
 * rule, so these few instructions go in front of its program: they fall
 * through to it for everything else (jumps are relative, so the two
 * programs concatenate).
 */
static int
personality_prefix(struct sock_filter *f)
{
	int nr = seccomp_syscall_resolve_name("personality");
	uint32_t arch = seccomp_arch_native();
	const struct sock_filter p[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, 8),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 6),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_HI),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffU, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};

	if (nr < 0)
		return 0;
	memcpy(f, p, sizeof(p));
	return (int)MOAT_NELEM(p);
}

#define PREFIX_MAX 16

int
sandbox_seccomp_prepare(struct sock_fprog *prog, struct moat_cause *cause)
{
	return sandbox_seccomp_build(0, prog, cause);
}

int
sandbox_seccomp_build(uint32_t arch, struct sock_fprog *prog,
    struct moat_cause *cause)
{
	scmp_filter_ctx ctx = NULL;
	struct sock_filter *f = NULL;
	off_t len;
	int fd = -1, pre = 0, r = MOAT_ERR_SYSTEM;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		moat_cause_set(cause, "seccomp: cannot initialise libseccomp");
		return MOAT_ERR_NOMEM;
	}
	/*
	 * Another architecture's table (the tests build aarch64 on x86_64):
	 * rules name calls, and libseccomp translates each name per arch.
	 */
	if (arch != 0 && arch != seccomp_arch_native() &&
	    (seccomp_arch_add(ctx, arch) != 0 ||
	     seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE) != 0)) {
		moat_cause_set(cause, "seccomp: libseccomp lacks arch 0x%x",
		    arch);
		goto out;
	}
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS) != 0 || add_rules(ctx) != 0) {
		moat_cause_set(cause, "seccomp: cannot build the filter");
		goto out;
	}
	if ((fd = memfd_create("moat-seccomp", MFD_CLOEXEC)) < 0 ||
	    seccomp_export_bpf(ctx, fd) != 0 ||
	    (len = lseek(fd, 0, SEEK_CUR)) <= 0 ||
	    len % (off_t)sizeof(*f) != 0 || len > 65536) {
		moat_cause_errno(cause, "seccomp: export the filter");
		goto out;
	}
	if ((f = malloc((size_t)len + PREFIX_MAX * sizeof(*f))) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	/* The hand-written prefix speaks the native ABI only. */
	if (arch == 0 || arch == seccomp_arch_native())
		pre = personality_prefix(f);
	if (pread(fd, f + pre, (size_t)len, 0) != len) {
		moat_cause_errno(cause, "seccomp: read the filter back");
		goto out;
	}
	prog->len = (unsigned short)(pre + len / (off_t)sizeof(*f));
	prog->filter = f;
	f = NULL;
	r = 0;
out:
	free(f);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return r;
}

int
sandbox_seccomp_apply(const struct sock_fprog *prog)
{
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) != 0)
		return errno;
	return 0;
}
