/*
 * Addresses: the SSRF classes, CIDRs for allowed_ips, and the check the
 * proxy runs on every address a name resolves to, before it dials.
 *
 * Every address is kept as 16 bytes with IPv4 mapped (::ffff:a.b.c.d), so
 * "127.0.0.1" and "::ffff:127.0.0.1" are one address to every rule here.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/internal.h"

#define V4(a, b, c, d, n)                                                \
	{ { { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d } },  \
	    96 + (n) }

struct range {
	struct pol_cidr c;
	enum moat_addr_class cls;
	const char *name;
};

/* Order matters: the first row that contains an address classifies it. */
static const struct range ranges[] = {
	{ V4(169, 254, 169, 254, 32), MOAT_ADDR_METADATA,
	    "cloud metadata 169.254.169.254" },
	/* AWS over IPv6: instance metadata, DNS resolver, time sync. */
	{ { { { 0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
	    0x54 } }, 128 }, MOAT_ADDR_METADATA,
	    "cloud metadata fd00:ec2::254" },
	{ { { { 0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
	    0x53 } }, 128 }, MOAT_ADDR_METADATA,
	    "cloud metadata fd00:ec2::253" },
	{ { { { 0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	    0x23 } }, 128 }, MOAT_ADDR_METADATA,
	    "cloud metadata fd00:ec2::123" },
	/* Alibaba Cloud, inside 100.64.0.0/10: before that row. */
	{ V4(100, 100, 100, 200, 32), MOAT_ADDR_METADATA,
	    "cloud metadata 100.100.100.200" },
	{ V4(127, 0, 0, 0, 8), MOAT_ADDR_ALWAYS_BLOCKED,
	    "loopback 127.0.0.0/8" },
	{ { { { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 } }, 128 },
	    MOAT_ADDR_ALWAYS_BLOCKED, "loopback ::1" },
	{ V4(169, 254, 0, 0, 16), MOAT_ADDR_ALWAYS_BLOCKED,
	    "link-local 169.254.0.0/16" },
	{ { { { 0xfe, 0x80 } }, 10 }, MOAT_ADDR_ALWAYS_BLOCKED,
	    "link-local fe80::/10" },
	{ V4(0, 0, 0, 0, 8), MOAT_ADDR_ALWAYS_BLOCKED,
	    "unspecified 0.0.0.0/8" },
	{ { { { 0 } }, 128 }, MOAT_ADDR_ALWAYS_BLOCKED, "unspecified ::" },
	{ V4(10, 0, 0, 0, 8), MOAT_ADDR_INTERNAL, "10.0.0.0/8" },
	{ V4(172, 16, 0, 0, 12), MOAT_ADDR_INTERNAL, "172.16.0.0/12" },
	{ V4(192, 168, 0, 0, 16), MOAT_ADDR_INTERNAL, "192.168.0.0/16" },
	{ V4(100, 64, 0, 0, 10), MOAT_ADDR_INTERNAL, "100.64.0.0/10" },
	{ V4(192, 0, 0, 0, 24), MOAT_ADDR_INTERNAL, "192.0.0.0/24" },
	{ V4(192, 0, 2, 0, 24), MOAT_ADDR_INTERNAL, "192.0.2.0/24" },
	{ V4(198, 18, 0, 0, 15), MOAT_ADDR_INTERNAL, "198.18.0.0/15" },
	{ V4(198, 51, 100, 0, 24), MOAT_ADDR_INTERNAL, "198.51.100.0/24" },
	{ V4(203, 0, 113, 0, 24), MOAT_ADDR_INTERNAL, "203.0.113.0/24" },
	/* multicast and reserved, which holds 255.255.255.255 */
	{ V4(224, 0, 0, 0, 4), MOAT_ADDR_INTERNAL, "224.0.0.0/4" },
	{ V4(240, 0, 0, 0, 4), MOAT_ADDR_INTERNAL, "240.0.0.0/4" },
	{ { { { 0xfc } }, 7 }, MOAT_ADDR_INTERNAL, "fc00::/7" },
	{ { { { 0xfe, 0xc0 } }, 10 }, MOAT_ADDR_INTERNAL, "fec0::/10" },
	{ { { { 0xff } }, 8 }, MOAT_ADDR_INTERNAL, "ff00::/8" },
	{ { { { 0x20, 0x01, 0x0d, 0xb8 } }, 32 }, MOAT_ADDR_INTERNAL,
	    "2001:db8::/32" },
};

