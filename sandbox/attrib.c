/*
 * Loading caller attribution for one sandbox: the BPF object built from
 * sandbox/attrib.bpf.c (embedded as a libbpf skeleton, generated at build
 * time) is opened, told the proxy's address, loaded, and its programs
 * are attached to the sandbox's cgroup v2 directory as bpf_links.
 *
 * Nothing is pinned: the links and maps live as long as their fds, so
 * sandbox_attrib_free (or the death of every process holding them)
 * detaches the programs and frees the maps. The proxy reads the maps
 * through fds it inherits (moat_sandbox_attrib).
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "common/log.h"
#include "common/util.h"
#include "sandbox/internal.h"

#include "attrib.skel.h"

struct sandbox_attrib {
	struct attrib_bpf *skel;
	struct bpf_link *links[6];
	size_t nlinks;
	uint64_t cgroup_id;
};

/* libbpf's own messages: debug detail, not the operator's concern. */
static int
libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[512];

	if (level == LIBBPF_DEBUG || !moat_log_enabled(MOAT_LOG_DEBUG))
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("libbpf: %s", buf);
	return 0;
}

void
sandbox_attrib_free(struct sandbox_attrib *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->nlinks; i++)
		bpf_link__destroy(a->links[i]);
	attrib_bpf__destroy(a->skel);
	free(a);
}

int
sandbox_attrib_attach(int cgroup_fd, const char *proxy_addr,
    uint16_t proxy_port, struct sandbox_attrib **out, struct moat_cause *cause)
{
	struct sandbox_attrib *a = NULL;
	struct bpf_program *progs[6];
	struct in_addr ip = { 0 };
	struct stat st;
	int r = MOAT_ERR_UNSUPPORTED;

	libbpf_set_print(libbpf_log);
	if (cgroup_fd < 0 || fstat(cgroup_fd, &st) != 0) {
		moat_cause_set(cause, "no cgroup v2 directory to attach to");
		return MOAT_ERR_UNSUPPORTED;
	}
	if (proxy_addr != NULL && inet_pton(AF_INET, proxy_addr, &ip) != 1)
		ip.s_addr = 0;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return MOAT_ERR_NOMEM;
	a->cgroup_id = (uint64_t)st.st_ino;
	if ((a->skel = attrib_bpf__open()) == NULL) {
		moat_cause_errno(cause, "open the BPF object");
		goto fail;
	}
	a->skel->rodata->proxy_ip4 = ip.s_addr;
	a->skel->rodata->proxy_port = proxy_port;
	if ((errno = -attrib_bpf__load(a->skel)) != 0) {
		moat_cause_errno(cause, "load the BPF programs (needs BTF, "
		    "CONFIG_CGROUP_BPF and root)");
		goto fail;
	}
	progs[0] = a->skel->progs.moat_sock_create;
	progs[1] = a->skel->progs.moat_connect4;
	progs[2] = a->skel->progs.moat_connect6;
	progs[3] = a->skel->progs.moat_sock_release;
	progs[4] = a->skel->progs.moat_sockops;
	for (size_t i = 0; i < 5; i++) {
		struct bpf_link *l = bpf_program__attach_cgroup(progs[i],
		    cgroup_fd);

		if (l == NULL) {
			moat_cause_errno(cause, "attach %s to the cgroup",
			    bpf_program__name(progs[i]));
			goto fail;
		}
		a->links[a->nlinks++] = l;
	}
	*out = a;
	return MOAT_OK;
fail:
	sandbox_attrib_free(a);
	return r;
}

int
sandbox_attrib_socks_fd(const struct sandbox_attrib *a)
{
	return bpf_map__fd(a->skel->maps.socks);
}

int
sandbox_attrib_tuples_fd(const struct sandbox_attrib *a)
{
	return bpf_map__fd(a->skel->maps.tuples);
}

uint64_t
sandbox_attrib_cgroup_id(const struct sandbox_attrib *a)
{
	return a->cgroup_id;
}
