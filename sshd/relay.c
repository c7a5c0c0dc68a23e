#include <sys/mman.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/util.h"
#include "sshd/relay.h"

#define NONCE_HEX 32
#define HMAC_HEX 64
#define SANDBOX_MAX 127

struct nonce_slot {
	char nonce[NONCE_HEX + 1];
	int64_t expires;	/* wall seconds; <= now: free */
};

struct moat_relay_cache {
	pthread_mutex_t mu;	/* process-shared, robust */
	size_t nslots;
	size_t maplen;
	struct nonce_slot slots[];
};

int
moat_relay_cache_new(size_t slots, struct moat_relay_cache **out,
    struct moat_cause *cause)
{
	struct moat_relay_cache *rc;
	pthread_mutexattr_t ma;
	size_t len;

	if (slots == 0)
		slots = 16384;
	len = sizeof(*rc) + slots * sizeof(struct nonce_slot);
	rc = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (rc == MAP_FAILED) {
		moat_cause_errno(cause, "relay nonce cache mmap");
		return MOAT_ERR_SYSTEM;
	}
	rc->nslots = slots;
	rc->maplen = len;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	if (pthread_mutex_init(&rc->mu, &ma) != 0) {
		pthread_mutexattr_destroy(&ma);
		munmap(rc, len);
		moat_cause_set(cause, "relay nonce cache: mutex init failed");
		return MOAT_ERR_SYSTEM;
	}
	pthread_mutexattr_destroy(&ma);
	*out = rc;
	return MOAT_OK;
}

void
moat_relay_cache_free(struct moat_relay_cache *rc)
{
	if (rc == NULL)
		return;
	munmap(rc, rc->maplen);
}

static void
cache_lock(struct moat_relay_cache *rc)
{
	/* A connection process died holding it: the table is still sane. */
	if (pthread_mutex_lock(&rc->mu) == EOWNERDEAD)
		pthread_mutex_consistent(&rc->mu);
}

/* 0: fresh and now recorded; MOAT_ERR_DENIED: replay; MOAT_ERR_AGAIN: full. */
static int
cache_claim(struct moat_relay_cache *rc, const char *nonce, int64_t now,
    int64_t expires)
{
	struct nonce_slot *free_slot = NULL;
	int r = MOAT_ERR_AGAIN;

	cache_lock(rc);
	for (size_t i = 0; i < rc->nslots; i++) {
		struct nonce_slot *s = &rc->slots[i];

		if (s->expires <= now) {
			if (free_slot == NULL)
				free_slot = s;
			continue;
		}
		if (strcmp(s->nonce, nonce) == 0) {
			r = MOAT_ERR_DENIED;
			goto out;
		}
	}
	if (free_slot != NULL) {
		memcpy(free_slot->nonce, nonce, NONCE_HEX + 1);
		free_slot->expires = expires;
		r = MOAT_OK;
	}
out:
	pthread_mutex_unlock(&rc->mu);
	return r;
}

static bool
is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool
sandbox_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SANDBOX_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' ||
		    s[i] == '.'))
			return false;
	return true;
}

static int
mac_hex(const char *secret, const char *sandbox, const char *ts,
    const char *nonce, char out[HMAC_HEX + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char msg[MOAT_RELAY_LINE_MAX];
	int n;

	n = snprintf(msg, sizeof(msg), "MOAT1|%s|%s|%s", sandbox, ts, nonce);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return MOAT_ERR_INVALID;
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)msg, (size_t)n, mac, &maclen) == NULL ||
	    maclen != HMAC_HEX / 2)
		return MOAT_ERR_INTERNAL;
	moat_hex(mac, maclen, out);
	explicit_bzero(mac, sizeof(mac));
	return MOAT_OK;
}

