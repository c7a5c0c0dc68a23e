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
		if (!moat_cidr_parse(one, &p->deny[p->ndeny])) {
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
	struct moat_cidr *v = NULL;
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
		struct moat_cidr a;
		if (!moat_cidr_from_sockaddr(i->ifa_addr, &a))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			void *nv = realloc(v, ncap * sizeof(*v));
			if (nv == NULL)
				break;
			v = nv;
			cap = ncap;
		}
		v[n++] = a;
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
	char ip[64];

	px_addr_str(sa, ip, sizeof(ip));
	if (px_is_listen_addr(p, sa)) {
		snprintf(why, len, "%s resolves to %s, which is the proxy's "
		    "own address, connection rejected", host, ip);
		return true;
	}
	for (size_t i = 0; i < p->ndeny; i++)
		if (moat_cidr_contains(&p->deny[i], sa)) {
			snprintf(why, len, "%s resolves to %s, which is an "
			    "address of a sandbox (the sandbox pool), "
			    "connection rejected", host, ip);
			return true;
		}
	refresh_local(p);
	for (size_t i = 0; i < p->nlocal; i++)
		if (moat_cidr_contains(&p->local[i], sa)) {
			snprintf(why, len, "%s resolves to %s, which is an "
			    "address of this host, connection rejected", host,
			    ip);
			return true;
		}
	return false;
}
