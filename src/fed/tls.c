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

time_t fed_tls_crl_next_update(const char *path)
{
	FILE *f = fopen(path, "r");
	X509_CRL *crl = f != NULL ? PEM_read_X509_CRL(f, NULL, NULL, NULL) : NULL;
	const ASN1_TIME *next = crl != NULL ? X509_CRL_get0_nextUpdate(crl) : NULL;
	struct tm tm;
	time_t t = 0;

	if (next != NULL && ASN1_TIME_to_tm(next, &tm) == 1)
		t = timegm(&tm);
	X509_CRL_free(crl);
	if (f != NULL)
		fclose(f);
	return t;
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

int fed_tls_reload_crl(SSL_CTX *ctx, const char *crl_path)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE *old = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(old);

	/* A fresh store: the CA certificates of the old one and the new CRL. */
	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		if (cert != NULL)
			X509_STORE_add_cert(store, cert);
	}
	if (load_crl(store, crl_path) == -1) {
		X509_STORE_free(store);
		return -1;
	}
	SSL_CTX_set_cert_store(ctx, store);
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
