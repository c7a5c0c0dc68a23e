/*
 * A test moatd for tests/unit/test_ops_*.c: a loop, a store in a fresh
 * temporary directory and moatd_new_for_test around them (no kernel
 * state). ops_fixture_open fails the test and returns false when it
 * cannot; ops_fixture_close frees everything and removes the directory.
 */
#ifndef MOAT_TESTS_OPS_FIXTURE_H
#define MOAT_TESTS_OPS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "common/loop.h"
#include "store/store.h"
#include "moatd/moatd.h"
#include "tests/unit/tap.h"

struct ops_fixture {
	char dir[64];
	struct moat_loop *l;
	struct moat_store *s;
	struct moatd *d;
};

static bool
ops_fixture_open(struct ops_fixture *f, const char *name)
{
	struct moat_cause c = { { 0 } };
	char path[128];

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/moat-%s-XXXXXX", name);
	if (mkdtemp(f->dir) == NULL) {
		ok(0, "mkdtemp %s", f->dir);
		f->dir[0] = '\0';
		return false;
	}
	snprintf(path, sizeof(path), "%s/moat.db", f->dir);
	if (moat_loop_new(&f->l, &c) != 0 ||
	    moat_store_open(path, MOAT_STORE_CREATE, &f->s, &c) != 0 ||
	    moatd_new_for_test(f->l, f->s, &f->d) != 0) {
		ok(0, "test moatd: %s", c.msg);
		return false;
	}
	return true;
}

static void
ops_fixture_close(struct ops_fixture *f)
{
	char cmd[128];

	moatd_free_for_test(f->d);
	moat_store_close(f->s);
	moat_loop_free(f->l);
	if (f->dir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", f->dir);
	if (system(cmd) != 0)
		diag("could not remove %s", f->dir);
}

#endif
