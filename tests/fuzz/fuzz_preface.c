/* Fuzz the relay preface verifier (the first line of a relayed stream). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sshd/relay.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct moat_relay_cache *rc;
	char line[MOAT_RELAY_LINE_MAX + 1], sb[128];
	size_t n = size < MOAT_RELAY_LINE_MAX ? size : MOAT_RELAY_LINE_MAX;

	if (rc == NULL && moat_relay_cache_new(64, &rc, NULL) != 0)
		return 0;
	memcpy(line, data, n);
	line[n] = '\0';
	moat_relay_preface_verify(line, "0123456789abcdef", 300, 1700000000,
	    rc, sb, sizeof(sb), NULL);
	return 0;
}
