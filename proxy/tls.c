/*
 * TLS interception: the two SSL_CTXs the proxy uses, the sandbox CAs,
 * and the cache of minted leaf certificates.
 *
 * Toward the sandbox the proxy is a TLS server whose certificate is
 * minted per name and signed by the sandbox's CA. The name is the
 * CONNECT host: a ClientHello whose SNI differs is refused in the
 * servername callback (it would ask us to speak for another host than
 * the one that was decided). Leaves are cached in a bounded LRU keyed by
 * (CA, host); the leaf key is one P-256 key per sandbox, so a cached
 * leaf costs no key generation and no signature. Only http/1.1 is
 * offered by ALPN. Sessions are not resumed (no tickets, no cache): a
 * resumed session would skip the SNI check's certificate choice.
 *
 * Toward the upstream the proxy is a TLS client that verifies the
 * server against the system roots plus an optional extra trust file
 * (the config's upstream_ca_file), with the host name (or IP) checked.
 * A failure is reported, never downgraded.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "proxy/internal.h"

#define LEAF_MAX_AGE_MS (24LL * 3600 * 1000)
#define NBUCKETS 256

struct px_tls_ca {
	X509 *cert;
	EVP_PKEY *key;
	EVP_PKEY *leaf_key; /* every leaf of this CA uses it */
	unsigned id;        /* for the cache key */
};

struct leaf {
	unsigned ca;
	char host[MOAT_HTTP_HOST_MAX];
	X509 *x;
	int64_t made_ms;
	struct leaf *prev; /* LRU, most recent first */
	struct leaf *next;
	struct leaf *hnext;
};

struct px_tls {
	SSL_CTX *server;
	SSL_CTX *client;
	int ex_idx;
	unsigned next_ca;
	struct leaf *buckets[NBUCKETS];
	struct leaf *head;
	struct leaf *tail;
	size_t nleaves;
	size_t max_leaves;
	uint64_t minted; /* statistics, for tests and the bench */
	uint64_t hits;
	bool need_defaults; /* the system trust store is not read yet */
};

static unsigned
hash(unsigned ca, const char *host)
{
	unsigned h = 2166136261u ^ ca;

	for (; *host != '\0'; host++)
		h = (h ^ (unsigned char)*host) * 16777619u;
	return h % NBUCKETS;
}

static void
lru_unlink(struct px_tls *t, struct leaf *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		t->head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		t->tail = l->prev;
	l->prev = l->next = NULL;
}

static void
lru_front(struct px_tls *t, struct leaf *l)
{
	l->next = t->head;
	if (t->head != NULL)
		t->head->prev = l;
	t->head = l;
	if (t->tail == NULL)
		t->tail = l;
}

static void
leaf_drop(struct px_tls *t, struct leaf *l)
{
	struct leaf **pp = &t->buckets[hash(l->ca, l->host)];

	while (*pp != l)
		pp = &(*pp)->hnext;
	*pp = l->hnext;
	lru_unlink(t, l);
	X509_free(l->x);
	free(l);
	t->nleaves--;
}

/* The leaf for host under ca (a new reference), minted when missing. */
static X509 *
leaf_get(struct px_tls *t, const struct px_tls_ca *ca, const char *host)
{
	unsigned b = hash(ca->id, host);
	struct leaf *l;
	X509 *x;

	for (l = t->buckets[b]; l != NULL; l = l->hnext)
		if (l->ca == ca->id && strcmp(l->host, host) == 0)
			break;
	if (l != NULL && moat_now_ms() - l->made_ms < LEAF_MAX_AGE_MS) {
		lru_unlink(t, l);
		lru_front(t, l);
		t->hits++;
		X509_up_ref(l->x);
		return l->x;
	}
	if (l != NULL)
		leaf_drop(t, l);
	if ((x = px_ca_mint(ca->cert, ca->key, ca->leaf_key, host)) == NULL)
		return NULL;
	t->minted++;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return x;
	l->ca = ca->id;
	moat_strlcpy(l->host, host, sizeof(l->host));
	l->x = x;
	l->made_ms = moat_now_ms();
	l->hnext = t->buckets[b];
	t->buckets[b] = l;
	lru_front(t, l);
	if (++t->nleaves > t->max_leaves)
		leaf_drop(t, t->tail);
	X509_up_ref(x);
	return x;
}

/* "http/1.1" or nothing: h2 is never offered, so requests stay parsable. */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned i = 0; i < inlen; i += 1u + in[i])
		if (in[i] == 8 && i + 9 <= inlen &&
		    memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = 8;
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_NOACK;
}

