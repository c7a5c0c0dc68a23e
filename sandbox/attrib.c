/*
 * Loading caller attribution for one sandbox: the BPF object built from
 * sandbox/attrib.bpf.c (embedded as a libbpf skeleton, generated at build
 * time) is loaded in the creating process, told where the sandbox's proxy
 * listens (its .bss, before the load), and its programs are attached to
 * the sandbox's cgroup v2 directory as bpf_links.
 *
 * The CO-RE relocations need the kernel's types. Parsing the kernel's
 * whole BTF (5 MB) cost libbpf about 20 ms of CPU per load, so the build
 * cuts from it a BTF of only the types the programs read (about 1 KB;
 * `bpftool gen min_core_btf`) and embeds it with what identifies the
 * kernel it came from (build/bpf/attrib.btf.h): its build-id notes,
 * release, version and BTF size. On that kernel libbpf relocates against
 * the small BTF (btf_custom_path, a memfd); on any other kernel, or if
 * the small BTF fails to relocate, against the running kernel's full BTF,
 * and the log says which and why. A load is then 2-3 ms, most of it the
 * kernel's verifier.
 *
 * Nothing is pinned: the links and maps live as long as their fds, so
 * sandbox_attrib_free (or the death of every process holding them)
 * detaches the programs and frees the maps. moatd sends the proxy the
 * maps' fds and the links' (moat_sandbox_attrib, _attrib_links), so the
 * programs stay attached while the proxy serves the sandbox, also when
 * moatd is gone (live restore).
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
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

#include "attrib.btf.h"
#include "attrib.skel.h"

#define VMLINUX_BTF "/sys/kernel/btf/vmlinux"
#define KERNEL_NOTES "/sys/kernel/notes"

enum {
	PROG_SOCK_CREATE,
	PROG_CONNECT4,
	PROG_CONNECT6,
	PROG_SOCK_RELEASE,
	PROG_SOCKOPS,
	NPROGS,
};

static const enum bpf_attach_type attach_types[NPROGS] = {
	BPF_CGROUP_INET_SOCK_CREATE,
	BPF_CGROUP_INET4_CONNECT,
	BPF_CGROUP_INET6_CONNECT,
	BPF_CGROUP_INET_SOCK_RELEASE,
	BPF_CGROUP_SOCK_OPS,
};

static const char *const prog_names[NPROGS] = {
	"cgroup/sock_create", "cgroup/connect4", "cgroup/connect6",
	"cgroup/sock_release", "sockops",
};

struct sandbox_attrib {
	int links[NPROGS];
	int conns_fd;  /* 4-tuple of a connection to the proxy -> record */
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

