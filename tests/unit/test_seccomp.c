/*
 * The seccomp filter builds for x86_64 and for aarch64 (issue 4: "both
 * syscall tables build"), from one list of names: each exported program
 * checks its own AUDIT_ARCH and that arch's syscall numbers.
 */
#include <linux/audit.h>
#include <linux/filter.h>

#include <seccomp.h>
#include <stdlib.h>

#include "sandbox/internal.h"
#include "tests/unit/tap.h"

/* Does some BPF_K constant of the program equal k? */
static int
has_k(const struct sock_fprog *p, uint32_t k)
{
	for (unsigned i = 0; i < p->len; i++)
		if (p->filter[i].k == k)
			return 1;
	return 0;
}

static void
check(uint32_t arch, const char *name, uint32_t audit, int ptrace_nr,
    int bpf_nr)
{
	struct sock_fprog p = { 0 };
	struct moat_cause c = { { 0 } };

	if (!ok(sandbox_seccomp_build(arch, &p, &c) == 0, "%s filter builds",
	    name)) {
		diag("%s", c.msg);
		return;
	}
	ok(p.len > 40, "%s filter has %u instructions", name, p.len);
	ok(has_k(&p, audit), "%s filter checks AUDIT_ARCH 0x%x", name, audit);
	ok(has_k(&p, (uint32_t)ptrace_nr), "%s filter names ptrace as %d",
	    name, ptrace_nr);
	ok(has_k(&p, (uint32_t)bpf_nr), "%s filter names bpf as %d", name,
	    bpf_nr);
	free(p.filter);
}

int
main(void)
{
	/* Syscall numbers from each arch's table (unistd.h). */
	check(SCMP_ARCH_X86_64, "x86_64", AUDIT_ARCH_X86_64, 101, 321);
	check(SCMP_ARCH_AARCH64, "aarch64", AUDIT_ARCH_AARCH64, 117, 280);
	return done_testing();
}
