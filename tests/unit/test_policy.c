/*
 * Policy loading and validation: every rule of docs/policy.md with the
 * JSON path its error names, the static sections, canonical JSON, hash,
 * merge, the presets and OpenShell's base policy.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policies/policy.h"
#include "tests/unit/policy_util.h"

#define EP(x) "{'version':1,'network_policies':{'n':{'endpoints':[" x \
	"],'binaries':[{'path':'/usr/bin/curl'}]}}}"

#define BIN(x) "{'version':1,'network_policies':{'n':{'endpoints':" \
	"[{'host':'a.com','port':1}],'binaries':[" x "]}}}"

static void
test_top_level(void)
{
	struct moat_policy *p = NULL;
	struct moat_diags d;

	rejects("missing version", "{}", "version", "required");
	rejects("version 2", "{'version':2}", "version", "expected 1");
	rejects("version as a string", "{'version':'1'}", "version",
	    "integer");
	rejects("unknown top-level field", "{'version':1,'bogus':1}", "bogus",
	    "unknown field");
	rejects("network_middlewares",
	    "{'version':1,'network_middlewares':{}}", "network_middlewares",
	    "not supported by moat");
	rejects("not an object", "[1]", "", "JSON object");
	rejects("not JSON", "{'version':", "", "not valid JSON");
	rejects("duplicate keys", "{'version':1,'version':1}", "",
	    "duplicate");
	accepts("minimal", "{'version':1}");

	/* Every error is collected, not only the first. */
	moat_diags_init(&d);
	ok(load_q("{'version':3,'x':1,'process':{'run_as_user':'root'}}", &p,
	    &d) == MOAT_ERR_INVALID && moat_diags_count(&d, MOAT_DIAG_ERROR) ==
	    3, "three errors, three diagnostics");
	moat_diags_free(&d);
	ok(load_q("{'version':3}", &p, NULL) == MOAT_ERR_INVALID && p == NULL,
	    "invalid with diags NULL too");
}

static void
test_filesystem(void)
{
	struct moat_policy *p = NULL;
	struct moat_resources res;
	char *big, *s;
	size_t off;

	rejects("relative read_only path",
	    "{'version':1,'filesystem_policy':{'read_only':['usr']}}",
	    "filesystem_policy.read_only[0]", "absolute");
	rejects("'..' component",
	    "{'version':1,'filesystem_policy':{'read_write':['/tmp/../etc']}}",
	    "filesystem_policy.read_write[0]", "'..'");
	rejects("read_write '/'",
	    "{'version':1,'filesystem_policy':{'read_write':['/tmp','/']}}",
	    "filesystem_policy.read_write[1]", "must not be '/'");
	rejects("include_workdir not bool",
	    "{'version':1,'filesystem_policy':{'include_workdir':1}}",
	    "filesystem_policy.include_workdir", "true or false");
	rejects("unknown fs field",
	    "{'version':1,'filesystem_policy':{'readonly':[]}}",
	    "filesystem_policy.readonly", "unknown field");
	rejects("path not a string",
	    "{'version':1,'filesystem_policy':{'read_only':[1]}}",
	    "filesystem_policy.read_only[0]", "string");

	big = malloc(5000 + 64);
	strcpy(big, "{'version':1,'filesystem_policy':{'read_only':['/");
	off = strlen(big);
	memset(big + off, 'a', 4100);
	strcpy(big + off + 4100, "']}}");
	rejects("path over 4096 characters", big,
	    "filesystem_policy.read_only[0]", "longer than 4096");
	free(big);

	s = malloc(257 * 8 + 128);
	strcpy(s, "{'version':1,'filesystem_policy':{'read_only':[");
	for (int i = 0; i < 257; i++)
		sprintf(s + strlen(s), "%s'/p%d'", i ? "," : "", i);
	strcat(s, "]}}");
	rejects("257 filesystem paths", s, "filesystem_policy", "at most 256");
	free(s);

	ok(load_q("{'version':1,'filesystem_policy':{'include_workdir':true,"
	    "'read_only':['/usr','/etc'],'read_write':['/tmp']},"
	    "'landlock':{'compatibility':'hard_requirement'},"
	    "'process':{'run_as_user':'sandbox','run_as_group':'1000'},"
	    "'resources':{'memory_mb':512,'pids_max':256,'cpu_percent':50}}",
	    &p, NULL) == 0, "static sections load");
	if (p != NULL) {
		ok(moat_policy_include_workdir(p), "include_workdir");
		is_str(moat_policy_read_only(p)[1], "/etc", "read_only[1]");
		ok(moat_policy_read_only(p)[2] == NULL, "read_only ends");
		is_str(moat_policy_read_write(p)[0], "/tmp", "read_write[0]");
		ok(moat_policy_landlock(p) == MOAT_LANDLOCK_HARD_REQUIREMENT,
		    "landlock hard_requirement");
		is_str(moat_policy_run_as_user(p), "sandbox", "run_as_user");
		is_str(moat_policy_run_as_group(p), "1000", "run_as_group");
		moat_policy_resources(p, &res);
		ok(res.memory_mb == 512 && res.pids_max == 256 &&
		    res.cpu_percent == 50, "resources");
		moat_policy_free(p);
		p = NULL;
	}
	ok(load_q("{'version':1}", &p, NULL) == 0 && p != NULL &&
	    moat_policy_read_only(p)[0] == NULL &&
	    moat_policy_run_as_user(p) == NULL &&
	    moat_policy_landlock(p) == MOAT_LANDLOCK_BEST_EFFORT,
	    "defaults: no paths, no user, best_effort");
	moat_policy_free(p);
}

