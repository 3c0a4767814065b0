#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static const char *good = "[bank]\n"
                          "id = colchester\n"
                          "name = Colchester Time Bank\n"
                          "data_dir = data\n"
                          "\n"
                          "[database]\n"
                          "conninfo = managed\n"
                          "pool = 8\n"
                          "\n"
                          "[admin]\n"
                          "listen = 127.0.0.1:8401\n"
                          "tokens = /etc/timebankd/tokens\n"
                          "\n"
                          "[ledger]\n"
                          "default_floor = -5h\n"
                          "community_floor = -200h\n"
                          "max_exchange = 1h30m\n"
                          "\n"
                          "[reports]\n"
                          "active_days = 30\n"
                          "\n"
                          "[directory]\n"
                          "review = no\n"
                          "\n"
                          "[referrals]\n"
                          "accept_negative = yes\n"
                          "expire_days = 14\n"
                          "\n"
                          "[intake]\n"
                          "overdue_days = 10\n"
                          "\n"
                          "[safeguarding]\n"
                          "check_required = personal-care, childcare\n";

static int has_problem(const struct config_problems *p, int line, const char *part)
{
	for (int i = 0; i < p->n; i++)
		if (p->items[i].line == line && strstr(p->items[i].msg, part) != NULL)
			return 1;
	return 0;
}

static void test_config_parses_a_good_file(void **state)
{
	struct config_problems probs;
	struct config *cfg = config_parse(good, "/etc/timebankd", &probs);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	assert_string_equal(cfg->bank_id, "colchester");
	assert_string_equal(cfg->bank_name, "Colchester Time Bank");
	assert_string_equal(cfg->data_dir, "/etc/timebankd/data");
	assert_true(cfg->db_managed);
	assert_int_equal(cfg->db_pool, 8);
	assert_string_equal(cfg->admin_host, "127.0.0.1");
	assert_int_equal(cfg->admin_port, 8401);
	assert_string_equal(cfg->token_file, "/etc/timebankd/tokens");
	assert_int_equal(cfg->default_floor, -300);
	assert_int_equal(cfg->max_exchange, 90);
	assert_int_equal(cfg->community_floor, -200 * 60);
	assert_int_equal(cfg->active_days, 30);
	assert_false(cfg->dir_review);
	assert_true(cfg->referral_accept_negative);
	assert_int_equal(cfg->referral_expire_days, 14);
	assert_int_equal(cfg->intake_overdue_days, 10);
	assert_int_equal(cfg->ncheck_required, 2);
	assert_string_equal(cfg->check_required[0], "personal-care");
	assert_string_equal(cfg->check_required[1], "childcare");
	config_free(cfg);
}

static void test_config_admin_off_loopback_needs_a_tls_proxy(void **state)
{
	struct config_problems probs;
	const char *base = "[bank]\nid = westminster\nname = W\n"
	                   "[database]\nconninfo = host=/tmp dbname=tb\n"
	                   "[admin]\nlisten = 192.0.2.10:8401\ntokens = t\n";
	char text[512];
	struct config *cfg = config_parse(base, NULL, &probs);

	(void)state;
	assert_null(cfg);
	assert_true(has_problem(&probs, 0, "not a loopback address"));
	/* Even behind a proxy: the proxy is on this machine. */
	snprintf(text, sizeof(text), "%sbehind_proxy = yes\n", base);
	assert_null(config_parse(text, NULL, &probs));
	cfg = config_parse("[bank]\nid = westminster\nname = W\n"
	                   "[database]\nconninfo = host=/tmp dbname=tb\n"
	                   "[admin]\nlisten = [::1]:8401\ntokens = t\nbehind_proxy = yes\n",
	                   NULL, &probs);
	assert_non_null(cfg);
	assert_true(cfg->admin_behind_proxy);
	config_free(cfg);
}

static void test_config_refuses_a_category_that_is_not_one(void **state)
{
	struct config_problems probs;
	struct config *cfg = config_parse("[bank]\nid = westminster\nname = W\n"
	                                  "[database]\nconninfo = managed\n"
	                                  "[admin]\nlisten = 127.0.0.1:0\ntokens = t\n"
	                                  "[safeguarding]\ncheck_required = Personal Care!\n",
	                                  NULL, &probs);

	(void)state;
	assert_null(cfg);
	assert_true(has_problem(&probs, 0, "check_required in [safeguarding]"));
}

