# Two set-up commands on a fresh machine: `make demo` (main job) and `make test` (whole suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

WEB := brain3d/serve/web

$(STAMP): pyproject.toml $(WEB)/package.json
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# NiiVue for the serve page (npm); without it the page shows server-rendered slices only
	@if command -v npm >/dev/null 2>&1; then \
		(cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error) || echo "note: npm could not install NiiVue; the serve page falls back to server-rendered slices"; \
	else echo "note: npm not found; the serve page falls back to server-rendered slices"; fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/brain3d demo --out demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache $(WEB)/node_modules