/* The SNI, lowercased without one trailing dot, must be the host. */
static int
servername(SSL *ssl, int *al, void *arg)
{
	struct px_tls *t = arg;
	struct px_tls_peer *pe = SSL_get_ex_data(ssl, t->ex_idx);
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	X509 *x;
	size_t n;

	if (pe == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	if (sni != NULL) {
		n = strnlen(sni, sizeof(pe->sni) - 1);
		for (size_t i = 0; i < n; i++)
			pe->sni[i] = isprint((unsigned char)sni[i]) ?
			    (char)tolower((unsigned char)sni[i]) : '?';
		pe->sni[n] = '\0';
		if (n > 0 && pe->sni[n - 1] == '.')
			pe->sni[--n] = '\0';
		if (strcmp(pe->sni, pe->host) != 0) {
			pe->sni_mismatch = true;
			*al = SSL_AD_UNRECOGNIZED_NAME;
			return SSL_TLSEXT_ERR_ALERT_FATAL;
		}
	}
	if ((x = leaf_get(t, pe->ca, pe->host)) == NULL) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (SSL_use_certificate(ssl, x) != 1 ||
	    SSL_use_PrivateKey(ssl, pe->ca->leaf_key) != 1) {
		X509_free(x);
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	X509_free(x);
	return SSL_TLSEXT_ERR_OK;
}

static void
ctx_common(SSL_CTX *ctx)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
	    SSL_OP_NO_COMPRESSION);
	/* Idle connections give their read and write buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

/* The system's trust store, once (docs/proxy.md, lazy_trust_store). */
static int
tls_defaults(struct px_tls *t)
{
	if (!t->need_defaults)
		return 0;
	if (SSL_CTX_set_default_verify_paths(t->client) != 1)
		return -1;
	t->need_defaults = false;
	return 0;
}

int
px_tls_new(const char *upstream_ca_file, size_t max_leaves, bool lazy,
    struct px_tls **out, struct moat_cause *cause)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	struct px_tls *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return MOAT_ERR_NOMEM;
	t->max_leaves = max_leaves > 0 ? max_leaves : 1024;
	t->ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	t->server = SSL_CTX_new(TLS_server_method());
	t->client = SSL_CTX_new(TLS_client_method());
	if (t->server == NULL || t->client == NULL || t->ex_idx < 0)
		goto ossl;
	ctx_common(t->server);
	ctx_common(t->client);
	SSL_CTX_set_num_tickets(t->server, 0);
	SSL_CTX_set_tlsext_servername_callback(t->server, servername);
	SSL_CTX_set_tlsext_servername_arg(t->server, t);
	SSL_CTX_set_alpn_select_cb(t->server, alpn_select, NULL);
	SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
	t->need_defaults = true;
	if ((!lazy && tls_defaults(t) != 0) ||
	    SSL_CTX_set_alpn_protos(t->client, alpn, sizeof(alpn) - 1) != 0)
		goto ossl;
	if (upstream_ca_file != NULL && upstream_ca_file[0] != '\0' &&
	    SSL_CTX_load_verify_locations(t->client, upstream_ca_file,
	    NULL) != 1) {
		moat_cause_set(cause, "upstream_ca_file %s: not a readable PEM "
		    "file of certificates", upstream_ca_file);
		ERR_clear_error();
		px_tls_free(t);
		return MOAT_ERR_INVALID;
	}
	*out = t;
	return MOAT_OK;
ossl:
	moat_cause_set(cause, "TLS setup failed: %s",
	    ERR_reason_error_string(ERR_get_error()));
	ERR_clear_error();
	px_tls_free(t);
	return MOAT_ERR_INTERNAL;
}

void
px_tls_free(struct px_tls *t)
{
	if (t == NULL)
		return;
	while (t->head != NULL)
		leaf_drop(t, t->head);
	SSL_CTX_free(t->server);
	SSL_CTX_free(t->client);
	free(t);
}

void
px_tls_stats(const struct px_tls *t, uint64_t *minted, uint64_t *hits,
    size_t *cached)
{
	*minted = t->minted;
	*hits = t->hits;
	*cached = t->nleaves;
}

int
px_tls_ca_load(struct px_tls *t, const char *cert, const char *key,
    struct px_tls_ca **out, struct moat_cause *cause)
{
	struct px_tls_ca *ca;
	int r;

	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = px_ca_load(cert, key, &ca->cert, &ca->key, cause)) != 0) {
		free(ca);
		return r;
	}
	if ((ca->leaf_key = px_ca_new_key()) == NULL) {
		px_tls_ca_free(t, ca);
		moat_cause_set(cause, "cannot make the leaf key");
		return MOAT_ERR_INTERNAL;
	}
	ca->id = ++t->next_ca;
	*out = ca;
	return MOAT_OK;
}

void
px_tls_ca_free(struct px_tls *t, struct px_tls_ca *ca)
{
	struct leaf *l, *next;

	if (ca == NULL)
		return;
	for (l = t->head; l != NULL; l = next) {
		next = l->next;
		if (l->ca == ca->id)
			leaf_drop(t, l);
	}
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	EVP_PKEY_free(ca->leaf_key);
	free(ca);
}

SSL *
px_tls_server(struct px_tls *t, struct px_tls_peer *pe, int fd)
{
	SSL *s = SSL_new(t->server);

	if (s == NULL || SSL_set_fd(s, fd) != 1 ||
	    SSL_set_ex_data(s, t->ex_idx, pe) != 1) {
		SSL_free(s);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_accept_state(s);
	return s;
}

SSL *
px_tls_client(struct px_tls *t, const char *host, int fd)
{
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1;
	SSL *s = tls_defaults(t) == 0 ? SSL_new(t->client) : NULL;

	if (s == NULL || SSL_set_fd(s, fd) != 1)
		goto fail;
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s),
		    host) != 1)
			goto fail;
	} else if (SSL_set_tlsext_host_name(s, host) != 1 ||
	    SSL_set1_host(s, host) != 1) {
		goto fail;
	}
	SSL_set_connect_state(s);
	return s;
fail:
	SSL_free(s);
	ERR_clear_error();
	return NULL;
}

/* Why a failed upstream handshake failed, for the 502 body. */
void
px_tls_client_error(SSL *s, char *why, size_t len)
{
	long v = SSL_get_verify_result(s);
	unsigned long e = ERR_peek_last_error();

	if (v != X509_V_OK)
		snprintf(why, len, "certificate verification failed: %s",
		    X509_verify_cert_error_string(v));
	else if (e != 0)
		snprintf(why, len, "TLS handshake failed: %s",
		    ERR_reason_error_string(e) ? ERR_reason_error_string(e) :
		    "error");
	else
		snprintf(why, len, "TLS handshake failed");
	ERR_clear_error();
}
