/*
 * Caller attribution, in the kernel (compiled by clang -target bpf; the
 * loader is sandbox/attrib.c, the record's layout common/attrib.h).
 * Attached to one sandbox's cgroup v2 directory, so it runs for the
 * sockets that sandbox's tasks create:
 *
 *   cgroup/sock_create   the creating task, in the socket's storage
 *   cgroup/connect4/6    the creating and the connecting task, and the
 *                        parents that spawned the connecting one, keyed
 *                        by socket cookie (loopback destinations skipped)
 *   cgroup/sock_release  that entry removed
 *   sockops              at a SYN to the proxy, the same record keyed
 *                        by the connection's 4-tuple, so the proxy finds
 *                        it by the address it accepted, until the socket
 *                        reaches TCP state CLOSE (its state callback: a
 *                        reset, a failed connect, the end of an orderly
 *                        close); at a SYN to anywhere else, the same in
 *                        an LRU, so a bypass rejected by the ruleset is
 *                        named after its socket is gone
 *
 * Each program only records; all of them let the operation proceed.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "common/attrib.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before the programs attach (sandbox/attrib.c). */
struct moat_attrib_cfg cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct moat_attrib_task);
} creators SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct moat_attrib);
} socks SEC(".maps");

/* Connections to the proxy while they last (common/attrib.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct moat_attrib_tuple);
	__type(value, struct moat_attrib);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct moat_attrib_tuple);
	__type(value, struct moat_attrib);
} tuples SEC(".maps");

/* Where a record is built: it is larger than the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct moat_attrib);
} scratch SEC(".maps");

/* The process's id in its own (the sandbox's) pid namespace. */
static __always_inline __u32
ns_tgid(struct task_struct *task)
{
	struct pid *p = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up = {};

	if (level > 32)
		return 0;
	bpf_probe_read_kernel(&up, sizeof(up), &p->numbers[level]);
	return (__u32)up.nr;
}

static __always_inline void
record_task(struct moat_attrib_task *t)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();

	t->tgid = (__u32)(id >> 32);
	t->tid = (__u32)id;
	t->uid = (__u32)bpf_get_current_uid_gid();
	t->nspid = ns_tgid(task);
	t->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	t->exe_ino = BPF_CORE_READ(task, mm, exe_file, f_inode, i_ino);
	t->exe_dev = BPF_CORE_READ(task, mm, exe_file, f_inode, i_sb, s_dev);
	t->cgroup_id = bpf_get_current_cgroup_id();
}

/*
 * The parents of the current process that spawned it as what they run
 * now (common/attrib.h): up the real_parent chain while the child's
 * parent_exec_id is the parent's self_exec_id (the parent has not
 * exec'd since the fork) and the parent is no subreaper.
 */
static __always_inline void
record_parents(struct moat_attrib *a)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	__u32 n = 0;

	cur = BPF_CORE_READ(cur, group_leader);
	for (int i = 0; i < MOAT_ATTRIB_PARENTS; i++) {
		struct task_struct *par = BPF_CORE_READ(cur, real_parent);
		struct signal_struct *sig;
		struct moat_attrib_parent *p = &a->parents[i];

		if (par == NULL || par == cur ||
		    BPF_CORE_READ(cur, parent_exec_id) !=
		    BPF_CORE_READ(par, self_exec_id))
			break;
		sig = BPF_CORE_READ(par, signal);
		if (sig == NULL ||
		    BPF_CORE_READ_BITFIELD_PROBED(sig, is_child_subreaper))
			break;
		p->tgid = BPF_CORE_READ(par, tgid);
		p->start_ns = BPF_CORE_READ(par, group_leader, start_boottime);
		p->exe_ino = BPF_CORE_READ(par, mm, exe_file, f_inode, i_ino);
		p->exe_dev = BPF_CORE_READ(par, mm, exe_file, f_inode, i_sb,
		    s_dev);
		if (p->exe_ino == 0)
			break; /* exiting, or a kernel thread */
		n++;
		cur = BPF_CORE_READ(par, group_leader);
	}
	a->nparents = n;
}

SEC("cgroup/sock_create")
int
moat_sock_create(struct bpf_sock *sk)
{
	struct moat_attrib_task *t;

	if (sk->type != SOCK_STREAM)
		return 1;
	t = bpf_sk_storage_get(&creators, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (t != NULL)
		record_task(t);
	return 1;
}

static __always_inline int
on_connect(struct bpf_sock_addr *ctx, bool loopback)
{
	struct moat_attrib_task *t;
	struct moat_attrib *a;
	__u32 zero = 0;
	__u64 cookie;

	/* Inside the sandbox: nothing to attribute at the proxy. */
	if (ctx->type != SOCK_STREAM || loopback)
		return 1;
	if ((a = bpf_map_lookup_elem(&scratch, &zero)) == NULL)
		return 1;
	__builtin_memset(a, 0, sizeof(*a));
	cookie = bpf_get_socket_cookie(ctx);
	t = bpf_sk_storage_get(&creators, ctx->sk, 0, 0);
	if (t != NULL) {
		a->created = *t;
		a->flags |= MOAT_ATTRIB_CREATED;
	}
	record_task(&a->connected);
	record_parents(a);
	a->flags |= MOAT_ATTRIB_CONNECTED;
	/* Full (the sandbox's own sockets): the proxy denies, unnamed. */
	bpf_map_update_elem(&socks, &cookie, a, BPF_ANY);
	return 1;
}

SEC("cgroup/connect4")
int
moat_connect4(struct bpf_sock_addr *ctx)
{
	return on_connect(ctx, (bpf_ntohl(ctx->user_ip4) >> 24) == 127);
}

SEC("cgroup/connect6")
int
moat_connect6(struct bpf_sock_addr *ctx)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1];
	__u32 w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	bool lo = (w0 | w1 | w2) == 0 && bpf_ntohl(w3) == 1;

	/* ::ffff:127.0.0.0/104 too */
	if ((w0 | w1) == 0 && bpf_ntohl(w2) == 0xffff &&
	    (bpf_ntohl(w3) >> 24) == 127)
		lo = true;
	return on_connect(ctx, lo);
}

