/*
 * Addresses the proxy never dials, whatever the policy says: its own
 * listen addresses, the sandbox pool (other sandboxes, and the host-side
 * veth addresses) and every address of the host itself.
 *
 * The proxy dials from the host netns, which routes to every sandbox's
 * veth and answers on every local address; an exact host or allowed_ips
 * endpoint that resolves there would otherwise let one sandbox reach
 * another, or a service of the host that the sandbox ruleset keeps it
 * away from.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "proxy/internal.h"

#define LOCAL_REFRESH_MS 1000

static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	0xff };

/* An IP as 16 bytes with IPv4 mapped, so both families compare alike. */
static bool
to16(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		memcpy(out, mapped, 12);
		memcpy(out + 12,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    16);
		return true;
	}
	return false;
}

static bool
in_cidr(const struct px_cidr *c, const uint8_t a[16])
{
	unsigned bytes = c->prefix / 8, rest = c->prefix % 8;
	uint8_t mask;

	if (memcmp(c->a, a, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (c->a[bytes] & mask) == (a[bytes] & mask);
}

static bool
parse_cidr(const char *s, struct px_cidr *c)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
	struct in_addr a4;
	unsigned long bits, max;
	char *end = NULL;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		memcpy(c->a, mapped, 12);
		memcpy(c->a + 12, &a4, 4);
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->a) == 1) {
		max = 128;
	} else
		return false;
	bits = max;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 3)
			return false;
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > max)
			return false;
	}
	c->prefix = (unsigned)(max == 32 ? 96 + bits : bits);
	return true;
}

int
px_guard_init(struct moat_proxy *p, const char *list,
    struct moat_cause *cause)
{
	const char *s = list;

	p->ndeny = 0;
	while (s != NULL && *s != '\0') {
		size_t n = strcspn(s, ", \t");
		char one[64];

		if (n == 0) {
			s++;
			continue;
		}
		if (n >= sizeof(one) || p->ndeny >= PX_MAX_DENY_CIDRS) {
			moat_cause_set(cause, "deny_cidr: too many or too long "
			    "entries in '%s'", list);
			return MOAT_ERR_INVALID;
		}
		memcpy(one, s, n);
		one[n] = '\0';
		if (!parse_cidr(one, &p->deny[p->ndeny])) {
			moat_cause_set(cause, "deny_cidr: '%s' is not an IP "
			    "address or CIDR", one);
			return MOAT_ERR_INVALID;
		}
		p->ndeny++;
		s += n;
	}
	return MOAT_OK;
}

void
px_guard_free(struct moat_proxy *p)
{
	free(p->local);
	p->local = NULL;
	p->nlocal = 0;
}

/* Re-read the host's addresses, at most once a second. */
static void
refresh_local(struct moat_proxy *p)
{
	struct ifaddrs *ifa = NULL;
	uint8_t (*v)[16] = NULL;
	size_t n = 0, cap = 0;
	int64_t now = moat_now_ms();

	if (p->local_ms != 0 && now - p->local_ms < LOCAL_REFRESH_MS)
		return;
	p->local_ms = now;
	if (getifaddrs(&ifa) == -1) {
		/* Keep the previous list rather than none. */
		if (moat_ratelimit_ok(&p->rl))
			log_warn_errno("getifaddrs");
		return;
	}
	for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next) {
		uint8_t a[16];
		if (!to16(i->ifa_addr, a))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			void *nv = realloc(v, ncap * sizeof(*v));
			if (nv == NULL)
				break;
			v = nv;
			cap = ncap;
		}
		memcpy(v[n++], a, 16);
	}
	freeifaddrs(ifa);
	free(p->local);
	p->local = v;
	p->nlocal = n;
}

bool
px_guard_refuses(struct moat_proxy *p, const char *host,
    const struct sockaddr *sa, char *why, size_t len)
{
	uint8_t a[16];
	char ip[64];

	px_addr_str(sa, ip, sizeof(ip));
	if (px_is_listen_addr(p, sa)) {
		snprintf(why, len, "%s resolves to %s, which is the proxy's "
		    "own address, connection rejected", host, ip);
		return true;
	}
	if (!to16(sa, a))
		return false;
	for (size_t i = 0; i < p->ndeny; i++)
		if (in_cidr(&p->deny[i], a)) {
			snprintf(why, len, "%s resolves to %s, which is an "
			    "address of a sandbox (the sandbox pool), "
			    "connection rejected", host, ip);
			return true;
		}
	refresh_local(p);
	for (size_t i = 0; i < p->nlocal; i++)
		if (memcmp(p->local[i], a, 16) == 0) {
			snprintf(why, len, "%s resolves to %s, which is an "
			    "address of this host, connection rejected", host,
			    ip);
			return true;
		}
	return false;
}
