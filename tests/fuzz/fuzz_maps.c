/*
 * Fuzz the check of a caller's mappings (proxy/maps.c): the file names
 * in /proc/PID/maps and the mount points in /proc/PID/mountinfo come
 * from the sandbox. Input: maps text, a NUL byte, mountinfo text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/internal.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t a = nul != NULL ? (size_t)(nul - data) : size;
	size_t b = nul != NULL ? size - a - 1 : 0;
	char *maps = malloc(a + 1), *mi = malloc(b + 1), why[256];

	if (maps != NULL && mi != NULL) {
		memcpy(maps, data, a);
		maps[a] = '\0';
		memcpy(mi, nul != NULL ? nul + 1 : data, b);
		mi[b] = '\0';
		/* Texts from the kernel hold no NUL: cut at the first. */
		px_maps_scan(maps, mi, "/usr/bin/curl", 1, why, sizeof(why));
	}
	free(maps);
	free(mi);
	return 0;
}
