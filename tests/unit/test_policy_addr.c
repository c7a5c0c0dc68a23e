/*
 * SSRF: address classes, and moat_policy_check_addr's modes (allowed_ips,
 * IP-literal host, exact declared host, public_only, wildcard or
 * hostless).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "policies/policy.h"
#include "tests/unit/policy_util.h"
#include "tests/unit/ssrf_golden.h"

static struct sockaddr_storage ss;

static const struct sockaddr *
SA(const char *ip)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
	} else {
		diag("bad test address %s", ip);
	}
	return (const struct sockaddr *)&ss;
}

static void
test_classify(void)
{
	static const struct {
		const char *ip;
		enum moat_addr_class c;
	} v[] = {
		{ "8.8.8.8", MOAT_ADDR_PUBLIC },
		{ "2606:4700::1111", MOAT_ADDR_PUBLIC },
		{ "127.0.0.1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "127.255.0.9", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "::1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "169.254.1.1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "fe80::1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "febf::1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "0.0.0.0", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "::", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "::ffff:127.0.0.1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "::ffff:169.254.9.9", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "64:ff9b::7f00:1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "169.254.169.254", MOAT_ADDR_METADATA },
		{ "::ffff:169.254.169.254", MOAT_ADDR_METADATA },
		{ "fd00:ec2::254", MOAT_ADDR_METADATA },
		{ "fd00:ec2::253", MOAT_ADDR_METADATA },
		{ "fd00:ec2::123", MOAT_ADDR_METADATA },
		{ "fd00:ec2::fe", MOAT_ADDR_INTERNAL },
		{ "100.100.100.200", MOAT_ADDR_METADATA },
		{ "::ffff:100.100.100.200", MOAT_ADDR_METADATA },
		{ "100.100.100.201", MOAT_ADDR_INTERNAL },
		{ "64:ff9b::a9fe:a9fe", MOAT_ADDR_METADATA },
		/* local-use NAT64, /96 form and the shorter RFC 6052 forms */
		{ "64:ff9b:1::7f00:1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "64:ff9b:1::a9fe:a9fe", MOAT_ADDR_METADATA },
		{ "64:ff9b:1::a00:5", MOAT_ADDR_INTERNAL },
		{ "64:ff9b:1::808:808", MOAT_ADDR_PUBLIC },
		{ "64:ff9b:1:7f00:1::", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "64:ff9b:1:1:a:0:500:0", MOAT_ADDR_INTERNAL },
		{ "64:ff9b:1:a:a9:fea9:fe00:0", MOAT_ADDR_METADATA },
		/* 6to4 carries its IPv4 address in bytes 2..5 */
		{ "2002:7f00:1::1", MOAT_ADDR_ALWAYS_BLOCKED },
		{ "2002:a9fe:a9fe::", MOAT_ADDR_METADATA },
		{ "2002:a00:1::1", MOAT_ADDR_INTERNAL },
		{ "2002:808:808::1", MOAT_ADDR_PUBLIC },
		{ "10.1.2.3", MOAT_ADDR_INTERNAL },
		{ "172.16.0.1", MOAT_ADDR_INTERNAL },
		{ "172.31.255.255", MOAT_ADDR_INTERNAL },
		{ "172.32.0.1", MOAT_ADDR_PUBLIC },
		{ "192.168.0.1", MOAT_ADDR_INTERNAL },
		{ "100.64.0.1", MOAT_ADDR_INTERNAL },
		{ "100.128.0.1", MOAT_ADDR_PUBLIC },
		{ "192.0.0.8", MOAT_ADDR_INTERNAL },
		{ "192.0.2.1", MOAT_ADDR_INTERNAL },
		{ "198.18.0.1", MOAT_ADDR_INTERNAL },
		{ "198.19.255.1", MOAT_ADDR_INTERNAL },
		{ "198.51.100.1", MOAT_ADDR_INTERNAL },
		{ "203.0.113.1", MOAT_ADDR_INTERNAL },
		{ "255.255.255.255", MOAT_ADDR_INTERNAL },
		{ "fc00::1", MOAT_ADDR_INTERNAL },
		{ "fdff::1", MOAT_ADDR_INTERNAL },
		{ "::ffff:10.0.0.1", MOAT_ADDR_INTERNAL },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++)
		is_str(moat_addr_class_name(moat_addr_classify(SA(v[i].ip))),
		    moat_addr_class_name(v[i].c), "%s is %s", v[i].ip,
		    moat_addr_class_name(v[i].c));
}

