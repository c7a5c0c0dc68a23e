/*
 * The sandbox CA (proxy/ca.h) and the leaf certificates it signs. Keys
 * are EC P-256: fast to make and to sign with (a leaf costs one ECDSA
 * signature), and accepted by every TLS client we care about.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "proxy/ca.h"
#include "proxy/internal.h"

#define CA_DAYS 3650
#define LEAF_DAYS 30
#define BACKDATE_S 3600 /* clocks a little behind still accept it */

static int
ossl_fail(struct moat_cause *cause, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[160] = "";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	moat_cause_set(cause, "%s: %s", what, buf[0] ? buf : "OpenSSL error");
	return MOAT_ERR_INTERNAL;
}

EVP_PKEY *
px_ca_new_key(void)
{
	return EVP_EC_gen("P-256");
}

/* A random positive 159-bit serial (RFC 5280: at most 20 octets). */
static bool
set_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	bool ok_ = bn != NULL && BN_rand(bn, 159, BN_RAND_TOP_ANY,
	    BN_RAND_BOTTOM_ANY) == 1 &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;

	BN_free(bn);
	return ok_;
}

static bool
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	bool ok_;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if ((e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return false;
	ok_ = X509_add_ext(x, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok_;
}

static bool
set_validity(X509 *x, long days, const ASN1_TIME *cap)
{
	if (X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400L) == NULL)
		return false;
	/* A leaf never outlives its CA. */
	if (cap != NULL && ASN1_TIME_compare(X509_get0_notAfter(x), cap) > 0)
		return X509_set1_notAfter(x, cap) == 1;
	return true;
}

static X509 *
ca_cert_new(EVP_PKEY *key, const char *name)
{
	X509 *x = X509_new();
	X509_NAME *n;
	char cn[128];

	snprintf(cn, sizeof(cn), "moat sandbox %s CA", name);
	if (x == NULL || X509_set_version(x, 2) != 1 || !set_serial(x) ||
	    !set_validity(x, CA_DAYS, NULL) || X509_set_pubkey(x, key) != 1)
		goto fail;
	n = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
	    (const unsigned char *)"moat", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, n) != 1)
		goto fail;
	if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,"
	    "pathlen:0") ||
	    !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    X509_sign(x, key, EVP_sha256()) == 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

X509 *
px_ca_mint(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *leaf_key, const char *host)
{
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1;
	X509 *x = X509_new();
	char san[300];

	if (strlen(host) > 253 || x == NULL)
		goto fail;
	snprintf(san, sizeof(san), "%s:%s", is_ip ? "IP" : "DNS", host);
	if (X509_set_version(x, 2) != 1 || !set_serial(x) ||
	    !set_validity(x, LEAF_DAYS, X509_get0_notAfter(ca)) ||
	    X509_set_pubkey(x, leaf_key) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1)
		goto fail;
	/* CN is at most 64 characters; the SAN is what clients check. */
	if (strlen(host) <= 64 && X509_NAME_add_entry_by_txt(
	    X509_get_subject_name(x), "CN", MBSTRING_UTF8,
	    (const unsigned char *)host, -1, -1, 0) != 1)
		goto fail;
	if (!add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, ca, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, ca, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(x, ca, NID_subject_alt_name, san) ||
	    !add_ext(x, ca, NID_authority_key_identifier, "keyid:always") ||
	    X509_sign(x, ca_key, EVP_sha256()) == 0)
		goto fail;
	return x;
fail:
	ERR_clear_error();
	X509_free(x);
	return NULL;
}

/* Write PEM text to dir/name through a temporary file and rename. */
static int
write_atomic(const char *dir, const char *name, const char *a, size_t alen,
    const char *b, size_t blen, mode_t mode, struct moat_cause *cause)
{
	char path[4200], tmp[4300];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, mode)) < 0) {
		moat_cause_errno(cause, "create %s", tmp);
		return MOAT_ERR_SYSTEM;
	}
	if (fchmod(fd, mode) != 0 || moat_write_all(fd, a, alen) != 0 ||
	    (blen > 0 && moat_write_all(fd, b, blen) != 0) || fsync(fd) != 0) {
		moat_cause_errno(cause, "write %s", tmp);
		close(fd);
		unlink(tmp);
		return MOAT_ERR_SYSTEM;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		moat_cause_errno(cause, "rename %s", tmp);
		unlink(tmp);
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

/* The PEM text of a BIO (owned by the BIO). */
static size_t
bio_text(BIO *b, const char **out)
{
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);

	*out = p;
	return n > 0 ? (size_t)n : 0;
}

int
moat_ca_create(const char *dir, const char *name, const char *roots,
    struct moat_cause *cause)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
	const char *ktext, *ctext;
	char *rtext = NULL;
	size_t klen, clen, rlen = 0;
	int r;

	if (kb == NULL || cb == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((key = px_ca_new_key()) == NULL) {
		r = ossl_fail(cause, "make the CA key");
		goto out;
	}
	if ((x = ca_cert_new(key, name)) == NULL) {
		r = ossl_fail(cause, "make the CA certificate");
		goto out;
	}
	if (PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(cb, x) != 1) {
		r = ossl_fail(cause, "encode the CA");
		goto out;
	}
	klen = bio_text(kb, &ktext);
	clen = bio_text(cb, &ctext);
	if (roots != NULL && moat_read_file(roots, 16 << 20, &rtext, &rlen,
	    NULL) != 0) {
		log_warn("CA bundle of %s: cannot read %s; the bundle holds "
		    "the sandbox CA alone", name, roots);
		rtext = NULL;
		rlen = 0;
	}
	if ((r = write_atomic(dir, MOAT_CA_KEY, ktext, klen, NULL, 0, 0600,
	    cause)) != 0 ||
	    (r = write_atomic(dir, MOAT_CA_CERT, ctext, clen, NULL, 0, 0644,
	    cause)) != 0)
		goto out;
	/* Roots first, then ours, which must start on a line of its own. */
	if (rlen > 0 && rtext[rlen - 1] != '\n') {
		char *n = realloc(rtext, rlen + 2);

		if (n == NULL) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		rtext = n;
		rtext[rlen++] = '\n';
		rtext[rlen] = '\0';
	}
	r = write_atomic(dir, MOAT_CA_BUNDLE, rtext != NULL ? rtext : "", rlen,
	    ctext, clen, 0644, cause);
out:
	free(rtext);
	X509_free(x);
	EVP_PKEY_free(key);
	BIO_free(kb);
	BIO_free(cb);
	return r;
}

int
px_ca_load(const char *cert_path, const char *key_path, X509 **cert,
    EVP_PKEY **key, struct moat_cause *cause)
{
	FILE *f = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;

	if ((f = fopen(cert_path, "re")) == NULL) {
		moat_cause_errno(cause, "open %s", cert_path);
		return MOAT_ERR_SYSTEM;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if ((f = fopen(key_path, "re")) == NULL) {
		moat_cause_errno(cause, "open %s", key_path);
		X509_free(x);
		return MOAT_ERR_SYSTEM;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL || k == NULL || X509_check_private_key(x, k) != 1) {
		X509_free(x);
		EVP_PKEY_free(k);
		return ossl_fail(cause, "the sandbox CA is not a certificate "
		    "and its key");
	}
	*cert = x;
	*key = k;
	return MOAT_OK;
}
