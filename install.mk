# `make install` / `make uninstall` (included by the Makefile; README "Install").
#
# As root on the build machine:  make install
# Staged (packaging, tests):     make install DESTDIR=/tmp/stage [INSTALL_VENV=0]
# Another interpreter:           make install PYTHON=/usr/local/bin/python3.12
#
# The agent gets its own venv in PREFIX; the unit, sysusers file and udev rules
# go where systemd and udev read them; /etc/resource-agent/agent.toml is
# written only when absent. With an empty DESTDIR, the user is created and
# systemd and udev are reloaded where they run.

PREFIX       ?= /opt/resource-agent
SYSCONFDIR   ?= /etc
UNITDIR      ?= /etc/systemd/system
SYSUSERSDIR  ?= /usr/lib/sysusers.d
UDEVRULESDIR ?= /etc/udev/rules.d
# 0 skips the venv (tests of the file layout); a real install needs it.
INSTALL_VENV ?= 1
# Extra arguments for pip, e.g. PIP_ARGS="--index-url https://mirror/simple".
PIP_ARGS     ?=
# The venv is built on the OS's python, not on whatever python3 a root shell
# finds first (pyenv, conda, a venv: often under /root, which the service
# cannot reach); PYTHON=... on the command line or in the environment picks another.
ifneq ($(filter command line environment,$(origin PYTHON)),)
INSTALL_PYTHON = $(PYTHON)
else
INSTALL_PYTHON = /usr/bin/python3
endif

CONFDIR  = $(SYSCONFDIR)/resource-agent
DOCDIR   = $(PREFIX)/share/doc/resource-agent
D        = $(DESTDIR)

