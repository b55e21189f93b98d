# ckmon — build, test, demo.  `make` builds build/libckmon.so and build/ckmon.
#
# Sources are picked up by directory so that a new parser or sink is one new file:
#   core/*.c core/parsers/*.c          the shared core: formats, statistics, findings, JSON
#                                      text, paths, the wire protocol (agent and CLI both)
#   agent/*.c                          the interposer (only in libckmon.so)
#   collector/*.c collector/sinks/*.c  the ckmon CLI and collector
# `make check-layout` (run by `make test`) fails when one side includes the other.

CC       ?= gcc
PYTHON   ?= /usr/bin/python3
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -fPIC -fvisibility=hidden -fno-strict-aliasing $(WARN) -D_GNU_SOURCE
CPPFLAGS += -I. -MMD -MP
LDLIBS_AGENT     := -lcjson -lz -ldl -lpthread -lm
LDLIBS_COLLECTOR := -lcjson -lz -lelf -ldl -lpthread -lm

# SANITIZE=1: ASan + UBSan in a build directory of its own (docs/security.md). UB stops
# the program; NULL + 0 (a zero-length feed) is not counted as UB. The end-to-end suite
# preloads the sanitized agent into uninstrumented programs (python3): ASan's runtime is
# then not first in their library list, and their own leaks are not ours to report.
ifeq ($(SANITIZE),1)
BUILD   := $(BUILD)/sanitize
SANITIZERS := -fsanitize=address,undefined -fno-sanitize=pointer-overflow -fno-sanitize-recover=undefined
CFLAGS  += $(SANITIZERS) -fno-omit-frame-pointer
LDFLAGS += $(SANITIZERS)
E2E_ENV := ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 UBSAN_OPTIONS=print_stacktrace=1
# Not test_processes.py: children the agent follows with a stripped environment lose the
# options above, ASan misreports glibc's posix_spawn (the child borrows the parent's
# stack), and its SIGSEGV handler changes how a crashing writer dies.
E2E_ARGS := --ignore=tests/e2e/test_processes.py
endif

CORE_SRC      := $(wildcard core/*.c core/parsers/*.c)
AGENT_SRC     := $(wildcard agent/*.c)
COLLECTOR_SRC := $(wildcard collector/*.c collector/sinks/*.c)
COLLECTOR_LIB_SRC := $(filter-out collector/ckmon.c,$(COLLECTOR_SRC))
UNIT_SRC      := $(wildcard tests/unit/test_*.c)
PROGRAM_SRC   := $(wildcard tests/programs/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

AGENT_SO  := $(BUILD)/libckmon.so
CLI       := $(BUILD)/ckmon
CORE_LIB  := $(BUILD)/libckmon-core.a
COLL_LIB  := $(BUILD)/libckmon-collector.a
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# The agent-tensor reader once more, built as on a CPU without SSE2 (its portable hex path).
UNIT_BIN  += $(BUILD)/tests/test_wire_tensors_portable
PROGRAMS  := $(patsubst tests/programs/%.c,$(BUILD)/programs/%,$(PROGRAM_SRC))

.PHONY: all deps test unit e2e demo bench install clean format lint check-layout
all: $(AGENT_SO) $(CLI)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# HDF5's headers for its reader (collector/hdf5.c), which loads libhdf5 with dlopen.
$(BUILD)/obj/collector/hdf5.o: CPPFLAGS += $(shell pkg-config --cflags hdf5)

$(AGENT_SO): $(call obj,$(CORE_SRC) $(AGENT_SRC)) agent/exports.map
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=agent/exports.map -Wl,-z,defs -o $@ \
	    $(call obj,$(CORE_SRC) $(AGENT_SRC)) $(LDLIBS_AGENT)

$(CORE_LIB): $(call obj,$(CORE_SRC))
	@rm -f $@; ar rcs $@ $^

$(COLL_LIB): $(call obj,$(COLLECTOR_LIB_SRC))
	@rm -f $@; ar rcs $@ $^

$(CLI): $(call obj,collector/ckmon.c) $(COLL_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_COLLECTOR)

# A unit test: its sources (the first prerequisites that are .c files) and the libraries.
UNIT_LINK = $(CC) $(CPPFLAGS) $(CFLAGS) -Wno-unused-parameter -o $@ $(filter %.c,$^) \
	    $(COLL_LIB) $(CORE_LIB) $(LDFLAGS) -lcmocka $(LDLIBS_COLLECTOR)

$(BUILD)/tests/%: tests/unit/%.c $(COLL_LIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(UNIT_LINK)

# Its own copy of core/wire_tensors.c comes before the library's in the link.
$(BUILD)/tests/test_wire_tensors_portable: CPPFLAGS += -U__SSE2__
$(BUILD)/tests/test_wire_tensors_portable: tests/unit/test_wire_tensors.c core/wire_tensors.c \
		$(COLL_LIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(UNIT_LINK)

# Test programs are ordinary C programs that write files the ways real programs do.
$(BUILD)/programs/%: tests/programs/%.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< -lpthread

deps:
	@tools/install-deps.sh

# The layout rules of docs/architecture.md: which side may include which, no cycles.
check-layout: all
	@$(PYTHON) tools/check-layout.py $(BUILD)

unit: check-layout $(UNIT_BIN) fuzzers
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	@$(MAKE) --no-print-directory regress

e2e: all $(PROGRAMS)
	$(E2E_ENV) CKMON_TEST_BUILD=$(BUILD) $(PYTHON) -m pytest -q $(E2E_ARGS) tests/e2e

test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

demo: deps
	@$(MAKE) --no-print-directory all
	@examples/demo.sh

# Benchmark programs (tools/bench/*.c) link the statistics from the core library.
BENCH_BIN := $(patsubst tools/bench/%.c,$(BUILD)/bench/%,$(wildcard tools/bench/*.c))
$(BUILD)/bench/%: tools/bench/%.c $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(CORE_LIB) $(LDLIBS_AGENT)

# digest_speed times the collector's own hashing, so it links the collector library.
$(BUILD)/bench/digest_speed: tools/bench/digest_speed.c $(COLL_LIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(COLL_LIB) $(CORE_LIB) $(LDLIBS_COLLECTOR)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@$(PYTHON) tools/bench/bench.py $(BENCH_ARGS)

# install, uninstall, man: tools/install.mk
include tools/install.mk

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

include tests/fuzz/fuzz.mk

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)