/* Decide as /b, then check one resolved address. */
static struct moat_decision
dial(const struct moat_policy *p, const char *host, uint16_t port,
    const char *ip)
{
	struct moat_decision d = decide(p, "/b", host, port);

	if (d.allow)
		moat_policy_check_addr(&d, SA(ip));
	return d;
}

#define POL(eps) "{'version':1,'network_policies':{'p':{'endpoints':[" eps \
	"],'binaries':[{'path':'/b'}]}}}"

static void
test_modes(void)
{
	struct moat_policy *p = NULL;
	struct moat_decision d;

	load_q(POL("{'host':'upstream.test','port':80},"
	    "{'host':'*.cdn.test','port':443},"
	    "{'host':'db.test','port':5432,'allowed_ips':['10.9.0.0/16']},"
	    "{'port':6379,'allowed_ips':['192.168.7.0/24']},"
	    "{'host':'10.2.3.4','port':8080}"), &p, NULL);
	if (!ok(p != NULL, "SSRF policy loads"))
		return;

	/* exact declared host */
	d = dial(p, "upstream.test", 80, "127.0.0.1");
	ok(!d.allow && d.reason == MOAT_REASON_SSRF,
	    "loopback blocked despite allow");
	is_str(d.text, "upstream.test resolves to always-blocked address "
	    "127.0.0.1, connection rejected", "always-blocked text");
	d = dial(p, "upstream.test", 80, "169.254.169.254");
	ok(!d.allow, "metadata 169.254.169.254 blocked");
	like_str(d.text, "cloud metadata address 169.254.169.254", "metadata "
	    "text");
	ok(!dial(p, "upstream.test", 80, "::ffff:127.0.0.1").allow,
	    "mapped loopback blocked");
	ok(dial(p, "upstream.test", 80, "10.0.0.5").allow,
	    "exact declared host may reach internal addresses");
	ok(dial(p, "upstream.test", 80, "93.184.216.34").allow,
	    "exact declared host reaches public");

	/* wildcard: public only */
	d = dial(p, "a.cdn.test", 443, "10.0.0.5");
	ok(!d.allow && d.reason == MOAT_REASON_SSRF,
	    "wildcard endpoint: internal denied");
	like_str(d.text, "a.cdn.test resolves to internal address 10.0.0.5",
	    "internal text");
	ok(dial(p, "a.cdn.test", 443, "93.184.216.34").allow,
	    "wildcard endpoint: public allowed");

	/* allowed_ips */
	ok(dial(p, "db.test", 5432, "10.9.1.1").allow,
	    "allowed_ips permits private IP");
	d = dial(p, "db.test", 5432, "10.8.1.1");
	ok(!d.allow, "allowed_ips: outside the range denied");
	like_str(d.text, "outside the endpoint's allowed_ips", "outside text");
	ok(!dial(p, "db.test", 5432, "93.184.216.34").allow,
	    "allowed_ips: even public outside the range denied");
	ok(!dial(p, "db.test", 5432, "127.0.0.1").allow,
	    "loopback blocked even with allowed_ips");
	ok(dial(p, "cache.test", 6379, "192.168.7.9").allow,
	    "hostless allowed_ips");
	ok(!dial(p, "cache.test", 6379, "192.168.8.9").allow,
	    "hostless allowed_ips outside denied");

	/* IP-literal host */
	ok(dial(p, "10.2.3.4", 8080, "10.2.3.4").allow,
	    "private literal-IP host allowed without allowed_ips");
	ok(!dial(p, "10.2.3.4", 8080, "10.2.3.5").allow,
	    "literal host: another address denied");

	d = decide(p, "/x", "upstream.test", 80);
	ok(!moat_policy_check_addr(&d, SA("8.8.8.8")) &&
	    d.reason == MOAT_REASON_BINARY, "a denied decision stays denied");
	moat_policy_free(p);

	load_q(POL("{'host':'*.k8s.test','port':6443},"
	    "{'host':'127.0.0.1','port':80,'enforcement':'audit'},"
	    "{'host':'kube.test','port':10255}"), &p, NULL);
	if (!ok(p != NULL, "control-plane policy loads"))
		return;
	d = dial(p, "api.k8s.test", 6443, "93.184.216.34");
	ok(d.allow, "a wildcard (public only) may reach a public :6443, as in "
	    "OpenShell");
	ok(!dial(p, "api.k8s.test", 6443, "10.0.0.1").allow,
	    "but not an internal one");
	d = decide(p, "/b", "kube.test", 10255);
	ok(!d.allow && d.reason == MOAT_REASON_SSRF,
	    "an exact host on :10255 is refused before resolution");
	d = decide(p, "/b", "kube.test", 10255);
	d.allow = true; /* as if decided: check_addr re-checks the port */
	ok(!moat_policy_check_addr(&d, SA("10.0.0.1")) &&
	    strstr(d.text, "control-plane") != NULL,
	    "check_addr refuses the control-plane port too");
	d = decide(p, "/other", "127.0.0.1", 80);
	ok(!d.allow && !d.audit && d.reason == MOAT_REASON_SSRF,
	    "audit never exempts an always-blocked literal");
	moat_policy_free(p);
}