install:
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" != 0 ]; then \
	  echo "make install: run as root (sudo make install), or stage with DESTDIR=..." >&2; exit 1; fi
	@# On the build machine itself: what the agent runs with, from Debian's packages.
	@if [ -z "$(DESTDIR)" ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  $(INSTALL_PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	  ldconfig -p | grep -q libusb-1.0 || missing="$$missing libusb-1.0-0"; \
	  if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; fi
ifeq ($(INSTALL_VENV),1)
	@command -v $(INSTALL_PYTHON) >/dev/null || \
	  { echo "make install: no $(INSTALL_PYTHON); install python3, or set PYTHON=" >&2; exit 1; }
	@$(INSTALL_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "make install: $(INSTALL_PYTHON) is older than 3.11; set PYTHON=python3.11" >&2; exit 1; }
	@# The venv's python links to this interpreter, and the service runs it as its own
	@# user with ProtectHome=yes (no /home, /root, /run/user): else 203/EXEC at each start.
	@set -- $$($(INSTALL_PYTHON) -c 'import os, sys; e = sys._base_executable; \
	    print(e, os.path.realpath(e), sys.base_prefix)') && exe=$$1 && \
	for p in "$$@"; do case $$p/ in /home/*|/root/*|/run/user/*) \
	  echo "make install: $(INSTALL_PYTHON) runs from $$p, a home directory, which the" \
	       "service cannot see (ProtectHome=yes); use the OS's python (the default," \
	       "/usr/bin/python3) or PYTHON= one outside /home, /root and /run/user" >&2; \
	  exit 1;; esac; done; \
	if [ "$$(id -u)" = 0 ] && ! setpriv --reuid=65534 --regid=65534 --clear-groups -- \
	    env -i $$exe -I -c 'import encodings, venv' >/dev/null 2>&1; then \
	  echo "make install: $$exe cannot be run by an unprivileged user" \
	       "like the service's; use the OS's python (the default, /usr/bin/python3) or" \
	       "PYTHON= one that every user may execute" >&2; exit 1; fi
	$(INSTALL_PYTHON) -m venv $(D)$(PREFIX)
	$(D)$(PREFIX)/bin/python -m pip install -q --disable-pip-version-check $(PIP_ARGS) .
	@# A staged venv must name its final place in its scripts, not the staging dir.
	@if [ -n "$(DESTDIR)" ]; then \
	  grep -rlF '$(D)$(PREFIX)' $(D)$(PREFIX)/bin $(D)$(PREFIX)/pyvenv.cfg | \
	    xargs -r sed -i 's#$(D)$(PREFIX)#$(PREFIX)#g'; fi
endif
	install -D -m 0644 README.md $(D)$(DOCDIR)/README.md
	install -d -m 0755 $(D)$(UNITDIR) $(D)$(SYSUSERSDIR) $(D)$(UDEVRULESDIR)
	for unit in resource-agent.service resource-agent-adb.service; do \
	  sed 's#/opt/resource-agent#$(PREFIX)#g' systemd/$$unit > $(D)$(UNITDIR)/$$unit && \
	  chmod 0644 $(D)$(UNITDIR)/$$unit || exit 1; done
	install -m 0644 systemd/resource-agent.sysusers $(D)$(SYSUSERSDIR)/resource-agent.conf
	install -m 0644 udev-rules/90-resource-agent.rules $(D)$(UDEVRULESDIR)/90-resource-agent.rules
	install -d -m 0755 $(D)$(CONFDIR)
	@if [ -e $(D)$(CONFDIR)/agent.toml ]; then \
	  echo "keeping the existing $(CONFDIR)/agent.toml (example: etc/agent.toml)"; \
	else install -m 0644 etc/agent.toml $(D)$(CONFDIR)/agent.toml; \
	  echo "wrote $(CONFDIR)/agent.toml"; fi
	@# LoadCredential= fails the unit when its file is missing: start with an empty token.
	@if [ ! -e $(D)$(CONFDIR)/jenkins.token ]; then \
	  install -m 0600 /dev/null $(D)$(CONFDIR)/jenkins.token; fi
	@if [ -z "$(DESTDIR)" ]; then \
	  if command -v systemd-sysusers >/dev/null; then \
	    systemd-sysusers $(SYSUSERSDIR)/resource-agent.conf; fi; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	  if udevadm control --ping 2>/dev/null; then \
	    udevadm control --reload && udevadm trigger --subsystem-match=usb --action=change; fi; \
	  echo "installed; next: edit $(CONFDIR)/agent.toml, then" \
	       "systemctl enable --now resource-agent-adb resource-agent &&" \
	       "$(PREFIX)/bin/resource-agent doctor"; fi

uninstall:
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" != 0 ]; then \
	  echo "make uninstall: run as root (sudo make uninstall)" >&2; exit 1; fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	  systemctl disable --now resource-agent.service resource-agent-adb.service \
	    2>/dev/null || true; fi
	rm -f $(D)$(UNITDIR)/resource-agent.service $(D)$(UNITDIR)/resource-agent-adb.service \
	  $(D)$(SYSUSERSDIR)/resource-agent.conf \
	  $(D)$(UDEVRULESDIR)/90-resource-agent.rules
	@# PREFIX goes whole only when it is this agent's venv; else just what we put there.
	@if [ -f $(D)$(PREFIX)/pyvenv.cfg ] && [ -e $(D)$(PREFIX)/bin/resource-agent ]; then \
	  rm -rf $(D)$(PREFIX); echo "removed $(PREFIX)"; \
	else rm -rf $(D)$(DOCDIR); \
	  rmdir $(D)$(PREFIX)/share/doc $(D)$(PREFIX)/share $(D)$(PREFIX) 2>/dev/null || true; fi
	@# The administrator's config and token stay unless they are the untouched defaults.
	@if cmp -s etc/agent.toml $(D)$(CONFDIR)/agent.toml; then rm -f $(D)$(CONFDIR)/agent.toml; fi
	@if [ -e $(D)$(CONFDIR)/jenkins.token ] && [ ! -s $(D)$(CONFDIR)/jenkins.token ]; then \
	  rm -f $(D)$(CONFDIR)/jenkins.token; fi
	@rmdir $(D)$(CONFDIR) 2>/dev/null || \
	  echo "kept $(CONFDIR) (your config); state stays in /var/lib/resource-agent"
	@if [ -z "$(DESTDIR)" ]; then \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	  if udevadm control --ping 2>/dev/null; then udevadm control --reload; fi; fi