static void
test_process_resources(void)
{
	rejects("run_as_user root",
	    "{'version':1,'process':{'run_as_user':'root'}}",
	    "process.run_as_user",
	    "run_as_user must be 'sandbox' or a numeric UID/GID in range "
	    "[1, 4294967294], got 'root'");
	rejects("run_as_user 0", "{'version':1,'process':{'run_as_user':'0'}}",
	    "process.run_as_user", "got '0'");
	rejects("run_as_group nobody",
	    "{'version':1,'process':{'run_as_group':'nobody'}}",
	    "process.run_as_group", "got 'nobody'");
	rejects("run_as_group 4294967295",
	    "{'version':1,'process':{'run_as_group':'4294967295'}}",
	    "process.run_as_group", "got '4294967295'");
	rejects("run_as_user as a number",
	    "{'version':1,'process':{'run_as_user':1000}}",
	    "process.run_as_user", "string");
	accepts("run_as_user 4294967294",
	    "{'version':1,'process':{'run_as_user':'4294967294'}}");
	rejects("landlock mode",
	    "{'version':1,'landlock':{'compatibility':'strict'}}",
	    "landlock.compatibility", "best_effort, hard_requirement");
	rejects("negative memory",
	    "{'version':1,'resources':{'memory_mb':-1}}", "resources.memory_mb",
	    "out of range");
	rejects("cpu_percent beyond the machine",
	    "{'version':1,'resources':{'cpu_percent':100000000}}",
	    "resources.cpu_percent", "out of range");
	rejects("unknown resources field",
	    "{'version':1,'resources':{'swap_mb':1}}", "resources.swap_mb",
	    "unknown field");
}

