/*
 * Fuzz the SSH monitor's request reader (sshd/monitor.c): what the
 * unprivileged session process sends the privileged side. The first
 * byte picks the monitor's state; the rest is one message.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/log.h"
#include "sshd/monitor.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;

	if (!quiet++)
		moat_log_set_level(MOAT_LOG_FATAL);
	if (size == 0)
		return 0;
	(void)mon_fuzz_one(data + 1, size - 1, data[0]);
	return 0;
}