static bool
same_bytes(const unsigned char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/*
 * Is the running kernel the one the embedded BTF was cut from? Its
 * notes (the GNU build-id of its image), release, version and BTF size
 * must all be the build kernel's; else why says which differs.
 */
static bool
same_kernel(char *why, size_t whylen)
{
	char notes[4096];
	struct utsname u;
	struct stat st;
	ssize_t n = 0;
	int fd;

	if ((fd = open(KERNEL_NOTES, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, notes, sizeof(notes));
		close(fd);
	}
	if (n < 0 || !same_bytes(attrib_min_notes,
	    sizeof(attrib_min_notes) - 1, notes, (size_t)n)) {
		snprintf(why, whylen, "its build-id (%s) is not the build "
		    "kernel's", KERNEL_NOTES);
		return false;
	}
	if (uname(&u) != 0 || !same_bytes(attrib_min_release,
	    sizeof(attrib_min_release) - 1, u.release, strlen(u.release)) ||
	    !same_bytes(attrib_min_version, sizeof(attrib_min_version) - 1,
	    u.version, strlen(u.version))) {
		snprintf(why, whylen, "it is %s, built for %s", u.release,
		    (const char *)attrib_min_release);
		return false;
	}
	if (stat(VMLINUX_BTF, &st) != 0 ||
	    st.st_size != attrib_min_vmlinux_size) {
		snprintf(why, whylen, "its BTF is not the build kernel's");
		return false;
	}
	return true;
}

/*
 * Open and load the object, relocated against the BTF at btf_path (NULL:
 * the kernel's own), with its configuration set. 0 or a negative errno.
 */
static int
load_with(const char *btf_path, const struct moat_attrib_cfg *cfg,
    struct attrib_bpf **out)
{
	LIBBPF_OPTS(bpf_object_open_opts, o, .btf_custom_path = btf_path);
	struct attrib_bpf *skel;
	int e;

	if ((skel = attrib_bpf__open_opts(&o)) == NULL)
		return errno != 0 ? -errno : -EINVAL;
	skel->bss->cfg = *cfg;
	if ((e = attrib_bpf__load(skel)) != 0) {
		attrib_bpf__destroy(skel);
		return e;
	}
	*out = skel;
	return 0;
}

/* The embedded minimal BTF, as a file libbpf can open; -1 on failure. */
static int
min_btf_fd(void)
{
	size_t len = sizeof(attrib_min_btf) - 1;
	int fd;

	if ((fd = memfd_create("moat-attrib-btf", MFD_CLOEXEC)) < 0)
		return -1;
	if (write(fd, attrib_min_btf, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Loaded with the minimal BTF where it fits this kernel, else the full. */
static int
load(const struct moat_attrib_cfg *cfg, struct attrib_bpf **out,
    struct moat_cause *cause)
{
	char why[160], path[64];
	int e = 0, fd;

	libbpf_set_print(libbpf_log);
	if (!same_kernel(why, sizeof(why))) {
		log_info("caller attribution: this kernel is not the one moat "
		    "was built on (%s): relocating against its full BTF (%s), "
		    "about 20 ms per sandbox; rebuild moat on it to avoid that",
		    why, VMLINUX_BTF);
	} else if ((fd = min_btf_fd()) < 0) {
		log_warn_errno("caller attribution: cannot write the minimal "
		    "BTF to a memfd; relocating against the kernel's full BTF");
	} else {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		e = load_with(path, cfg, out);
		close(fd);
		if (e == 0)
			return MOAT_OK;
		/* Not allowed, or refused by the verifier: the same either way. */
		if (e == -EPERM || e == -EACCES)
			goto fail;
		log_warn("caller attribution: the embedded minimal BTF did not "
		    "relocate the programs (%s); relocating against the "
		    "kernel's full BTF (%s)", strerror(-e), VMLINUX_BTF);
	}
	if ((e = load_with(NULL, cfg, out)) == 0)
		return MOAT_OK;
fail:
	moat_cause_set(cause, "load the BPF programs (needs BTF, "
	    "CONFIG_CGROUP_BPF and root): %s", strerror(-e));
	return MOAT_ERR_UNSUPPORTED;
}

void
sandbox_attrib_free(struct sandbox_attrib *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < NPROGS; i++)
		moat_close(a->links[i]);
	moat_close(a->conns_fd);
	moat_close(a->tuples_fd);
	free(a);
}

int
sandbox_attrib_attach(int cgroup_fd, const char *proxy_addr,
    uint16_t proxy_port, struct sandbox_attrib **out,
    struct moat_cause *cause)
{
	struct moat_attrib_cfg cfg = { 0, proxy_port, 0 };
	struct sandbox_attrib *a = NULL;
	struct attrib_bpf *skel = NULL;
	struct bpf_program *progs[NPROGS];
	struct in_addr ip = { 0 };
	struct stat st;
	int r;

	if (cgroup_fd < 0 || fstat(cgroup_fd, &st) != 0) {
		moat_cause_set(cause, "no cgroup v2 directory to attach to");
		return MOAT_ERR_UNSUPPORTED;
	}
	if (proxy_addr != NULL && inet_pton(AF_INET, proxy_addr, &ip) == 1)
		cfg.proxy_ip4 = ip.s_addr;
	if ((r = load(&cfg, &skel, cause)) != 0)
		return r;
	r = MOAT_ERR_NOMEM;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		goto out;
	for (size_t i = 0; i < NPROGS; i++)
		a->links[i] = -1;
	a->cgroup_id = (uint64_t)st.st_ino;
	progs[PROG_SOCK_CREATE] = skel->progs.moat_sock_create;
	progs[PROG_CONNECT4] = skel->progs.moat_connect4;
	progs[PROG_CONNECT6] = skel->progs.moat_connect6;
	progs[PROG_SOCK_RELEASE] = skel->progs.moat_sock_release;
	progs[PROG_SOCKOPS] = skel->progs.moat_sockops;
	/*
	 * The maps the proxy reads outlive the skeleton through these
	 * (close-on-exec); the socket map is the programs' own.
	 */
	a->conns_fd = fcntl(bpf_map__fd(skel->maps.conns), F_DUPFD_CLOEXEC, 3);
	a->tuples_fd = fcntl(bpf_map__fd(skel->maps.tuples), F_DUPFD_CLOEXEC,
	    3);
	if (a->conns_fd < 0 || a->tuples_fd < 0) {
		moat_cause_errno(cause, "keep the BPF maps");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	r = MOAT_ERR_UNSUPPORTED;
	for (size_t i = 0; i < NPROGS; i++) {
		a->links[i] = bpf_link_create(bpf_program__fd(progs[i]),
		    cgroup_fd, attach_types[i], NULL);
		if (a->links[i] < 0) {
			a->links[i] = -1;
			moat_cause_errno(cause, "attach %s to the cgroup",
			    prog_names[i]);
			goto out;
		}
	}
	*out = moat_steal_ptr(&a);
	r = MOAT_OK;
out:
	/* The links hold the programs; the maps are held above. */
	attrib_bpf__destroy(skel);
	sandbox_attrib_free(a);
	return r;
}

int
sandbox_attrib_conns_fd(const struct sandbox_attrib *a)
{
	return a->conns_fd;
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

	for (size_t i = 0; a != NULL && i < NPROGS && n < max; i++)
		if ((fds[n] = a->links[i]) >= 0)
			n++;
	return n;
}