static void
test_endpoints(void)
{
	const char *e0 = "network_policies.n.endpoints[0]";

	rejects("port 0", EP("{'host':'a.com','port':0}"),
	    "network_policies.n.endpoints[0].port",
	    "has invalid port 0; expected 1..=65535");
	rejects("port 70000", EP("{'host':'a.com','port':70000}"),
	    "network_policies.n.endpoints[0].port", "has invalid port 70000");
	rejects("ports[1] 0", EP("{'host':'a.com','ports':[443,0]}"),
	    "network_policies.n.endpoints[0].ports[1]", "invalid port 0");
	rejects("port and ports", EP("{'host':'a.com','port':1,'ports':[2]}"),
	    e0, "mutually exclusive");
	rejects("no port", EP("{'host':'a.com'}"), e0,
	    "endpoint 'a.com' must declare at least one port");
	rejects("empty ports", EP("{'host':'a.com','ports':[]}"), e0,
	    "at least one port");
	rejects("empty host without allowed_ips", EP("{'host':'','port':1}"),
	    "network_policies.n.endpoints[0].host", "must not be empty");
	rejects("missing host without allowed_ips", EP("{'port':1}"),
	    "network_policies.n.endpoints[0].host", "must not be empty");
	accepts("hostless with allowed_ips",
	    EP("{'port':5432,'allowed_ips':['10.0.0.0/8']}"));
	rejects("unknown endpoint field",
	    "{'version':1,'network_policies':{'npm':{'endpoints':["
	    "{'host':'a.com','port':1},{'host':'b.com','port':1},"
	    "{'host':'c.com','prot':1,'port':1}]}}}",
	    "network_policies.npm.endpoints[2].prot", "unknown field");
	rejects("host with a space", EP("{'host':'a b.com','port':1}"),
	    "network_policies.n.endpoints[0].host", "not a valid host");
	rejects("access and rules",
	    EP("{'host':'a.com','port':1,'protocol':'rest','access':'full',"
	    "'rules':[{'allow':{'method':'GET'}}]}"), e0,
	    "rules and access are mutually exclusive");
	rejects("rules []", EP("{'host':'a.com','port':1,'protocol':'rest',"
	    "'rules':[]}"), "network_policies.n.endpoints[0].rules",
	    "must not be empty");
	rejects("deny_rules without protocol",
	    EP("{'host':'a.com','port':1,'access':'full',"
	    "'deny_rules':[{'method':'DELETE'}]}"),
	    "network_policies.n.endpoints[0].deny_rules",
	    "deny_rules require protocol");
	rejects("protocol without rules or access",
	    EP("{'host':'a.com','port':1,'protocol':'rest'}"), e0,
	    "protocol requires rules or access");
	rejects("bad access", EP("{'host':'a.com','port':1,'protocol':'rest',"
	    "'access':'write'}"), "network_policies.n.endpoints[0].access",
	    "read-only, read-write, full");
	rejects("bad enforcement", EP("{'host':'a.com','port':1,"
	    "'enforcement':'warn'}"),
	    "network_policies.n.endpoints[0].enforcement", "enforce, audit");
	rejects("bad protocol", EP("{'host':'a.com','port':1,"
	    "'protocol':'ftp'}"), "network_policies.n.endpoints[0].protocol",
	    "unknown protocol");
	rejects("bad tls", EP("{'host':'a.com','port':1,'tls':'yes'}"),
	    "network_policies.n.endpoints[0].tls", "skip");
	rejects("rule without allow", EP("{'host':'a.com','port':1,"
	    "'protocol':'rest','rules':[{'method':'GET'}]}"),
	    "network_policies.n.endpoints[0].rules[0].method", "unknown field");
	rejects("unknown allow field", EP("{'host':'a.com','port':1,"
	    "'protocol':'rest','rules':[{'allow':{'verb':'GET'}}]}"),
	    "network_policies.n.endpoints[0].rules[0].allow.verb",
	    "unknown field");
	rejects("path selector", EP("{'host':'a.com','port':1,"
	    "'protocol':'rest','access':'full','path':'graphql'}"),
	    "network_policies.n.endpoints[0].path", "start with '/'");
	accepts("L7 endpoint with rules and deny_rules",
	    EP("{'host':'api.github.com','port':443,'protocol':'rest',"
	    "'enforcement':'audit','rules':[{'allow':{'method':'GET',"
	    "'path':'/repos/**','query':{'per_page':'*'}}}],"
	    "'deny_rules':[{'method':'POST','path':'/admin/**'}],"
	    "'path':'/repos/**','allow_encoded_slash':true}"));
}

static void
test_endpoint_warnings(void)
{
	struct moat_policy *p = NULL;
	struct moat_diags d;

	moat_diags_init(&d);
	ok(load_q(EP("{'host':'a.com','port':443,'tls':'terminate',"
	    "'mcp':{}}"), &p, &d) == 0, "tls terminate and mcp load");
	ok(find_diag(&d, MOAT_DIAG_WARNING,
	    "network_policies.n.endpoints[0].tls", "deprecated") != NULL,
	    "tls terminate is a deprecation warning");
	ok(find_diag(&d, MOAT_DIAG_WARNING,
	    "network_policies.n.endpoints[0].mcp", "not supported") != NULL,
	    "mcp is ignored with a warning");
	moat_policy_free(p);
	moat_diags_free(&d);
}

static void
test_host_wildcards(void)
{
	static const char *good[] = { "*.x.com", "**.x.com",
		"*-aiplatform.googleapis.com", "*.s3.*.amazonaws.com",
		"GitHub.COM.", "10.0.0.1", "2001:db8::1", "[2001:db8::2]" };
	static const struct {
		const char *host, *msg;
	} bad[] = {
		{ "*", "bare wildcard" },
		{ "**", "bare wildcard" },
		{ "*.com", "TLD wildcard '*.com'" },
		{ "**.com", "TLD wildcard" },
		{ "x.com.*", "TLD wildcard" },
		{ "foo.us-*.x.com", "middle DNS label wildcards" },
		{ "a.**.x.com", "middle DNS label wildcards" },
		{ "foo**.x.com", "middle DNS label wildcards" },
		{ "a..b.com", "not a valid host" },
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		snprintf(buf, sizeof(buf), EP("{'host':'%s','port':443}"),
		    good[i]);
		accepts(good[i], buf);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		snprintf(buf, sizeof(buf), EP("{'host':'%s','port':443}"),
		    bad[i].host);
		rejects(bad[i].host, buf,
		    "network_policies.n.endpoints[0].host", bad[i].msg);
	}
}

