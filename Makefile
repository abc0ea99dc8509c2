# Makefile — builds initlab, its tests and its sanitizer build; installs what is missing.
#
#   make            build ./initlab
#   make deps       install missing Debian and npm packages (idempotent, ~1 s when done)
#   make run        deps + build + start the daemon on the demo dataset (PORT=8471 to serve
#                   on another port, LISTEN=ADDR:PORT another address, STATE=DIR,
#                   EPOCHS=N for the demo jobs)
#   make test       deps + every test: C unit tests, the same under ASan/UBSan, fault
#                   injection, command-line tests, PyTorch cross-checks, the daemon under
#                   ASan/UBSan (HTTP fuzzer, API tests), browser tests, then the
#                   packaging tests (the image and the Debian package in containers)
#   make api-tests  the API tests against the release daemon (make test runs them
#                   against the sanitizer build, which the CLI and browser tests complement)
#   make asan       C unit tests built and run with AddressSanitizer + UBSan
#   make faults     fault injection: the n-th allocation, write or fsync fails (also ASan)
#   make fuzz-asan  the HTTP fuzzer against the daemon built with ASan + UBSan
#   make api-tests-asan  the API tests against that daemon
#   make slurm-tests  remote workers on a real Slurm cluster started here (munge, slurmctld,
#                   two slurmd), and a pull worker in a network namespace over TLS (root)
#   make bench-scale  the Slurm executor's speed-up over the local one, reporting's share
#   make screenshots  ResNet-50 Glorot vs He at epoch 0 on Fashion-MNIST 32 px, in the browser:
#                   checked, and saved under tests/artifacts/ (a few minutes)
#   make bench      throughput against PyTorch on the same machine, and the portable
#                   (x86-64-v2) build's against the native one
#   make deb        the Debian package build/deb/initlab_VERSION_amd64.deb, checked by lintian
#   make packaging-tests  the image built by podman and run as compose.yaml runs it; the
#                   package installed under a real systemd (root, podman; tests/packaging)
#   make clean

PREFIX  ?= /usr/local
DESTDIR ?=
ARCH    ?= native
CC      ?= gcc
PYTHON  ?= /usr/bin/python3
PKGS    := libmicrohttpd jansson sqlite3 libturbojpeg openblas zlib libcurl libprotobuf-c
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

# -Werror in CI (CI=true) so that a warning never lands; locally warnings stay warnings.
WERROR  := $(if $(filter true 1,$(CI)),-Werror,)
# Flags added to the release build and its link, empty by default (the Debian package
# passes dpkg-buildflags' hardening flags here).
EXTRA_CFLAGS  ?=
EXTRA_LDFLAGS ?=
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -DINITLAB_VERSION='"$(VERSION)"' -g -Wall -Wextra \
              -Wno-unused-parameter $(WERROR) -MMD -MP -Idaemon -Ibuild/gen -pthread -fopenmp
LIBS = $(PKG_LIBS) -fopenmp -lpthread -lm

# Two build variants share one rule set: release (optimized) and asan (sanitized).
REL_CFLAGS  = $(BASE_CFLAGS) -O3 -march=$(ARCH) -fno-math-errno -fno-trapping-math \
              $(EXTRA_CFLAGS)