static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
static const uint8_t nat64_local[6] = { 0, 0x64, 0xff, 0x9b, 0, 0x01 };
static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	0xff };

static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool
pol_ip_parse(const char *s, struct pol_ip *ip)
{
	struct in_addr a4;

	if (inet_pton(AF_INET, s, &a4) == 1) {
		memcpy(ip->a, mapped, 12);
		memcpy(ip->a + 12, &a4, 4);
		return true;
	}
	return inet_pton(AF_INET6, s, ip->a) == 1;
}

void
pol_ip_format(const struct pol_ip *ip, char *out, size_t len)
{
	if (memcmp(ip->a, mapped, 12) == 0)
		inet_ntop(AF_INET, ip->a + 12, out, (socklen_t)len);
	else
		inet_ntop(AF_INET6, ip->a, out, (socklen_t)len);
}

static bool
from_sockaddr(const struct sockaddr *sa, struct pol_ip *ip)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		memcpy(ip->a, mapped, 12);
		memcpy(ip->a + 12,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(ip->a,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    16);
		return true;
	}
	return false;
}

bool
pol_cidr_parse(const char *s, struct pol_cidr *c)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned long bits, max;
	char *end = NULL;
	bool v4;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (!pol_ip_parse(buf, &c->ip))
		return false;
	v4 = strchr(buf, ':') == NULL;
	max = v4 ? 32 : 128;
	bits = max;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 3)
			return false;
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > max)
			return false;
	}
	c->prefix = (unsigned)(v4 ? 96 + bits : bits);
	for (unsigned i = c->prefix; i < 128; i++)
		c->ip.a[i / 8] &= (uint8_t)~(0x80 >> (i % 8));
	return true;
}

bool
moat_cidr_parse(const char *s, struct moat_cidr *out)
{
	struct pol_cidr c;

	if (!pol_cidr_parse(s, &c))
		return false;
	memcpy(out->a, c.ip.a, 16);
	out->prefix = c.prefix;
	return true;
}

bool
moat_cidr_from_sockaddr(const struct sockaddr *sa, struct moat_cidr *out)
{
	struct pol_ip ip;

	if (!from_sockaddr(sa, &ip))
		return false;
	memcpy(out->a, ip.a, 16);
	out->prefix = 128;
	return true;
}

bool
moat_cidr_contains(const struct moat_cidr *c, const struct sockaddr *sa)
{
	struct pol_ip ip;

	return from_sockaddr(sa, &ip) && prefix_equal(c->a, ip.a, c->prefix);
}

bool
pol_cidr_contains(const struct pol_cidr *c, const struct pol_ip *ip)
{
	return prefix_equal(c->ip.a, ip->a, c->prefix);
}

const char *
pol_cidr_blocked_overlap(const struct pol_cidr *c)
{
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		const struct range *r = &ranges[i];
		unsigned bits = c->prefix < r->c.prefix ? c->prefix :
		    r->c.prefix;

		/*
		 * A range that merely contains a metadata address still
		 * works for its other addresses (fd00::/8 holds AWS's
		 * fd00:ec2::254); one inside it never does.
		 */
		if (r->cls == MOAT_ADDR_METADATA && c->prefix < r->c.prefix)
			continue;
		if (r->cls != MOAT_ADDR_ALWAYS_BLOCKED &&
		    r->cls != MOAT_ADDR_METADATA)
			continue;
		if (prefix_equal(c->ip.a, r->c.ip.a, bits))
			return r->name;
	}
	return NULL;
}