static void
test_allowed_ips(void)
{
	const char *a0 = "network_policies.n.endpoints[0].allowed_ips[0]";

	rejects("bad CIDR", EP("{'host':'db','port':5432,"
	    "'allowed_ips':['10.0.0.0/33']}"), a0, "not an IP address or CIDR");
	rejects("garbage CIDR", EP("{'host':'db','port':5432,"
	    "'allowed_ips':['ten']}"), a0, "not an IP address or CIDR");
	rejects("allowed_ips loopback (moat departs: error at load)",
	    EP("{'host':'db','port':5432,'allowed_ips':['127.0.0.1']}"), a0,
	    "loopback 127.0.0.0/8");
	rejects("allowed_ips covering loopback",
	    EP("{'host':'db','port':5432,'allowed_ips':['0.0.0.0/0']}"), a0,
	    "can never work");
	rejects("allowed_ips link-local",
	    EP("{'host':'db','port':5432,'allowed_ips':['169.254.0.0/16']}"),
	    a0, "link-local");
	rejects("allowed_ips metadata",
	    EP("{'host':'db','port':5432,'allowed_ips':['169.254.169.254']}"),
	    a0, "metadata");
	rejects("allowed_ips ::1",
	    EP("{'host':'db','port':5432,'allowed_ips':['::1']}"), a0,
	    "loopback ::1");
	rejects("allowed_ips fe80::/10",
	    EP("{'host':'db','port':5432,'allowed_ips':['fe80::/64']}"), a0,
	    "link-local fe80::/10");
	rejects("allowed_ips mapped loopback",
	    EP("{'host':'db','port':5432,'allowed_ips':['::ffff:127.0.0.1']}"),
	    a0, "loopback");
	rejects("allowed_ips on an IP-literal host still checked",
	    EP("{'host':'10.0.0.5','port':80,'allowed_ips':['127.0.0.0/8']}"),
	    a0, "can never work");
	accepts("allowed_ips private",
	    EP("{'host':'db','port':5432,'allowed_ips':['10.0.0.0/8',"
	    "'192.168.1.5','fd00::/8']}"));
}

/*
 * Hosts and ports that can never pass the SSRF checks load with a
 * warning at their path, as in OpenShell, so the rest of the policy works
 * (test_policy_addr and the golden table check that they are denied).
 */
static void
test_dead_endpoints(void)
{
	const char *h0 = "network_policies.n.endpoints[0].host";
	static const struct {
		const char *host;
		const char *msg;
	} hosts[] = {
		{ "127.0.0.1", "127.0.0.1 is an always-blocked address" },
		{ "127.9.9.9", "always-blocked" },
		{ "::1", "::1 is an always-blocked address" },
		{ "[::ffff:127.0.0.1]", "127.0.0.1 is an always-blocked" },
		{ "0.0.0.0", "always-blocked" },
		{ "::", "always-blocked" },
		{ "169.254.1.1", "always-blocked" },
		{ "fe80::1", "always-blocked" },
		{ "169.254.169.254", "is a cloud metadata address" },
		{ "fd00:ec2::254", "cloud metadata" },
		{ "64:ff9b::7f00:1", "always-blocked" },
		{ "LocalHost.", "localhost is a loopback name" },
		{ "a.localhost", "a.localhost is a loopback name" },
		{ "metadata.google.internal", "a cloud metadata name" },
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(hosts) / sizeof(*hosts); i++) {
		snprintf(buf, sizeof(buf), EP("{'host':'%s','port':80}"),
		    hosts[i].host);
		warns(hosts[i].host, buf, h0, hosts[i].msg);
		warns(hosts[i].host, buf, h0, "every connection to it is "
		    "denied");
	}
	warns("a literal outside its own allowed_ips",
	    EP("{'host':'10.0.0.5','port':80,'allowed_ips':['10.1.0.0/16']}"),
	    h0, "10.0.0.5 is outside the endpoint's own allowed_ips");
	accepts("a literal inside its own allowed_ips",
	    EP("{'host':'10.0.0.5','port':80,'allowed_ips':['10.0.0.0/24']}"));
	accepts("a private literal", EP("{'host':'10.0.0.5','port':80}"));
	accepts("a localhost look-alike",
	    EP("{'host':'notlocalhost','port':80}"));
	warns("control-plane port, exact host",
	    EP("{'host':'kube.test','port':6443}"),
	    "network_policies.n.endpoints[0].port",
	    "6443 is a blocked control-plane port (Kubernetes API server)");
	warns("control-plane port in ports, hostless",
	    EP("{'ports':[443,10250],'allowed_ips':['10.0.0.0/8']}"),
	    "network_policies.n.endpoints[0].ports[1]", "kubelet API");
	warns("control-plane port, literal host",
	    EP("{'host':'10.0.0.5','ports':[2379,2380,10255]}"),
	    "network_policies.n.endpoints[0].ports[2]", "kubelet read-only");
	accepts("control-plane port on a wildcard (public only: not refused)",
	    EP("{'host':'*.k8s.test','port':6443}"));
}

