# timebankd: a plain GNU Makefile. `make` builds build/timebankd and
# build/tbctl; `make check` runs the unit and integration tests, against a
# test build with failpoints (FAILPOINTS=1, in build/test/), and checks that
# the build that is installed has none, and last builds the Debian package
# and checks it (check-deb); `make SAN=address,undefined check` does the
# same under sanitizers (in build/san/ and build/san/test/).

CC ?= cc
PKGS := libevent libevent_openssl openssl libpq libprotobuf-c jansson inih libutf8proc
TEST_PKGS := cmocka
PG_BINDIR := $(shell pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)

ifdef SAN
BUILD_ROOT := build/san
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD_ROOT := build
SANFLAGS :=
endif
# A test build has a directory of its own, so that its objects are never
# mixed with the installed build's.
BUILD ?= $(BUILD_ROOT)$(if $(FAILPOINTS),/test)
# Failpoints (include/failpoint.h) exist only in test builds.
FAILPOINT_FLAGS := $(if $(FAILPOINTS),-DTB_FAILPOINTS)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) $(FAILPOINT_FLAGS) -Iinclude \
	-I$(BUILD)/gen \
	-DPG_BINDIR='"$(PG_BINDIR)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP
LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDFLAGS_ALL := $(LDFLAGS) $(SANFLAGS)