static enum moat_addr_class
classify_plain(const struct pol_ip *ip)
{
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (pol_cidr_contains(&ranges[i].c, ip))
			return ranges[i].cls;
	return MOAT_ADDR_PUBLIC;
}

/* How much a class keeps out: refused in every mode beats internal. */
static int
severity(enum moat_addr_class c)
{
	switch (c) {
	case MOAT_ADDR_PUBLIC:
		return 0;
	case MOAT_ADDR_INTERNAL:
		return 1;
	case MOAT_ADDR_ALWAYS_BLOCKED:
	case MOAT_ADDR_METADATA:
		return 2;
	}
	return 2;
}

/* The IPv4 address at byte offsets off[0..3] of ip, as an address. */
static enum moat_addr_class
classify_embedded(const struct pol_ip *ip, const unsigned off[4])
{
	struct pol_ip v4;

	memcpy(v4.a, mapped, 12);
	for (int i = 0; i < 4; i++)
		v4.a[12 + i] = ip->a[off[i]];
	return classify_plain(&v4);
}

enum moat_addr_class
pol_ip_classify(const struct pol_ip *ip)
{
	/*
	 * RFC 6052 places the IPv4 address after the prefix, skipping
	 * byte 8 (zero), then a zero suffix: where it sits, and where the
	 * suffix starts, for a /48, /56, /64 and /96 prefix inside the
	 * local-use 64:ff9b:1::/48.
	 */
	static const unsigned local_off[4][4] = {
		{ 6, 7, 9, 10 }, { 7, 9, 10, 11 }, { 9, 10, 11, 12 },
		{ 12, 13, 14, 15 },
	};
	static const unsigned local_suffix[4] = { 11, 12, 13, 16 };
	static const unsigned at12[4] = { 12, 13, 14, 15 };
	static const unsigned at2[4] = { 2, 3, 4, 5 };
	enum moat_addr_class c, worst;

	/* NAT64 carries an IPv4 address that the gateway will dial. */
	if (memcmp(ip->a, nat64, 12) == 0)
		return classify_embedded(ip, at12);
	/*
	 * Local-use NAT64: the gateway's prefix length is not knowable
	 * here, so every place the IPv4 address could sit (the /96 one
	 * always, the others when byte 8 and their suffix are zero as RFC
	 * 6052 requires) is checked and the most restrictive answer wins.
	 */
	if (memcmp(ip->a, nat64_local, 6) == 0) {
		worst = MOAT_ADDR_PUBLIC;
		for (int i = 0; i < 4; i++) {
			bool zero = i == 3 || ip->a[8] == 0;
			for (unsigned k = local_suffix[i]; zero && k < 16; k++)
				zero = ip->a[k] == 0;
			if (!zero)
				continue;
			c = classify_embedded(ip, local_off[i]);
			if (severity(c) > severity(worst))
				worst = c;
		}
		return worst;
	}
	/* 6to4 (2002:V4ADDR::/48): a relay dials the embedded address. */
	if (ip->a[0] == 0x20 && ip->a[1] == 0x02)
		return classify_embedded(ip, at2);
	return classify_plain(ip);
}

enum moat_addr_class
moat_addr_classify(const struct sockaddr *sa)
{
	struct pol_ip ip;

	/* Not an IP address at all: nothing we would dial. */
	if (!from_sockaddr(sa, &ip))
		return MOAT_ADDR_ALWAYS_BLOCKED;
	return pol_ip_classify(&ip);
}

const char *
moat_addr_class_name(enum moat_addr_class c)
{
	switch (c) {
	case MOAT_ADDR_PUBLIC:
		return "public";
	case MOAT_ADDR_INTERNAL:
		return "internal";
	case MOAT_ADDR_ALWAYS_BLOCKED:
		return "always-blocked";
	case MOAT_ADDR_METADATA:
		return "cloud metadata";
	}
	return "unknown";
}

