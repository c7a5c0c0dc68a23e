/*
 * What the files of sandbox/ share with each other; nothing outside
 * sandbox/ includes this. One mechanism per file: cgroup.c, fs.c,
 * landlock.c, seccomp.c, privs.c, env.c, user.c; sandbox.c creates and
 * frees, init.c is the sandbox's PID 1, spawn.c the table of steps.
 */
#ifndef MOAT_SANDBOX_INTERNAL_H
#define MOAT_SANDBOX_INTERNAL_H

#include <sys/types.h>

#include <linux/filter.h>

#include <stdbool.h>
#include <stdint.h>

#include "common/errors.h"
#include "sandbox/sandbox.h"

struct moat_net;
struct moat_policy;

#define SANDBOX_HOME "/sandbox"
/* Sandbox uids/gids: BASE + index, + STRIDE while a host entry has it. */
#define SANDBOX_UID_BASE 60000
#define SANDBOX_UID_STRIDE 16384
#define SANDBOX_DEFAULT_PORT 3128
#define SANDBOX_DEFAULT_PIDS 4096
#define SANDBOX_OOM_ADJ "500"
/* Each writable tmpfs without a memory limit (with one: memory_mb). */
#define SANDBOX_TMPFS_MB 1024

/* ---- attrib.c: caller attribution (BPF on the sandbox's cgroup) ---- */

struct sandbox_attrib;
/*
 * Load the attribution programs (2-3 ms on the kernel moat was built on;
 * about 20 ms more on another, see attrib.c), tell them where the
 * sandbox's proxy listens (proxy_addr:proxy_port, IPv4: its SYNs are not
 * bypasses) and attach them to the cgroup v2 directory cgroup_fd.
 * MOAT_ERR_UNSUPPORTED (the kernel cannot: no BTF, no cgroup BPF, not
 * root), MOAT_ERR_SYSTEM, MOAT_ERR_NOMEM; the cause says which step.
 */
int sandbox_attrib_attach(int cgroup_fd, const char *proxy_addr,
    uint16_t proxy_port, struct sandbox_attrib **out,
    struct moat_cause *cause);
/* Detach and free; NULL is fine. */
void sandbox_attrib_free(struct sandbox_attrib *a);
int sandbox_attrib_conns_fd(const struct sandbox_attrib *a);
int sandbox_attrib_tuples_fd(const struct sandbox_attrib *a);
uint64_t sandbox_attrib_cgroup_id(const struct sandbox_attrib *a);
/* The link fds (at most max), for moat_sandbox_attrib_links. */
size_t sandbox_attrib_links(const struct sandbox_attrib *a, int *fds,
    size_t max);

/* ---- cgroup.c: one interface, two backends (pure v2, v1+v2 hybrid) ---- */

struct sandbox_cgroup;
struct moat_resources;

int sandbox_cgroup_create(const char *name, const struct moat_resources *res,
    struct sandbox_cgroup **out, struct moat_cause *cause);
/*
 * The groups of a running sandbox NAME, as create made them (adoption):
 * MOAT_ERR_NOTFOUND when a leaf is missing.
 */
int sandbox_cgroup_open(const char *name, struct sandbox_cgroup **out,
    struct moat_cause *cause);
/* Is pid a member (the first leaf's cgroup.procs lists it)? */
bool sandbox_cgroup_has(const struct sandbox_cgroup *cg, pid_t pid);
/* The v2 leaf for clone3(CLONE_INTO_CGROUP), or -1. */
int sandbox_cgroup_clone_fd(const struct sandbox_cgroup *cg);
/*
 * In the joining process itself (single-threaded, root): move into
 * every group; the v2 one too unless it was born there (in_v2).
 * Returns 0 or an errno value.
 */
int sandbox_cgroup_join(const struct sandbox_cgroup *cg, bool in_v2);
/* Kill every member (v2 cgroup.kill); false when the kernel cannot. */
bool sandbox_cgroup_kill(const struct sandbox_cgroup *cg);
/* Wait (bounded) until empty, then rmdir leaf-first and free. */
void sandbox_cgroup_destroy(struct sandbox_cgroup *cg);
/* Free memory and fds only (a forked holder). */
void sandbox_cgroup_release(struct sandbox_cgroup *cg);
const char *sandbox_cgroup_procs_path(const struct sandbox_cgroup *cg);
/* Its fds (see moat_sandbox_fds); at most max, returns how many. */
size_t sandbox_cgroup_fds(const struct sandbox_cgroup *cg, int *fds,
    size_t max);
/* Kill what is left in the groups of NAME and remove them. */
int sandbox_cgroup_purge(const char *name, struct moat_cause *cause);

/* ---- user.c: who runs inside, and the passwd/group files they see ---- */

struct sandbox_user {
	uid_t uid;
	gid_t gid;
	char name[32];	/* "sandbox" */
	char shell[32]; /* /bin/bash, else /bin/sh */
};
/*
 * The ids from the policy, else the first of the sandbox's series that
 * etc_root's (the host's: "/") passwd and group files do not list.
 */
int sandbox_user_resolve(const struct moat_policy *p, uint32_t index,
    const char *etc_root, struct sandbox_user *u, struct moat_cause *cause);
/* The host's file with the sandbox user added (or replacing its id). */
int sandbox_user_passwd(const struct sandbox_user *u, const char *root,
    char **out, struct moat_cause *cause);
int sandbox_user_group(const struct sandbox_user *u, const char *root,
    char **out, struct moat_cause *cause);

/* ---- fs.c: the mount namespace view, built by init ---- */

