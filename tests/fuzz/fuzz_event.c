/* Fuzz the denial event decoder (lines moatd reads from the proxy). */
#include <stdint.h>

#include "common/event.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_denial_event ev;
	char buf[4096];

	if (moat_denial_event_decode((const char *)data, size, &ev, NULL) == 0)
		moat_denial_event_encode(&ev, buf, sizeof(buf));
	return 0;
}