/* ---- SSRF verdicts: names, ports and the address modes ---- */

/*
 * Names that are an always-blocked or metadata address by definition, so
 * they are refused before any resolution (no hosts file or DNS answer can
 * make them anything else): RFC 6761's localhost, GCE's metadata server.
 */
static const struct blocked_name {
	const char *name;
	bool subdomains; /* "a.localhost" too */
	const char *what;
} blocked_names[] = {
	{ "localhost", true, "a loopback name" },
	{ "metadata.google.internal", false, "a cloud metadata name" },
};

/*
 * Control-plane services a sandbox must never reach: OpenShell's list
 * (BLOCKED_CONTROL_PLANE_PORTS in its proxy), refused in the modes whose
 * row below says so.
 */
static const struct {
	uint16_t port;
	const char *what;
} control_plane[] = {
	{ 2379, "etcd client" },
	{ 2380, "etcd peer" },
	{ 6443, "Kubernetes API server" },
	{ 10250, "kubelet API" },
	{ 10255, "kubelet read-only" },
};

enum addr_mode {
	MODE_ALLOWED_IPS = 0, /* the endpoint has allowed_ips */
	MODE_LITERAL,         /* an IP-literal host: implicit allowed_ips */
	MODE_EXACT,           /* an exact, declared name */
	MODE_EXACT_PUBLIC,    /* an exact name marked public_only */
	MODE_PUBLIC,          /* a wildcard (or, defensively, no host) */
};

enum admit {
	ADMIT_NO = 0, /* refused */
	ADMIT_YES,    /* passes */
	ADMIT_LISTED, /* passes when inside the endpoint's list */
};

/*
 * The whole SSRF verdict: the matched endpoint picks a mode (the first
 * that applies, in this order), and the address's class picks the
 * cell. An explicit allowed_ips replaces the implicit one of a literal
 * host. Changing what a mode admits is changing one cell here.
 */
static const struct addr_mode_row {
	const char *name;   /* in messages: "outside the endpoint's NAME" */
	bool control_plane; /* control-plane ports refused */
	/* By enum moat_addr_class: public, internal, always-blocked,
	 * metadata. */
	enum admit admit[4];
} modes[] = {
	[MODE_ALLOWED_IPS] = { "allowed_ips", true,
	    { ADMIT_LISTED, ADMIT_LISTED, ADMIT_NO, ADMIT_NO } },
	[MODE_LITERAL] = { "IP-literal host", true,
	    { ADMIT_LISTED, ADMIT_LISTED, ADMIT_NO, ADMIT_NO } },
	[MODE_EXACT] = { "exact host", true,
	    { ADMIT_YES, ADMIT_YES, ADMIT_NO, ADMIT_NO } },
	/* What rules from proposals carry: the agent chose the name. */
	[MODE_EXACT_PUBLIC] = { "public_only host", true,
	    { ADMIT_YES, ADMIT_NO, ADMIT_NO, ADMIT_NO } },
	[MODE_PUBLIC] = { "wildcard host", false,
	    { ADMIT_YES, ADMIT_NO, ADMIT_NO, ADMIT_NO } },
};

_Static_assert(MOAT_ADDR_PUBLIC == 0 && MOAT_ADDR_INTERNAL == 1 &&
    MOAT_ADDR_ALWAYS_BLOCKED == 2 && MOAT_ADDR_METADATA == 3,
    "modes[].admit is indexed by enum moat_addr_class");

static enum addr_mode
mode_of(const struct pol_endpoint *ep)
{
	if (ep->nallowed > 0)
		return MODE_ALLOWED_IPS;
	if (ep->host.kind == POL_HOST_IP)
		return MODE_LITERAL;
	if (ep->host.kind == POL_HOST_EXACT)
		return ep->public_only ? MODE_EXACT_PUBLIC : MODE_EXACT;
	return MODE_PUBLIC;
}

