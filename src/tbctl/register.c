/* tbctl register ...: the network's register, at the national body's
 * observer: banks added, removed, revoked and their keys rotated, what the
 * next publish would change, and publishing it. A bank's signing key and
 * certificate are read here from their files; only the public key and the
 * certificate's fingerprint are sent. */
#include "tbctl.h"

#include "crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The raw public key of a PEM Ed25519 public key file, as hex (65 bytes);
 * -1 after printing why. */
static int public_key_hex(const char *path, char *hex)
{
	char err[256];
	struct crypto_key *key = crypto_key_load(path, 0, err, sizeof(err));

	if (key == NULL) {
		fprintf(stderr, "tbctl: --signing-pub: %s\n", err);
		return -1;
	}
	crypto_hex(crypto_key_raw(key), CRYPTO_PUB_LEN, hex);
	crypto_key_free(key);
	return 0;
}

static void show_bank(const json_t *b)
{
	const json_t *k;
	size_t i;

	printf("%-20s %-8s %-28s %s\n", tbctl_str(b, "id"), tbctl_str(b, "kind"),
	       tbctl_str(b, "address"), tbctl_str(b, "name"));
	json_array_foreach(json_object_get(b, "keys"), i, k)
	{
		json_int_t until = json_integer_value(json_object_get(k, "not_after_unix"));
		printf("    key %.16s...", tbctl_str(k, "public_key"));
		if (until != 0)
			printf("  until %lld (unix)", (long long)until);
		putchar('\n');
	}
}

static void show_register(const json_t *body)
{
	const json_t *p = json_object_get(body, "published"), *b;
	size_t i;

	if (json_is_object(p))
		printf("published: serial %lld at %s by %s, next update by %s (%lld bytes)\n",
		       (long long)json_integer_value(json_object_get(p, "serial")),
		       tbctl_str(p, "published_at"), tbctl_str(p, "actor"),
		       tbctl_str(p, "next_update"),
		       (long long)json_integer_value(json_object_get(p, "bytes")));
	else
		printf("published: nothing yet (tbctl register publish)\n");
	printf("%lld changes wait for the next publish\n",
	       (long long)json_integer_value(json_object_get(body, "pending_changes")));
	json_array_foreach(json_object_get(body, "banks"), i, b) show_bank(b);
}

static void show_diff(const json_t *body)
{
	const json_t *c, *fields;
	size_t i, k;

	if (json_array_size(json_object_get(body, "changes")) == 0) {
		printf("nothing to publish: the register is as published\n");
		return;
	}
	json_array_foreach(json_object_get(body, "changes"), i, c)
	{
		printf("%-8s %s", tbctl_str(c, "change"), tbctl_str(c, "id"));
		fields = json_object_get(c, "fields");
		json_array_foreach(fields, k, c)
		    printf("%s%s", k == 0 ? " (" : ", ", json_string_value(c));
		printf("%s\n", json_array_size(fields) > 0 ? ")" : "");
	}
}

static void show_history(const json_t *body)
{
	const json_t *h;
	size_t i;

	json_array_foreach(json_object_get(body, "items"), i, h)
	    printf("%-32s %-12s %-12s %s\n", tbctl_str(h, "at"), tbctl_str(h, "action"),
	           tbctl_str(h, "bank"), tbctl_str(h, "actor"));
}

static void show_done(const json_t *body)
{
	if (json_object_get(body, "keys") != NULL)
		show_bank(body);
	else
		printf("%s: %s\n", tbctl_str(body, "id"), tbctl_str(body, "state"));
}

/* add-bank ID --address A --signing-pub FILE [--cert FILE] [--name N]
 * [--kind bank|observer] */
static int add_bank(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"address", "address"}, {"signing-pub", "signing_pub"},
	    {"cert", "cert"},       {"name", "name"},
	    {"kind", "kind"},       {NULL, NULL},
	};
	json_t *body = json_object();
	char pub[2 * CRYPTO_PUB_LEN + 1], cert[2 * CRYPTO_HASH_LEN + 1], err[256];
	const char *cert_path;
	int first, rc = TBCTL_USAGE;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1 ||
	    json_object_get(body, "signing_pub") == NULL) {
		fprintf(stderr,
		        "tbctl: register add-bank ID --address HOST:PORT --signing-pub FILE "
		        "[--cert FILE] [--name N] [--kind bank|observer]\n");
		goto done;
	}
	if (public_key_hex(json_string_value(json_object_get(body, "signing_pub")), pub) == -1)
		goto done;
	json_object_set_new(body, "signing_pub", json_string(pub));
	cert_path = json_string_value(json_object_get(body, "cert"));
	if (cert_path != NULL) {
		if (crypto_cert_sha256(cert_path, cert, err, sizeof(err)) == -1) {
			fprintf(stderr, "tbctl: --cert: %s\n", err);
			goto done;
		}
		json_object_set_new(body, "cert_sha256", json_string(cert));
		json_object_del(body, "cert");
	}
	json_object_set_new(body, "id", json_string(argv[first]));
	rc = tbctl_call(t, "POST", "/v1/register/banks", body, show_bank);
