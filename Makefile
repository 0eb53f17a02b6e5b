# latch: one non-recursive GNU Makefile.
#
#   make            build build/latch
#   make test       install missing build deps, build, unit + end-to-end tests,
#                   then the same under ASan+UBSan; ends "N passed, N failed"
#   make demo       install missing deps, build, show latch doing its job
#   make asan       build build/asan/latch with ASan+UBSan (clang)
#   make fuzz       build libFuzzer targets and run each for FUZZ_SECONDS
#   make bench      run the benchmarks in bench/
#   make install    PREFIX=/usr/local DESTDIR= ; make uninstall
#   make clean

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

CC ?= cc
ASAN_CC ?= clang
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
# `make V=1` shows the full command lines.
V ?= 0
ifeq ($(V),1)
Q :=
say = @:
else
Q := @
say = @printf '  %-6s %s\n'
endif

# libcurl's and libcrypto's headers only: no binary links either. Linked,
# libcurl cost about 6.5 ms at every start (33 shared libraries bound under
# -z now) for the few commands that exchange a token, so federation/http.c
# dlopens it on first use; audit verify dlopens libcrypto (audit/mac.c says
# why). dlopen is in libc since glibc 2.34; -ldl is for older ones.
PKGS := libsodium sqlite3 jansson
PKG_CFLAGS_CRYPTO := $(shell pkg-config --cflags libcrypto 2>/dev/null)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) libcurl 2>/dev/null)
PKG_LIBS_SHARED := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldl
# libsodium, sqlite3 and jansson are linked statically when their .a files
# are there (Debian's -dev packages ship them): with -z now, binding their
# ~1,800 symbols at every start cost 0.4 ms, a seventh of what `latch run`
# may add (bench/README.md). `make LINK=shared` links them dynamically, so
# that a distribution's fix to them reaches latch without a rebuild.
STATIC_LIBS := sodium sqlite3 jansson
LINK ?= $(if $(filter-out /%,$(foreach l,$(STATIC_LIBS),$(shell $(CC) -print-file-name=lib$(l).a))),shared,static)
ifeq ($(LINK),static)
# What the three need from libc's side (sqlite3's .pc also names -lz,
# which Debian's build does not use).
PKG_LIBS := -Wl,-Bstatic $(addprefix -l,$(STATIC_LIBS)) -Wl,-Bdynamic -pthread -lm -ldl
else
PKG_LIBS := $(PKG_LIBS_SHARED)
endif
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wold-style-definition -Wvla -Wpointer-arith \
	-Wimplicit-fallthrough -Wundef -Wcast-align
CSTD := -std=c11 -D_GNU_SOURCE
HARDEN := -fstack-protector-strong -fPIE -D_FORTIFY_SOURCE=2
CFLAGS ?= -O2 -g
ALL_CFLAGS := $(CSTD) $(WARN) $(HARDEN) $(CFLAGS) $(PKG_CFLAGS) $(PKG_CFLAGS_CRYPTO)
LDFLAGS ?=
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(LDFLAGS)

SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_CFLAGS := $(CSTD) $(WARN) -O1 -g $(SAN) $(PKG_CFLAGS) $(PKG_CFLAGS_CRYPTO)
# Bound at start like the plain build (-z now): with lazy binding, the
# dynamic linker's trampoline saves the vector registers to the stack at
# the first call of each function, and a value's bytes that memcpy left in
# them stay there (found under ASan in the broker's memory, not in the
# plain build).
ASAN_LDFLAGS := -Wl,-z,relro,-z,now

# Modules in dependency order; cli/ holds main().
LIB_SRC := $(wildcard common/*.c) $(wildcard match/*.c) $(wildcard vault/*.c) $(wildcard audit/*.c) $(wildcard broker/*.c) $(wildcard run/*.c) $(wildcard hooks/*.c) $(wildcard federation/*.c)
CLI_SRC := $(wildcard cli/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
HDRS := $(wildcard */*.h) $(wildcard tests/*/*.h)

LIB_OBJ := $(LIB_SRC:%.c=build/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=build/obj/%.o)
ASAN_LIB_OBJ := $(LIB_SRC:%.c=build/asan/obj/%.o)
ASAN_CLI_OBJ := $(CLI_SRC:%.c=build/asan/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/tests/%)
ASAN_UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=build/bench/%)

.PHONY: all test unit e2e demo asan fuzz bench deps install uninstall clean format format-check
.DELETE_ON_ERROR:

all: build/latch

build/latch: $(CLI_OBJ) $(LIB_OBJ)
	$(say) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

build/obj/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/bench/%: bench/%.c $(LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(PKG_LIBS)

build/tests/%: tests/unit/%.c $(LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(PKG_LIBS) $(TEST_LIBS)

asan: build/asan/latch $(ASAN_UNIT_BIN)

build/asan/latch: $(ASAN_CLI_OBJ) $(ASAN_LIB_OBJ)
	$(say) ASAN $@
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) $(ASAN_LDFLAGS) -o $@ $^ $(PKG_LIBS_SHARED)

build/asan/obj/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(say) ASAN $@
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) -c -o $@ $<

build/asan/tests/%: tests/unit/%.c $(ASAN_LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(say) ASAN $@
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) $(ASAN_LDFLAGS) -o $@ $< $(ASAN_LIB_OBJ) $(PKG_LIBS_SHARED) $(TEST_LIBS)

# Fuzz targets: libFuzzer binaries, plus the same sources linked with a
# small driver that replays the checked-in corpus during `make test`.
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(HDRS)
	@mkdir -p $(@D)
	$(say) FUZZ $@
	$(Q)$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) -o $@ $< $(LIB_SRC) $(PKG_LIBS_SHARED)

build/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay.c $(ASAN_LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(say) ASAN $@
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) -o $@ $< tests/fuzz/replay.c $(ASAN_LIB_OBJ) $(PKG_LIBS_SHARED)

fuzz: deps $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  n=$$(basename $$f); mkdir -p build/fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 build/fuzz/corpus/$$n tests/fuzz/corpus/$$n || exit 1; \
	done

FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz-replay/%)

deps:
	@sh scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN) asan $(FUZZ_REPLAY)
	@sh tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@sh bench/run.sh

install: build/latch
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 build/latch $(DESTDIR)$(BINDIR)/latch
	install -m 0644 docs/latch.1 $(DESTDIR)$(MANDIR)/man1/latch.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/latch $(DESTDIR)$(MANDIR)/man1/latch.1

# The C files git tracks (every one the targets above compile, bench/ and
# tests/fuzz/replay.c included, and no untracked scratch file); outside a
# git checkout, the ones the Makefile knows. Style: .clang-format.
FORMAT_SRC = $(or $(shell git ls-files '*.c' '*.h' 2>/dev/null),$(sort $(LIB_SRC) $(CLI_SRC) $(BENCH_SRC) \
	$(UNIT_SRC) $(wildcard tests/fuzz/*.c) $(HDRS)))

format:
	clang-format -i $(FORMAT_SRC)

# Fails (and lists the places) when a file is not formatted as `make format` would.
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build
