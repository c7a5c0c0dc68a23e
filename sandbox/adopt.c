/*
 * Live restore, the sandbox's part: the state record that create writes
 * and the adoption of a running sandbox by a later owner
 * (moat_sandbox_adopt in sandbox/sandbox.h; docs/sandbox.md).
 *
 * The record is a root-only text file in the sandbox's state directory,
 * one "key value" per line, written to a temporary name and renamed, so
 * a crash leaves the old record or the new one, never half of one. It
 * names the init process by pid, its start time (field 22 of
 * /proc/PID/stat) and the boot id, so a pid reused by another process,
 * or after a reboot, is never taken for the sandbox's init.
 */
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event.h"
#include "common/log.h"
#include "common/util.h"
#include "sandbox/internal.h"
#include "sandbox/net.h"

#define STATE_MAGIC "moat-sandbox-state 1"
#define STATE_MAX (16 << 10)

/* What the record holds; strings point into the file's text. */
struct state_rec {
	const char *name;
	const char *boot_id;
	pid_t init_pid;
	uint64_t init_start;
	uid_t uid;
	gid_t gid;
	const char *user;
	const char *shell;
	const char *workspace;
	const char *rootfs;
	uint32_t net_index;
	const char *net_pool;
	uint16_t proxy_port;
	uint32_t ca;		/* made with a CA (its files bound inside) */
};

static int
boot_id(char *out, size_t len, struct moat_cause *cause)
{
	char *s = NULL;
	int r;

	if ((r = moat_read_file("/proc/sys/kernel/random/boot_id", 256, &s,
	    NULL, cause)) != 0)
		return r;
	s[strcspn(s, "\n")] = '\0';
	moat_strlcpy(out, s, len);
	free(s);
	return MOAT_OK;
}

static bool
line_ok(const char *s)
{
	return s != NULL && strchr(s, '\n') == NULL;
}

