# tandem - GNU make build. `make` builds build/tandem, `make test` runs the
# unit and functional tests (one short drill per scenario family; `make
# test-drill` the drill's full matrix: docs/TESTING.md), `make run` starts the
# local deployment, `make bench` the benchmarks, `make model-check`
# model-checks the failover protocol (docs/FAILOVER.md).
# SAN=1 builds into build-san/ with AddressSanitizer + UndefinedBehaviorSanitizer;
# TSAN=1 into build-tsan/ with ThreadSanitizer (`make tsan` runs it). The two
# cannot be combined (each replaces the memory allocator with its own).

PKGS      := libevent libevent_openssl libevent_pthreads openssl sqlite3 jansson libargon2 inih expat libmaxminddb libnghttp2
DEPS_OK   := $(shell scripts/deps.sh deps/debian.txt >&2 && echo ok)
ifneq ($(DEPS_OK),ok)
$(error missing Debian packages, see above)
endif

CC        ?= cc
PYTHON    := /usr/bin/python3
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
               -Wno-unused-parameter -g -Isrc $(shell pkg-config --cflags $(PKGS)) \
               -DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_PREUPDATE_HOOK
# (Debian's SQLite is built with the session extension; sqlite3.h declares
#  its API only under those two macros.)
LDLIBS    := $(shell pkg-config --libs $(PKGS)) -lpthread -lm

# Hardening in every build (docs/SECURITY.md, "Build and process hardening"):
# stack canaries, fortified libc calls (checked at -O1 and above), a
# position-independent executable, and a relocation table made read-only
# after start-up with every symbol bound at once (full RELRO).
HARDEN_CFLAGS  := -fstack-protector-strong -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2 -fPIE
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now

ifeq ($(SAN)$(TSAN),11)
$(error SAN=1 and TSAN=1 cannot be combined: ASan and TSan exclude each other)
endif

ifeq ($(SAN),1)
BUILD     := build-san
CFLAGS    := $(CFLAGS_BASE) $(HARDEN_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS   := $(HARDEN_LDFLAGS) -fsanitize=address,undefined
else ifeq ($(TSAN),1)
# ThreadSanitizer (gcc's, libtsan2). FORTIFY is left out as in the fuzz
# build: TSan checks memcpy & co. in its interceptors, which the fortified
# __*_chk variants would bypass. -O1 keeps the stacks of reports readable.
BUILD     := build-tsan
CFLAGS    := $(CFLAGS_BASE) -fstack-protector-strong -fPIE -O1 -fno-omit-frame-pointer -fsanitize=thread
LDFLAGS   := $(HARDEN_LDFLAGS) -fsanitize=thread
else
BUILD     := build
CFLAGS    := $(CFLAGS_BASE) $(HARDEN_CFLAGS) -O2
LDFLAGS   := $(HARDEN_LDFLAGS)
endif

LIB_SRC   := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ  := $(BUILD)/obj/src/cli/main.o
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC  := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)

.PHONY: FORCE
.PHONY: all test unit functional test-drill tsan run bench fuzz fuzz-run clean san-test model-check \
        bench-drill bench-smoke
all: $(BUILD)/tandem

# a change of flags (such as the hardening ones) rebuilds everything: the
# objects depend on a file holding the flags, rewritten only when they differ
FLAGS_FILE := $(BUILD)/flags.txt
$(FLAGS_FILE): FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@
FORCE:

$(BUILD)/obj/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# only main.c knows the version, so a new commit does not rebuild everything:
# main.o depends on a file holding the version, rewritten when it changes.
# ("private": without it the flags file, also a prerequisite of main.o,
# inherited the version when main.o's build made it, and every commit
# rebuilt everything)
VERSION_FILE := $(BUILD)/version.txt
$(VERSION_FILE): FORCE
	@mkdir -p $(BUILD)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(MAIN_OBJ): $(VERSION_FILE)
$(MAIN_OBJ): private CFLAGS += -DTANDEM_VERSION='"$(VERSION)"'

$(BUILD)/libtandem.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/tandem: $(MAIN_OBJ) $(BUILD)/libtandem.a
	$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(BUILD)/libtandem.a $(LDLIBS)

# every unit test may use the fault-injecting SQLite VFS (tests/unit/faultvfs.h)
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtandem.a tests/unit/test.h tests/unit/faultvfs.c tests/unit/faultvfs.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< tests/unit/faultvfs.c $(BUILD)/libtandem.a $(LDLIBS)

