/* dir_text: what a shared directory item may say (no e-mail address, phone
 * number or full postcode), and the normal forms of its area (a postcode
 * district such as CO1) and availability ("tuesday morning, weekends").
 * Pure: no I/O.
 * Layer: core (src/core/); includes core headers only. */
#ifndef TB_DIR_TEXT_H
#define TB_DIR_TEXT_H

#include <stddef.h>

enum dir_detail { DIR_CLEAN, DIR_EMAIL, DIR_PHONE, DIR_POSTCODE };

/* The first personal detail found in text, copied into what[len]; or
 * DIR_CLEAN. */
enum dir_detail dir_personal_detail(const char *text, char *what, size_t len)
    __attribute__((warn_unused_result));
/* "an e-mail address", "a phone number", "a full postcode". */
const char *dir_detail_name(enum dir_detail d);

/* A postcode district ("co1", "SW1A") in upper case into out[len]; -1 when
 * it is not one (a full postcode is not). */
int dir_area(const char *in, char *out, size_t len) __attribute__((warn_unused_result));

#define DIR_AVAILABILITY_MAX 120
/* Availability as written ("Tue am, thursdays pm; weekends") into its
 * normal form ("tuesday morning, thursday afternoon, weekends") in out[len];
 * -1 with the word not understood in bad[badlen]. */
int dir_availability(const char *in, char *out, size_t len, char *bad, size_t badlen)
    __attribute__((warn_unused_result));

#endif