static void test_config_defaults_floor_and_maximum(void **state)
{
	struct config_problems probs;
	struct config *cfg = config_parse("[bank]\nid = westminster\nname = W\n"
	                                  "[database]\nconninfo = host=/tmp dbname=tb\n"
	                                  "[admin]\nlisten = 127.0.0.1:0\ntokens = t\n",
	                                  NULL, &probs);

	(void)state;
	assert_non_null(cfg);
	assert_false(cfg->db_managed);
	assert_string_equal(cfg->database, "host=/tmp dbname=tb");
	assert_int_equal(cfg->default_floor, -600);
	assert_int_equal(cfg->max_exchange, 24 * 60);
	assert_int_equal(cfg->db_pool, 4);
	assert_true(cfg->dir_review);                /* shared items wait for a broker */
	assert_false(cfg->referral_accept_negative); /* no member arrives owing unless asked */
	assert_int_equal(cfg->referral_expire_days, 30);
	assert_int_equal(cfg->intake_overdue_days, 14);
	assert_int_equal(cfg->ncheck_required, 0); /* no category needs a check unless named */
	config_free(cfg);
}

static void test_config_reports_each_problem_with_its_line(void **state)
{
	struct config_problems probs;
	struct config *cfg = config_parse("[bank]\n"              /* 1 */
	                                  "id = Colchester!\n"    /* 2 */
	                                  "name = C\n"            /* 3 */
	                                  "colour = blue\n"       /* 4 */
	                                  "[database]\n"          /* 5 */
	                                  "conninfo = managed\n"  /* 6 */
	                                  "pool = 0\n"            /* 7 */
	                                  "[admin]\n"             /* 8 */
	                                  "listen = nowhere\n"    /* 9 */
	                                  "[ledger]\n"            /* 10 */
	                                  "default_floor = 5h\n"  /* 11 */
	                                  "max_exchange = lots\n" /* 12 */
	                                  "name = again\n"        /* 13 */
	                                  "[directory]\n"         /* 14 */
	                                  "review = maybe\n",     /* 15 */
	                                  NULL, &probs);

	(void)state;
	assert_null(cfg);
	assert_true(has_problem(&probs, 2, "bank id"));
	assert_true(has_problem(&probs, 4, "unknown key 'colour'"));
	assert_true(has_problem(&probs, 7, "pool"));
	assert_true(has_problem(&probs, 9, "host:port"));
	assert_true(has_problem(&probs, 11, "default_floor"));
	assert_true(has_problem(&probs, 12, "max_exchange"));
	assert_true(has_problem(&probs, 13, "unknown key 'name' in [ledger]"));
	assert_true(has_problem(&probs, 15, "review must be yes or no"));
	assert_true(has_problem(&probs, 0, "missing 'tokens'"));
	assert_true(has_problem(&probs, 0, "data_dir"));
}

static void test_config_reports_a_key_set_twice(void **state)
{
	struct config_problems probs;
	struct config *cfg = config_parse("[bank]\nid = ab\nid = cd\n", NULL, &probs);

	(void)state;
	assert_null(cfg);
	assert_true(has_problem(&probs, 3, "set twice (first on line 2)"));
}

static void test_config_reports_a_syntax_error_line(void **state)
{
	struct config_problems probs;
	struct config *cfg = config_parse("[bank]\nid = ab\nthis is not ini\n", NULL, &probs);

	(void)state;
	assert_null(cfg);
	assert_true(has_problem(&probs, 3, "syntax error"));
}

static void test_config_load_reports_a_missing_file(void **state)
{
	struct config_problems probs;

	(void)state;
	assert_null(config_load("/nonexistent/timebankd.conf", &probs));
	assert_int_equal(probs.n, 1);
	assert_true(has_problem(&probs, 0, "cannot open"));
}

static void test_config_reads_federation_and_peers(void **state)
{
	struct config_problems probs;
	struct config *cfg = config_parse("[bank]\nid = colchester\nname = C\n"
	                                  "[database]\nconninfo = host=/tmp\n"
	                                  "[admin]\nlisten = 127.0.0.1:1\ntokens = t\n"
	                                  "[federation]\nlisten = 127.0.0.1:9401\nca = ca.crt\n"
	                                  "crl = crl.pem\ncert = c.crt\nkey = c.key\n"
	                                  "signing_key = c.sign.key\n"
	                                  "[peer westminster]\naddress = 10.0.0.2:9402\n"
	                                  "signing_key = w.sign.pub\nexposure_limit = 50h\n"
	                                  "[peer national]\naddress = 10.0.0.9:9404\n"
	                                  "signing_key = n.sign.pub\nkind = observer\n",
	                                  "/etc/tb", &probs);
	const struct config_peer *w;

	(void)state;
	assert_non_null(cfg);
	assert_true(cfg->fed_enabled);
	assert_string_equal(cfg->fed_role, "bank");
	assert_int_equal(cfg->fed_port, 9401);
	assert_string_equal(cfg->fed_crl, "/etc/tb/crl.pem");
	assert_int_equal(cfg->npeers, 2);
	w = config_peer(cfg, "westminster");
	assert_non_null(w);
	assert_string_equal(w->host, "10.0.0.2");
	assert_int_equal(w->port, 9402);
	assert_string_equal(w->signing_key, "/etc/tb/w.sign.pub");
	assert_int_equal(w->exposure_limit, 50 * 60);
	assert_string_equal(config_peer(cfg, "national")->kind, "observer");
	assert_null(config_peer(cfg, "cheshire"));
	config_free(cfg);
}

