/*
 * A small thread pool for the work the loop must never do itself
 * (caller identity, hashing executables, getaddrinfo). Finished items
 * come back through a pipe, one pointer per write (atomic below
 * PIPE_BUF), and their done() runs on the loop thread.
 *
 * Fair between owners (sandboxes): each owner has its own FIFO, and the
 * threads take one item at a time from the owners in turn. A long job
 * runs in slices (run() returns PX_WORK_AGAIN and goes to the back of
 * its owner's queue), so one sandbox's big binary or huge /proc scan
 * delays another sandbox's work by at most one slice per thread. Each
 * owner may have at most `cap` items queued or running.
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

/* One owner's items; on the ready ring while it has queued items. */
struct owner_q {
	const void *owner;
	struct px_work *head;
	struct px_work *tail;
	int count; /* queued or running */
	bool ready; /* on the ring */
	struct owner_q *ring_next;
	struct owner_q *next; /* every queue with count > 0 */
};

struct px_pool {
	struct moat_loop *loop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct owner_q *qs;
	struct owner_q *ring_head;
	struct owner_q *ring_tail;
	int cap;
	bool stop;
	int nthreads;
	pthread_t threads[PX_POOL_MAX];
	int rfd; /* finished items, read by the loop */
	int wfd;
};

static struct owner_q *
q_find(struct px_pool *pool, const void *owner, bool make)
{
	struct owner_q *q;

	for (q = pool->qs; q != NULL; q = q->next)
		if (q->owner == owner)
			return q;
	if (!make || (q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->owner = owner;
	q->next = pool->qs;
	pool->qs = q;
	return q;
}

static void
q_forget(struct px_pool *pool, struct owner_q *q)
{
	struct owner_q **pp;

	for (pp = &pool->qs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			free(q);
			return;
		}
}

static void
ring_push(struct px_pool *pool, struct owner_q *q)
{
	if (q->ready)
		return;
	q->ready = true;
	q->ring_next = NULL;
	if (pool->ring_tail != NULL)
		pool->ring_tail->ring_next = q;
	else
		pool->ring_head = q;
	pool->ring_tail = q;
}

static void
q_append(struct px_pool *pool, struct owner_q *q, struct px_work *w)
{
	w->next = NULL;
	if (q->tail != NULL)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
	ring_push(pool, q);
}

/* The next item, owners in turn; NULL when none. Under mu. */
static struct px_work *
take(struct px_pool *pool, struct owner_q **qp)
{
	struct owner_q *q = pool->ring_head;
	struct px_work *w;

	if (q == NULL)
		return NULL;
	pool->ring_head = q->ring_next;
	if (pool->ring_head == NULL)
		pool->ring_tail = NULL;
	q->ready = false;
	w = q->head;
	q->head = w->next;
	if (q->head == NULL)
		q->tail = NULL;
	else
		ring_push(pool, q);
	*qp = q;
	return w;
}

static void *
worker(void *arg)
{
	struct px_pool *pool = arg;
	struct owner_q *q = NULL;
	struct px_work *w;

	pthread_mutex_lock(&pool->mu);
	for (;;) {
		w = NULL;
		while (!pool->stop && (w = take(pool, &q)) == NULL)
			pthread_cond_wait(&pool->cv, &pool->mu);
		if (w == NULL)
			break; /* stopping: px_pool_free cancels the rest */
		pthread_mutex_unlock(&pool->mu);
		if (!atomic_load(&w->cancelled) && w->run(w) == PX_WORK_AGAIN &&
		    !atomic_load(&w->cancelled)) {
			/* Another slice later: others' items run first. */
			pthread_mutex_lock(&pool->mu);
			q_append(pool, q, w);
			pthread_cond_signal(&pool->cv);
			continue;
		}
		/* A blocking write: the loop drains it; never drop an item. */
		while (write(pool->wfd, &w, sizeof(w)) == -1 && errno == EINTR)
			;
		pthread_mutex_lock(&pool->mu);
		if (--q->count == 0 && q->head == NULL && !q->ready)
			q_forget(pool, q);
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
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
px_pool_new(struct moat_loop *l, int nthreads, int cap, const char *name,
    struct px_pool **out, struct moat_cause *cause)
{
	struct px_pool *pool;
	int fds[2];

	if (nthreads < 1 || nthreads > PX_POOL_MAX)
		nthreads = 2;
	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return MOAT_ERR_NOMEM;
	pool->loop = l;
	pool->cap = cap;
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

int
px_pool_submit(struct px_pool *pool, struct px_work *w)
{
	struct owner_q *q;

	pthread_mutex_lock(&pool->mu);
	if ((q = q_find(pool, w->owner, true)) == NULL) {
		pthread_mutex_unlock(&pool->mu);
		return MOAT_ERR_NOMEM;
	}
	if (pool->cap > 0 && q->count >= pool->cap) {
		if (q->count == 0)
			q_forget(pool, q);
		pthread_mutex_unlock(&pool->mu);
		return MOAT_ERR_AGAIN;
	}
	q->count++;
	q_append(pool, q, w);
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	return MOAT_OK;
}

void
px_work_init(struct px_work *w, int (*run)(struct px_work *),
    void (*done)(struct px_work *), const void *owner)
{
	w->run = run;
	w->done = done;
	w->owner = owner;
	w->next = NULL;
	atomic_init(&w->cancelled, false);
}

void
px_work_cancel(struct px_work *w)
{
	if (w != NULL)
		atomic_store(&w->cancelled, true);
}

void
px_pool_free(struct px_pool *pool)
{
	struct owner_q *q, *qnext;
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
	for (q = pool->qs; q != NULL; q = qnext) {
		qnext = q->next;
		for (w = q->head; w != NULL; w = next) {
			next = w->next;
			atomic_store(&w->cancelled, true);
			w->done(w);
		}
		free(q);
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
