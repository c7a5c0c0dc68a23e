/*
 * policy.local requests on a connection: the answer, or a proposal's
 * body read (LBODY) and handed to moatd, whose result it waits for
 * (LWAIT). Routes and bodies are local.c's.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/conn.h"

void
px_conn_local_scheme(struct px_conn *c)
{
	size_t len = 0;
	char *r = px_local_scheme_error(&len);

	px_conn_respond(c, r, len);
}

static void
wait_timeout(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;
	size_t len = 0;
	char *r;

	(void)l;
	c->timer = NULL;
	r = px_local_unavailable("moatd did not answer the proposal in time",
	    &len);
	px_conn_respond(c, r, len);
}

static void
proposal_answer(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;
	char *r = c->s->lresp;

	(void)l;
	c->timer = NULL;
	c->s->lresp = NULL;
	px_conn_respond(c, r, c->s->lresplen);
}

void
px_conn_proposal_result(struct moat_proxy *p, uint64_t req, char *resp,
    size_t len)
{
	for (struct px_conn *c = p->conns; c != NULL; c = c->next) {
		if (c->st != ST_LWAIT || c->s->preq != req || c->s->answered)
			continue;
		c->s->answered = true;
		c->s->lresp = resp;
		c->s->lresplen = len;
		/*
		 * Answer from a timer: the result may arrive from inside the
		 * propose callback, which must not see the connection go.
		 */
		px_conn_arm(c, 0, proposal_answer);
		return;
	}
	log_debug("proposal result %llu has no waiting request",
	    (unsigned long long)req);
	free(resp);
}

static void
local_propose(struct px_conn *c)
{
	struct moat_proxy *p = c->p;
	size_t len = 0;
	char *r;

	moat_loop_mod_fd(p->loop, c->cfd, 0);
	if (!px_local_body_ok(c->s->body, c->s->blen)) {
		r = px_local_invalid("the body is not UTF-8 text", &len);
		px_conn_respond(c, r, len);
		return;
	}
	c->st = ST_LWAIT;
	c->s->preq = ++p->next_req;
	px_conn_arm(c, p->cfg.proposal_timeout_ms, wait_timeout);
	if (p->cfg.propose(p->cfg.propose_arg, c->sb->name, c->s->preq, c->s->body,
	    c->s->blen) != 0) {
		r = px_local_unavailable("moatd cannot be reached", &len);
		px_conn_respond(c, r, len);
	}
}

static void
body_timeout(struct moat_loop *l, void *arg)
{
	struct px_conn *c = arg;
	size_t len = 0;
	char *r;

	(void)l;
	c->timer = NULL;
	r = px_local_timeout(&len);
	px_conn_respond(c, r, len);
}

void
px_conn_read_body(struct px_conn *c)
{
	ssize_t n = recv(c->cfd, c->s->body + c->s->blen, c->s->bneed - c->s->blen, 0);

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		px_conn_free(c);
		return;
	}
	c->s->blen += (size_t)n;
	if (c->s->blen == c->s->bneed)
		local_propose(c);
}

void
px_conn_local_start(struct px_conn *c)
{
	size_t len = 0, extra = c->s->hlen - c->s->req.head_len;
	bool propose = false;
	char *r;

	moat_loop_mod_fd(c->p->loop, c->cfd, 0);
	moat_loop_timer_cancel(c->p->loop, c->timer);
	c->timer = NULL;
	r = px_local_answer(c->sb, &c->s->req, c->s->head, &len, &propose);
	if (!propose) {
		px_conn_respond(c, r, len);
		return;
	}
	c->s->bneed = (size_t)c->s->req.content_length;
	if ((c->s->body = malloc(c->s->bneed + 1)) == NULL) {
		px_conn_free(c);
		return;
	}
	c->s->blen = extra < c->s->bneed ? extra : c->s->bneed;
	memcpy(c->s->body, c->s->head + c->s->req.head_len, c->s->blen);
	if (c->s->blen == c->s->bneed) {
		local_propose(c);
		return;
	}
	c->st = ST_LBODY;
	moat_loop_mod_fd(c->p->loop, c->cfd, MOAT_EV_READ);
	px_conn_arm(c, PX_LOCAL_BODY_TIMEOUT_MS, body_timeout);
}