/* public_only (rules from proposals): an exact host reaches public only. */
static void
test_public_only(void)
{
	static const char *const internal[] = { "10.0.0.5", "172.16.4.4",
		"192.168.1.1", "100.64.0.1", "fd00::1", "fc12::7",
		"::ffff:10.1.1.1", "64:ff9b::a00:1" };
	struct moat_policy *p = NULL;
	struct moat_decision d;
	struct moat_diags dg;

	load_q(POL("{'host':'api.test','port':443,'public_only':true},"
	    "{'host':'lan.test','port':443,'public_only':true,"
	    "'allowed_ips':['10.9.0.0/16']},"
	    "{'host':'off.test','port':443,'public_only':false}"), &p, NULL);
	if (!ok(p != NULL, "public_only loads"))
		return;
	for (size_t i = 0; i < sizeof(internal) / sizeof(*internal); i++) {
		d = dial(p, "api.test", 443, internal[i]);
		ok(!d.allow && d.reason == MOAT_REASON_SSRF,
		    "public_only exact host: %s denied", internal[i]);
	}
	d = dial(p, "api.test", 443, "10.0.0.5");
	is_str(d.text, "api.test resolves to internal address 10.0.0.5, "
	    "connection rejected (the endpoint is public_only, as rules from "
	    "proposals are: add allowed_ips covering 10.0.0.5 to reach it)",
	    "the denial says what to add");
	ok(dial(p, "api.test", 443, "93.184.216.34").allow,
	    "public_only exact host: public allowed");
	ok(!dial(p, "api.test", 443, "127.0.0.1").allow,
	    "public_only exact host: loopback still blocked");
	ok(dial(p, "lan.test", 443, "10.9.3.3").allow,
	    "public_only with allowed_ips: the covered address allowed");
	ok(!dial(p, "lan.test", 443, "10.8.3.3").allow,
	    "public_only with allowed_ips: others denied");
	ok(dial(p, "off.test", 443, "10.0.0.5").allow,
	    "public_only false: an exact host may reach internal addresses");
	moat_policy_free(p);
	p = NULL;

	moat_diags_init(&dg);
	ok(load_q(POL("{'host':'*.x.test','port':443,'public_only':true},"
	    "{'host':'10.1.2.3','port':443,'public_only':true}"), &p,
	    &dg) == 0, "public_only on a wildcard or literal loads");
	ok(find_diag(&dg, MOAT_DIAG_WARNING, "network_policies.p.endpoints[0]"
	    ".public_only", "has no effect here") != NULL &&
	    find_diag(&dg, MOAT_DIAG_WARNING, "network_policies.p.endpoints[1]"
	    ".public_only", "has no effect here") != NULL,
	    "with a warning that it has no effect there");
	moat_diags_free(&dg);
	moat_policy_free(p);
	p = NULL;
	moat_diags_init(&dg);
	ok(load_q(POL("{'host':'a.test','port':443,'public_only':1}"), &p,
	    &dg) != 0 && find_diag(&dg, MOAT_DIAG_ERROR,
	    "network_policies.p.endpoints[0].public_only", "") != NULL,
	    "public_only must be a boolean");
	moat_diags_free(&dg);
	moat_policy_free(p);
}

