# Two commands: `make demo` serves the suite, `make test` runs every test.
# Each creates the virtualenv and installs what it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test lint bench chromium publish

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .  # the `demos` command (.venv/bin/demos)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

# Playwright cannot download its own browser here: the browser tests drive Debian's (with an
# emoji font, so that screenshots show the tabs' emoji).
EMOJI_FONT := /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
chromium:
	@test -x $(CHROMIUM) -a -f $(EMOJI_FONT) || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium fonts-noto-color-emoji; }

demo: $(VENV)/.installed
	$(PY) app.py

# Lint and format check first: CI runs exactly this.
test: $(VENV)/.installed-dev chromium
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

# Train every model of publish.toml from its public data, push it, deploy every Space:
#   make publish NAMESPACE=you [PUBLISH_ARGS="--only pets-classifier --dry-run"]
publish: $(VENV)/.installed
	@test -n "$(NAMESPACE)" || { echo "usage: make publish NAMESPACE=<your Hub name>"; exit 2; }
	$(PY) -m shared.cli publish --namespace $(NAMESPACE) $(PUBLISH_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b || exit 1; done
