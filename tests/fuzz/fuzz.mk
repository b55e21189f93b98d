# fuzz.mk — fuzz targets (`make fuzz`) and their deterministic replay (`make regress`).
#
# One parser target per format in FUZZ_FORMATS (tests/fuzz/fuzz_parser.c built with
# -DFORMAT=<name>, so a new format is one more word) and one for the collector's
# message handling (fuzz_wire.c), and one for the collector's CRC check of finished zip
# archives (fuzz_zip_check.c). `make fuzz FUZZ_SECONDS=N` builds them with clang and
# libFuzzer + ASan + UBSan in $(BUILD)/fuzz and runs each for N seconds on a copy of its
# seed corpus (tests/fuzz/corpus/<target>/); crashes land in $(BUILD)/fuzz/crashes/.
# `make regress` links the same entry points with regress_main.c using the ordinary
# compiler and replays the seeds and every crash once found (tests/fuzz/regressions/).

FUZZ_FORMATS ?= pickle json safetensors npy gguf torch torch_legacy npz joblib distcp
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(addprefix parser_,$(FUZZ_FORMATS)) wire zip_check
FUZZ_DRIVER  ?= tests/fuzz/regress_main.c
# UBSan without pointer-overflow: it flags NULL + 0 (a zero-length feed), which is
# harmless; ASan catches pointers that really leave their object.
FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize=pointer-overflow \
                 -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: fuzz fuzzers regress

fuzzers: $(addprefix $(BUILD)/fuzzers/,$(FUZZ_TARGETS))

$(BUILD)/fuzzers/parser_%: tests/fuzz/fuzz_parser.c $(COLL_LIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DFORMAT=$* -o $@ $< $(FUZZ_DRIVER) $(COLL_LIB) $(CORE_LIB) \
	    $(LDFLAGS) $(LDLIBS_COLLECTOR)

$(BUILD)/fuzzers/wire $(BUILD)/fuzzers/zip_check: $(BUILD)/fuzzers/%: tests/fuzz/fuzz_%.c \
                                                  $(COLL_LIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(FUZZ_DRIVER) $(COLL_LIB) $(CORE_LIB) \
	    $(LDFLAGS) $(LDLIBS_COLLECTOR)

regress: fuzzers
	@set -e; for t in $(FUZZ_TARGETS); do \
	    files=$$(find $(CURDIR)/tests/fuzz/corpus/$$t $(CURDIR)/tests/fuzz/regressions/$$t \
	             -type f 2>/dev/null | sort); \
	    echo "== regress $$t ($$(echo "$$files" | grep -c .) files)"; \
	    [ -z "$$files" ] || $(BUILD)/fuzzers/$$t $$files; \
	done

# The libFuzzer build reuses every rule above with its own build directory and flags
# (CFLAGS through the environment so that the Makefile's own flags are still added).
fuzz:
	@FUZZING=1 tools/install-deps.sh
	@CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SANITIZE)" LDFLAGS="$(FUZZ_SANITIZE)" \
	    $(MAKE) --no-print-directory CC=clang BUILD=$(BUILD)/fuzz FUZZ_DRIVER=-fsanitize=fuzzer fuzzers
	@set -e; b=$(abspath $(BUILD))/fuzz; for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	    mkdir -p $$b/corpus/$$t $$b/crashes/$$t; \
	    cp -n tests/fuzz/corpus/$$t/* $$b/corpus/$$t/ 2>/dev/null || true; \
	    $$b/fuzzers/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 \
	        -malloc_limit_mb=512 -timeout=30 -max_len=1048576 -print_final_stats=1 \
	        -artifact_prefix=$$b/crashes/$$t/ $$b/corpus/$$t \
	        2>$$b/$$t.log || { tail -40 $$b/$$t.log; exit 1; }; \
	    grep -E '^stat::number_of_executed_units|^#.*DONE' $$b/$$t.log || true; \
	done