/* Inside the endpoint's list: allowed_ips, else its literal host. */
static bool
listed(const struct pol_endpoint *ep, const struct pol_ip *ip)
{
	if (ep->nallowed > 0) {
		for (size_t i = 0; i < ep->nallowed; i++)
			if (pol_cidr_contains(&ep->allowed[i], ip))
				return true;
		return false;
	}
	return ep->host.kind == POL_HOST_IP &&
	    memcmp(ep->host.ip.a, ip->a, 16) == 0;
}

static const struct blocked_name *
name_blocked(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(blocked_names) / sizeof(*blocked_names);
	     i++) {
		const struct blocked_name *b = &blocked_names[i];
		size_t n = strlen(b->name);

		if (len == n && memcmp(name, b->name, n) == 0)
			return b;
		if (b->subdomains && len > n + 1 && name[len - n - 1] == '.' &&
		    memcmp(name + len - n, b->name, n) == 0)
			return b;
	}
	return NULL;
}

static const char *
control_plane_port(uint16_t port)
{
	for (size_t i = 0; i < sizeof(control_plane) / sizeof(*control_plane);
	     i++)
		if (control_plane[i].port == port)
			return control_plane[i].what;
	return NULL;
}

#define PUBLIC_ONLY_HINT                                              \
	"wildcard and hostless endpoints reach public addresses only; "  \
	"list the host exactly or add allowed_ips"

static const char *
class_article(enum moat_addr_class c)
{
	return c == MOAT_ADDR_METADATA ? "a" : "an";
}

