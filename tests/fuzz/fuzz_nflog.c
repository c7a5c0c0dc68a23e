/* Fuzz the NFLOG message parser (packets come from the sandbox). */
#include <stddef.h>
#include <stdint.h>

#include "common/nflog.h"

static void
sink(const struct moat_nflog_pkt *p, void *arg)
{
	(*(size_t *)arg) += (size_t)p->dport + p->src[0];
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t acc = 0;

	moat_nflog_parse(data, size, sink, &acc);
	return 0;
}