static void
test_binaries(void)
{
	rejects("relative binary", BIN("{'path':'usr/bin/curl'}"),
	    "network_policies.n.binaries[0].path", "absolute");
	rejects("binary with '..'", BIN("{'path':'/usr/bin/../bin/curl'}"),
	    "network_policies.n.binaries[0].path", "'..'");
	rejects("binary without path", BIN("{'path':'/a'},{'exe':'/b'}"),
	    "network_policies.n.binaries[1]", "needs a path");
	rejects("unknown binary field", BIN("{'path':'/a','harnes':true}"),
	    "network_policies.n.binaries[0].harnes", "unknown field");
	accepts("harness, globs", BIN("{'path':'/a','harness':true},"
	    "{'path':'/**'},{'path':'/x/*/y'}"));
	rejects("bad policy key", "{'version':1,'network_policies':"
	    "{'a b':{}}}", "network_policies.a b", "policy key");
	rejects("rule not an object", "{'version':1,'network_policies':"
	    "{'n':[]}}", "network_policies.n", "expected an object");
	rejects("unknown rule field", "{'version':1,'network_policies':"
	    "{'n':{'hosts':[]}}}", "network_policies.n.hosts",
	    "unknown field");
}

/* One binary path under a policy with read_write rw: its diagnostics. */
static void
bin_diags(const char *rw, const char *bin, struct moat_diags *d)
{
	char q[1024];
	struct moat_policy *p = NULL;

	snprintf(q, sizeof(q), "{'version':1,'filesystem_policy':{"
	    "'read_write':[%s]},'network_policies':{'n':{'endpoints':"
	    "[{'host':'a.com','port':443}],'binaries':[{'path':'%s'}]}}}",
	    rw, bin);
	moat_diags_init(d);
	ok(load_q(q, &p, d) == 0, "%s loads", bin);
	moat_policy_free(p);
}

static void
test_binary_risks(void)
{
	static const struct {
		const char *rw;
		const char *bin;
		const char *where; /* NULL: no warning */
	} cases[] = {
		{ "", "/sandbox/.venv/bin/python3",
		    "is in /sandbox (the workspace), which the sandbox can "
		    "write" },
		{ "", "/sandbox/.local/bin/*", "is in /sandbox (the workspace)" },
		{ "", "/tmp/x", "is in /tmp," },
		{ "", "/var/tmp/tool", "is in /var/tmp," },
		{ "", "/dev/shm/x", "is in /dev/shm," },
		{ "'/srv/data'", "/srv/data/bin/tool",
		    "is in /srv/data (a read_write path)" },
		{ "'/home/alice'", "/home/*/.vscode-server/**",
		    "is in /home/alice (a read_write path)" },
		{ "'/srv/data'", "/srv/**", "is in /srv/data (a read_write" },
		{ "", "/**", "is in /sandbox" },
		{ "", "/usr/bin/curl", NULL },
		{ "", "/sandboxed/bin/x", NULL },
		{ "'/home/alice'", "/home/bob/bin/x", NULL },
		{ "'/home/alice/cache'", "/home/*/bin/x", NULL },
		{ "'/srv/data/y'", "/srv/*/x", NULL },
		/* read_write may name a file: the glob matches it */
		{ "'/srv/tool'", "/srv/*", "is in /srv/tool (a read_write" },
	};
	struct moat_diags d;
	char where[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct moat_diag *g;

		bin_diags(cases[i].rw, cases[i].bin, &d);
		g = find_diag(&d, MOAT_DIAG_WARNING,
		    "network_policies.n.binaries[0].path", "sandbox can write");
		if (cases[i].where == NULL)
			ok(g == NULL, "%s (read_write [%s]): no warning",
			    cases[i].bin, cases[i].rw);
		else if (!ok(g != NULL && strstr(g->msg, cases[i].where) !=
		    NULL, "%s (read_write [%s]): warned, %s", cases[i].bin,
		    cases[i].rw, cases[i].where))
			dump_diags(&d);
		moat_diags_free(&d);
	}
	ok(moat_policy_binary_writable(NULL, "/tmp/x", where, sizeof(where)) &&
	    strcmp(where, "/tmp") == 0, "the same check for proposals");
	ok(!moat_policy_binary_writable(NULL, "/usr/bin/x", where,
	    sizeof(where)), "a system path is not writable");

	bin_diags("", "/usr/bin/python3*", &d);
	ok(find_diag(&d, MOAT_DIAG_NOTE, "network_policies.n.binaries[0].path",
	    "/usr/bin/python3* is an interpreter: every script it runs gets "
	    "this policy's access") != NULL, "interpreter note");
	moat_diags_free(&d);
	bin_diags("", "/usr/bin/curl", &d);
	ok(find_diag(&d, MOAT_DIAG_NOTE, "network_policies.n.binaries[0].path",
	    "interpreter") == NULL, "curl is not an interpreter");
	moat_diags_free(&d);
	ok(moat_binary_is_interpreter("/usr/bin/node") &&
	    moat_binary_is_interpreter("/usr/bin/python3.11") &&
	    moat_binary_is_interpreter("/bin/bash") &&
	    !moat_binary_is_interpreter("/usr/bin/git"),
	    "interpreters by name");
}

