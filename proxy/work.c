/*
 * A small thread pool for the work the loop must never do itself
 * (hashing executables, getaddrinfo). Finished items come back through
 * a pipe, one pointer per write (atomic below PIPE_BUF), and their
 * done() runs on the loop thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proxy/internal.h"

#define PX_POOL_MAX 8

struct px_pool {
	struct moat_loop *loop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct px_work *head;
	struct px_work *tail;
	bool stop;
	int nthreads;
	pthread_t threads[PX_POOL_MAX];
	int rfd; /* finished items, read by the loop */
	int wfd;
};

static void *
worker(void *arg)
{
	struct px_pool *pool = arg;
	struct px_work *w;

	for (;;) {
		pthread_mutex_lock(&pool->mu);
		while (pool->head == NULL && !pool->stop)
			pthread_cond_wait(&pool->cv, &pool->mu);
		if (pool->stop) {
			pthread_mutex_unlock(&pool->mu);
			return NULL;
		}
		w = pool->head;
		pool->head = w->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pthread_mutex_unlock(&pool->mu);
		if (!atomic_load(&w->cancelled))
			w->run(w);
		/* A blocking write: the loop drains it; never drop an item. */
		while (write(pool->wfd, &w, sizeof(w)) == -1 && errno == EINTR)
			;
	}
}

static void
pool_ready(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	struct px_work *ws[64];
	ssize_t n;

	(void)l;
	(void)ev;
	(void)arg;
	while ((n = read(fd, ws, sizeof(ws))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(ws[0]); i++)
			ws[i]->done(ws[i]);
		if ((size_t)n < sizeof(ws))
			break;
	}
}

int
px_pool_new(struct moat_loop *l, int nthreads, const char *name,
    struct px_pool **out, struct moat_cause *cause)
{
	struct px_pool *pool;
	int fds[2];

	if (nthreads < 1 || nthreads > PX_POOL_MAX)
		nthreads = 2;
	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return MOAT_ERR_NOMEM;
	pool->loop = l;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->cv, NULL);
	if (pipe2(fds, O_CLOEXEC) == -1) {
		moat_cause_errno(cause, "%s pool: pipe2", name);
		free(pool);
		return MOAT_ERR_SYSTEM;
	}
	pool->rfd = fds[0];
	pool->wfd = fds[1];
	moat_fd_nonblock(pool->rfd);
	if (moat_loop_add_fd(l, pool->rfd, MOAT_EV_READ, pool_ready, pool) !=
	    0) {
		moat_cause_set(cause, "%s pool: cannot watch its pipe", name);
		goto fail;
	}
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker, pool) != 0) {
			moat_cause_set(cause, "%s pool: pthread_create", name);
			goto fail;
		}
		pool->nthreads++;
	}
	*out = pool;
	return MOAT_OK;
fail:
	px_pool_free(pool);
	return MOAT_ERR_SYSTEM;
}

void
px_pool_submit(struct px_pool *pool, struct px_work *w)
{
	w->next = NULL;
	pthread_mutex_lock(&pool->mu);
	if (pool->tail != NULL)
		pool->tail->next = w;
	else
		pool->head = w;
	pool->tail = w;
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

void
px_pool_free(struct px_pool *pool)
{
	struct px_work *w, *next;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->stop = true;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	for (int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	/* Items still queued or finished but unread: their owners are gone. */
	for (w = pool->head; w != NULL; w = next) {
		next = w->next;
		atomic_store(&w->cancelled, true);
		w->done(w);
	}
	moat_fd_nonblock(pool->rfd);
	pool_ready(pool->loop, pool->rfd, 0, pool);
	moat_loop_del_fd(pool->loop, pool->rfd);
	moat_close(pool->rfd);
	moat_close(pool->wfd);
	pthread_mutex_destroy(&pool->mu);
	pthread_cond_destroy(&pool->cv);
	free(pool);
}