/*
 * A connection's 4-tuple as NFLOG and the proxy see it, from its local
 * and remote addresses (network order; IPv4 in l[3] and r[3] when
 * family is AF_INET) and ports (host order): a v4-mapped IPv6
 * connection leaves as IPv4 and is keyed so. false: another family.
 */
static __always_inline bool
make_tuple(struct moat_attrib_tuple *key, __u32 family, const __u32 l[4],
    const __u32 r[4], __u16 sport, __u16 dport)
{
	if (family == AF_INET || (family == AF_INET6 && (r[0] | r[1]) == 0 &&
	    bpf_ntohl(r[2]) == 0xffff)) {
		key->family = AF_INET;
		__builtin_memcpy(key->src, &l[3], 4);
		__builtin_memcpy(key->dst, &r[3], 4);
	} else if (family == AF_INET6) {
		key->family = AF_INET6;
		__builtin_memcpy(key->src, l, 16);
		__builtin_memcpy(key->dst, r, 16);
	} else {
		return false;
	}
	key->sport = sport;
	key->dport = dport;
	return true;
}

static __always_inline bool
to_proxy(const struct moat_attrib_tuple *key)
{
	__u32 dst;

	__builtin_memcpy(&dst, key->dst, 4);
	return key->family == AF_INET && dst == cfg.proxy_ip4 &&
	    key->dport == cfg.proxy_port;
}

/*
 * Context fields are read one by one, each kept in a register
 * (barrier_var): the verifier refuses a load through a context pointer
 * that the compiler offset to merge the two families' reads.
 */
#define CTX_READ(dst, src) do {						\
	__u32 v_ = (src);						\
	barrier_var(v_);						\
	(dst) = v_;							\
} while (0)

SEC("cgroup/sock_release")
int
moat_sock_release(struct bpf_sock *sk)
{
	__u64 cookie;

	if (sk->type != SOCK_STREAM)
		return 1;
	cookie = bpf_get_socket_cookie(sk);
	bpf_map_delete_elem(&socks, &cookie);
	return 1;
}

SEC("sockops")
int
moat_sockops(struct bpf_sock_ops *ctx)
{
	struct moat_attrib_tuple key = {};
	__u32 l[4] = {}, r[4] = {}, family;
	struct moat_attrib *a;
	__u64 cookie;

	if (ctx->op != BPF_SOCK_OPS_TCP_CONNECT_CB &&
	    ctx->op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	family = ctx->family;
	if (family == AF_INET) {
		CTX_READ(l[3], ctx->local_ip4);
		CTX_READ(r[3], ctx->remote_ip4);
	} else if (family == AF_INET6) {
		CTX_READ(l[0], ctx->local_ip6[0]);
		CTX_READ(l[1], ctx->local_ip6[1]);
		CTX_READ(l[2], ctx->local_ip6[2]);
		CTX_READ(l[3], ctx->local_ip6[3]);
		CTX_READ(r[0], ctx->remote_ip6[0]);
		CTX_READ(r[1], ctx->remote_ip6[1]);
		CTX_READ(r[2], ctx->remote_ip6[2]);
		CTX_READ(r[3], ctx->remote_ip6[3]);
	}
	/* remote_port: network order in the upper 16 bits. */
	if (!make_tuple(&key, family, l, r, (__u16)ctx->local_port,
	    bpf_ntohs((__u16)(ctx->remote_port >> 16))))
		return 1;
	if (ctx->op == BPF_SOCK_OPS_STATE_CB) {
		/* Only connections to the proxy ask for these. */
		if (ctx->args[1] == BPF_TCP_CLOSE)
			bpf_map_delete_elem(&conns, &key);
		return 1;
	}
	cookie = bpf_get_socket_cookie(ctx);
	a = bpf_map_lookup_elem(&socks, &cookie);
	if (to_proxy(&key)) {
		/* No record, or the map is full: the proxy finds none. */
		if (a == NULL || bpf_map_update_elem(&conns, &key, a,
		    BPF_ANY) != 0) {
			bpf_map_delete_elem(&conns, &key);
			return 1;
		}
		bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	}
	if (a != NULL)
		bpf_map_update_elem(&tuples, &key, a, BPF_ANY);
	return 1;
}