int
sandbox_state_write(const struct moat_sandbox *sb,
    const struct moat_sandbox_config *c, struct moat_cause *cause)
{
	char path[4096], tmp[4200], boot[64], *ws = NULL, *root = NULL;
	char *text = NULL;
	uint64_t st = 0;
	int fd = -1, r = MOAT_ERR_SYSTEM, n;

	snprintf(path, sizeof(path), "%s/%s", c->state_dir,
	    MOAT_SANDBOX_STATE_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((r = boot_id(boot, sizeof(boot), cause)) != 0)
		return r;
	if (moat_proc_start_time(sb->init_pid, &st) != 0) {
		moat_cause_set(cause, "sandbox %s: init %d is gone", sb->name,
		    (int)sb->init_pid);
		return MOAT_ERR_SYSTEM;
	}
	ws = realpath(c->workspace, NULL);
	root = c->rootfs != NULL ? realpath(c->rootfs, NULL) : strdup("/");
	if (!line_ok(ws) || !line_ok(root)) {
		moat_cause_set(cause, "sandbox %s: workspace or rootfs path "
		    "cannot be recorded", sb->name);
		r = MOAT_ERR_INVALID;
		goto out;
	}
	n = asprintf(&text, STATE_MAGIC "\nname %s\nboot_id %s\n"
	    "init_pid %d\ninit_start %" PRIu64 "\nuid %u\ngid %u\nuser %s\n"
	    "shell %s\nworkspace %s\nrootfs %s\nnet_index %u\nnet_pool %s\n"
	    "proxy_port %u\nca %d\n", sb->name, boot, (int)sb->init_pid, st,
	    (unsigned)sb->user.uid, (unsigned)sb->user.gid, sb->user.name,
	    sb->user.shell, ws, root, (unsigned)c->net_index,
	    c->net_pool ? c->net_pool : MOAT_NET_DEFAULT_POOL,
	    (unsigned)sb->proxy_port, sb->ca ? 1 : 0);
	if (n < 0) {
		text = NULL;
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	r = MOAT_ERR_SYSTEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1 || moat_write_all(fd, text, (size_t)n) != 0 ||
	    fsync(fd) != 0 || rename(tmp, path) != 0) {
		moat_cause_errno(cause, "sandbox %s: write %s", sb->name, path);
		unlink(tmp);
		goto out;
	}
	if ((((struct moat_sandbox *)sb)->state_path = strdup(path)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	r = MOAT_OK;
out:
	moat_close(fd);
	free(text);
	free(ws);
	free(root);
	return r;
}

/* The record's fields: a string (into the text) or a bounded number. */
static const struct rec_field {
	const char *key;
	size_t off;
	size_t size;		/* of the number; 0: a string */
	unsigned long long max;
} rec_fields[] = {
#define S(k, f) { k, offsetof(struct state_rec, f), 0, 0 }
#define N(k, f, m) { k, offsetof(struct state_rec, f), \
	sizeof(((struct state_rec *)0)->f), m }
	S("name", name),
	S("boot_id", boot_id),
	N("init_pid", init_pid, 4194304),
	N("init_start", init_start, UINT64_MAX),
	N("uid", uid, 0xfffffffeu),
	N("gid", gid, 0xfffffffeu),
	S("user", user),
	S("shell", shell),
	S("workspace", workspace),
	S("rootfs", rootfs),
	N("net_index", net_index, UINT32_MAX),
	S("net_pool", net_pool),
	N("proxy_port", proxy_port, 65535),
	N("ca", ca, 1),
#undef S
#undef N
};

static int
rec_set(struct state_rec *rec, const struct rec_field *f, char *val)
{
	unsigned char *at = (unsigned char *)rec + f->off;
	unsigned long long v;
	uint16_t v16;
	uint32_t v32;
	char *end;

	if (f->size == 0) {
		memcpy(at, &val, sizeof(val));
		return 0;
	}
	errno = 0;
	v = strtoull(val, &end, 10);
	if (errno != 0 || end == val || *end != '\0' || val[0] == '-' ||
	    v > f->max)
		return -1;
	v16 = (uint16_t)v;
	v32 = (uint32_t)v;
	if (f->size == 2)
		memcpy(at, &v16, 2);
	else if (f->size == 4)
		memcpy(at, &v32, 4);
	else if (f->size == 8)
		memcpy(at, &v, 8);
	else
		return -1;
	return 0;
}

/* Parse text in place; every field must be there exactly once. */
static int
rec_parse(char *text, struct state_rec *rec, const char *path,
    struct moat_cause *cause)
{
	char *line, *save = NULL, *val;
	unsigned seen = 0;
	size_t i;

	memset(rec, 0, sizeof(*rec));
	line = strtok_r(text, "\n", &save);
	if (line == NULL || strcmp(line, STATE_MAGIC) != 0)
		goto bad;
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		if ((val = strchr(line, ' ')) == NULL)
			goto bad;
		*val++ = '\0';
		for (i = 0; i < MOAT_NELEM(rec_fields); i++)
			if (strcmp(line, rec_fields[i].key) == 0)
				break;
		if (i == MOAT_NELEM(rec_fields) || (seen & (1u << i)) ||
		    rec_set(rec, &rec_fields[i], val) != 0)
			goto bad;
		seen |= 1u << i;
	}
	if (seen != (1u << MOAT_NELEM(rec_fields)) - 1 || rec->init_pid <= 1)
		goto bad;
	return MOAT_OK;
bad:
	moat_cause_set(cause, "%s: not a state record moat can read", path);
	return MOAT_ERR_INVALID;
}

/* The config must describe the sandbox that runs. */
static int
rec_fits(const struct state_rec *rec, const struct moat_sandbox_config *c,
    struct moat_cause *cause)
{
	char *ws = c->workspace ? realpath(c->workspace, NULL) : NULL;
	char *root = c->rootfs ? realpath(c->rootfs, NULL) : strdup("/");
	const char *pool = c->net_pool ? c->net_pool : MOAT_NET_DEFAULT_POOL;
	uint16_t port = c->proxy_port ? c->proxy_port : SANDBOX_DEFAULT_PORT;
	const char *what = NULL;

	if (strcmp(rec->name, c->name) != 0)
		what = "name";
	else if (ws == NULL || strcmp(rec->workspace, ws) != 0)
		what = "workspace";
	else if (root == NULL || strcmp(rec->rootfs, root) != 0)
		what = "rootfs";
	else if (rec->net_index != c->net_index)
		what = "network slot (its place in the config's list)";
	else if (strcmp(rec->net_pool, pool) != 0)
		what = "net_pool";
	else if (rec->proxy_port != port)
		what = "proxy port";
	else if (rec->ca != (c->ca_cert != NULL && c->ca_bundle != NULL))
		what = "CA (TLS interception)";
	free(ws);
	free(root);
	if (what == NULL)
		return MOAT_OK;
	moat_cause_set(cause, "sandbox %s: its %s changed since it was "
	    "created", c->name, what);
	return MOAT_ERR_INVALID;
}

/* Is the record's init the process running now under that pid? */
static int
rec_init(struct moat_sandbox *sb, const struct state_rec *rec,
    struct moat_cause *cause)
{
	char boot[64];
	uint64_t st = 0;
	int r;

	if ((r = boot_id(boot, sizeof(boot), cause)) != 0)
		return r;
	if (strcmp(boot, rec->boot_id) != 0) {
		moat_cause_set(cause, "sandbox %s: recorded before a reboot",
		    sb->name);
		return MOAT_ERR_NOTFOUND;
	}
	/*
	 * The pidfd first, the start time after: if it still matches, the
	 * pidfd is init's, whatever happens to the pid from now on.
	 */
	sb->init_pid = rec->init_pid;
	sb->init_pidfd = (int)syscall(SYS_pidfd_open, sb->init_pid, 0);
	if (sb->init_pidfd < 0 || moat_proc_start_time(sb->init_pid, &st) != 0 ||
	    st != rec->init_start) {
		moat_cause_set(cause, "sandbox %s: its init (pid %d) is gone",
		    sb->name, (int)rec->init_pid);
		return MOAT_ERR_NOTFOUND;
	}
	return MOAT_OK;
}

static int
adopt_parts(struct moat_sandbox *sb, const struct state_rec *rec,
    const struct moat_sandbox_config *c, struct moat_cause *cause)
{
	struct moat_net_config nc = { 0 };
	char root[64];
	int r;

	if ((r = rec_init(sb, rec, cause)) != 0 ||
	    (r = sandbox_open_ns(sb, cause)) != 0 ||
	    (r = sandbox_cgroup_open(sb->name, &sb->cg, cause)) != 0)
		return r;
	if (!sandbox_cgroup_has(sb->cg, sb->init_pid)) {
		moat_cause_set(cause, "sandbox %s: init %d is not in its "
		    "cgroup", sb->name, (int)sb->init_pid);
		return MOAT_ERR_NOTFOUND;
	}
	sb->user.uid = rec->uid;
	sb->user.gid = rec->gid;
	moat_strlcpy(sb->user.name, rec->user, sizeof(sb->user.name));
	moat_strlcpy(sb->user.shell, rec->shell, sizeof(sb->user.shell));
	sb->proxy_port = rec->proxy_port;
	sb->ca = rec->ca != 0;
	if ((r = sandbox_copy_env(sb, c->env, cause)) != 0)
		return r;
	nc.name = sb->name;
	nc.netns_fd = sb->nsfd[SB_NS_NET];
	nc.index = rec->net_index;
	nc.pool = rec->net_pool;
	nc.proxy_port = rec->proxy_port;
	if ((r = moat_net_adopt(&nc, &sb->net, cause)) != 0)
		return r;
	snprintf(sb->host_addr, sizeof(sb->host_addr), "%s",
	    moat_net_host_addr(sb->net));
	/* Attribution: whoever serves it holds its programs (see sandbox.h). */
	snprintf(sb->attrib_why, sizeof(sb->attrib_why), "adopted: not "
	    "attached here until asked (moat_sandbox_attrib_attach)");
	/* The confinement as create prepares it, against init's view. */
	snprintf(root, sizeof(root), "/proc/%d/root", (int)sb->init_pid);
	if ((r = sandbox_seccomp_prepare(&sb->seccomp, cause)) != 0 ||
	    (r = sandbox_landlock_prepare(root, c->policy, &sb->landlock_fd,
	    cause)) != 0)
		return r;
	return MOAT_OK;
}

int
moat_sandbox_adopt(const struct moat_sandbox_config *c,
    struct moat_sandbox **out, struct moat_cause *cause)
{
	struct moat_sandbox *sb = NULL;
	struct state_rec rec;
	char path[4096], *text = NULL;
	int r;

	if (c->state_dir == NULL || c->name == NULL) {
		moat_cause_set(cause, "no state directory to adopt from");
		return MOAT_ERR_NOTFOUND;
	}
	snprintf(path, sizeof(path), "%s/%s", c->state_dir,
	    MOAT_SANDBOX_STATE_FILE);
	if ((r = moat_read_file(path, STATE_MAX, &text, NULL, cause)) != 0) {
		if (errno == ENOENT) {
			moat_cause_set(cause, "sandbox %s: no state record",
			    c->name);
			return MOAT_ERR_NOTFOUND;
		}
		return r;
	}
	if ((r = rec_parse(text, &rec, path, cause)) != 0 ||
	    (r = rec_fits(&rec, c, cause)) != 0)
		goto out;
	if ((sb = sandbox_alloc(c->name)) == NULL ||
	    (sb->state_path = strdup(path)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = adopt_parts(sb, &rec, c, cause)) != 0)
		goto out;
	*out = sb;
	sb = NULL;
	r = MOAT_OK;
out:
	/* Not adopted: drop our handles, touch nothing of the sandbox. */
	moat_sandbox_detach(sb);
	free(text);
	return r;
}
