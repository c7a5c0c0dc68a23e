/*
 * The sandbox's user: "sandbox", with a uid and gid of its own that no
 * host user has (so it owns nothing on the host: an operator's files of
 * uid 1000 stay theirs), unless the policy's process.run_as_user /
 * run_as_group give numeric ids. The id is SANDBOX_UID_BASE + the
 * sandbox's index, or the same plus a multiple of SANDBOX_UID_STRIDE
 * when the host's /etc/passwd or /etc/group already has it (so two
 * sandboxes never pick the same id). The sandbox sees an /etc/passwd
 * and /etc/group that are the host's files with that user added
 * (replacing any entry with the same name or id), so `id`, `whoami`
 * and `~` look right inside.
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

/* Does the id field (the third) of any line of text equal id? */
static bool
id_listed(const char *text, uint32_t id)
{
	for (const char *l = text; l != NULL && *l != '\0';) {
		const char *f = l, *nl = strchr(l, '\n');
		unsigned long v;
		char *end;

		for (int i = 0; i < 2 && f != NULL; i++) {
			f = strchr(f, ':');
			if (f != NULL && (nl == NULL || f < nl))
				f++;
			else
				f = NULL;
		}
		if (f != NULL) {
			v = strtoul(f, &end, 10);
			if (end != f && *end == ':' && v == id)
				return true;
		}
		l = nl != NULL ? nl + 1 : NULL;
	}
	return false;
}

/* The first free id of this sandbox's series (see the top). */
static int
pick_id(uint32_t index, const char *etc_root, uint32_t *out,
    struct moat_cause *cause)
{
	char path[4200], *pw = NULL, *gr = NULL;
	int r = MOAT_ERR_EXISTS;

	snprintf(path, sizeof(path), "%s/etc/passwd", etc_root);
	(void)moat_read_file(path, 4 << 20, &pw, NULL, NULL);
	snprintf(path, sizeof(path), "%s/etc/group", etc_root);
	(void)moat_read_file(path, 4 << 20, &gr, NULL, NULL);
	for (uint32_t k = 0; k < 4096; k++) {
		uint32_t id = SANDBOX_UID_BASE + index % SANDBOX_UID_STRIDE +
		    k * SANDBOX_UID_STRIDE;

		/* 65535 is -1 to 16-bit interfaces; 65534 is nobody. */
		if (id == 65534 || id == 65535 || id_listed(pw, id) ||
		    id_listed(gr, id))
			continue;
		*out = id;
		r = 0;
		break;
	}
	if (r != 0)
		moat_cause_set(cause, "no free uid for sandbox index %u",
		    (unsigned)index);
	free(pw);
	free(gr);
	return r;
}

int
sandbox_user_resolve(const struct moat_policy *p, uint32_t index,
    const char *etc_root, struct sandbox_user *u, struct moat_cause *cause)
{
	uint32_t uid = 0, gid;
	const char *us = p != NULL ? moat_policy_run_as_user(p) : NULL;
	const char *gs = p != NULL ? moat_policy_run_as_group(p) : NULL;
	int r;

	if ((r = parse_id(us, "run_as_user", &uid, cause)) != 0)
		return r;
	if (uid == 0 && (r = pick_id(index, strcmp(etc_root, "/") == 0 ? "" :
	    etc_root, &uid, cause)) != 0)
		return r;
	gid = uid;
	if ((r = parse_id(gs, "run_as_group", &gid, cause)) != 0)
		return r;
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
