/* tbctl: the coordinator's command line. Finds timebankd from --url/--token
 * or TBCTL_URL/TBCTL_TOKEN; --json anywhere prints the API's JSON. */
#include "tbctl.h"

#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fputs(
	    "usage: tbctl [--url URL] [--token TOKEN] [--json] COMMAND ...\n"
	    "\n"
	    "members and organisations:\n"
	    "  member add --name NAME [--number N] [--email E] [--phone P] [--address A]\n"
	    "             [--skills S] [--needs N] [--availability A] [--notes N]\n"
	    "             [--floor HOURS] [--joined YYYY-MM-DD] [--referred-by ORG]\n"
	    "             [--district CO2]\n"
	    "  member show NUMBER\n"
	    "  member list [--status S] [--kind person|organisation] [--search TEXT]\n"
	    "              [--limit N] [--cursor C] [--all]\n"
	    "  member update NUMBER [--name ...] [--status S] [--floor HOURS|default] ...\n"
	    "  member suspend NUMBER | member activate NUMBER\n"
	    "  member export NUMBER\n"
	    "  member erase NUMBER [--force --reason R]\n"
	    "  member update NUMBER --needs-care yes|no   extra care (confidential)\n"
	    "safeguarding:\n"
	    "  member check-add NUMBER --kind dbs-basic|dbs-standard|dbs-enhanced|\n"
	    "                   dbs-enhanced-barred|pvg|other --reference R\n"
	    "                   --checked YYYY-MM-DD --expires YYYY-MM-DD\n"
	    "  member checks NUMBER | member checks --expiring 30d\n"
	    "  care review                exchanges of members who need extra care, to review\n"
	    "  care reviewed NUMBER [--up-to EXCHANGE]   a broker has reviewed them\n"
	    "  exchange record ... --override REASON   (coordinator) help that needs a check\n"
	    "                             the helper does not hold; contact accept too\n"
	    "  todo [--near HOURS]        what is waiting: referrals, claims, contacts, items,\n"
	    "                             floors, checks, members needing care, peers\n"
	    "people referred in by GP practices and services:\n"
	    "  intake add --org N --name NAME [--phone P] [--email E] [--address A]\n"
	    "             --reason isolation[,low-mood,...] [--referrer \"Dr Byng\"]\n"
	    "             [--referrer-role GP] [--referrer-contact C] [--notes N]\n"
	    "             [--consent-contact] [--consent-outcomes] [--key KEY]\n"
	    "             (reasons: isolation, low-mood, long-term-condition, carer,\n"
	    "              bereavement, recently-discharged, other)\n"
	    "  intake list [--state S] [--overdue] [--org N] [--all] | intake show ID\n"
	    "  intake contacted|unreachable|withdrawn ID | intake joined ID [--member N]\n"
	    "  intake declined ID --reason R | intake letter ID | intake erase ID\n"
	    "  report intake [--from D --to D | --month M] [--org N] [--internal]\n"
	    "                [--format text|csv|json]   counts of 1-7 suppressed unless "
	    "--internal\n"
	    "  org add --name NAME [--org-kind gp_practice|social_services|mental_health|\n"
	    "                       housing|other] [...as member add]   org list [--all]\n"
	    "exchanges:\n"
	    "  exchange record --payer N --earner N[:HOURS] [--earner ...] --hours H\n"
	    "                  --category C [--description D] [--date YYYY-MM-DD] [--key KEY]\n"
	    "                  (--earner BANK:N: a member of another bank)\n"
	    "  exchange reverse ID --reason R [--key KEY]\n"
	    "  exchange show ID\n"
	    "  exchange list [--member N] [--limit N] [--cursor C] [--all]\n"
	    "  exchange claim --earner N --payer BANK:N --hours H --category C\n"
	    "                 [--description D] [--message M] [--date D] [--key KEY]\n"
	    "  claim list [--outgoing] [--state open|all] [--limit N] [--cursor C] [--all]\n"
	    "  claim show ID | claim approve ID | claim decline ID --reason R\n"
	    "  grant --member N --hours H [--reason R] [--category C] [--date D] [--key KEY]\n"
	    "referrals of members between banks (a move carries the balance):\n"
	    "  referral send --member N --to BANK --kind move|introduce [--reason R]\n"
	    "                --share FIELDS --consent HOW [--consent-notes] [--key KEY]\n"
	    "                (FIELDS: name and any of email, phone, address, contact, skills,\n"
	    "                 needs, availability, district, notes, record; HOW: \"in person\",\n"
	    "                 \"by phone\" or \"in writing\"; notes need --consent-notes)\n"
	    "  referral list [--outgoing] [--state open|all] [--all] | referral show ID\n"
	    "  referral accept ID [--number N] [--message M] | referral decline ID --reason R\n"
	    "  referral withdraw ID       the member withdrew consent (at the referring bank)\n"
	    "offers, requests and the shared directory:\n"
	    "  offer add --member N --category C --text T [--area CO1] [--availability A]\n"
	    "            [--visibility bank|federation] [--expires YYYY-MM-DD]\n"
	    "  offer list [--member N] [--state active|waiting|all] | offer show ID\n"
	    "  offer update ID [--text ...] [the options of add] | offer withdraw ID\n"
	    "  offer approve ID           let a shared offer leave the bank ([directory] review)\n"
	    "  request add|list|show|update|approve|withdraw ... (as offer)\n"
	    "  directory search [TEXT] [--category C] [--area PREFIX] [--bank B]\n"
	    "                   [--kind offer|request] [--limit N] [--cursor C] [--all]\n"
	    "  directory categories\n"
	    "  match REQUEST_ID           offers that could meet a member's request\n"
	    "  contact request HANDLE --for MEMBER --message M [--bank B]\n"
	    "  contact list [--outgoing] [--state open|all] | contact show ID\n"
	    "  contact accept ID --message M | contact decline ID [--message M]\n"
	    "  exchange record --contact ID --hours H [--category C] [--description D]\n"
	    "accounts and reports:\n"
	    "  balance NUMBER\n"
	    "  history NUMBER [--limit N] [--cursor C] [--all]\n"
	    "  statement NUMBER (--month YYYY-MM | --from D --to D) [--format text|csv|json]\n"
	    "  statements --month YYYY-MM --out DIR [--format text|csv|json]\n"
	    "  report categories|new-members|referrals [--month M | --from D --to D]\n"
	    "  report active [--days N] [--as-of D]          (all with [--format text|csv|json])\n"
	    "  report network [--month M] [--send]   the month's report to the national body, as\n"
	    "                             sent (with each revision and its answer); --send sends "
	    "it now\n"
	    "  audit [--federation]\n"
	    "federation:\n"
	    "  peers                      each peer's link, channel and checkpoint\n"
	    "  peers keys                 each peer's signing keys, pinned and learned\n"
	    "  peers forget-key PEER KEY_ID   stop accepting a key learned in a rotation\n"
	    "  backup status              the managed cluster's backups: last base backup, last\n"
	    "                             WAL archived, size, retention, failures\n"
	    "  federation test PEER [--count N] [--text T]\n"
	    "                             send test messages over the channel to PEER\n"
	    "the national body (at the observer; all with [--format text|csv|json]):\n"
	    "  network summary [--month M | --from M --to M]   network totals, a row a month\n"
	    "  network banks              each bank's link, last report and this month\n"
	    "  network categories|areas [--from M --to M]   hours across the network\n"
	    "  network books [--month M]  each pair of banks: agree, in flight, diverged\n"
	    "  network report BANK [--month M]   one bank's report as received, every revision\n"
	    "the network's register (at the national body's observer):\n"
	    "  register init | show | diff | history\n"
	    "  register add-bank ID --address HOST:PORT --signing-pub FILE [--cert FILE]\n"
	    "                    [--name N] [--kind bank|observer]\n"
	    "  register remove-bank ID | revoke ID\n"
	    "  register rotate-key ID --signing-pub FILE [--grace-days N]\n"
	    "  register publish [--next-update-days N]   sign it as the next serial\n"
	    "tokens:\n"
	    "  token create --name NAME --role coordinator|broker|viewer\n"
	    "  token create --name NAME --role referrer --org N   a GP system's own token\n"
	    "accounts for people (the console):\n"
	    "  user add --name NAME --role coordinator|broker|viewer|referrer [--org N]\n"
	    "                             prints a one-time setup code\n"
	    "  user setup NAME --code CODE   sets the password, read from standard input\n"
	    "  user list | user reset NAME | user remove NAME\n"
	    "  token list\n"
	    "  token revoke NAME\n"
	    "\n"
	    "Hours are written 2, 1.5, 1h30m or 90m. The environment variables TBCTL_URL\n"
	    "and TBCTL_TOKEN stand in for --url and --token. Exit status: 0 done, 1 refused\n"
	    "(or the audit failed), 2 usage, 3 timebankd or its database unreachable.\n",
	    out);
}

