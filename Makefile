# Two entry points for people (see README): `make run` and `make test`.
# Everything they need is installed from here, so a fresh clone works.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# System tools the tests drive for real: umockdev (fake udev), udev (udevadm),
# systemd-analyze (unit checks), libusb (pyusb), systemd-nspawn (tests/system:
# the service under a real systemd), chromium + chromedriver (the status page in a
# real browser), promtool (the alert rules), mkfs.ext4, strace and faketime (faults: power
# cuts, refused writes, clock steps). The adb server is the one adbutils ships.
SYSTEM_TOOLS = umockdev-wrapper umockdev-run udevadm systemd-analyze systemd-sysusers unshare \
               setpriv nsenter systemd-nspawn git chromium chromedriver promtool mkfs.ext4 \
               strace faketime
SYSTEM_PKGS  = umockdev libumockdev0 udev systemd libusb-1.0-0 util-linux systemd-container git \
               chromium chromium-driver prometheus e2fsprogs strace faketime
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench faults system-deps install uninstall clean

$(BIN)/python:
	@# Debian splits venv support into python3-venv; a fresh machine may lack it.
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "installing python3-venv"; $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

## Run the agent in the foreground; no config file needed. Without --config in ARGS its
## state stays in the checkout ($(RUN_STATE)), never in the production /var/lib/resource-agent.
RUN_STATE ?= $(CURDIR)/.state
run: $(VENV)/.installed
	$(BIN)/resource-agent serve $(if $(findstring --config,$(ARGS)),,--state-dir $(RUN_STATE)) $(ARGS)

system-deps:
	@missing=0; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing=1; done; \
	[ -e /usr/lib/x86_64-linux-gnu/libusb-1.0.so.0 ] || ldconfig -p | grep -q libusb-1.0 || missing=1; \
	if [ $$missing = 1 ]; then \
	  echo "installing system packages: $(SYSTEM_PKGS)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PKGS) >/dev/null; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check agent tests bench
	$(BIN)/ruff format --check agent tests bench
	$(BIN)/mypy

## Lint, type-check and run the whole suite (udev tests run under umockdev).
test: system-deps lint
	umockdev-wrapper $(BIN)/python -m pytest $(PYTEST_ARGS)

## The fault and fuzz tests (issue 11) at ten times their size in `make test` (or FAULTS_SCALE=N).
FAULTS_SCALE ?= 10
faults: system-deps $(VENV)/.installed-test
	FAULTS_SCALE=$(FAULTS_SCALE) umockdev-wrapper $(BIN)/python -m pytest \
	  tests/integration/test_fault_*.py tests/integration/test_fuzz_*.py $(PYTEST_ARGS)

# The peer benchmark's labgrid lives in its own venv: never a dependency of the agent.
LABGRID_VENV = $(VENV)-labgrid
$(LABGRID_VENV)/bin/labgrid-coordinator:
	$(PYTHON) -m venv $(LABGRID_VENV)
	$(LABGRID_VENV)/bin/pip install -q --upgrade pip
	$(LABGRID_VENV)/bin/pip install -q 'labgrid==26.0.1'

bench: system-deps $(VENV)/.installed-test $(LABGRID_VENV)/bin/labgrid-coordinator
	umockdev-wrapper $(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(LABGRID_VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache

# make install / make uninstall (as root): see install.mk and the README.
include install.mk
