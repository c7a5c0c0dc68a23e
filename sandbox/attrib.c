/*
 * Loading caller attribution for one sandbox: the BPF object built from
 * sandbox/attrib.bpf.c (embedded as a libbpf skeleton, generated at build
 * time) is loaded, and its programs are attached to the sandbox's cgroup
 * v2 directory as bpf_links.
 *
 * Loading costs tens of milliseconds (libbpf parses the kernel's BTF for
 * the CO-RE relocations), so it runs in a forked helper while the
 * sandbox is being built: the helper loads the object and sends the
 * program and map fds back over a socketpair (SCM_RIGHTS); the creator
 * then tells the programs where the proxy listens (the config map) and
 * links them to the cgroup. The helper's memory (the parsed BTF) never
 * weighs on moatd.
 *
 * Nothing is pinned: the links and maps live as long as their fds, so
 * sandbox_attrib_free (or the death of every process holding them)
 * detaches the programs and frees the maps. moatd sends the proxy the
 * maps' fds and the links' (moat_sandbox_attrib, _attrib_links), so the
 * programs stay attached while the proxy serves the sandbox, also when
 * moatd is gone (live restore).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/attrib.h"
#include "common/log.h"
#include "common/util.h"
#include "sandbox/internal.h"

#include "attrib.skel.h"

#define LOAD_WAIT_MS 20000

/* What the helper sends, in this order. */
enum {
	FD_SOCK_CREATE,
	FD_CONNECT4,
	FD_CONNECT6,
	FD_SOCK_RELEASE,
	FD_SOCKOPS,
	FD_NPROGS,
	FD_SOCKS = FD_NPROGS,
	FD_TUPLES,
	FD_CFG,
	FD_COUNT,
};

static const enum bpf_attach_type attach_types[FD_NPROGS] = {
	BPF_CGROUP_INET_SOCK_CREATE,
	BPF_CGROUP_INET4_CONNECT,
	BPF_CGROUP_INET6_CONNECT,
	BPF_CGROUP_INET_SOCK_RELEASE,
	BPF_CGROUP_SOCK_OPS,
};

static const char *const prog_names[FD_NPROGS] = {
	"cgroup/sock_create", "cgroup/connect4", "cgroup/connect6",
	"cgroup/sock_release", "sockops",
};

struct sandbox_attrib_load {
	pid_t pid;
	int sock;
};

struct sandbox_attrib {
	int links[FD_NPROGS];
	int socks_fd;
	int tuples_fd;
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

/* In the helper: load, then send the fds (or a sentence why not). */
static int
helper_main(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int) * FD_COUNT)], msg[MOAT_CAUSE_LEN];
	struct iovec iov = { msg, 1 };
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;
	struct attrib_bpf *skel;
	int fds[FD_COUNT], e;

	libbpf_set_print(libbpf_log);
	if ((skel = attrib_bpf__open()) == NULL) {
		snprintf(msg, sizeof(msg), "open the BPF object: %s",
		    strerror(errno));
		goto fail;
	}
	if ((e = attrib_bpf__load(skel)) != 0) {
		snprintf(msg, sizeof(msg), "load the BPF programs (needs BTF, "
		    "CONFIG_CGROUP_BPF and root): %s", strerror(-e));
		goto fail;
	}
	fds[FD_SOCK_CREATE] = bpf_program__fd(skel->progs.moat_sock_create);
	fds[FD_CONNECT4] = bpf_program__fd(skel->progs.moat_connect4);
	fds[FD_CONNECT6] = bpf_program__fd(skel->progs.moat_connect6);
	fds[FD_SOCK_RELEASE] = bpf_program__fd(skel->progs.moat_sock_release);
	fds[FD_SOCKOPS] = bpf_program__fd(skel->progs.moat_sockops);
	fds[FD_SOCKS] = bpf_map__fd(skel->maps.socks);
	fds[FD_TUPLES] = bpf_map__fd(skel->maps.tuples);
	fds[FD_CFG] = bpf_map__fd(skel->maps.bss);
	msg[0] = '\0';
	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : 1;
fail:
	iov.iov_len = strlen(msg) + 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	return sendmsg(sock, &mh, MSG_NOSIGNAL) > 0 ? 0 : 1;
}

int
sandbox_attrib_load_start(struct sandbox_attrib_load **out,
    struct moat_cause *cause)
{
	struct sandbox_attrib_load *ld;
	int sv[2];

	if ((ld = calloc(1, sizeof(*ld))) == NULL)
		return MOAT_ERR_NOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		moat_cause_errno(cause, "socketpair for the BPF loader");
		free(ld);
		return MOAT_ERR_SYSTEM;
	}
	if ((ld->pid = fork()) == -1) {
		moat_cause_errno(cause, "fork the BPF loader");
		close(sv[0]);
		close(sv[1]);
		free(ld);
		return MOAT_ERR_SYSTEM;
	}
	if (ld->pid == 0) {
		close(sv[0]);
		_exit(helper_main(sv[1]));
	}
	close(sv[1]);
	ld->sock = sv[0];
	*out = ld;
	return MOAT_OK;
}

