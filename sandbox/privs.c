/*
 * The last confinement step before exec: become the sandbox's user with
 * nothing left of root. Runs in the child, already under Landlock and
 * seccomp (whose filter allows every call used here). Returns 0 or an
 * errno value (EPERM when a check after the drop finds privileges).
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <linux/capability.h>

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/internal.h"

static int
clear_bounding_set(void)
{
	/* Up to the kernel's last capability: EINVAL past it. */
	for (unsigned long cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL && cap > 0)
			break;
		return errno;
	}
	return 0;
}

int
sandbox_privs_drop(uid_t uid, gid_t gid)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	struct rlimit core = { 0, 0 };
	uid_t ru, eu, su;
	int e;

	if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0)
		return errno;
	if ((e = clear_bounding_set()) != 0)
		return e;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 &&
	    errno != EINVAL)
		return errno;
	if (setresuid(uid, uid, uid) != 0)
		return errno;
	/* setuid cleared permitted and effective; inheritable stays. */
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) != 0)
		return errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
	    setrlimit(RLIMIT_CORE, &core) != 0)
		return errno;
	/* Verify: no way back to root, and the ids are what we set. */
	if (setuid(0) == 0 || setgid(0) == 0)
		return EPERM;
	if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid ||
	    su != uid || getegid() != gid)
		return EPERM;
	return 0;
}
