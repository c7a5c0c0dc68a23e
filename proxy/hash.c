/*
 * TOFU hashes: SHA-256 of an executable read through /proc/PID/exe (so a
 * file replaced on disk cannot pose as the running one), on a worker
 * thread so a 100 MB binary never stalls the loop. Results are cached
 * by the file's fingerprint (dev, ino, size, mtime, ctime): a changed
 * file is hashed again, an unchanged one never is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/util.h"
#include "proxy/internal.h"

#define HASH_CACHE 1024
#define HASH_THREADS 2

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
	struct cache_ent cache[HASH_CACHE];
};

struct hash_work {
	struct px_work w; /* first: the pool hands back this pointer */
	struct px_hasher *h;
	int fd;
	struct fp fp;
	bool ok;
	char sha[65];
	void (*cb)(void *arg, int idx, const char *sha);
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

	fp_of(st, &fp);
	e = &h->cache[fp_slot(&fp)];
	if (!e->used || !fp_eq(&e->fp, &fp))
		return false;
	memcpy(sha, e->sha, 65);
	return true;
}

static void
hash_run(struct px_work *w)
{
	struct hash_work *hw = (struct hash_work *)w;
	EVP_MD_CTX *ctx = NULL;
	unsigned char md[32];
	unsigned mdlen = 0;
	char *buf = NULL;
	struct stat st;
	struct fp now;
	bool retried = false;
	off_t off;
	ssize_t n;

	hw->ok = false;
	if ((buf = malloc(1 << 20)) == NULL || (ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
again:
	off = 0;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	for (;;) {
		if (atomic_load(&w->cancelled))
			goto out;
		n = pread(hw->fd, buf, 1 << 20, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += n;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		goto out;
	/*
	 * The hash is cached under the fingerprint taken before reading:
	 * if the file changed meanwhile, that pairing would be false.
	 * Hash once more under the new fingerprint; a file that keeps
	 * changing is not verified at all.
	 */
	if (fstat(hw->fd, &st) == -1)
		goto out;
	fp_of(&st, &now);
	if (!fp_eq(&now, &hw->fp)) {
		if (retried)
			goto out;
		retried = true;
		hw->fp = now;
		goto again;
	}
	moat_hex(md, 32, hw->sha);
	hw->ok = true;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
}

static void
hash_done(struct px_work *w)
{
	struct hash_work *hw = (struct hash_work *)w;

	moat_close(hw->fd);
	if (hw->ok) {
		struct cache_ent *e = &hw->h->cache[fp_slot(&hw->fp)];
		e->used = true;
		e->fp = hw->fp;
		memcpy(e->sha, hw->sha, 65);
	}
	if (!atomic_load(&w->cancelled))
		hw->cb(hw->arg, hw->idx, hw->ok ? hw->sha : NULL);
	free(hw);
}

struct px_work *
px_hasher_submit(struct px_hasher *h, int fd, const struct stat *st,
    void (*cb)(void *arg, int idx, const char *sha), void *arg, int idx)
{
	struct hash_work *hw;

	if ((hw = calloc(1, sizeof(*hw))) == NULL) {
		moat_close(fd);
		return NULL;
	}
	hw->w.run = hash_run;
	hw->w.done = hash_done;
	atomic_init(&hw->w.cancelled, false);
	hw->h = h;
	hw->fd = fd;
	fp_of(st, &hw->fp);
	hw->cb = cb;
	hw->arg = arg;
	hw->idx = idx;
	px_pool_submit(h->pool, &hw->w);
	return &hw->w;
}

void
px_hasher_cancel(struct px_work *w)
{
	if (w != NULL)
		atomic_store(&w->cancelled, true);
}

int
px_hasher_new(struct moat_loop *l, struct px_hasher **out,
    struct moat_cause *cause)
{
	struct px_hasher *h;
	int r;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = px_pool_new(l, HASH_THREADS, "hash", &h->pool, cause)) != 0) {
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
	free(h);
}