static void
test_host_helpers(void)
{
	char buf[256];

	ok(moat_host_normalize("WWW.Example.COM.", buf, sizeof(buf)) &&
	    strcmp(buf, "www.example.com") == 0, "normalize");
	ok(moat_host_normalize("[2001:DB8::1]", buf, sizeof(buf)) &&
	    strcmp(buf, "2001:db8::1") == 0, "normalize IPv6");
	ok(!moat_host_normalize("a_b..c", buf, sizeof(buf)), "empty label");
	ok(!moat_host_normalize("*.x.com", buf, sizeof(buf)),
	    "a wildcard is not a host");
	ok(!moat_host_normalize("x.com", buf, 3), "too small a buffer");
	ok(!moat_host_normalize("127.1", buf, sizeof(buf)) &&
	    !moat_host_normalize("0x7f.0.0.1", buf, sizeof(buf)) &&
	    !moat_host_normalize("a.0x7f", buf, sizeof(buf)) &&
	    !moat_host_normalize("10.0.0.256", buf, sizeof(buf)) &&
	    !moat_host_normalize("example.123", buf, sizeof(buf)),
	    "a numeric last label must be a dotted quad (as in the proxy)");
	ok(moat_host_normalize("1.2.3.4.", buf, sizeof(buf)) &&
	    strcmp(buf, "1.2.3.4") == 0 &&
	    moat_host_normalize("a.b1", buf, sizeof(buf)) &&
	    moat_host_normalize("123.example", buf, sizeof(buf)),
	    "dotted quads and names with digits stay valid");
	rejects("a policy host in a short IPv4 form",
	    "{'version':1,'network_policies':{'p':{'endpoints':[{'host':"
	    "'127.1','port':80}],'binaries':[{'path':'/b'}]}}}",
	    "network_policies.p.endpoints[0].host", "not a valid host");
	ok(moat_host_is_ip_literal("10.0.0.1") &&
	    moat_host_is_ip_literal("::1") &&
	    !moat_host_is_ip_literal("10.0.0.1.example"), "is_ip_literal");
	ok(moat_host_always_refused("LocalHost.") &&
	    moat_host_always_refused("a.b.localhost") &&
	    moat_host_always_refused("**.x.localhost") &&
	    moat_host_always_refused("Metadata.Google.Internal.") &&
	    moat_host_always_refused("[::ffff:169.254.169.254]") &&
	    moat_host_always_refused("127.0.0.1.") &&
	    moat_host_always_refused("0.0.0.0"),
	    "always refused: the proxy's names and addresses, any spelling");
	ok(!moat_host_always_refused("localhost.example.com") &&
	    !moat_host_always_refused("notlocalhost") &&
	    !moat_host_always_refused("10.0.0.1") &&
	    !moat_host_always_refused("example.com") &&
	    !moat_host_always_refused(""), "and nothing else");
}

/*
 * The golden table through the decision function `moat policy explain`
 * prints: verdict, SSRF or policy, and the exact text.
 */
static void
test_golden(void)
{
	static struct golden_row rows[GOLDEN_MAX];
	size_t n = golden_load(rows, GOLDEN_MAX, "10.99.0.2");
	char json[1024];

	for (size_t i = 0; i < n; i++) {
		const struct golden_row *r = &rows[i];
		struct moat_policy *p = NULL;
		struct moat_decision d;
		struct moat_diags dg;
		const char *got;

		golden_policy(r, "/golden/caller", json, sizeof(json));
		moat_diags_init(&dg);
		if (!ok(moat_policy_load_string(json, strlen(json), "golden",
		    &(struct moat_policy_opts){ NULL, true }, &p, &dg) == 0,
		    "golden policy loads: %s", r->name)) {
			dump_diags(&dg);
			moat_diags_free(&dg);
			continue;
		}
		moat_diags_free(&dg);
		d = decide(p, "/golden/caller", r->host, (uint16_t)r->port);
		got = d.allow ? "allow" : d.reason == MOAT_REASON_SSRF ?
		    "ssrf_denied" : "policy_denied";
		is_str(got, r->verdict, "decide: %s", r->name);
		if (!d.allow)
			is_str(d.text, r->reason, "decide text: %s", r->name);
		moat_policy_free(p);
	}
}

int
main(void)
{
	test_classify();
	test_modes();
	test_golden();
	test_public_only();
	test_host_helpers();
	return done_testing();
}
