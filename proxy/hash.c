/*
 * TOFU hashes: SHA-256 of an executable read through /proc/PID/exe (so a
 * file replaced on disk cannot pose as the running one), on a worker
 * thread so a 100 MB binary never stalls the loop. Results are cached
 * by the file's fingerprint (dev, ino, size, mtime, ctime): a changed
 * file is hashed again, an unchanged one never is.
 *
 * Fair and bounded: each sandbox has its own queue on the hash pool
 * (at most HASH_QUEUE jobs), a job hashes HASH_SLICE bytes per turn and
 * then lets other sandboxes' jobs run, a file over HASH_MAX_BYTES is not
 * hashed and a job that takes over HASH_TIMEOUT_MS gives up: both leave
 * the binary unverified (denied).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/util.h"
#include "proxy/internal.h"

#define HASH_CACHE 1024
#define HASH_THREADS 2
#define HASH_QUEUE 64
#define HASH_SLICE (2 << 20)
#define HASH_MAX_BYTES (1LL << 30)
#define HASH_TIMEOUT_MS 20000

struct fp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

struct cache_ent {
	bool used;
	struct fp fp;
	char sha[65];
};

struct px_hasher {
	struct px_pool *pool;
	pthread_mutex_t mu; /* the cache: identity workers read it */
	struct cache_ent cache[HASH_CACHE];
};

struct hash_work {
	struct px_work w; /* first: the pool hands back this pointer */
	struct px_hasher *h;
	int fd;
	struct fp fp;
	EVP_MD_CTX *ctx;
	char *buf;
	off_t off;
	bool retried;
	int64_t deadline_ms;
	bool ok;
	const char *err; /* why there is no hash */
	char sha[65];
	px_hash_cb *cb;
	void *arg;
	int idx;
};

static void
fp_of(const struct stat *st, struct fp *fp)
{
	memset(fp, 0, sizeof(*fp));
	fp->dev = st->st_dev;
	fp->ino = st->st_ino;
	fp->size = st->st_size;
	fp->mtime = st->st_mtim;
	fp->ctime = st->st_ctim;
}

static bool
fp_eq(const struct fp *a, const struct fp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec &&
	    a->ctime.tv_sec == b->ctime.tv_sec &&
	    a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static size_t
fp_slot(const struct fp *fp)
{
	uint64_t x = (uint64_t)fp->dev * 0x9e3779b97f4a7c15ULL ^
	    (uint64_t)fp->ino * 0xc2b2ae3d27d4eb4fULL;

	return (size_t)(x >> 20) % HASH_CACHE;
}

bool
px_hasher_cached(struct px_hasher *h, const struct stat *st, char sha[65])
{
	struct fp fp;
	struct cache_ent *e;
	bool hit;

	fp_of(st, &fp);
	pthread_mutex_lock(&h->mu);
	e = &h->cache[fp_slot(&fp)];
	if ((hit = e->used && fp_eq(&e->fp, &fp)))
		memcpy(sha, e->sha, 65);
	pthread_mutex_unlock(&h->mu);
	return hit;
}

/* The fingerprint the file has now; false on error. */
static bool
fp_now(int fd, struct fp *fp)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return false;
	fp_of(&st, fp);
	return true;
}