struct sandbox_fs {
	const char *root;      /* "/" or a rootfs directory */
	const char *workspace; /* absolute host path */
	const char *hostname;
	const char *passwd;    /* file contents */
	const char *group;
	/* policy paths: "r/path" read-only, "w/path" read-write */
	const char *const *binds;
	uint64_t tmpfs_mb;     /* size of each writable tmpfs; 0: default */
	const char *ca_cert;   /* host path of the sandbox CA, or NULL */
	const char *ca_bundle; /* host path of roots + CA, or NULL */
};
/* Runs in init, in its new mount namespace; ends with pivot_root. */
int sandbox_fs_setup(const struct sandbox_fs *f, struct moat_cause *cause);
/*
 * In the creator: the policy's read_only and read_write paths the view
 * must bind (not the sandbox's own places, not system paths it already
 * has read-only, not missing ones, not ones with a symlink on the way,
 * which are logged), parents first. Free with sandbox_fs_binds_free.
 */
int sandbox_fs_policy_binds(const struct moat_policy *p, const char *root,
    char ***out);
void sandbox_fs_binds_free(char **v);

/* ---- init.c: the sandbox's PID 1 ---- */

struct sandbox_init_args {
	struct sandbox_fs fs;
	const struct sandbox_cgroup *cg;
	bool in_v2;    /* born in the v2 group (CLONE_INTO_CGROUP) */
	bool outlive;  /* once ready, live on when the parent dies */
	int go_fd;     /* read end: hangs up when the parent dies */
	int status_fd; /* write: "" then EOF on success, else a message */
};
int sandbox_init_main(struct sandbox_init_args *a);

/* ---- landlock.c ---- */

/*
 * Build the ruleset for the view seen through `root` (/proc/INIT/root).
 * *fd is -1 when Landlock is unavailable and the policy is best_effort.
 */
int sandbox_landlock_prepare(const char *root, const struct moat_policy *p,
    int *fd, struct moat_cause *cause);
/* In the child: enforce. Needs NO_NEW_PRIVS or CAP_SYS_ADMIN. */
int sandbox_landlock_apply(int fd);
int sandbox_landlock_abi(void);

/* ---- seccomp.c ---- */

/* Compile the filter once; the child only installs it. */
int sandbox_seccomp_prepare(struct sock_fprog *prog, struct moat_cause *cause);
/* The same filter for another libseccomp arch (SCMP_ARCH_*; 0 = native). */
int sandbox_seccomp_build(uint32_t arch, struct sock_fprog *prog,
    struct moat_cause *cause);
int sandbox_seccomp_apply(const struct sock_fprog *prog);

/* ---- privs.c ---- */

int sandbox_privs_drop(uid_t uid, gid_t gid);

/* ---- env.c ---- */

struct sandbox_env_in {
	const struct sandbox_user *user;
	const char *home;
	const char *proxy_addr; /* NULL: no proxy variables */
	uint16_t proxy_port;
	bool pty;
	const char *const *extra;
	bool ca;                /* the CA variables (MOAT_SANDBOX_CA_*) */
	const char *const *fixed; /* K=V set like PATH (placeholders) */
};
/* A NULL-terminated K=V array in one allocation; free() it. */
char **sandbox_env_build(const struct sandbox_env_in *in);

/* ---- spawn.c ---- */

/*
 * fork(), or clone3() into the v2 group when there is one (*in_v2 says
 * which), with extra namespace flags for the sandbox init. Returns like
 * fork(); errno is set on failure.
 */
pid_t sandbox_clone(const struct sandbox_cgroup *cg, unsigned long flags,
    bool *in_v2);

/* In a new child: every signal back to SIG_DFL, none blocked. 0 or an
 * errno value. */
int sandbox_reset_signals(void);

/* ---- the sandbox itself ---- */

struct moat_sandbox *sandbox_alloc(const char *name);
/* The config's extra variables into sb->env, checked (NAME=VALUE). */
int sandbox_copy_env(struct moat_sandbox *sb, const char *const *env,
    struct moat_cause *cause);
/* After init_pid is set: its pidfd and namespace fds. */
int sandbox_open_ns(struct moat_sandbox *sb, struct moat_cause *cause);

/* ---- adopt.c: the state record and adoption ---- */

/* Write sb's state record into state_dir (atomically: temp + rename). */
int sandbox_state_write(const struct moat_sandbox *sb,
    const struct moat_sandbox_config *c, struct moat_cause *cause);

enum {
	SB_NS_NET = 0,
	SB_NS_UTS,
	SB_NS_IPC,
	SB_NS_MNT,
	SB_NS_PID,
	SB_NS_COUNT,
};

struct moat_sandbox {
	char *name;
	pid_t creator;		     /* getpid() of the owner (creator) */
	char *state_path;	     /* the state record, or NULL */
	pid_t init_pid;		     /* in our pid namespace */
	int init_pidfd;
	int nsfd[SB_NS_COUNT];	     /* /proc/INIT/ns/{net,uts,ipc,mnt,pid} */
	struct sandbox_user user;
	struct moat_net *net;	     /* NULL without sandbox/net.h */
	char host_addr[64];	     /* proxy address, "" without a network */
	uint16_t proxy_port;
	struct sandbox_cgroup *cg;
	struct sandbox_attrib *attrib; /* NULL: the proxy scans /proc */
	char attrib_why[MOAT_CAUSE_LEN]; /* why attrib is NULL */
	int landlock_fd;	     /* -1: no Landlock */
	unsigned long nofile_soft;   /* moat_sandbox_config's; 0: inherit */
	struct sock_fprog seccomp;   /* compiled once at create */
	bool ca;		     /* the view has the CA files */
	char **env;		     /* fixed K=V (placeholders), or NULL */
};

#endif