# UNIT_JOBS binaries at a time (1: two at once made test_committer see
# SQLITE_PROTOCOL under the contention; each uses its own temporary files and
# ports); each one's output is printed whole once it ends, in order.
UNIT_JOBS ?= 1
unit: $(UNIT_BIN)
	@out=$$(mktemp -d) && \
	printf '%s\n' $(UNIT_BIN) | xargs -P $(UNIT_JOBS) -I{} sh -c \
		'n=$$(basename {}); if {} > '$$out'/$$n.log 2>&1; then :; else echo $$? > '$$out'/$$n.failed; fi'; \
	pass=0; fail=0; for t in $(UNIT_BIN); do n=$$(basename $$t); cat $$out/$$n.log; \
		if [ -e $$out/$$n.failed ]; then fail=$$((fail+1)); echo "unit binary failed: $$t"; \
		else pass=$$((pass+1)); fi; \
	done; rm -rf $$out; echo "unit binaries: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# Functional tests run in parallel (pytest-xdist): every test has its own
# ports and directories. FUNCTIONAL_JOBS=1 runs them one after the other.
# FUNCTIONAL_MARKS picks tests by marker (pytest.ini, docs/TESTING.md): the
# drill's long scenario matrix is left to `make test-drill`.
FUNCTIONAL_JOBS  ?= 4
FUNCTIONAL_MARKS ?= not drill_matrix
functional: $(BUILD)/tandem
	TANDEM_BIN=$(CURDIR)/$(BUILD)/tandem $(PYTHON) -m pytest -q -n $(FUNCTIONAL_JOBS) \
		-m '$(FUNCTIONAL_MARKS)' tests/functional $(PYTEST_ARGS)

# Every test: C unit tests, then the functional suite against the real binary
# (with one short drill per scenario family).
test: unit functional

# The drill's full scenario matrix and the other long drills (CI), two at
# a time: each is a whole deployment (regions, witness, edges) under a
# workload whose pace it checks, and four at once on two cores starve it
# (most under the sanitizers).
test-drill: $(BUILD)/tandem
	$(MAKE) functional FUNCTIONAL_MARKS=drill_matrix FUNCTIONAL_JOBS=2

# `make san-test` = `make SAN=1 test`: every test against the ASan+UBSan build.
san-test:
	$(MAKE) SAN=1 test