static void test_config_reports_federation_problems(void **state)
{
	struct config_problems probs;
	struct config *cfg = config_parse("[bank]\nid = colchester\nname = C\n"          /* 1-3 */
	                                  "[database]\nconninfo = host=/tmp\n"           /* 4-5 */
	                                  "[admin]\nlisten = 127.0.0.1:1\ntokens = t\n"  /* 6-8 */
	                                  "[federation]\nlisten = 127.0.0.1:9401\n"      /* 9-10 */
	                                  "role = referee\n"                             /* 11 */
	                                  "[peer colchester]\naddress = x\n"             /* 12-13 */
	                                  "[peer Bad!]\naddress = 1.2.3.4:5\n"           /* 14-15 */
	                                  "[peer cheshire]\nkind = bank\nflavour = x\n", /* 16-18 */
	                                  NULL, &probs);

	(void)state;
	assert_null(cfg);
	assert_true(has_problem(&probs, 0, "missing 'ca' in [federation]"));
	assert_true(has_problem(&probs, 0, "role in [federation]"));
	assert_true(has_problem(&probs, 13, "address must be host:port"));
	assert_true(has_problem(&probs, 13, "cannot be its own peer"));
	assert_true(has_problem(&probs, 15, "peer id 'Bad!'"));
	assert_true(has_problem(&probs, 17, "[peer cheshire] needs an address"));
	assert_true(has_problem(&probs, 18, "unknown key 'flavour' in [peer cheshire]"));
}

static const char *fed_head = "[bank]\nid = dorset\nname = D\n"
                              "[database]\nconninfo = host=/tmp\n"
                              "[admin]\nlisten = 127.0.0.1:1\ntokens = t\n"
                              "[federation]\nlisten = 127.0.0.1:9405\nca = ca.crt\n"
                              "crl = crl.pem\ncert = d.crt\nkey = d.key\n"
                              "signing_key = d.sign.key\n";

static struct config *parse_with(const char *more, struct config_problems *probs)
{
	char text[2048];

	snprintf(text, sizeof(text), "%s%s", fed_head, more);
	return config_parse(text, NULL, probs);
}

static void test_config_reads_the_registers_peers_limits(void **state)
{
	struct config_problems probs;
	struct config *cfg = parse_with("register_key = r.pub\nexposure_limit = 20h\n"
	                                "exchange_with = colchester, westminster\n"
	                                "[peer cheshire]\nexposure_limit = 5h\n",
	                                &probs);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->fed_exposure_limit, 20 * 60);
	assert_int_equal(cfg->nexchange_with, 2);
	assert_string_equal(cfg->exchange_with[1], "westminster");
	assert_true(config_peer(cfg, "cheshire")->limit_only);
	assert_int_equal(config_peer(cfg, "cheshire")->exposure_limit, 5 * 60);
	config_free(cfg);

	cfg = parse_with("register_key = r.pub\nexchange_with = all\n", &probs);
	assert_non_null(cfg);
	assert_null(cfg->exchange_with);
	assert_int_equal(cfg->fed_exposure_limit, 100 * 60);
	config_free(cfg);
}

static void test_config_refuses_bad_register_settings(void **state)
{
	struct config_problems probs;

	(void)state;
	/* A limit alone names no peer without the register. */
	assert_null(parse_with("[peer cheshire]\nexposure_limit = 5h\n", &probs));
	assert_true(has_problem(&probs, 17, "[peer cheshire] needs an address"));
	assert_null(parse_with("register_key = r.pub\nexchange_with = Bad!\n", &probs));
	assert_true(has_problem(&probs, 0, "exchange_with in [federation] must be all"));
	assert_null(parse_with("register_key = r.pub\nexchange_with = ,\n", &probs));
	assert_true(has_problem(&probs, 0, "names no bank"));
	assert_null(parse_with("register_key = r.pub\nexposure_limit = lots\n", &probs));
	assert_true(has_problem(&probs, 17, "exposure_limit must be hours"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_parses_a_good_file),
	    cmocka_unit_test(test_config_refuses_a_category_that_is_not_one),
	    cmocka_unit_test(test_config_admin_off_loopback_needs_a_tls_proxy),
	    cmocka_unit_test(test_config_defaults_floor_and_maximum),
	    cmocka_unit_test(test_config_reports_each_problem_with_its_line),
	    cmocka_unit_test(test_config_reports_a_key_set_twice),
	    cmocka_unit_test(test_config_reports_a_syntax_error_line),
	    cmocka_unit_test(test_config_load_reports_a_missing_file),
	    cmocka_unit_test(test_config_reads_federation_and_peers),
	    cmocka_unit_test(test_config_reports_federation_problems),
	    cmocka_unit_test(test_config_reads_the_registers_peers_limits),
	    cmocka_unit_test(test_config_refuses_bad_register_settings),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
