# install.mk — `make install` and `make uninstall` (included by the Makefile).
#
# Installs the binary and the agent, the docs (README.md and docs/*.md under DOCDIR, so
# the README's links still work), a man page per command (generated from --help with
# help2man), and the kit in contrib/: Prometheus rules, Grafana dashboard, systemd unit,
# logrotate snippet, bash completion. `make uninstall` removes exactly that list.
# --help names the installed docs, so the binary is rebuilt when PREFIX changes.

SYSCONFDIR    ?= /etc
UNITDIR       ?= $(PREFIX)/lib/systemd/system
DOCDIR        := $(PREFIX)/share/doc/ckmon
DATADIR       := $(PREFIX)/share/ckmon
MANDIR        := $(PREFIX)/share/man/man1
COMPLETIONDIR := $(PREFIX)/share/bash-completion/completions
MAN_COMMANDS  := run collect inspect doctor last-good tail diff report
MAN_PAGES     := $(BUILD)/man/ckmon.1 $(patsubst %,$(BUILD)/man/ckmon-%.1,$(MAN_COMMANDS))
DOCS          := $(wildcard docs/*.md)

INSTALLED := $(PREFIX)/bin/ckmon $(PREFIX)/lib/ckmon/libckmon.so $(DOCDIR)/README.md \
    $(patsubst docs/%,$(DOCDIR)/docs/%,$(DOCS)) $(patsubst $(BUILD)/man/%,$(MANDIR)/%,$(MAN_PAGES)) \
    $(DATADIR)/prometheus/ckmon-rules.yml $(DATADIR)/prometheus/ckmon-rules.test.yml \
    $(DATADIR)/grafana/ckmon-dashboard.json $(UNITDIR)/ckmon-collect.service \
    $(SYSCONFDIR)/logrotate.d/ckmon $(COMPLETIONDIR)/ckmon
# Directories that are ckmon's own, removed by uninstall when empty (deepest first).
OWN_DIRS := $(DOCDIR)/docs $(DOCDIR) $(DATADIR)/prometheus $(DATADIR)/grafana $(DATADIR) \
    $(PREFIX)/lib/ckmon

# The doc directory compiled into --help; the stamp changes only when it does.
$(BUILD)/obj/collector/cli.o: CPPFLAGS += -DCKMON_DOCDIR='"$(DOCDIR)"'
$(BUILD)/obj/collector/cli.o: $(BUILD)/docdir.stamp
$(BUILD)/docdir.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(DOCDIR)' | cmp -s - $@ || echo '$(DOCDIR)' > $@
.PHONY: FORCE uninstall man
FORCE:

man: $(MAN_PAGES)

$(BUILD)/man/ckmon.1: $(CLI)
	@mkdir -p $(dir $@)
	help2man -N --version-string="$$($(CLI) --version | cut -d' ' -f2)" \
	    -n "watch the checkpoints a program writes" -o $@ $(CLI)

# One page per command: its --help, titled ckmon-COMMAND.
$(BUILD)/man/ckmon-%.1: $(CLI)
	@mkdir -p $(dir $@)
	help2man -N --version-string="$$($(CLI) --version | cut -d' ' -f2)" \
	    --help-option="$* --help" -n "ckmon $*" -o $@.tmp $(CLI)
	sed -e 's/^\.TH CKMON /.TH CKMON-$(shell echo $* | tr a-z A-Z) /' \
	    -e 's/^ckmon \\- ckmon $*/ckmon-$* \\- the ckmon $* command/' $@.tmp > $@
	rm -f $@.tmp

install: all $(MAN_PAGES)
	install -d $(addprefix $(DESTDIR),$(sort $(dir $(INSTALLED))))
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/ckmon
	install -m 644 $(AGENT_SO) $(DESTDIR)$(PREFIX)/lib/ckmon/libckmon.so
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/docs/
	install -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/
	install -m 644 contrib/prometheus/ckmon-rules.yml contrib/prometheus/ckmon-rules.test.yml \
	    $(DESTDIR)$(DATADIR)/prometheus/
	install -m 644 contrib/grafana/ckmon-dashboard.json $(DESTDIR)$(DATADIR)/grafana/
	sed 's|@PREFIX@|$(PREFIX)|g' contrib/systemd/ckmon-collect.service > $(BUILD)/ckmon-collect.service
	install -m 644 $(BUILD)/ckmon-collect.service $(DESTDIR)$(UNITDIR)/
	install -m 644 contrib/logrotate/ckmon $(DESTDIR)$(SYSCONFDIR)/logrotate.d/ckmon
	install -m 644 contrib/bash-completion/ckmon $(DESTDIR)$(COMPLETIONDIR)/ckmon

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(addprefix $(DESTDIR),$(OWN_DIRS)) 2>/dev/null
