/* The federation link's TLS: 1.3 only, both sides show certificates that
 * chain to the network CA and are neither expired nor revoked. */
#include "internal.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BANK_URI "timebank:bank:"

static int load_crl(X509_STORE *store, const char *path)
{
	X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());

	if (lookup == NULL || X509_load_crl_file(lookup, path, X509_FILETYPE_PEM) <= 0)
		return -1;
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	return 0;
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	return t != NULL && ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

/* When the CRL at path was issued (next: when it must be replaced). */
static time_t crl_file_time(const char *path, int next)
{
	FILE *f = fopen(path, "r");
	X509_CRL *crl = f != NULL ? PEM_read_X509_CRL(f, NULL, NULL, NULL) : NULL;
	time_t t = crl == NULL ? 0
	           : next      ? asn1_time(X509_CRL_get0_nextUpdate(crl))
	                       : asn1_time(X509_CRL_get0_lastUpdate(crl));

	X509_CRL_free(crl);
	if (f != NULL)
		fclose(f);
	return t;
}

time_t fed_tls_crl_next_update(const char *path)
{
	return crl_file_time(path, 1);
}

time_t fed_tls_crl_this_update(const char *path)
{
	return crl_file_time(path, 0);
}

int fed_tls_still_trusted(SSL_CTX *ctx, SSL *ssl)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	int ok = 0;

	if (cert != NULL && vc != NULL &&
	    X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(ctx), cert,
	                        SSL_get_peer_cert_chain(ssl)) == 1)
		ok = X509_verify_cert(vc) == 1;
	X509_STORE_CTX_free(vc);
	return ok;
}

SSL_CTX *fed_tls_ctx(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	const char *what = NULL;

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot make a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* An idle link keeps no record buffers (some 34 KiB a link): a bank
	 * holds one link per peer, and most are quiet most of the time. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->fed_cert) != 1)
		what = cfg->fed_cert;
	else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->fed_key, SSL_FILETYPE_PEM) != 1 ||
	         SSL_CTX_check_private_key(ctx) != 1)
		what = cfg->fed_key;
	else if (SSL_CTX_load_verify_locations(ctx, cfg->fed_ca, NULL) != 1)
		what = cfg->fed_ca;
	else if (load_crl(SSL_CTX_get_cert_store(ctx), cfg->fed_crl) == -1)
		what = cfg->fed_crl;
	if (what != NULL) {
		char reason[256];
		ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
		snprintf(err, errlen, "%s: %s", what, reason);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return ctx;
}

/* A fresh store with the CA certificates of ctx's, for a new CRL. */
static X509_STORE *fresh_store(SSL_CTX *ctx)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));

	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		if (cert != NULL)
			X509_STORE_add_cert(store, cert);
	}
	return store;
}

int fed_tls_reload_crl(SSL_CTX *ctx, const char *crl_path)
{
	X509_STORE *store = fresh_store(ctx);

	if (load_crl(store, crl_path) == -1) {
		X509_STORE_free(store);
		return -1;
	}
	SSL_CTX_set_cert_store(ctx, store);
	return 0;
}

/* Whether crl is signed by a CA certificate of ctx's store. */
static int signed_by_ca(SSL_CTX *ctx, X509_CRL *crl)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));

	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		if (ca != NULL &&
		    X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) == 0 &&
		    X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
			return 1;
	}
	return 0;
}

/* The CRL in PEM text, if the network CA signed it; NULL (why in err). */
static X509_CRL *ca_crl(SSL_CTX *ctx, const uint8_t *pem, size_t len, char *err, size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509_CRL *crl = bio != NULL ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	if (crl == NULL) {
		snprintf(err, errlen, "its CRL is not a CRL in PEM");
	} else if (!signed_by_ca(ctx, crl)) {
		snprintf(err, errlen, "its CRL is not signed by the network CA");
		X509_CRL_free(crl);
		crl = NULL;
	}
	return crl;
}

int fed_tls_crl_ok(SSL_CTX *ctx, const uint8_t *pem, size_t len, char *err, size_t errlen)
{
	X509_CRL *crl = ca_crl(ctx, pem, len, err, errlen);

	X509_CRL_free(crl);
	return crl != NULL;
}

int fed_tls_use_crl(SSL_CTX *ctx, const uint8_t *pem, size_t len, time_t *this_update,
                    time_t *next_update, char *err, size_t errlen)
{
	X509_CRL *crl = ca_crl(ctx, pem, len, err, errlen);
	X509_STORE *store;
	time_t issued;
	int rc = -1;

	if (crl == NULL)
		return -1;
	issued = asn1_time(X509_CRL_get0_lastUpdate(crl));
	if (issued <= *this_update) {
		rc = 0; /* the one in force is as new, or newer */
		goto done;
	}
	/* An expired CRL would fail every certificate, every link with it. */
	if (asn1_time(X509_CRL_get0_nextUpdate(crl)) <= time(NULL)) {
		snprintf(err, errlen, "its CRL has expired");
		goto done;
	}
	store = fresh_store(ctx);
	if (X509_STORE_add_crl(store, crl) != 1) {
		X509_STORE_free(store);
		snprintf(err, errlen, "its CRL cannot be used");
		goto done;
	}
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	SSL_CTX_set_cert_store(ctx, store);
	*this_update = issued;
	*next_update = asn1_time(X509_CRL_get0_nextUpdate(crl));
	rc = 1;
done:
	X509_CRL_free(crl);
	return rc;
}

int fed_tls_cert_sha256(X509 *cert, char *hex)
{
	unsigned char *der = NULL;
	uint8_t hash[CRYPTO_HASH_LEN];
	int n = i2d_X509(cert, &der);

	if (n <= 0)
		return -1;
	crypto_sha256(der, (size_t)n, hash);
	crypto_hex(hash, sizeof(hash), hex);
	OPENSSL_free(der);
	return 0;
}

int fed_tls_peer_id(SSL *ssl, char *out, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	GENERAL_NAMES *names;
	int found = -1;

	if (cert == NULL)
		return -1;
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && found == -1; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const char *uri;
		int n;
		if (gn->type != GEN_URI)
			continue;
		uri = (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
		n = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		if (n > (int)strlen(BANK_URI) && n - strlen(BANK_URI) < len &&
		    strncmp(uri, BANK_URI, strlen(BANK_URI)) == 0 &&
		    memchr(uri, '\0', (size_t)n) == NULL) {
			snprintf(out, len, "%.*s", n - (int)strlen(BANK_URI),
			         uri + strlen(BANK_URI));
			found = 0;
		}
	}
	GENERAL_NAMES_free(names);
	return found;
}

void fed_tls_error(struct bufferevent *bev, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	unsigned long e = bufferevent_get_openssl_error(bev);
	long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	char reason[200];

	if (v != X509_V_OK) {
		snprintf(buf, len, "certificate refused: %s", X509_verify_cert_error_string(v));
		return;
	}
	if (e != 0 && ERR_GET_LIB(e) != 0) {
		ERR_error_string_n(e, reason, sizeof(reason));
		snprintf(buf, len, "TLS failed: %s", reason);
		return;
	}
	if (EVUTIL_SOCKET_ERROR() != 0) {
		snprintf(buf, len, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return;
	}
	snprintf(buf, len, "connection closed");
}