done:
	json_decref(body);
	return rc;
}

/* rotate-key ID --signing-pub FILE [--grace-days N] */
static int rotate_key(const struct tbctl *t, int argc, char **argv)
{
	static const struct tbctl_field fields[] = {
	    {"signing-pub", "signing_pub"},
	    {"grace-days", "grace_days"},
	    {NULL, NULL},
	};
	json_t *body = json_object();
	char pub[2 * CRYPTO_PUB_LEN + 1], path[160];
	int first, rc = TBCTL_USAGE;

	if (tbctl_fields(argc, argv, fields, body, &first) == -1 || first != argc - 1 ||
	    json_object_get(body, "signing_pub") == NULL) {
		fprintf(stderr,
		        "tbctl: register rotate-key ID --signing-pub FILE [--grace-days N]\n");
		goto done;
	}
	if (public_key_hex(json_string_value(json_object_get(body, "signing_pub")), pub) == -1)
		goto done;
	json_object_set_new(body, "signing_pub", json_string(pub));
	snprintf(path, sizeof(path), "/v1/register/banks/%.64s/rotate-key", argv[first]);
	rc = tbctl_call(t, "POST", path, body, show_bank);
done:
	json_decref(body);
	return rc;
}

/* publish [--next-update-days N] */
static int publish(const struct tbctl *t, int argc, char **argv)
{
	json_t *body = json_object();
	int rc = TBCTL_USAGE;
	long days;
	char *end;

	if (argc == 3 && strcmp(argv[1], "--next-update-days") == 0) {
		days = strtol(argv[2], &end, 10);
		if (*argv[2] == '\0' || *end != '\0' || days < 1 || days > 366) {
			fprintf(stderr, "tbctl: --next-update-days must be 1 to 366\n");
			goto done;
		}
		json_object_set_new(body, "next_update_days", json_integer(days));
	} else if (argc != 1) {
		fprintf(stderr, "tbctl: register publish [--next-update-days N]\n");
		goto done;
	}
	rc = tbctl_call(t, "POST", "/v1/register/publish", body, show_register);
done:
	json_decref(body);
	return rc;
}

/* init: the first register, published as serial 1. */
static int init(const struct tbctl *t)
{
	struct tbctl_reply reply;
	int exists;

	if (tbctl_http(t, "GET", "/v1/register", NULL, &reply) == -1 || reply.status >= 300)
		return tbctl_fail(&reply);
	exists = json_is_object(json_object_get(reply.body, "published"));
	json_decref(reply.body);
	if (exists) {
		fprintf(stderr, "tbctl: the register exists; change it and publish "
		                "(tbctl register show)\n");
		return TBCTL_REFUSED;
	}
	return tbctl_call(t, "POST", "/v1/register/publish", NULL, show_register);
}

int tbctl_register(const struct tbctl *t, int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	char path[160];

	if (strcmp(what, "init") == 0 && argc == 2)
		return init(t);
	if (strcmp(what, "show") == 0 && argc == 2)
		return tbctl_call(t, "GET", "/v1/register", NULL, show_register);
	if (strcmp(what, "diff") == 0 && argc == 2)
		return tbctl_call(t, "GET", "/v1/register/diff", NULL, show_diff);
	if (strcmp(what, "history") == 0 && argc == 2)
		return tbctl_call(t, "GET", "/v1/register/history", NULL, show_history);
	if (strcmp(what, "add-bank") == 0)
		return add_bank(t, argc - 1, argv + 1);
	if (strcmp(what, "rotate-key") == 0)
		return rotate_key(t, argc - 1, argv + 1);
	if (strcmp(what, "publish") == 0)
		return publish(t, argc - 1, argv + 1);
	if ((strcmp(what, "remove-bank") == 0 || strcmp(what, "revoke") == 0) && argc == 3) {
		snprintf(path, sizeof(path), "/v1/register/banks/%.64s/%s", argv[2],
		         strcmp(what, "revoke") == 0 ? "revoke" : "remove");
		return tbctl_call(t, "POST", path, NULL, show_done);
	}
	fprintf(stderr, "tbctl: register init | show | diff | history | add-bank ID ... | "
	                "remove-bank ID | revoke ID | rotate-key ID ... | publish\n");
	return TBCTL_USAGE;
}
