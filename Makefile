# SPDX-License-Identifier: MIT
# heal: one pattern chain  bpf/%.bpf.c -> .output/%.bpf.o -> .output/%.skel.h -> user objects.

OUTPUT := .output
CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= cc
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/;s/ppc64le/powerpc/;s/s390x/s390/')
PREFIX ?= /usr/local
DESTDIR ?=
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

PKGS := libbpf libelf libdw zlib libcjson libcurl libmicrohttpd libpq
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -Wshadow -Wformat=2 \
	  -Wmissing-prototypes -Wstrict-prototypes -fno-omit-frame-pointer \
	  -MMD -MP -I include -I $(OUTPUT) \
	  -DHEAL_VERSION='"$(VERSION)"' \
	  $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lbpf -lelf -ldw -lz -lcjson -lcurl -lmicrohttpd -lpq) -lpthread
BPF_CFLAGS := -g -O2 -Wall -Werror=implicit-function-declaration -target bpf -D__TARGET_ARCH_$(ARCH) -I include -I vmlinux -I $(OUTPUT) \
	      -idirafter /usr/include/$(shell $(CC) -dumpmachine 2>/dev/null)

# Sanitizer build of everything (make SAN=1): objects go to .output/san.
ifeq ($(SAN),1)
OBJDIR := $(OUTPUT)/san
CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
OBJDIR := $(OUTPUT)/obj
endif
BIN := $(OBJDIR)/bin

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

BPF_SRCS := $(wildcard bpf/*.bpf.c)
SKELS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
# Daemon modules: every user/*.c but the entry point.
LIB_SRCS := $(filter-out user/heald.c,$(wildcard user/*.c))
LIB_OBJS := $(patsubst user/%.c,$(OBJDIR)/user/%.o,$(LIB_SRCS))
TOOLS := failgen healctl $(if $(wildcard tools/shop.c),shop) $(if $(wildcard tools/payments.c),payments)
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
E2E_TESTS := $(patsubst tests/e2e/%.c,%,$(wildcard tests/e2e/test_*.c))

.DELETE_ON_ERROR:
.PHONY: all clean test test-unit test-e2e test-san test-ui demo deps install uninstall vmlinux format lint check

all: $(BIN)/heald $(addprefix $(BIN)/,$(TOOLS)) heald failgen healctl

# Convenience links at the top level for people.
heald failgen healctl: %: $(BIN)/%
	$(Q)ln -sf $< $@

$(OUTPUT) $(OBJDIR)/user $(OBJDIR)/tools $(OBJDIR)/tests $(BIN):
	$(Q)mkdir -p $@

# -- BPF chain ----------------------------------------------------------------
$(OUTPUT)/%.bpf.o: bpf/%.bpf.c include/heal/events.h $(wildcard bpf/*.bpf.h) vmlinux/vmlinux.h | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)llvm-strip -g $@ 2>/dev/null || true

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

# Syscall names of this architecture, from the kernel's UAPI header.
$(OUTPUT)/syscall_table.h: tools/gen-syscalls.sh | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)sh tools/gen-syscalls.sh > $@

# -- userspace ------------------------------------------------------------------
$(OBJDIR)/user/probe.o: $(SKELS)
$(OBJDIR)/user/names.o: $(OUTPUT)/syscall_table.h

# The dashboard, embedded in heald as byte arrays.
DASHBOARD_FILES := tools/dashboard/index.html tools/dashboard/app.js tools/dashboard/style.css
$(OUTPUT)/dashboard_assets.h: tools/embed.sh $(DASHBOARD_FILES) | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)sh tools/embed.sh $@ $(DASHBOARD_FILES)
$(OBJDIR)/user/dashboard.o: $(OUTPUT)/dashboard_assets.h

# The revision heald reports (--version, /metrics, the API): rewritten only when
# HEAD moves, so the two objects that include it rebuild then and only then.
$(OUTPUT)/revision.h: FORCE
	$(Q)mkdir -p $(@D) && printf '#define HEAL_GIT_REV "%s"\n' "$(GIT_REV)" > $@.tmp && \
		{ cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@; }
.PHONY: FORCE
FORCE:
$(OBJDIR)/user/heald.o $(OBJDIR)/user/api.o: $(OUTPUT)/revision.h

$(OBJDIR)/user/%.o: user/%.c | $(OBJDIR)/user $(SKELS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OBJDIR)/tools/%.o: tools/%.c | $(OBJDIR)/tools
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OBJDIR)/tests/%.o: tests/unit/%.c | $(OBJDIR)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -I tests/lib -c $< -o $@

$(OBJDIR)/tests/%.o: tests/e2e/%.c | $(OBJDIR)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -I tests/lib -c $< -o $@

$(OBJDIR)/tests/%.o: tests/lib/%.c | $(OBJDIR)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -I tests/lib -c $< -o $@

$(BIN)/heald: $(OBJDIR)/user/heald.o $(LIB_OBJS) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The failure generator: frame pointers and debug info so stacks symbolize to file:line.
$(BIN)/failgen: $(OBJDIR)/tools/failgen.o | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ -o $@

$(BIN)/healctl: $(OBJDIR)/tools/healctl.o $(LIB_OBJS) | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The demo shop: a libmicrohttpd service and the payments process it depends on.
$(BIN)/shop: $(OBJDIR)/tools/shop.o | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ -lmicrohttpd -lcjson -o $@

$(BIN)/payments: $(OBJDIR)/tools/payments.o | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ -lmicrohttpd -lcjson -o $@

$(BIN)/test_%: $(OBJDIR)/tests/test_%.o $(LIB_OBJS) $(OBJDIR)/tests/harness.o $(OBJDIR)/tests/shopenv.o | $(BIN)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

# -- tests ----------------------------------------------------------------------
# The README's two commands install what they need first (deps is a no-op when all is there).
test: deps
	$(Q)$(MAKE) --no-print-directory all $(addprefix $(BIN)/,$(UNIT_TESTS) $(E2E_TESTS))
	$(Q)BIN=$(BIN) sh tests/run.sh $(UNIT_TESTS) $(E2E_TESTS) test_ui

test-unit: all $(addprefix $(BIN)/,$(UNIT_TESTS))
	$(Q)BIN=$(BIN) sh tests/run.sh $(UNIT_TESTS)

test-e2e: all $(addprefix $(BIN)/,$(E2E_TESTS))
	$(Q)BIN=$(BIN) sh tests/run.sh $(E2E_TESTS)

# Every test again under ASan/UBSan.
test-san: deps
	$(Q)$(MAKE) --no-print-directory SAN=1 all $(addprefix $(OUTPUT)/san/bin/,$(UNIT_TESTS) $(E2E_TESTS))
	$(Q)BIN=$(OUTPUT)/san/bin ASAN_OPTIONS=detect_leaks=1 sh tests/run.sh $(UNIT_TESTS) $(E2E_TESTS)

# The dashboard in headless Chromium (also part of make test).
test-ui: all
	$(Q)BIN=$(BIN) sh tests/run.sh test_ui

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh tools/demo.sh $(BIN)

deps:
	$(Q)sh tools/deps.sh

vmlinux:
	$(call msg,GEN,vmlinux/vmlinux.h)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)/etc/heal
	install -m 0755 $(BIN)/heald $(DESTDIR)$(PREFIX)/sbin/heald
	install -m 0755 $(BIN)/healctl $(DESTDIR)$(PREFIX)/sbin/healctl
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/heal/README.md
	sed 's|@PREFIX@|$(PREFIX)|g' packaging/heald.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/heald.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/heald.service
	test -e $(DESTDIR)/etc/heal/heal.json || install -m 0600 packaging/heal.json $(DESTDIR)/etc/heal/heal.json

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/heald $(DESTDIR)$(PREFIX)/lib/systemd/system/heald.service

format:
	$(Q)clang-format -i user/*.c include/heal/*.h bpf/*.c tools/*.c tests/*/*.c tests/lib/*.h

lint:
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem -I include -I tests/lib \
		--suppress="AssignmentAddressToInteger:tests/*" \
		--include=/usr/include/cjson/cJSON.h \
		-i tests/ui/node_modules $(addprefix -i ,$(wildcard tools/bench/*.bpf.c)) user tools tests

clean:
	$(call msg,CLEAN)
	$(Q)rm -rf $(OUTPUT) heald failgen healctl

-include $(wildcard $(OBJDIR)/*/*.d)


