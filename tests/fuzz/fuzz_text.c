/* libFuzzer target: the checks every text from a person or a peer passes,
 * on arbitrary bytes: the personal-detail check, areas and availability,
 * hours, and each API request's validation with the input as its JSON
 * body (and as the value of each text field). A crash, a leak, or an
 * accepted text with a control character fails it. */
#include "dir_text.h"
#include "hours.h"
#include "req.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef json_t *(*validator)(const json_t *body, struct req_error *err);

static json_t *v_member(const json_t *b, struct req_error *e) { return req_member(b, 0, e); }
static json_t *v_member_update(const json_t *b, struct req_error *e) { return req_member(b, 1, e); }
static json_t *v_exchange(const json_t *b, struct req_error *e) { return req_exchange(b, 1440, e); }
static json_t *v_claim(const json_t *b, struct req_error *e) { return req_claim(b, 1440, e); }
static json_t *v_group(const json_t *b, struct req_error *e) { return req_group(b, 1440, e); }
static json_t *v_grant(const json_t *b, struct req_error *e) { return req_grant(b, 1440, e); }
static json_t *v_item(const json_t *b, struct req_error *e) { return req_dir_item(b, 0, e); }
static json_t *v_answer(const json_t *b, struct req_error *e) { return req_contact_answer(b, 1, e); }

static const validator validators[] = {v_member, v_member_update, v_exchange, v_claim,
                                       v_group,  v_grant,         req_reverse, v_item,
                                       req_contact, v_answer,     req_erase,   req_dir_approve};

/* No string that passed a check holds a control character but a line
 * break or a tab. */
static void no_controls(const json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_string(j)) {
		const unsigned char *s = (const unsigned char *)json_string_value(j);
		for (size_t k = 0; k < json_string_length(j); k++)
			if ((s[k] < 0x20 && s[k] != '\n' && s[k] != '\t') || s[k] == 0x7f ||
			    (s[k] == 0xc2 && k + 1 < json_string_length(j) && s[k + 1] >= 0x80 &&
			     s[k + 1] <= 0x9f))
				abort();
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) no_controls(v);
	} else if (json_is_object(j)) {
		json_object_foreach((json_t *)j, key, v) no_controls(v);
	}
}

static void check_all(const json_t *body)
{
	struct req_error err;

	for (size_t i = 0; i < sizeof(validators) / sizeof(validators[0]); i++) {
		json_t *out = validators[i](body, &err);
		if (out != NULL)
			no_controls(out);
		json_decref(out);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), what[128], out[512], bad[128];
	static const char *const fields[] = {"name", "address", "notes", "description", "text",
	                                     "message", "category", "availability", "area",
	                                     "hours", "reason"};
	json_t *body;
	int64_t minutes;

	memcpy(text, data, size);
	text[size] = '\0';
	(void)dir_personal_detail(text, what, sizeof(what));
	(void)dir_area(text, out, sizeof(out));
	(void)dir_availability(text, out, sizeof(out), bad, sizeof(bad));
	(void)hours_parse(text, &minutes);
	(void)req_valid_date(text);
	body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (body != NULL) {
		check_all(body);
		json_decref(body);
	}
	/* The bytes as each text field of an otherwise good request (when
	 * they are UTF-8, as a parsed body's strings always are). */
	{
		json_t *s = json_stringn(text, size);
		for (size_t f = 0; s != NULL && f < sizeof(fields) / sizeof(fields[0]); f++) {
			body = json_pack("{sIsIsssO}", "payer", (json_int_t)1, "earner", (json_int_t)2,
			                 "category", "lifts", fields[f], s);
			json_object_set_new(body, "member", json_integer(1));
			json_object_set_new(body, "kind", json_string("offer"));
			check_all(body);
			json_decref(body);
		}
		json_decref(s);
	}
	free(text);
	return 0;
}
