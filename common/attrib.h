/*
 * Caller attribution as the kernel records it: the layout of the values
 * and keys of the BPF maps that sandbox/attrib.bpf.c fills, the sandbox
 * module loads (sandbox/attrib.c) and the proxy reads (proxy/identity.c,
 * proxy/bypass.c). Shared by C compiled for BPF and for the host, so
 * fixed-width fields only, and no implicit padding.
 *
 * The socket map is keyed by socket cookie (__u64, what
 * bpf_get_socket_cookie() returns); its entry is removed when the
 * socket is released. Two maps are keyed by struct moat_attrib_tuple:
 * the connection map holds the record of each connection to the proxy,
 * from its SYN until its socket reaches TCP state CLOSE (the proxy looks
 * its client up there); the tuple map (an LRU) names the sender of a
 * SYN that the sandbox ruleset rejects (a bypass), after its socket is
 * gone.
 */
#ifndef MOAT_COMMON_ATTRIB_H
#define MOAT_COMMON_ATTRIB_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* One task, as the kernel saw it inside the socket hook. */
struct moat_attrib_task {
	__u32 tgid;      /* process id in the initial pid namespace */
	__u32 tid;       /* the thread that ran the hook */
	__u64 start_ns;  /* the thread group leader's start_boottime */
	__u64 exe_ino;   /* inode of mm->exe_file */
	__u32 exe_dev;   /* its superblock's dev_t, kernel encoding */
	__u32 uid;       /* real uid */
	__u64 cgroup_id; /* the task's cgroup v2 id (its directory's inode) */
	__u32 nspid;     /* tgid in the task's own pid namespace */
	__u32 pad;
};

#define MOAT_ATTRIB_CREATED 1u   /* created is filled (cgroup/sock_create) */
#define MOAT_ATTRIB_CONNECTED 2u /* connected is filled (connect4/6) */

/*
 * A parent of the connecting process when it connected, nearest first.
 * Recorded only while each one forked the process below it running the
 * executable it runs now (no exec since: the child's parent_exec_id is
 * its self_exec_id) and is no subreaper (an orphan reparented to one
 * was not forked by it): a process that execs an allowed binary after
 * it forked the caller did not spawn the caller as that binary.
 */
#define MOAT_ATTRIB_PARENTS 16

struct moat_attrib_parent {
	__u64 start_ns; /* the thread group leader's start_boottime */
	__u64 exe_ino;
	__u32 exe_dev;  /* kernel encoding */
	__u32 tgid;     /* in the initial pid namespace */
};

struct moat_attrib {
	struct moat_attrib_task created;
	struct moat_attrib_task connected;
	__u32 flags;
	__u32 nparents; /* parents[0 .. nparents) of the connecting process */
	struct moat_attrib_parent parents[MOAT_ATTRIB_PARENTS];
};

/* A TCP connection as NFLOG logs its SYN; IPv4 in the first 4 bytes. */
struct moat_attrib_tuple {
	__u32 family; /* AF_INET or AF_INET6 */
	__u16 sport;  /* host order */
	__u16 dport;  /* host order */
	__u8 src[16];
	__u8 dst[16];
};

/* The programs' configuration (their .bss), set before they attach. */
struct moat_attrib_cfg {
	__u32 proxy_ip4;  /* where the sandbox's proxy listens, network order */
	__u16 proxy_port; /* host order */
	__u16 pad;
};

/* Kernel dev_t (MAJOR << 20 | MINOR) to the pair stat(2) reports. */
#define MOAT_ATTRIB_DEV_MAJOR(d) ((unsigned)((d) >> 20))
#define MOAT_ATTRIB_DEV_MINOR(d) ((unsigned)((d) & 0xfffff))

#endif
