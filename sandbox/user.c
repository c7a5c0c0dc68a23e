/*
 * The sandbox's user: "sandbox", uid and gid 1000 unless the policy's
 * process.run_as_user/run_as_group give numeric ids. The sandbox sees an
 * /etc/passwd and /etc/group that are the host's files with that user
 * added (replacing any entry with the same name or id), so `id`,
 * `whoami` and `~` look right inside.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "policies/policy.h"
#include "sandbox/internal.h"

static int
parse_id(const char *s, const char *what, uint32_t *id,
    struct moat_cause *cause)
{
	char *end = NULL;
	unsigned long long v;

	if (s == NULL || strcmp(s, "sandbox") == 0)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 ||
	    v >= 4294967295ULL) {
		moat_cause_set(cause, "process.%s: '%s' is not 'sandbox' or "
		    "a numeric id in [1, 4294967294]", what, s);
		return MOAT_ERR_INVALID;
	}
	*id = (uint32_t)v;
	return 0;
}

int
sandbox_user_resolve(const struct moat_policy *p, struct sandbox_user *u,
    struct moat_cause *cause)
{
	uint32_t uid = SANDBOX_DEFAULT_ID, gid = SANDBOX_DEFAULT_ID;
	const char *us = p != NULL ? moat_policy_run_as_user(p) : NULL;
	const char *gs = p != NULL ? moat_policy_run_as_group(p) : NULL;
	int r;

	if ((r = parse_id(us, "run_as_user", &uid, cause)) != 0 ||
	    (r = parse_id(gs, "run_as_group", &gid, cause)) != 0)
		return r;
	/* A numeric user without a group gets the group of the same id. */
	if (gs == NULL && us != NULL && strcmp(us, "sandbox") != 0)
		gid = uid;
	memset(u, 0, sizeof(*u));
	u->uid = uid;
	u->gid = gid;
	snprintf(u->name, sizeof(u->name), "sandbox");
	snprintf(u->shell, sizeof(u->shell), "%s",
	    access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh");
	return 0;
}

/*
 * Copy the lines of root/etc/FILE whose name (field 1) and id (field 3)
 * differ from ours, then append `add`.
 */
static int
rewrite(const char *root, const char *file, const char *name, unsigned id,
    const char *add, char **out, struct moat_cause *cause)
{
	char path[4200], *in = NULL, *buf = NULL, *line, *save = NULL;
	size_t len = 0, cap;
	int r;

	snprintf(path, sizeof(path), "%s/etc/%s", strcmp(root, "/") == 0 ?
	    "" : root, file);
	r = moat_read_file(path, 4 << 20, &in, &len, NULL);
	if (r != 0 && r != MOAT_ERR_NOTFOUND) {
		moat_cause_set(cause, "cannot read %s", path);
		return r;
	}
	cap = len + strlen(add) + 2;
	if ((buf = malloc(cap)) == NULL) {
		free(in);
		return MOAT_ERR_NOMEM;
	}
	buf[0] = '\0';
	len = 0;
	for (line = in ? strtok_r(in, "\n", &save) : NULL; line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		size_t nl = strcspn(line, ":");
		unsigned lid = 0;
		const char *f3 = strchr(line, ':');

		if (f3 != NULL)
			f3 = strchr(f3 + 1, ':');
		if (f3 != NULL && sscanf(f3 + 1, "%u", &lid) == 1 && lid == id)
			continue;
		if (nl == strlen(name) && strncmp(line, name, nl) == 0)
			continue;
		len += (size_t)snprintf(buf + len, cap - len, "%s\n", line);
	}
	snprintf(buf + len, cap - len, "%s", add);
	free(in);
	*out = buf;
	return 0;
}

int
sandbox_user_passwd(const struct sandbox_user *u, const char *root,
    char **out, struct moat_cause *cause)
{
	char add[256];

	snprintf(add, sizeof(add), "%s:x:%u:%u:%s:%s:%s\n", u->name,
	    (unsigned)u->uid, (unsigned)u->gid, u->name, SANDBOX_HOME,
	    u->shell);
	return rewrite(root, "passwd", u->name, (unsigned)u->uid, add, out,
	    cause);
}

int
sandbox_user_group(const struct sandbox_user *u, const char *root,
    char **out, struct moat_cause *cause)
{
	char add[128];

	snprintf(add, sizeof(add), "%s:x:%u:\n", u->name, (unsigned)u->gid);
	return rewrite(root, "group", u->name, (unsigned)u->gid, add, out,
	    cause);
}