static bool refuse(struct moat_decision *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static bool
refuse(struct moat_decision *d, const char *fmt, ...)
{
	va_list ap;

	d->allow = false;
	d->audit = false;
	d->reason = MOAT_REASON_SSRF;
	va_start(ap, fmt);
	vsnprintf(d->text, sizeof(d->text), fmt, ap);
	va_end(ap);
	return false;
}

static bool
check_port(struct moat_decision *d, const struct pol_endpoint *ep)
{
	const char *what = control_plane_port(d->port);

	if (what != NULL && modes[mode_of(ep)].control_plane)
		return refuse(d, "port %u (%s) is a blocked control-plane "
		    "port, connection rejected", (unsigned)d->port, what);
	return true;
}

/*
 * One address against the mode's row. A literal request host is its own
 * address, and its messages say "X is ..." where a name's say "X
 * resolves to ...".
 */
static bool
check_ip(struct moat_decision *d, const struct pol_endpoint *ep,
    const struct pol_ip *ip)
{
	enum addr_mode m = mode_of(ep);
	enum moat_addr_class cls = pol_ip_classify(ip);
	char txt[INET6_ADDRSTRLEN];
	bool lit;

	pol_ip_format(ip, txt, sizeof(txt));
	lit = strcmp(d->host, txt) == 0;
	switch (modes[m].admit[cls]) {
	case ADMIT_YES:
		return true;
	case ADMIT_LISTED:
		if (listed(ep, ip))
			return true;
		if (lit)
			return refuse(d, "%s is outside the endpoint's %s, "
			    "connection rejected", d->host, modes[m].name);
		return refuse(d, "%s resolves to %s, outside the endpoint's "
		    "%s, connection rejected", d->host, txt, modes[m].name);
	case ADMIT_NO:
		break;
	}
	if (cls == MOAT_ADDR_INTERNAL && m == MODE_EXACT_PUBLIC)
		return refuse(d, "%s resolves to internal address %s, "
		    "connection rejected (the endpoint is public_only, as "
		    "rules from proposals are: add allowed_ips covering %s "
		    "to reach it)", d->host, txt, txt);
	if (cls == MOAT_ADDR_INTERNAL && lit)
		return refuse(d, "%s is an internal address, connection "
		    "rejected (%s)", d->host, PUBLIC_ONLY_HINT);
	if (cls == MOAT_ADDR_INTERNAL)
		return refuse(d, "%s resolves to internal address %s, "
		    "connection rejected (%s)", d->host, txt, PUBLIC_ONLY_HINT);
	if (lit)
		return refuse(d, "%s is %s %s address, connection rejected",
		    d->host, class_article(cls), moat_addr_class_name(cls));
	return refuse(d, "%s resolves to %s address %s, connection rejected",
	    d->host, moat_addr_class_name(cls), txt);
}

bool
pol_ssrf_request(struct moat_decision *d, const struct pol_req *r)
{
	const struct pol_endpoint *ep = d->endpoint;
	const struct blocked_name *b;

	if (!d->allow || ep == NULL)
		return d->allow;
	if (!r->is_ip && (b = name_blocked(r->name, r->len)) != NULL)
		return refuse(d, "%s is %s, connection rejected", d->host,
		    b->what);
	if (!check_port(d, ep))
		return false;
	return !r->is_ip || check_ip(d, ep, &r->ip);
}

bool
moat_policy_check_addr(struct moat_decision *d, const struct sockaddr *sa)
{
	const struct pol_endpoint *ep = d->endpoint;
	struct pol_ip ip;

	if (!d->allow)
		return false;
	if (!from_sockaddr(sa, &ip))
		return refuse(d, "%s: the address is not an IP address, "
		    "connection rejected", d->host);
	if (ep == NULL)
		return refuse(d, "%s: no endpoint to check the address "
		    "against, connection rejected", d->host);
	return check_port(d, ep) && check_ip(d, ep, &ip);
}

bool
pol_endpoint_never(const struct pol_endpoint *ep, char *why, size_t len)
{
	const struct blocked_name *b;
	enum moat_addr_class cls;
	char txt[INET6_ADDRSTRLEN];

	switch (ep->host.kind) {
	case POL_HOST_EXACT:
	case POL_HOST_WILD:
		/* "**.x.localhost" is as loopback as "x.localhost". */
		b = name_blocked(ep->host.name, ep->host.len);
		if (b == NULL)
			return false;
		snprintf(why, len, "%s is %s, which moat always refuses",
		    ep->host.name, b->what);
		return true;
	case POL_HOST_IP:
		cls = pol_ip_classify(&ep->host.ip);
		if (modes[mode_of(ep)].admit[cls] == ADMIT_NO) {
			snprintf(why, len, "%s is %s %s address, which moat "
			    "always refuses", ep->host.name, class_article(cls),
			    moat_addr_class_name(cls));
			return true;
		}
		if (!listed(ep, &ep->host.ip)) {
			pol_ip_format(&ep->host.ip, txt, sizeof(txt));
			snprintf(why, len, "%s is outside the endpoint's own "
			    "allowed_ips, which replace the implicit %s", txt,
			    txt);
			return true;
		}
		return false;
	case POL_HOST_ANY:
		break;
	}
	return false;
}

bool
moat_host_always_refused(const char *host)
{
	char buf[POL_HOST_MAX + 1];
	enum moat_addr_class cls;
	struct pol_ip ip;
	size_t n = host != NULL ? strlen(host) : 0;

	if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n > 0 && host[n - 1] == '.')
		n--;
	if (n == 0 || n > POL_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)host[i]);
	buf[n] = '\0';
	if (name_blocked(buf, n) != NULL)
		return true;
	if (!pol_ip_parse(buf, &ip))
		return false;
	cls = pol_ip_classify(&ip);
	return cls == MOAT_ADDR_ALWAYS_BLOCKED || cls == MOAT_ADDR_METADATA;
}

const char *
pol_endpoint_port_refused(const struct pol_endpoint *ep, uint16_t port)
{
	return modes[mode_of(ep)].control_plane ? control_plane_port(port) :
						  NULL;
}