/*
 * With a numeric run_as_user, a binary owned by that uid (or below a
 * directory it owns) is a warning: that user can replace it.
 */
static void
test_binary_owner(void)
{
	char root[] = "/tmp/moat-owner-XXXXXX", path[600], json[1024];
	struct moat_policy_opts o = { root, false };
	struct moat_policy *p = NULL;
	struct moat_diags d;
	int fd;

	if (mkdtemp(root) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/opt", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/opt/tool", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/opt/tool/run", root);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755)) >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/opt/tool", root);
	ok(chown(path, 4242, 4242) == 0, "a directory owned by uid 4242");
	snprintf(json, sizeof(json), "{\"version\":1,\"process\":"
	    "{\"run_as_user\":\"%s\"},\"network_policies\":{\"n\":"
	    "{\"endpoints\":[{\"host\":\"a.com\",\"port\":443}],"
	    "\"binaries\":[{\"path\":\"/opt/tool/run\"}]}}}", "4242");
	moat_diags_init(&d);
	ok(moat_policy_load_string(json, strlen(json), "t", &o, &p, &d) == 0,
	    "loads");
	if (!ok(find_diag(&d, MOAT_DIAG_WARNING, "network_policies.n."
	    "binaries[0].path", "/opt/tool is owned by uid 4242, the "
	    "policy's run_as_user") != NULL, "owner warning"))
		dump_diags(&d);
	moat_policy_free(p);
	p = NULL;
	moat_diags_free(&d);
	snprintf(json, sizeof(json), "{\"version\":1,\"process\":"
	    "{\"run_as_user\":\"4343\"},\"network_policies\":{\"n\":"
	    "{\"endpoints\":[{\"host\":\"a.com\",\"port\":443}],"
	    "\"binaries\":[{\"path\":\"/opt/tool/run\"}]}}}");
	moat_diags_init(&d);
	moat_policy_load_string(json, strlen(json), "t", &o, &p, &d);
	ok(find_diag(&d, MOAT_DIAG_WARNING, "network_policies.n.binaries[0]."
	    "path", "owned by") == NULL, "another uid: no warning");
	moat_policy_free(p);
	moat_diags_free(&d);
	for (const char *const *f = (const char *const[]){ "opt/tool/run",
	    "opt/tool", "opt", "", NULL }; *f != NULL; f++) {
		snprintf(path, sizeof(path), "%s/%s", root, *f);
		if (unlink(path) != 0)
			rmdir(path);
	}
}

