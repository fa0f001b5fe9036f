# speechfin: two set-up commands on a fresh machine: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed

.PHONY: run test system-deps clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[test]'
	$(VENV)/bin/pip check
	touch $(STAMP)

# Debian tools the tests use as a reader would: headless Chromium (report screenshots),
# pdftotext (PDF checks), espeak-ng and ffmpeg (synthetic test audio). Installed only if missing.
system-deps:
	@missing=""; \
	for pair in chromium:chromium pdftotext:poppler-utils espeak-ng:espeak-ng ffmpeg:ffmpeg; do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing system packages:$$missing (tests that need them are skipped)"; fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/speechfin run

test: $(STAMP) system-deps
	$(VENV)/bin/pytest -q

clean-venv:
	rm -rf $(VENV)