void
sandbox_attrib_load_cancel(struct sandbox_attrib_load *ld)
{
	if (ld == NULL)
		return;
	moat_close(ld->sock);
	kill(ld->pid, SIGKILL);
	while (waitpid(ld->pid, NULL, 0) == -1 && errno == EINTR)
		;
	free(ld);
}

/* The helper's answer: FD_COUNT fds, or MOAT_ERR_UNSUPPORTED with why. */
static int
receive(struct sandbox_attrib_load *ld, int fds[FD_COUNT],
    struct moat_cause *cause)
{
	char cbuf[CMSG_SPACE(sizeof(int) * FD_COUNT)], msg[MOAT_CAUSE_LEN];
	struct iovec iov = { msg, sizeof(msg) - 1 };
	struct msghdr mh = { 0 };
	struct pollfd p = { ld->sock, POLLIN, 0 };
	struct cmsghdr *cm;
	ssize_t n;

	if (poll(&p, 1, LOAD_WAIT_MS) != 1) {
		moat_cause_set(cause, "the BPF loader did not answer in %d s",
		    LOAD_WAIT_MS / 1000);
		return MOAT_ERR_SYSTEM;
	}
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	if ((n = recvmsg(ld->sock, &mh, MSG_CMSG_CLOEXEC)) <= 0) {
		moat_cause_set(cause, "the BPF loader died");
		return MOAT_ERR_SYSTEM;
	}
	cm = CMSG_FIRSTHDR(&mh);
	if (cm == NULL || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int) * FD_COUNT)) {
		msg[n] = '\0';
		moat_cause_set(cause, "%s", msg[0] != '\0' ? msg :
		    "the BPF loader sent no programs");
		return MOAT_ERR_UNSUPPORTED;
	}
	memcpy(fds, CMSG_DATA(cm), sizeof(int) * FD_COUNT);
	return MOAT_OK;
}

void
sandbox_attrib_free(struct sandbox_attrib *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < FD_NPROGS; i++)
		moat_close(a->links[i]);
	moat_close(a->socks_fd);
	moat_close(a->tuples_fd);
	free(a);
}

int
sandbox_attrib_attach(struct sandbox_attrib_load *ld, int cgroup_fd,
    const char *proxy_addr, uint16_t proxy_port, struct sandbox_attrib **out,
    struct moat_cause *cause)
{
	struct moat_attrib_cfg cfg = { 0, proxy_port, 0 };
	struct sandbox_attrib *a = NULL;
	struct in_addr ip = { 0 };
	struct stat st;
	int fds[FD_COUNT], r, zero = 0;

	for (size_t i = 0; i < FD_COUNT; i++)
		fds[i] = -1;
	if ((r = receive(ld, fds, cause)) != 0)
		goto out;
	r = MOAT_ERR_UNSUPPORTED;
	if (cgroup_fd < 0 || fstat(cgroup_fd, &st) != 0) {
		moat_cause_set(cause, "no cgroup v2 directory to attach to");
		goto out;
	}
	if (proxy_addr != NULL && inet_pton(AF_INET, proxy_addr, &ip) == 1)
		cfg.proxy_ip4 = ip.s_addr;
	if (bpf_map_update_elem(fds[FD_CFG], &zero, &cfg, BPF_ANY) != 0) {
		moat_cause_errno(cause, "configure the BPF programs");
		goto out;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < FD_NPROGS; i++)
		a->links[i] = -1;
	a->socks_fd = a->tuples_fd = -1;
	a->cgroup_id = (uint64_t)st.st_ino;
	for (size_t i = 0; i < FD_NPROGS; i++) {
		a->links[i] = bpf_link_create(fds[i], cgroup_fd,
		    attach_types[i], NULL);
		if (a->links[i] < 0) {
			a->links[i] = -1;
			moat_cause_errno(cause, "attach %s to the cgroup",
			    prog_names[i]);
			goto out;
		}
	}
	a->socks_fd = moat_steal_fd(&fds[FD_SOCKS]);
	a->tuples_fd = moat_steal_fd(&fds[FD_TUPLES]);
	*out = moat_steal_ptr(&a);
	r = MOAT_OK;
out:
	for (size_t i = 0; i < FD_COUNT; i++)
		moat_close(fds[i]);
	sandbox_attrib_free(a);
	sandbox_attrib_load_cancel(ld);
	return r;
}

int
sandbox_attrib_socks_fd(const struct sandbox_attrib *a)
{
	return a->socks_fd;
}

int
sandbox_attrib_tuples_fd(const struct sandbox_attrib *a)
{
	return a->tuples_fd;
}

uint64_t
sandbox_attrib_cgroup_id(const struct sandbox_attrib *a)
{
	return a->cgroup_id;
}

size_t
sandbox_attrib_links(const struct sandbox_attrib *a, int *fds, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; a != NULL && i < FD_NPROGS && n < max; i++)
		if ((fds[n] = a->links[i]) >= 0)
			n++;
	return n;
}