# -- benchmarks (root; separate from test): rewrites the tables in BENCHMARKS.md --
# BENCH_SECTIONS=syscall make bench runs one section; each is tools/bench/NAME.sh.
BENCH_SECTIONS ?= syscall uprobe nginx pipeline heal idle
BENCH_BINS := $(BIN)/heald $(BIN)/shop $(BIN)/payments $(BIN)/failgen \
	$(patsubst tools/bench/%.c,$(OUTPUT)/bench/%,$(filter-out %.bpf.c,$(wildcard tools/bench/*.c))) \
	$(patsubst tools/bench/%.bpf.c,$(OUTPUT)/bench/%.bpf.o,$(wildcard tools/bench/*.bpf.c))
.PHONY: bench
bench: $(BENCH_BINS)
	$(Q)sh tools/deps.sh --bench
	$(Q)for s in $(BENCH_SECTIONS); do \
		[ -f tools/bench/$$s.sh ] || { echo "bench: no section $$s" >&2; exit 1; }; \
		BIN=$(BIN) BENCH=$(OUTPUT)/bench sh tools/bench/$$s.sh --update BENCHMARKS.md || exit 1; \
	done

# every tools/bench/X.c is a standalone tool; X.bpf.c a BPF object
$(OUTPUT)/bench/%: tools/bench/%.c
	$(Q)mkdir -p $(@D) && $(CC) -O2 -g -Wall -Wextra -Wno-unused-parameter -o $@ $< -lbpf -lpthread

$(OUTPUT)/bench/%.bpf.o: tools/bench/%.bpf.c
	$(Q)mkdir -p $(@D) && $(CLANG) -O2 -g -target bpf -idirafter /usr/include/$(shell $(CC) -dumpmachine) -c $< -o $@