/* Takes --url, --token and --json from anywhere in argv; returns the new argc. */
static int take_globals(struct tbctl *t, int argc, char **argv)
{
	int out = 1;

	for (int i = 1; i < argc; i++) {
		const char **dst = NULL;
		size_t n = 0;

		if (strcmp(argv[i], "--json") == 0) {
			t->json = 1;
			continue;
		}
		if (strncmp(argv[i], "--url", 5) == 0)
			dst = &t->url, n = 5;
		else if (strncmp(argv[i], "--token", 7) == 0)
			dst = &t->token, n = 7;
		if (dst != NULL && argv[i][n] == '=') {
			*dst = argv[i] + n + 1;
			continue;
		}
		if (dst != NULL && argv[i][n] == '\0' && i + 1 < argc) {
			*dst = argv[++i];
			continue;
		}
		argv[out++] = argv[i];
	}
	argv[out] = NULL;
	return out;
}

int main(int argc, char **argv)
{
	struct tbctl t = {getenv("TBCTL_URL"), getenv("TBCTL_TOKEN"), 0};
	static const struct {
		const char *name;
		int (*run)(const struct tbctl *, int, char **);
	} commands[] = {
	    {"member", tbctl_member},       {"exchange", tbctl_exchange},
	    {"claim", tbctl_claim},         {"referral", tbctl_referral},
	    {"balance", tbctl_balance},     {"offer", tbctl_offer},
	    {"request", tbctl_request},     {"directory", tbctl_directory},
	    {"match", tbctl_match},         {"contact", tbctl_contact},
	    {"history", tbctl_history},     {"audit", tbctl_audit},
	    {"grant", tbctl_grant},         {"org", tbctl_org},
	    {"statement", tbctl_statement}, {"statements", tbctl_statements},
	    {"report", tbctl_report},       {"peers", tbctl_peers},
	    {"backup", tbctl_backup},       {"federation", tbctl_federation},
	    {"network", tbctl_network},     {"register", tbctl_register},
	    {"token", tbctl_token},         {"intake", tbctl_intake},
	    {"care", tbctl_care},           {"todo", tbctl_todo},
	    {"user", tbctl_user},
	};

	mem_install();

	argc = take_globals(&t, argc, argv);
	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? TBCTL_USAGE : TBCTL_OK;
	}
	if (t.url == NULL)
		t.url = "http://127.0.0.1:8401";
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(&t, argc - 1, argv + 1);
	fprintf(stderr, "tbctl: unknown command '%s' (tbctl help lists them)\n", argv[1]);
	return TBCTL_USAGE;
}
