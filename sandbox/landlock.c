/*
 * Landlock at the highest ABI the kernel offers. The ruleset is built
 * once per sandbox (paths opened through /proc/INIT/root, so the rules
 * land on the inodes the sandbox sees) and every spawned process only
 * calls landlock_restrict_self() with it.
 *
 * Debian 12's <linux/landlock.h> stops at ABI 2, so the constants and
 * structs are ours (notes-kernel.md). What each ABI adds: 2 REFER,
 * 3 TRUNCATE, 4 TCP bind/connect, 5 IOCTL_DEV, 6 scopes, 7 log flags.
 *
 * Rules (docs/sandbox.md, "Landlock"): / read and execute; /sandbox,
 * /tmp, /var/tmp, /dev/shm and the policy's read_write paths everything;
 * /dev read, write, truncate, ioctl; the policy's read_only paths read
 * and execute. /proc gets no write right: rules cannot name the
 * per-process directories (their inodes come and go with the
 * processes), and one on /proc would cover every /proc/PID/mem. TCP
 * ports and the scopes are deliberately not restricted; docs/sandbox.md
 * says why.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/openat2.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "policies/policy.h"
#include "sandbox/internal.h"

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1

#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REMOVE_DIR (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR (1ULL << 6)
#define LL_FS_MAKE_DIR (1ULL << 7)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_FS_MAKE_SOCK (1ULL << 9)
#define LL_FS_MAKE_FIFO (1ULL << 10)
#define LL_FS_MAKE_BLOCK (1ULL << 11)
#define LL_FS_MAKE_SYM (1ULL << 12)
#define LL_FS_REFER (1ULL << 13)    /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */

/* Rights that make sense on a file (others are EINVAL on non-dirs). */
#define LL_FILE_RIGHTS (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | \
	LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
#define LL_RO (LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR)
#define LL_ALL (~0ULL)
#define LL_DEV (LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_READ_DIR | \
	LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;	     /* ABI 6 */
};

struct ll_path_beneath {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

int
sandbox_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LL_CREATE_RULESET_VERSION);

	return abi < 0 ? 0 : (int)abi;
}

static uint64_t
handled_fs(int abi)
{
	uint64_t h = (LL_FS_MAKE_SYM << 1) - 1;

	if (abi >= 2)
		h |= LL_FS_REFER;
	if (abi >= 3)
		h |= LL_FS_TRUNCATE;
	if (abi >= 5)
		h |= LL_FS_IOCTL_DEV;
	return h;
}

struct ll_build {
	int ruleset;
	int rootfd;	  /* /proc/INIT/root */
	uint64_t handled;
	bool hard;
	struct moat_cause *cause;
};

/*
 * Allow `access` beneath path (a path in the sandbox's view, resolved
 * in its root so absolute symlinks stay inside). A missing path is
 * skipped with a warning, or an error under hard_requirement when
 * `from_policy`.
 */
static int
allow(struct ll_build *b, const char *path, uint64_t access, bool from_policy)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT,
	};
	struct ll_path_beneath pb;
	struct stat st;
	int fd;

	fd = (int)syscall(SYS_openat2, b->rootfd, path, &how, sizeof(how));
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		if (from_policy && b->hard) {
			moat_cause_errno(b->cause, "landlock: policy path %s",
			    path);
			return MOAT_ERR_INVALID;
		}
		if (from_policy)
			log_warn_errno("landlock: skipping policy path %s",
			    path);
		return 0;
	}
	pb.allowed_access = access & b->handled;
	if (!S_ISDIR(st.st_mode))
		pb.allowed_access &= LL_FILE_RIGHTS;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, b->ruleset, LL_RULE_PATH_BENEATH,
	    &pb, 0) != 0) {
		moat_cause_errno(b->cause, "landlock: add rule for %s", path);
		close(fd);
		return MOAT_ERR_SYSTEM;
	}
	close(fd);
	return 0;
}

static int
add_rules(struct ll_build *b, const struct moat_policy *p)
{
	static const struct {
		const char *path;
		uint64_t access;
	} base[] = {
		{ "/", LL_RO },
		{ "/dev", LL_DEV },
	};
	/* The workspace, /tmp, /var/tmp, /dev/shm: the places the policy
	 * checks call writable by the sandbox. */
	const char *const *own = moat_policy_sandbox_writable;
	const char *const *ro = p != NULL ? moat_policy_read_only(p) : NULL;
	const char *const *rw = p != NULL ? moat_policy_read_write(p) : NULL;
	int r;

	for (size_t i = 0; i < MOAT_NELEM(base); i++)
		if ((r = allow(b, base[i].path, base[i].access, false)) != 0)
			return r;
	for (size_t i = 0; own[i] != NULL; i++)
		if ((r = allow(b, own[i], LL_ALL, false)) != 0)
			return r;
	for (size_t i = 0; ro != NULL && ro[i] != NULL; i++)
		if ((r = allow(b, ro[i], LL_RO, true)) != 0)
			return r;
	for (size_t i = 0; rw != NULL && rw[i] != NULL; i++)
		if ((r = allow(b, rw[i], LL_ALL, true)) != 0)
			return r;
	return 0;
}

int
sandbox_landlock_prepare(const char *root, const struct moat_policy *p,
    int *fdp, struct moat_cause *cause)
{
	static bool warned;
	struct ll_ruleset_attr attr;
	struct ll_build b;
	int abi = sandbox_landlock_abi(), r;

	memset(&b, 0, sizeof(b));
	b.hard = p != NULL &&
	    moat_policy_landlock(p) == MOAT_LANDLOCK_HARD_REQUIREMENT;
	b.cause = cause;
	b.ruleset = -1;
	if (abi < 1) {
		if (b.hard) {
			moat_cause_set(cause, "landlock: the policy says "
			    "hard_requirement but this kernel has no Landlock "
			    "(needs Linux >= 5.13 with lsm=landlock)");
			return MOAT_ERR_UNSUPPORTED;
		}
		if (!warned)
			log_warn("landlock: not available on this kernel; "
			    "running without it (best_effort)");
		warned = true;
		*fdp = -1;
		return 0;
	}
	memset(&attr, 0, sizeof(attr));
	b.handled = attr.handled_access_fs = handled_fs(abi);
	/* Only the fields this ABI knows: a larger struct is E2BIG. */
	b.ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr,
	    abi >= 4 ? sizeof(attr) - sizeof(attr.scoped) :
	    sizeof(attr.handled_access_fs), 0);
	if (b.ruleset < 0) {
		moat_cause_errno(cause, "landlock: create ruleset (ABI %d)",
		    abi);
		return MOAT_ERR_SYSTEM;
	}
	if ((b.rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		moat_cause_errno(cause, "landlock: open %s", root);
		close(b.ruleset);
		return MOAT_ERR_SYSTEM;
	}
	r = add_rules(&b, p);
	close(b.rootfd);
	if (r != 0) {
		close(b.ruleset);
		return r;
	}
	*fdp = b.ruleset;
	return 0;
}

int
sandbox_landlock_apply(int fd)
{
	if (fd < 0)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    syscall(SYS_landlock_restrict_self, fd, 0) != 0)
		return errno;
	return 0;
}
