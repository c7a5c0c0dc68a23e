/*
 * Retention: denials older than the configured age are deleted in small
 * batches from a loop timer. Between batches we go back to the loop, so
 * the aggregator's next flush and control requests are never held up by
 * one long DELETE.
 */
#include <stdlib.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/moatd.h"

#define DEFAULT_INTERVAL_MS 60000
#define DEFAULT_BATCH 5000

struct moatd_retention {
	struct moatd *d;
	int64_t max_age_ms;
	int interval_ms;
	size_t batch;
	struct moat_timer *timer;
	int64_t deleted;
	struct moat_ratelimit rl;
};

static void retention_step(struct moat_loop *l, void *arg);

static void
schedule(struct moatd_retention *r, int64_t ms)
{
	r->timer = moat_loop_timer(moatd_loop(r->d), ms, retention_step, r);
	if (r->timer == NULL)
		log_error("retention: cannot arm its timer; pruning stops");
}

static void
retention_step(struct moat_loop *l, void *arg)
{
	struct moatd_retention *r = arg;
	struct moat_cause cause = { { 0 } };
	size_t n = 0;
	int rc;

	r->timer = NULL;
	rc = moat_store_denials_prune(moatd_store(r->d),
	    moat_wall_ms() - r->max_age_ms, r->batch, &n, &cause);
	if (rc != 0 && moat_ratelimit_ok(&r->rl))
		log_warn_r(rc, "retention: pruning denials failed: %s",
		    cause.msg);
	r->deleted += (int64_t)n;
	if (n > 0)
		log_verbose("retention: deleted %zu denials", n);
	/* A full batch means more is due: yield, then go on at once. */
	schedule(r, rc == 0 && n == r->batch ? 0 : r->interval_ms);
}

int
moatd_retention_new(struct moatd *d, int64_t max_age_s, int interval_ms,
    int batch, struct moatd_retention **out, struct moat_cause *cause)
{
	struct moatd_retention *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		moat_cause_set(cause, "retention: out of memory");
		return MOAT_ERR_NOMEM;
	}
	r->d = d;
	r->max_age_ms = max_age_s * 1000;
	r->interval_ms = interval_ms > 0 ? interval_ms : DEFAULT_INTERVAL_MS;
	r->batch = batch > 0 ? (size_t)batch : DEFAULT_BATCH;
	r->rl.burst = 1;
	/* The first pass soon after start: a restart after a long stop. */
	if (max_age_s > 0)
		schedule(r, r->interval_ms < 1000 ? r->interval_ms : 1000);
	*out = r;
	return MOAT_OK;
}

void
moatd_retention_free(struct moatd_retention *r)
{
	if (r == NULL)
		return;
	moat_loop_timer_cancel(moatd_loop(r->d), r->timer);
	free(r);
}

int64_t
moatd_retention_deleted(const struct moatd_retention *r)
{
	return r != NULL ? r->deleted : 0;
}
