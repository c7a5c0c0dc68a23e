/*
 * A cgroup of the test's own, for tests whose proxy scans the processes
 * of a "sandbox": this process and its children, not every process of
 * the host.
 */
#ifndef MOAT_TESTS_OWN_CGROUP_H
#define MOAT_TESTS_OWN_CGROUP_H

#include <sys/stat.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

struct own_cgroup {
	char cg[320];    /* the cgroup's directory ("" none) */
	char procs[352]; /* its cgroup.procs: the sandbox's procs_path */
	char home[512];  /* the cgroup.procs this process came from */
};

/*
 * The proxy's /proc fallback reads the processes of the sandbox's cgroup;
 * the tests' "sandbox" is this process and its children, in a cgroup of
 * their own. Without one it would read every process of the host, and a
 * test depended on what else runs there (another run's sandbox holding a
 * process with 65 fd tables denies every caller). false: no cgroup v2.
 */
static bool
own_cgroup_enter(struct own_cgroup *g)
{
	char *text = NULL, *line, *sp, v2[256] = "", dev[64], mnt[256], type[32];
	FILE *f;

	/* The cgroup2 mount: /sys/fs/cgroup, or .../unified (hybrid). */
	if ((f = fopen("/proc/self/mounts", "re")) == NULL)
		return false;
	while (v2[0] == '\0' && fscanf(f, "%63s %255s %31s %*[^\n]", dev, mnt,
	    type) == 3)
		if (strcmp(type, "cgroup2") == 0)
			snprintf(v2, sizeof(v2), "%s", mnt);
	fclose(f);
	if (v2[0] == '\0' || moat_read_file("/proc/self/cgroup", 8192, &text,
	    NULL, NULL) != 0) {
		free(text);
		return false;
	}
	/* Our place in it: the "0::PATH" line. */
	for (line = strtok_r(text, "\n", &sp); line != NULL;
	    line = strtok_r(NULL, "\n", &sp))
		if (strncmp(line, "0::", 3) == 0)
			break;
	if (line == NULL) {
		free(text);
		return false;
	}
	snprintf(g->home, sizeof(g->home), "%s%s%scgroup.procs", v2,
	    line + 3, line[strlen(line) - 1] == '/' ? "" : "/");
	free(text);
	snprintf(g->cg, sizeof(g->cg), "%s/moat-pxtest-%d", v2, (int)getpid());
	snprintf(g->procs, sizeof(g->procs), "%s/cgroup.procs", g->cg);
	if (mkdir(g->cg, 0755) != 0 || (f = fopen(g->procs, "we")) == NULL) {
		rmdir(g->cg);
		g->cg[0] = '\0';
		return false;
	}
	fprintf(f, "0\n");
	if (fclose(f) != 0) {
		rmdir(g->cg);
		g->cg[0] = '\0';
		return false;
	}
	return true;
}

/* Back home, what is left in ours killed, and ours removed (bounded). */
static void
own_cgroup_leave(struct own_cgroup *g)
{
	char path[352];
	FILE *f;

	if (g->cg[0] == '\0')
		return;
	if ((f = fopen(g->home, "we")) != NULL) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/cgroup.kill", g->cg);
	if ((f = fopen(path, "we")) != NULL) {
		fprintf(f, "1\n");
		fclose(f);
	}
	for (int i = 0; i < 200 && rmdir(g->cg) != 0 && errno == EBUSY; i++)
		usleep(10 * 1000);
	g->cg[0] = '\0';
}

#endif
