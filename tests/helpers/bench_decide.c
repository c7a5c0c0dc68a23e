/*
 * bench_decide POLICY.json [SECONDS]: how many decisions per second one
 * core makes on a realistic mix of allowed and denied (host, port,
 * binary) tuples. The proxy decides once per connection, so this bounds
 * what policy size costs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policies/policy.h"

struct tuple {
	const char *exe;
	const char *parent;
	const char *host;
	uint16_t port;
};

static const struct tuple mix[] = {
	{ "/usr/bin/python3.11", "/bin/bash", "pypi.org", 443 },
	{ "/usr/bin/python3.11", "/bin/bash", "files.pythonhosted.org", 443 },
	{ "/usr/bin/node", "/usr/local/bin/claude", "api.anthropic.com", 443 },
	{ "/usr/bin/node", "/bin/bash", "registry.npmjs.org", 443 },
	{ "/usr/lib/git-core/git-remote-https", "/usr/bin/git", "github.com",
	    443 },
	{ "/usr/bin/curl", "/bin/bash", "api.github.com", 443 },
	{ "/usr/bin/curl", "/bin/bash", "evil.example.com", 443 },
	{ "/usr/bin/curl", "/bin/bash", "pypi.org", 443 },
	{ "/usr/bin/wget", "/bin/bash", "a.gallerycdn.vsassets.io", 443 },
	{ "/usr/bin/python3.11", "/bin/bash", "pypi.org", 80 },
	{ "/usr/bin/nc", "/bin/sh", "10.0.0.1", 22 },
	{ "/sandbox/.vscode-server/bin/abc/node", "/bin/sh",
	    "marketplace.visualstudio.com", 443 },
	{ "/usr/bin/ssh", "/bin/bash", "GitHub.com.", 22 },
	{ "/usr/local/bin/codex", "/bin/bash", "chatgpt.com", 443 },
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct moat_policy_opts o = { NULL, true };
	struct moat_policy *p = NULL;
	struct moat_decision d;
	struct moat_diags dg;
	double secs = argc > 2 ? atof(argv[2]) : 1.0, t0, el;
	unsigned long long n = 0, allowed = 0;
	const char *name;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_decide POLICY.json [SECONDS]\n");
		return 100;
	}
	moat_diags_init(&dg);
	if (moat_policy_load_file(argv[1], &o, &p, &dg) != 0) {
		for (size_t i = 0; i < dg.n; i++)
			fprintf(stderr, "%s: %s: %s\n", argv[1], dg.v[i].path,
			    dg.v[i].msg);
		return 1;
	}
	moat_diags_free(&dg);
	name = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
	t0 = now();
	do {
		/* Check the clock every 4096 decisions, not every one. */
		for (int k = 0; k < 4096; k++) {
			const struct tuple *t = &mix[n % (sizeof(mix) /
			    sizeof(*mix))];
			const char *anc[1] = { t->parent };
			struct moat_caller c = { t->exe, anc, 1, NULL, 0 };

			moat_policy_decide(p, &c, t->host, t->port, &d);
			allowed += d.allow;
			n++;
		}
		el = now() - t0;
	} while (el < secs);
	printf("decide: %.1fM decisions/s (policy %s: %zu policies, %zu "
	    "endpoints; %.0f%% allowed)\n", (double)n / el / 1e6, name,
	    moat_policy_count(p), moat_policy_endpoint_count(p),
	    100.0 * (double)allowed / (double)n);
	moat_policy_free(p);
	return 0;
}