# ThreadSanitizer (build-tsan/): the unit tests, then the functional tests
# marked tsan (conftest.py TSAN_MODULES: those whose requests cross threads).
# Every process writes its reports to a fresh directory under /tmp (a region
# that dropped root to [deployment] user must be able to write there, which
# a clone under /root would not allow; hence also mode 1777). halt_on_error
# makes a report fail its test; a report in a process that no test looks at
# still fails the target here, and every report is printed. Suppressions:
# tests/tsan.supp, for reports from inside third-party libraries only, each
# explained there (docs/TESTING.md).
TSAN_FUNCTIONAL_JOBS ?= 2
TSAN_OPTIONS_BASE := halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp
tsan:
	@reports=$$(mktemp -d /tmp/tandem-tsan.XXXXXX) && chmod 1777 $$reports && \
	export TSAN_OPTIONS="$(TSAN_OPTIONS_BASE) log_path=$$reports/tsan" && \
	echo "tsan: TSAN_OPTIONS=$$TSAN_OPTIONS" && status=0 && \
	{ $(MAKE) TSAN=1 unit || status=1; } && \
	if [ $$status = 0 ]; then $(MAKE) TSAN=1 functional FUNCTIONAL_JOBS=$(TSAN_FUNCTIONAL_JOBS) \
		FUNCTIONAL_MARKS='tsan and not drill_matrix' || status=1; fi && \
	if [ -n "$$(ls -A $$reports)" ]; then cat $$reports/*; \
		echo "tsan: the ThreadSanitizer reports above are kept in $$reports"; exit 1; fi && \
	rmdir $$reports && \
	if [ $$status = 0 ]; then echo "tsan: no ThreadSanitizer report"; else exit 1; fi

# DATA: the deployment's directory (tandem-data); PORT_BASE: its first port
# (8443), for a deployment beside another one
run: $(BUILD)/tandem
	$(BUILD)/tandem up --data $(or $(DATA),tandem-data) $(if $(PORT_BASE),--port-base $(PORT_BASE))

# Fuzz targets (clang + libFuzzer). fuzz-run runs each for FUZZ_SECONDS.
# (clang and libFuzzer take the same hardening flags; ASan checks more than
# FORTIFY would, so FORTIFY is left out here: the two intercept the same calls)
FUZZ_CFLAGS := $(CFLAGS_BASE) -fstack-protector-strong -fPIE -O1 -fsanitize=fuzzer-no-link,address,undefined
# Like the main build, every object and target records the headers it
# includes (-MMD -MP, the .d files included at the end), so that a changed
# header rebuilds what uses it.
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build-fuzz/obj/%.o)
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
build-fuzz/libtandem.a: $(FUZZ_LIB_OBJ)
	ar rcs $@ $^
# (compiled and linked in one step: -MF/-MT name the .d file and its target)
build-fuzz/fuzz_%: fuzz/fuzz_%.c build-fuzz/libtandem.a
	clang $(CFLAGS_BASE) -fstack-protector-strong -fPIE -O1 -fsanitize=fuzzer,address,undefined \
		-MMD -MP -MF $@.d -MT $@ -pie -Wl,-z,relro,-z,now -o $@ $< build-fuzz/libtandem.a $(LDLIBS)
fuzz: $(FUZZ_BIN)
FUZZ_SECONDS ?= 30
fuzz-run: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do name=$$(basename $$f); mkdir -p build-fuzz/corpus/$$name; \
		echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
		seeds=$$( [ -d fuzz/corpus/$$name ] && echo fuzz/corpus/$$name ); \
		$$f -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/$$name $$seeds > build-fuzz/$$name.log 2>&1 \
			|| { tail -n 40 build-fuzz/$$name.log; echo "fuzz: $$name FAILED"; exit 1; }; \
		tail -n 1 build-fuzz/$$name.log; \
	done

# The benchmarks (docs/BENCHMARKS.md). Every script takes --tandem BINARY
# and --quick (a short smoke run whose results go to build/bench/quick/,
# apart from the real figures). `make bench` runs BENCH_SCRIPTS for real;
# `make bench-smoke` (CI) runs each of them and bench/drill.py with --quick,
# so that no benchmark rots unnoticed, and refuses a bench/*.py that is in
# neither list: a new benchmark goes into BENCH_SCRIPTS.
# BENCH_ARGS go to every script (--quick, --duration, --rounds, --keep; the
# replication and hostile-client benches ignore run.py's other options); REPL_BENCH_ARGS go to
# bench/replication.py only (e.g. --rates 1000, --no-pg).
BENCH_SCRIPTS := bench/run.py bench/replication.py bench/hostile.py bench/isolation.py bench/dns.py \
                 bench/objects.py bench/objrepl.py bench/edge.py
BENCH_OTHER   := bench/drill.py
replication_BENCH_ARGS = $(REPL_BENCH_ARGS)
define newline


endef

# bench/objects.py's load generator (durable PUTs, signed with src/objects/sigv4.c's
# signer, and its write + fsync + rename baseline)
BENCH_TOOLS   := $(BUILD)/bench/objects_load
$(BUILD)/bench/objects_load: bench/objects_load.c $(BUILD)/libtandem.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtandem.a $(LDLIBS)

bench: $(BUILD)/tandem $(BENCH_TOOLS)
	@scripts/deps.sh deps/bench.txt
	$(foreach s,$(BENCH_SCRIPTS),$(PYTHON) $(s) --tandem $(BUILD)/tandem $(BENCH_ARGS) $($(basename $(notdir $(s)))_BENCH_ARGS)$(newline))

bench-smoke: $(BUILD)/tandem $(BENCH_TOOLS)
	@scripts/deps.sh deps/bench.txt
	@unlisted="$(filter-out $(BENCH_SCRIPTS) $(BENCH_OTHER),$(wildcard bench/*.py))"; \
	if [ -n "$$unlisted" ]; then \
		echo "bench-smoke: $$unlisted: not in BENCH_SCRIPTS or BENCH_OTHER (Makefile)" >&2; exit 1; fi
	$(foreach s,$(BENCH_SCRIPTS) $(BENCH_OTHER),$(PYTHON) $(s) --tandem $(BUILD)/tandem --quick$(newline))

# The DR drill's figures (docs/BENCHMARKS.md, "DR drill"): every scenario,
# 3 rounds at 500 writes/s; DRILL_ARGS go to bench/drill.py.
bench-drill: $(BUILD)/tandem
	$(PYTHON) bench/drill.py --tandem $(BUILD)/tandem $(DRILL_ARGS)

# The failover protocol's model check (docs/FAILOVER.md): SPIN, exhaustive,
# a few minutes on 2 cores. Not part of `make test`.
model-check:
	@scripts/deps.sh deps/model.txt
	model/check.sh

clean:
	rm -rf build build-san build-tsan build-fuzz

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BIN:=.d)
