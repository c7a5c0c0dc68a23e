/*
 * libFuzzer target for the policy loader and decider: any bytes are
 * loaded as a policy (no filesystem pass); a policy that loads is asked
 * a few fixed questions, merged with a rule and freed.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const hosts[] = { "api.github.com", "x.com",
	"a.b.c.x.com", "10.0.0.1", "2001:db8::1", "GITHUB.COM.", "*",
	"us-aiplatform.googleapis.com", "" };
static const char *const exes[] = { "/usr/bin/curl", "/usr/bin/python3.11",
	"/usr/lib/node_modules/@openai/codex/bin/codex", "/", "" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_policy_opts o = { NULL, true };
	struct moat_policy *p = NULL, *m = NULL;
	const char *anc[] = { "/usr/local/bin/claude", "/bin/bash" };
	struct moat_decision d;
	struct moat_diags dg;
	struct moat_caller c;
	struct sockaddr_in sin;
	char *pretty;

	moat_diags_init(&dg);
	if (moat_policy_load_string((const char *)data, size, "fuzz", &o, &p,
	    &dg) == MOAT_OK) {
		for (size_t h = 0; h < sizeof(hosts) / sizeof(*hosts); h++)
			for (size_t e = 0; e < sizeof(exes) / sizeof(*exes);
			    e++) {
				c = (struct moat_caller){ exes[e], anc, 2, anc,
					1 };
				moat_policy_decide(p, &c, hosts[h], 443, &d);
				memset(&sin, 0, sizeof(sin));
				sin.sin_family = AF_INET;
				sin.sin_addr.s_addr = htonl(0x0a000001);
				moat_policy_check_addr(&d,
				    (const struct sockaddr *)&sin);
			}
		pretty = moat_policy_json_pretty(p);
		free(pretty);
		moat_policy_merge_rule(p, "{\"extra\":{\"endpoints\":[{\"host\":"
		    "\"e.com\",\"port\":443}],\"binaries\":[{\"path\":"
		    "\"/usr/bin/e\"}]}}", &o, &m, NULL);
		moat_policy_free(m);
		moat_policy_free(p);
	}
	moat_diags_free(&dg);
	return 0;
}