static void
test_canonical(void)
{
	struct moat_policy *a = NULL, *b = NULL, *m = NULL, *b2 = NULL;
	struct moat_diags d;
	char *pretty;

	load_q("{'version':1,'network_policies':{'z':{'endpoints':"
	    "[{'port':443,'host':'a.com'}],'binaries':[{'path':'/bin/a'}]}}}",
	    &a, NULL);
	load_q("{ 'network_policies' : { 'z': {'binaries':[{'path':'/bin/a'}],"
	    "'endpoints':[{'host':'a.com', 'port':443}]}}, 'version': 1 }",
	    &b, NULL);
	if (!ok(a != NULL && b != NULL, "two spellings load"))
		return;
	is_str(moat_policy_json(a), moat_policy_json(b),
	    "canonical JSON ignores key order and spacing");
	is_str(moat_policy_json(a), "{\"network_policies\":{\"z\":{\"binaries\":"
	    "[{\"path\":\"/bin/a\"}],\"endpoints\":[{\"host\":\"a.com\","
	    "\"port\":443}]}},\"version\":1}", "canonical JSON text");
	is_str(moat_policy_hash(a), moat_policy_hash(b), "same hash");
	is_int(strlen(moat_policy_hash(a)), 64, "hash is 64 hex digits");
	pretty = moat_policy_json_pretty(a);
	like_str(pretty, "\n  \"network_policies\"", "pretty is indented");
	free(pretty);

	ok(moat_policy_ref(a) == a, "ref returns the snapshot");
	moat_policy_free(a); /* still one reference */
	is_int(moat_policy_count(a), 1, "alive after one free");

	/* merge: a new key is added; an existing key never broadens */
	moat_diags_init(&d);
	ok(moat_policy_merge_rule(a, "{\"z\":{\"endpoints\":[{\"host\":"
	    "\"b.com\",\"port\":443},{\"host\":\"a.com\",\"port\":443}],"
	    "\"binaries\":[{\"path\":\"/bin/b\"}]},\"y\":{\"endpoints\":"
	    "[{\"host\":\"c.com\",\"port\":80}],\"binaries\":[{\"path\":"
	    "\"/bin/c\"}]}}", NULL, &m, &d) == MOAT_ERR_INVALID && m == NULL &&
	    find_diag(&d, MOAT_DIAG_ERROR, "network_policies.z",
	    "new name") != NULL,
	    "merge refuses new endpoints and new binaries into an existing "
	    "key (the union would give /bin/a b.com)");
	moat_diags_free(&d);
	ok(moat_policy_merge_rule(a, "{\"z\":{\"endpoints\":[{\"host\":"
	    "\"a.com\",\"port\":443}],\"binaries\":[{\"path\":\"/bin/b\"}]},"
	    "\"y\":{\"endpoints\":[{\"host\":\"c.com\",\"port\":80}],"
	    "\"binaries\":[{\"path\":\"/bin/c\"}]}}", NULL, &m, &d) ==
	    MOAT_OK && m != NULL, "merge: same endpoints, another binary");
	if (m != NULL) {
		is_int(moat_policy_count(m), 2, "merge adds key y");
		is_int(moat_policy_endpoint_count(m), 2,
		    "merge keeps z's one endpoint");
		ok(decide(m, "/bin/b", "a.com", 443).allow &&
		    decide(m, "/bin/a", "a.com", 443).allow, "both binaries "
		    "reach the shared endpoint");
		ok(strcmp(moat_policy_hash(m), moat_policy_hash(a)) != 0,
		    "merge changes the hash");
	}
	moat_policy_free(m);
	m = NULL;
	ok(moat_policy_merge_rule(a, "{\"z\":{\"endpoints\":[{\"host\":"
	    "\"b.com\",\"port\":443}],\"binaries\":[{\"path\":\"/bin/a\"}]}}",
	    NULL, &m, &d) == MOAT_OK && m != NULL,
	    "merge: same binaries, another endpoint");
	if (m != NULL) {
		ok(decide(m, "/bin/a", "b.com", 443).allow &&
		    decide(m, "/bin/a", "a.com", 443).allow, "the binary "
		    "reaches both endpoints");
		/* Now z is {a.com, b.com} x {/bin/a}: a subset is not enough. */
		b2 = m;
		m = NULL;
		ok(moat_policy_merge_rule(b2, "{\"z\":{\"endpoints\":[{\"host\":"
		    "\"a.com\",\"port\":443}],\"binaries\":[{\"path\":"
		    "\"/bin/b\"}]}}", NULL, &m, &d) == MOAT_ERR_INVALID,
		    "merge refuses a binary for one of several endpoints (it "
		    "would get them all)");
		moat_policy_free(b2);
	}
	moat_policy_free(m);
	m = NULL;
	is_int(moat_policy_endpoint_count(a), 1, "base is unchanged");
	ok(moat_policy_merge_rule(a, "{\"z\":{\"endpoints\":[{\"host\":"
	    "\"*.com\",\"port\":443}]}}", NULL, &m, &d) == MOAT_ERR_INVALID &&
	    m == NULL && find_diag(&d, MOAT_DIAG_ERROR,
	    "network_policies.z.endpoints[0].host", "TLD") != NULL,
	    "merge validates the rule, with its own path");
	ok(moat_policy_merge_rule(a, "[1]", NULL, &m, &d) ==
	    MOAT_ERR_INVALID, "merge refuses a non-object rule");
	moat_diags_free(&d);
	moat_policy_free(a);
	moat_policy_free(b);
}