ASAN_CFLAGS = $(BASE_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=undefined
ASAN_LDFLAGS = -fsanitize=address,undefined

SRC       := $(sort $(wildcard daemon/*/*.c)) build/gen/schema_sql.c build/gen/openapi_json.c \
             build/gen/tensorboard.pb-c.c
SCHEMA    := $(sort $(wildcard schema/*.sql))
MAIN_SRC  := daemon/main.c
TEST_SRC  := $(sort $(wildcard tests/unit/*.c))
TOOL_SRC  := $(sort $(wildcard tests/tools/*.c))
FAULT_SRC := $(sort $(wildcard tests/fault/*.c))

REL_OBJ   := $(SRC:%.c=build/rel/%.o)
ASAN_OBJ  := $(SRC:%.c=build/asan/%.o)
REL_TOBJ  := $(TEST_SRC:%.c=build/rel/%.o)
ASAN_TOBJ := $(TEST_SRC:%.c=build/asan/%.o)
REL_FOBJ  := $(FAULT_SRC:%.c=build/rel/%.o)
ASAN_FOBJ := $(FAULT_SRC:%.c=build/asan/%.o)
TOOLS     := $(TOOL_SRC:tests/tools/%.c=build/tools/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCHES   := $(BENCH_SRC:bench/%.c=build/bench/%)

.PHONY: all deps run test unit asan faults cli-tests torch-tests api-tests fuzz-asan \
        api-tests-asan slurm-tests browser-tests screenshots packaging-tests bench bench-scale \
        install deb clean
.DEFAULT_GOAL := all

all: initlab

initlab: $(REL_OBJ) build/rel/daemon/main.o
	$(CC) $(EXTRA_LDFLAGS) -o $@ $^ $(LIBS)

# The daemon under ASan+UBSan, for the fuzzer (tests/tools/fuzzhttp.c) and the API tests.
# The engine's kernels (daemon/nn) are sanitized in build/asan/unit_tests, which drive them
# on random shapes; in the sanitizer daemon they are the release objects, so that its API
# suite trains at release speed while everything around them (HTTP, store, jobs, data,
# trainer) runs instrumented.
ASAN_DAEMON_OBJ := $(filter-out build/asan/daemon/nn/%,$(ASAN_OBJ)) \
                   $(filter build/rel/daemon/nn/%,$(REL_OBJ))

initlab-asan: $(ASAN_DAEMON_OBJ) build/asan/daemon/main.o
	$(CC) $(ASAN_LDFLAGS) -o $@ $^ $(LIBS)

build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

build/rel/unit_tests: $(REL_OBJ) $(REL_TOBJ)
	$(CC) -o $@ $^ $(LIBS)

build/asan/unit_tests: $(ASAN_OBJ) $(ASAN_TOBJ)
	$(CC) $(ASAN_LDFLAGS) -o $@ $^ $(LIBS)

# The fault-injection tests (tests/fault/): the same objects, linked so that their calls
# to these functions go through tests/fault/fault.c, which can fail the n-th of them.
# Only calls from initlab's own objects are wrapped; the production binary is not.
FAULT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc \
              -Wl,--wrap=posix_memalign,--wrap=strdup,--wrap=strndup \
              -Wl,--wrap=write,--wrap=pwrite,--wrap=fsync,--wrap=fdatasync

build/rel/fault_tests: $(REL_OBJ) build/rel/tests/unit/runner.o $(REL_FOBJ)
	$(CC) $(FAULT_WRAP) -o $@ $^ $(LIBS)

build/asan/fault_tests: $(ASAN_OBJ) build/asan/tests/unit/runner.o $(ASAN_FOBJ)
	$(CC) $(ASAN_LDFLAGS) $(FAULT_WRAP) -o $@ $^ $(LIBS)

build/tools/%: build/rel/tests/tools/%.o $(REL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LIBS)

build/bench/%: build/rel/bench/%.o $(REL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LIBS)

# The migrations in schema/ are compiled into the binary, so it never runs without them.
build/gen/schema_sql.c: $(SCHEMA) scripts/embed_schema.sh
	@mkdir -p $(dir $@)
	scripts/embed_schema.sh $(SCHEMA) > $@

# The OpenAPI document served at /api/v1/openapi.json is compiled in the same way.
build/gen/openapi_json.c: daemon/api/openapi.json scripts/embed_file.sh
	@mkdir -p $(dir $@)
	scripts/embed_file.sh openapi_json daemon/api/openapi.json > $@

# TensorBoard's event messages (the subset initlab writes), C from the .proto by protoc-c;
# only export/tfevents.c includes the header.
build/gen/tensorboard.pb-c.c: daemon/export/tensorboard.proto
	@mkdir -p $(dir $@)
	protoc-c --c_out=build/gen -Idaemon/export $<
build/gen/tensorboard.pb-c.h: build/gen/tensorboard.pb-c.c
build/rel/daemon/export/tfevents.o build/asan/daemon/export/tfevents.o: build/gen/tensorboard.pb-c.h

# Objects of the test tools and benchmarks are kept: a later step needs no rebuild.
.SECONDARY:

deps:
	@scripts/deps.sh

unit: build/rel/unit_tests
	build/rel/unit_tests

asan: build/asan/unit_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  build/asan/unit_tests

faults: build/rel/fault_tests build/asan/fault_tests
	build/rel/fault_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  build/asan/fault_tests

# Python suites, each run by tests/run.py: the CLI as a user meets it, then the PyTorch
# cross-checks (tests/torch/test_*.py drive the programs built from tests/tools/).
cli-tests: initlab
	$(PYTHON) tests/run.py tests/cli

torch-tests: initlab $(TOOLS)
	@if ls tests/torch/test_*.py >/dev/null 2>&1; then $(PYTHON) tests/run.py tests/torch; fi

api-tests: initlab
	@if ls tests/api/test_*.py >/dev/null 2>&1; then $(PYTHON) tests/run.py tests/api; fi

# The daemon itself under the sanitizers: any report in its log fails the run
# (tests/api/daemon.py), so does a leak at exit. An allocation too large to make returns
# NULL, as it does without ASan (the API tests submit a job too big for memory).
# FUZZ_SECONDS bounds the fuzzer's run; API_ASAN_TESTS, when set, picks test files by
# substring (the whole suite takes minutes: its jobs train under ASan).
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:allocator_may_return_null=1 \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 INITLAB_BIN=./initlab-asan
FUZZ_SECONDS ?= 30
API_ASAN_TESTS ?=

fuzz-asan: initlab-asan build/tools/fuzzhttp
	$(SAN_ENV) $(PYTHON) tests/api/fuzz_daemon.py -d $(FUZZ_SECONDS)

api-tests-asan: initlab-asan
	$(SAN_ENV) $(PYTHON) tests/run.py tests/api $(API_ASAN_TESTS)

# The Slurm executor and remote workers against a real cluster (tests/slurm/cluster.py
# starts Debian's munged, slurmctld and two slurmd from a scratch folder; no systemd). The
# workers are the release binary; the network-namespace test needs root.
slurm-tests: initlab
	$(PYTHON) tests/run.py tests/slurm

browser-tests: initlab
	@if [ -f tests/browser/package.json ]; then cd tests/browser && node run.mjs; fi

screenshots: initlab
	cd tests/browser && node screenshots.mjs

# The container image and the Debian package, run for real (tests/packaging/suite.py): in CI
# (CI=true) a machine where containers cannot start fails; elsewhere the suite is skipped
# and says why.
packaging-tests: deps initlab
	$(PYTHON) tests/packaging/suite.py

test: deps
	$(MAKE) --no-print-directory all initlab-asan build/rel/unit_tests build/asan/unit_tests \
	  build/rel/fault_tests build/asan/fault_tests $(TOOLS) $(BENCHES)
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory faults
	$(MAKE) --no-print-directory cli-tests
	$(MAKE) --no-print-directory torch-tests
	$(MAKE) --no-print-directory fuzz-asan
	$(MAKE) --no-print-directory api-tests-asan
	$(MAKE) --no-print-directory slurm-tests
	$(MAKE) --no-print-directory browser-tests
	$(MAKE) --no-print-directory packaging-tests

run: deps
	$(MAKE) --no-print-directory all
	scripts/run.sh

bench: deps
	$(MAKE) --no-print-directory all $(BENCHES)
	scripts/portable.sh
	$(PYTHON) bench/run.py --portable build/portable/initlab

# A 4-job grid on the local executor (one 1-thread worker) against two 1-CPU Slurm nodes,
# and the share of a job's time its worker spends reporting (bench/scale.py).
bench-scale: deps
	$(MAKE) --no-print-directory all
	$(PYTHON) bench/scale.py

install: initlab
	scripts/install.sh "$(DESTDIR)" "$(PREFIX)"

# The Debian package build/deb/initlab_$(VERSION)_amd64.deb (scripts/deb.sh, debian/).
deb: deps
	scripts/deb.sh

clean:
	rm -rf build initlab initlab-asan

-include $(REL_OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(REL_TOBJ:.o=.d) $(ASAN_TOBJ:.o=.d) \
         $(REL_FOBJ:.o=.d) $(ASAN_FOBJ:.o=.d) \
         build/rel/daemon/main.d build/asan/daemon/main.d $(TOOL_SRC:%.c=build/rel/%.d) \
         $(BENCH_SRC:%.c=build/rel/%.d)