PROTO_C := $(BUILD)/gen/federation.pb-c.c $(BUILD)/gen/report.pb-c.c $(BUILD)/gen/register.pb-c.c
# The schema: migrations in order of their numbers, then the rules, in this
# order (a file's triggers may use functions of the files before it).
SQL_MIGRATIONS := $(sort $(wildcard src/sql/migrations/*.sql))
SQL_SOURCES := $(addprefix src/sql/,ledger.sql members.sql exchanges.sql channel.sql \
	cross_bank.sql xb_payer.sql xb_earner.sql recovery.sql broker_requests.sql directory.sql erasure.sql referrals.sql reports.sql intake.sql \
	safeguarding.sql network.sql register.sql audit.sql)

# The C tree in layers (each header says what it may include; make layers
# checks it, tests/layers.py): src/core is pure (no socket, no database), src/io reaches
# the outside (the database, HTTP, the managed cluster), and src/api and
# src/fed are the daemon's two halves, which know nothing of each other.
# daemon/main.c wires them. src/tbctl is the command-line client.
CORE := $(addprefix src/core/,mem.c hours.c config.c log.c req.c req_intake.c dir_text.c auth.c users.c crypto.c \
	frame.c envelope.c) src/io/http.c src/io/gate.c
DAEMON_SRC := daemon/main.c src/core/failpoint.c $(addprefix src/io/,db.c pgm.c schema.c) \
	$(wildcard src/api/*.c) $(wildcard src/fed/*.c)
TBCTL_SRC := $(wildcard src/tbctl/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJ := $(call obj,$(CORE)) $(BUILD)/obj/gen/federation.pb-c.o $(BUILD)/obj/gen/report.pb-c.o \
	$(BUILD)/obj/gen/register.pb-c.o
GEN_OBJ := $(BUILD)/obj/gen/schema_sql.o $(BUILD)/obj/gen/console_files.o
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
TBCTL_OBJ := $(call obj,$(TBCTL_SRC))

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: man deb check-deb all check layers sql-shape sql-test no-failpoints unit integration deps demo demo-up demo-down bench bench-network profile fuzz format install clean
all: $(BUILD)/timebankd $(BUILD)/tbctl

deps:
	@deploy/install-deps --quiet

$(BUILD)/timebankd: $(DAEMON_OBJ) $(CORE_OBJ) $(GEN_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/tbctl: $(TBCTL_OBJ) $(CORE_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/obj/%.o: %.c $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(PROTO_C) &: proto/federation.proto proto/report.proto proto/register.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $^

$(BUILD)/gen/schema_sql.c: $(SQL_MIGRATIONS) $(SQL_SOURCES) src/sql/embed.sh Makefile
	@mkdir -p $(BUILD)/gen
	sh src/sql/embed.sh $(SQL_MIGRATIONS) -- $(SQL_SOURCES) > $@.tmp && mv $@.tmp $@

# The console's pages, the API's OpenAPI document, and Chart.js from
# Debian's libjs-chart.js, shipped inside the daemon as the SQL is.
CHART_JS := /usr/share/javascript/chart.js/chart.min.js
WEB_FILES := $(addprefix src/web/,console.html console.css console.js openapi.json) $(CHART_JS)
$(BUILD)/gen/console_files.c: $(WEB_FILES) src/web/embed.sh
	@mkdir -p $(BUILD)/gen
	sh src/web/embed.sh $(WEB_FILES) > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags $(TEST_PKGS)) -o $@ $^ $(LIBS) \
		$(shell pkg-config --libs $(TEST_PKGS))

unit: $(UNIT_TESTS)
	@fail=0; for t in $(UNIT_TESTS); do $$t || fail=1; done; exit $$fail

# Two workers, each with its own PostgreSQL cluster and its own share of
# ports, each taking whole files (tests/integration/tbtest.py).
integration: all
	TB_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		-n $(TEST_WORKERS) --dist loadfile tests/integration
TEST_WORKERS ?= 2

# The shape of src/sql: each function, view and trigger defined once, in the
# rules; migrations hold only tables and data.
sql-shape:
	/usr/bin/python3 tests/sql/shape.py $(SQL_SOURCES)

# The C tree's layers: what each file may include, and no circles.
layers:
	/usr/bin/python3 tests/layers.py

# The rules, the audit and the reports tested inside the database (pgTAP),
# in a throwaway cluster: tests/sql/test_*.sql.
sql-test:
	/usr/bin/python3 tests/sql/run.py --migrations $(SQL_MIGRATIONS) --sources $(SQL_SOURCES)

# The build that is installed carries no failpoint.
no-failpoints: all
	@if grep -q TIMEBANKD_FAILPOINT $(BUILD)/timebankd; then \
		echo "$(BUILD)/timebankd has failpoints; they belong in test builds only"; exit 1; fi

check: deps
	$(MAKE) layers sql-shape sql-test no-failpoints
	$(MAKE) FAILPOINTS=1 all unit
	$(MAKE) FAILPOINTS=1 integration
	$(MAKE) check-deb

# libFuzzer targets (clang), each run for a bounded time; a crash or a leak
# fails it: framing and envelope opening, the admin API's request heads,
# the channel from a verified envelope to its database calls (stubbed), and
# the text checks.
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(addprefix src/core/,mem.c log.c crypto.c frame.c envelope.c)
FUZZ_CC := clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Iinclude
FUZZ_LIBS = $(shell pkg-config --libs openssl jansson libprotobuf-c libevent libevent_openssl \
	libpq 2>/dev/null || echo -lpq) -linih -lutf8proc
fuzz: deps $(PROTO_C)
	@mkdir -p build/fuzz/corpus build/fuzz/corpus_http build/fuzz/corpus_channel \
		build/fuzz/corpus_text
	$(FUZZ_CC) -I$(BUILD)/gen $(shell pkg-config --cflags jansson libprotobuf-c) \
		-o build/fuzz/fuzz_envelope tests/fuzz/fuzz_envelope.c $(FUZZ_SRC) $(PROTO_C) \
		$(FUZZ_LIBS)
	$(FUZZ_CC) $(shell pkg-config --cflags libevent libprotobuf-c) -o build/fuzz/fuzz_http \
		tests/fuzz/fuzz_http.c src/io/http.c src/io/gate.c src/core/mem.c src/core/log.c \
		$(FUZZ_LIBS)
	$(FUZZ_CC) -I$(BUILD)/gen -I/usr/include/postgresql \
		$(shell pkg-config --cflags jansson libprotobuf-c libevent) \
		-o build/fuzz/fuzz_channel tests/fuzz/fuzz_channel.c $(wildcard src/fed/*.c) \
		src/io/gate.c src/core/dir_text.c src/core/req.c src/core/hours.c $(FUZZ_SRC) \
		$(PROTO_C) $(FUZZ_LIBS)
	$(FUZZ_CC) -I$(BUILD)/gen $(shell pkg-config --cflags jansson) -o build/fuzz/fuzz_text \
		tests/fuzz/fuzz_text.c $(addprefix src/core/,dir_text.c req.c hours.c mem.c log.c) \
		$(FUZZ_LIBS)
	build/fuzz/fuzz_envelope -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-print_final_stats=1 build/fuzz/corpus
	build/fuzz/fuzz_http -max_total_time=$(FUZZ_SECONDS) -max_len=20000 \
		-print_final_stats=1 build/fuzz/corpus_http
	/usr/bin/python3 tests/fuzz/seed_channel.py build/fuzz/corpus_channel
	build/fuzz/fuzz_channel -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-print_final_stats=1 build/fuzz/corpus_channel
	build/fuzz/fuzz_text -max_total_time=$(FUZZ_SECONDS) -max_len=2048 \
		-print_final_stats=1 build/fuzz/corpus_text

$(BUILD)/tbload: tests/bench/tbload.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBS)

bench: deps all $(BUILD)/tbload
	TB_BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/bench.py

# The federation at 5, 10, 20 and 30 banks (BENCH_NETWORK_SIZES): about 20 minutes.
bench-network: deps all $(BUILD)/tbload
	TB_BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/bench_network.py

profile: deps all
	TB_BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/profile.py

demo: deps all
	deploy/demo/demo run

demo-up: deps all
	deploy/demo/demo up

demo-down:
	deploy/demo/demo down

format:
	clang-format -i $(wildcard daemon/*.c src/*/*.c src/*/*.h include/*.h tests/unit/*.c)

# The man pages, made from the programs' own --help (deploy/man/mkman).
MAN_PAGES := $(BUILD)/man/timebankd.8 $(BUILD)/man/tbctl.1 $(BUILD)/man/tbpki.8
$(BUILD)/man/timebankd.8: $(BUILD)/timebankd deploy/man/mkman
	@mkdir -p $(dir $@)
	$(BUILD)/timebankd --help | deploy/man/mkman timebankd 8 "the time bank daemon" > $@
$(BUILD)/man/tbctl.1: $(BUILD)/tbctl deploy/man/mkman
	@mkdir -p $(dir $@)
	$(BUILD)/tbctl --help | deploy/man/mkman tbctl 1 "a time bank's command line" > $@
$(BUILD)/man/tbpki.8: deploy/pki/tbpki deploy/man/mkman
	@mkdir -p $(dir $@)
	deploy/pki/tbpki --help | deploy/man/mkman tbpki 8 "the time bank network's PKI" > $@
man: $(MAN_PAGES)

PREFIX ?= /usr/local
SYSTEMD_DIR ?= /etc/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/timebankd
install: all $(MAN_PAGES)
	install -D -m 0755 $(BUILD)/timebankd $(DESTDIR)$(PREFIX)/bin/timebankd
	install -D -m 0755 $(BUILD)/tbctl $(DESTDIR)$(PREFIX)/bin/tbctl
	install -D -m 0755 deploy/pki/tbpki $(DESTDIR)$(PREFIX)/bin/tbpki
	install -d $(DESTDIR)$(SYSTEMD_DIR)
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g; s|/usr/local/share/doc/timebankd|$(DOCDIR)|g' \
		deploy/systemd/timebankd@.service > $(DESTDIR)$(SYSTEMD_DIR)/timebankd@.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_DIR)/timebankd@.service
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -D -m 0644 deploy/examples/timebankd.conf.example \
		$(DESTDIR)$(DOCDIR)/examples/timebankd.conf.example
	install -D -m 0644 $(BUILD)/man/timebankd.8 $(DESTDIR)$(PREFIX)/share/man/man8/timebankd.8
	install -D -m 0644 $(BUILD)/man/tbpki.8 $(DESTDIR)$(PREFIX)/share/man/man8/tbpki.8
	install -D -m 0644 $(BUILD)/man/tbctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/tbctl.1

# A Debian package, built by dpkg-buildpackage from a copy of the tree with
# deploy/debian as its debian/ (build/deb/); and its check: lintian, then
# the package installed into a throwaway root (dpkg --root) and the daemon
# there checking the example config.
DEB_VERSION := $(shell dpkg-parsechangelog -l deploy/debian/changelog -S Version 2>/dev/null)
DEB := build/deb/timebankd_$(DEB_VERSION)_$(shell dpkg --print-architecture 2>/dev/null).deb
deb: deps
	rm -rf build/deb && mkdir -p build/deb/timebankd-$(DEB_VERSION)
	tar -c --exclude=build --exclude=node_modules --exclude=.git --exclude=__pycache__ \
		Makefile README.md daemon deploy include proto src tests | \
		tar -x -C build/deb/timebankd-$(DEB_VERSION)
	cp -r deploy/debian build/deb/timebankd-$(DEB_VERSION)/debian
	cd build/deb/timebankd-$(DEB_VERSION) && dpkg-buildpackage -us -uc -b
	@echo "deb: $(DEB)"

check-deb: deb
	lintian --fail-on error $(DEB)
	deploy/debian/check-installed $(DEB)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