static int
hash_run(struct px_work *w)
{
	struct hash_work *hw = (struct hash_work *)w;
	unsigned char md[32];
	unsigned mdlen = 0;
	struct fp now;
	size_t done = 0;
	ssize_t n;

	if (hw->ctx == NULL) {
		if (hw->fp.size > HASH_MAX_BYTES) {
			hw->err = "larger than 1 GiB";
			return PX_WORK_DONE;
		}
		if ((hw->buf = malloc(1 << 20)) == NULL ||
		    (hw->ctx = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestInit_ex(hw->ctx, EVP_sha256(), NULL) != 1) {
			hw->err = "out of memory";
			return PX_WORK_DONE;
		}
	}
	if (moat_now_ms() > hw->deadline_ms) {
		hw->err = "hashing took too long";
		return PX_WORK_DONE;
	}
	for (;;) {
		if (done >= HASH_SLICE)
			return PX_WORK_AGAIN;
		if (atomic_load(&w->cancelled))
			return PX_WORK_DONE;
		n = pread(hw->fd, hw->buf, 1 << 20, hw->off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n < 0) {
			hw->err = "cannot read it";
			return PX_WORK_DONE;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(hw->ctx, hw->buf, (size_t)n);
		hw->off += n;
		done += (size_t)n;
		if (hw->off > HASH_MAX_BYTES) {
			hw->err = "larger than 1 GiB";
			return PX_WORK_DONE;
		}
	}
	if (EVP_DigestFinal_ex(hw->ctx, md, &mdlen) != 1 || mdlen != 32 ||
	    !fp_now(hw->fd, &now)) {
		hw->err = "cannot read it";
		return PX_WORK_DONE;
	}
	/*
	 * The hash is cached under the fingerprint taken before reading:
	 * if the file changed meanwhile, that pairing would be false.
	 * Hash once more under the new fingerprint; a file that keeps
	 * changing is not verified at all.
	 */
	if (!fp_eq(&now, &hw->fp)) {
		if (hw->retried ||
		    EVP_DigestInit_ex(hw->ctx, EVP_sha256(), NULL) != 1) {
			hw->err = "it keeps changing";
			return PX_WORK_DONE;
		}
		hw->retried = true;
		hw->fp = now;
		hw->off = 0;
		return PX_WORK_AGAIN;
	}
	moat_hex(md, 32, hw->sha);
	hw->ok = true;
	return PX_WORK_DONE;
}

static void
hash_done(struct px_work *w)
{
	struct hash_work *hw = (struct hash_work *)w;

	moat_close(hw->fd);
	if (hw->ok) {
		struct cache_ent *e = &hw->h->cache[fp_slot(&hw->fp)];
		pthread_mutex_lock(&hw->h->mu);
		e->used = true;
		e->fp = hw->fp;
		memcpy(e->sha, hw->sha, 65);
		pthread_mutex_unlock(&hw->h->mu);
	}
	if (!atomic_load(&w->cancelled))
		hw->cb(hw->arg, hw->idx, hw->ok ? hw->sha : NULL,
		    hw->ok ? NULL : hw->err ? hw->err : "cannot read it");
	EVP_MD_CTX_free(hw->ctx);
	free(hw->buf);
	free(hw);
}

int
px_hasher_submit(struct px_hasher *h, int fd, const struct stat *st,
    const void *owner, px_hash_cb *cb, void *arg, int idx,
    struct px_work **out)
{
	struct hash_work *hw;
	int r;

	if ((hw = calloc(1, sizeof(*hw))) == NULL) {
		moat_close(fd);
		return MOAT_ERR_NOMEM;
	}
	px_work_init(&hw->w, hash_run, hash_done, owner);
	hw->h = h;
	hw->fd = fd;
	fp_of(st, &hw->fp);
	hw->deadline_ms = moat_now_ms() + HASH_TIMEOUT_MS;
	hw->cb = cb;
	hw->arg = arg;
	hw->idx = idx;
	if ((r = px_pool_submit(h->pool, &hw->w)) != 0) {
		moat_close(fd);
		free(hw);
		return r;
	}
	*out = &hw->w;
	return MOAT_OK;
}

int
px_hasher_new(struct moat_loop *l, struct px_hasher **out,
    struct moat_cause *cause)
{
	struct px_hasher *h;
	int r;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return MOAT_ERR_NOMEM;
	pthread_mutex_init(&h->mu, NULL);
	if ((r = px_pool_new(l, HASH_THREADS, HASH_QUEUE, "hash", &h->pool,
	    cause)) != 0) {
		pthread_mutex_destroy(&h->mu);
		free(h);
		return r;
	}
	*out = h;
	return MOAT_OK;
}

void
px_hasher_free(struct px_hasher *h)
{
	if (h == NULL)
		return;
	px_pool_free(h->pool);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
