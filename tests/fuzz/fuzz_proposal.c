/*
 * Fuzz an agent's POST /v1/proposals body: it comes from inside a
 * sandbox and moatd parses and validates it (moatd/proposals-agent.c).
 * A throwaway moatd and store are made once per process.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/loop.h"
#include "store/store.h"
#include "moatd/moatd.h"

static struct moatd *d;
static char path[64];

static void
cleanup(void)
{
	char f[80];

	/* The process ends here: the store goes with it. */
	unlink(path);
	snprintf(f, sizeof(f), "%s-wal", path);
	unlink(f);
	snprintf(f, sizeof(f), "%s-shm", path);
	unlink(f);
}

static void
setup(void)
{
	static const char pol[] = "{\"version\":1,\"network_policies\":{"
	    "\"gh\":{\"endpoints\":[{\"host\":\"github.com\",\"port\":443}],"
	    "\"binaries\":[{\"path\":\"/usr/bin/git\"}]}}}";
	struct moat_loop *l = NULL;
	struct moat_store *s = NULL;

	snprintf(path, sizeof(path), "/tmp/fuzz-proposal-%d.db", (int)getpid());
	atexit(cleanup);
	if (moat_loop_new(&l, NULL) != 0 ||
	    moat_store_open(path, MOAT_STORE_CREATE, &s, NULL) != 0 ||
	    moatd_new_for_test(l, s, &d) != 0 ||
	    moatd_add_sandbox_for_test(d, "box", pol, NULL) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_cause cause = { { 0 } };
	int64_t id = 0;

	if (d == NULL)
		setup();
	moatd_proposal_from_agent(d, "box", (const char *)data, size, &id,
	    &cause);
	return 0;
}