int
moat_relay_preface_make(const char *sandbox, const char *secret, char *out,
    size_t len)
{
	unsigned char raw[NONCE_HEX / 2];
	char nonce[NONCE_HEX + 1], ts[24], mac[HMAC_HEX + 1];
	int n, r;

	if (!sandbox_name_ok(sandbox) || secret == NULL || *secret == '\0')
		return MOAT_ERR_INVALID;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return MOAT_ERR_INTERNAL;
	moat_hex(raw, sizeof(raw), nonce);
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	if ((r = mac_hex(secret, sandbox, ts, nonce, mac)) != 0)
		return r;
	n = snprintf(out, len, "MOAT1 %s %s %s %s\n", sandbox, ts, nonce, mac);
	if (n < 0 || (size_t)n >= len)
		return MOAT_ERR_INVALID;
	return n;
}

int
moat_relay_preface_verify(const char *line, const char *secret, int skew_s,
    int64_t now, struct moat_relay_cache *rc, char *sandbox, size_t sblen,
    struct moat_cause *cause)
{
	char buf[MOAT_RELAY_LINE_MAX + 1], want[HMAC_HEX + 1];
	char *f[6], *save = NULL, *end = NULL;
	long long ts;
	int nf = 0, r;

	if (secret == NULL || *secret == '\0' || rc == NULL) {
		moat_cause_set(cause, "relay not configured");
		return MOAT_ERR_DENIED;
	}
	if (strlen(line) > MOAT_RELAY_LINE_MAX) {
		moat_cause_set(cause, "line too long");
		return MOAT_ERR_INVALID;
	}
	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok_r(buf, " ", &save); t != NULL;
	    t = strtok_r(NULL, " ", &save)) {
		if (nf == 6)
			break;
		f[nf++] = t;
	}
	if (nf != 5 || strcmp(f[0], "MOAT1") != 0) {
		moat_cause_set(cause, "malformed");
		return MOAT_ERR_INVALID;
	}
	errno = 0;
	ts = strtoll(f[2], &end, 10);
	if (!sandbox_name_ok(f[1]) || errno != 0 || *end != '\0' ||
	    end == f[2] || f[2][0] == '-' || !is_hex(f[3], NONCE_HEX) ||
	    !is_hex(f[4], HMAC_HEX) || strlen(f[1]) >= sblen) {
		moat_cause_set(cause, "malformed");
		return MOAT_ERR_INVALID;
	}
	if (ts > now + skew_s || ts < now - skew_s) {
		moat_cause_set(cause, "timestamp outside the allowed skew");
		return MOAT_ERR_DENIED;
	}
	if ((r = mac_hex(secret, f[1], f[2], f[3], want)) != 0) {
		moat_cause_set(cause, "hmac failed");
		return r;
	}
	if (CRYPTO_memcmp(want, f[4], HMAC_HEX) != 0) {
		moat_cause_set(cause, "bad signature");
		return MOAT_ERR_DENIED;
	}
	/* Only signed lines reach the cache, so strangers cannot fill it. */
	r = cache_claim(rc, f[3], now, ts + skew_s + 1);
	if (r == MOAT_ERR_DENIED) {
		moat_cause_set(cause, "nonce replayed");
		return r;
	}
	if (r != 0) {
		moat_cause_set(cause, "nonce cache full");
		return r;
	}
	snprintf(sandbox, sblen, "%s", f[1]);
	return MOAT_OK;
}

int
moat_relay_preface_read(int fd, char *line, size_t size,
    struct moat_cause *cause)
{
	size_t len = 0;
	ssize_t n;

	if (size < MOAT_RELAY_LINE_MAX + 1)
		return MOAT_ERR_INVALID;
	/* Byte by byte: what follows '\n' is SSH and belongs to libssh. */
	for (;;) {
		char c;

		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			moat_cause_set(cause, "connection closed in preface");
			return MOAT_ERR_INVALID;
		}
		if (c == '\n')
			break;
		if (len == MOAT_RELAY_LINE_MAX - 1) {
			/* Rejected, never truncated (the limit counts '\n'). */
			moat_cause_set(cause, "line too long");
			(void)moat_write_all(fd, "ERR line too long\n", 18);
			return MOAT_ERR_INVALID;
		}
		line[len++] = c;
	}
	line[len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	return MOAT_OK;
}
