/* Fuzz the denial event decoder (lines moatd reads from the proxy). */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "common/event.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_denial_event ev;
	json_t *o;
	char *s;

	if (moat_denial_event_decode((const char *)data, size, &ev, NULL) != 0)
		return 0;
	/* What moatd decoded must encode again (the store, the export). */
	if ((o = moat_denial_event_json(&ev)) == NULL ||
	    (s = json_dumps(o, JSON_COMPACT)) == NULL)
		__builtin_trap();
	free(s);
	json_decref(o);
	return 0;
}