static const char *
srcdir(void)
{
	const char *s = getenv("MOAT_SRC");

	return s != NULL ? s : ".";
}

static void
test_files(void)
{
	static const char *presets[] = { "deny-all", "pypi", "npm",
		"github-readonly", "agents", "all-dev" };
	struct moat_policy_opts o = { NULL, true };
	struct moat_policy *p = NULL;
	struct moat_diags d;
	char path[512];
	struct stat st;
	int r;

	snprintf(path, sizeof(path), "%s/tests/fixtures/"
	    "openshell-base-policy.json", srcdir());
	if (stat(path, &st) != 0) {
		skip("fixtures not found (run from the source tree or set "
		    "MOAT_SRC)");
		return;
	}
	moat_diags_init(&d);
	r = moat_policy_load_file(path, &o, &p, &d);
	if (!ok(r == 0 && moat_diags_count(&d, MOAT_DIAG_ERROR) == 0,
	    "OpenShell base policy loads with no errors"))
		dump_diags(&d);
	if (p != NULL) {
		is_int(moat_policy_count(p), 10, "its ten network policies");
		ok(decide(p, "/usr/bin/git", "github.com", 443).allow &&
		    decide(p, "/usr/bin/git", "github.com", 443).l7,
		    "base: git -> github.com:443, requests decided (L7 rest)");
		is_str(decide(p, "/usr/bin/git", "github.com", 443).policy,
		    "github_ssh_over_https", "base: via github_ssh_over_https");
		ok(decide(p, "/sandbox/.uv/python/cpython-3.12/bin/python3",
		    "pypi.org", 443).allow, "base: uv python glob -> pypi");
		ok(!decide(p, "/usr/bin/curl", "pypi.org", 443).allow,
		    "base: curl -> pypi denied");
		ok(!decide(p, "/sandbox/.venv/bin/pip", "pypi.org", 80).allow,
		    "base: pip -> pypi:80 denied");
		ok(decide3(p, "/usr/bin/node", "/usr/local/bin/claude", NULL,
		    "statsig.anthropic.com", 443).allow,
		    "base: node under claude -> statsig.anthropic.com");
		ok(decide3(p, "/usr/bin/node", "/usr/local/bin/claude",
		    NULL, "api.anthropic.com", 443).allow,
		    "base: node under claude -> api.anthropic.com (access "
		    "full)");
	}
	moat_policy_free(p);
	p = NULL;
	moat_diags_free(&d);
	for (size_t i = 0; i < sizeof(presets) / sizeof(*presets); i++) {
		snprintf(path, sizeof(path), "%s/policies/presets/%s.json",
		    srcdir(), presets[i]);
		moat_diags_init(&d);
		r = moat_policy_load_file(path, &o, &p, &d);
		if (!ok(r == 0 && moat_diags_count(&d, MOAT_DIAG_ERROR) == 0 &&
		    moat_diags_count(&d, MOAT_DIAG_WARNING) == 0,
		    "preset %s loads cleanly", presets[i]))
			dump_diags(&d);
		moat_policy_free(p);
		p = NULL;
		moat_diags_free(&d);
	}
	/* The built-in default is the deny-all preset, byte for byte in
	 * canonical form. */
	{
		struct moat_policy *b = NULL;
		snprintf(path, sizeof(path), "%s/policies/presets/deny-all.json",
		    srcdir());
		moat_diags_init(&d);
		r = moat_policy_load_file(path, &o, &p, &d);
		r |= moat_policy_load_string(moat_policy_default_json,
		    strlen(moat_policy_default_json), "default", &o, &b, &d);
		ok(r == 0 && p != NULL && b != NULL &&
		    strcmp(moat_policy_hash(p), moat_policy_hash(b)) == 0,
		    "the built-in default equals presets/deny-all.json");
		moat_policy_free(b);
		moat_policy_free(p);
		p = NULL;
		moat_diags_free(&d);
	}
	moat_diags_init(&d);
	ok(moat_policy_load_file("/nonexistent/p.json", &o, &p, &d) ==
	    MOAT_ERR_NOTFOUND && d.n == 1, "missing file: NOTFOUND, one diag");
	moat_diags_free(&d);
}

int
main(void)
{
	test_top_level();
	test_filesystem();
	test_process_resources();
	test_endpoints();
	test_endpoint_warnings();
	test_host_wildcards();
	test_allowed_ips();
	test_dead_endpoints();
	test_binaries();
	test_binary_risks();
	test_binary_owner();
	test_canonical();
	test_files();
	return done_testing();
}
