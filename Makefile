# Every target sets itself up: a pinned uv in .tools/, then .venv from uv.lock.
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced-stamp

.PHONY: demo test check lint types imports bench clean lock settings-doc system-deps guide-shots

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# requirements.lock pins every dependency (and dev tool) with hashes; the project itself
# goes in editable, without resolving anything further. Dependencies are compiled to
# bytecode as they are installed (on every core, ~8 s on a fresh clone): otherwise the
# first `make test` compiles them as it imports them, in several processes at once, and a
# steward's first `sauti` command waits for it.
$(STAMP): pyproject.toml requirements.lock | $(UV)
	test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes --compile-bytecode \
		requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

demo: $(STAMP)
	$(BIN)/sauti demo $(DEMO_ARGS)

# Browser tests drive Debian's Chromium (Playwright cannot download browsers here), in its
# headless shell (a fifth less CPU; the guide pictures are taken in the full browser), and
# the fact-sheet tests render PDFs with pdftoppm: install them from Debian when missing.
SYSTEM_PACKAGES := chromium chromium-headless-shell poppler-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@command -v chromium >/dev/null && command -v chromium-headless-shell >/dev/null && \
		command -v pdftoppm >/dev/null || \
		{ $(SUDO) apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null || \
		  { $(SUDO) apt-get update >/dev/null && \
		    $(SUDO) apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; } || \
		  echo "warning: could not install $(SYSTEM_PACKAGES); browser and PDF tests will skip"; }

# The suite runs in pytest-xdist worker processes, one more than cores (`TEST_WORKERS=0`: one process).
# `--dist loadfile` keeps each test module on one worker, in order: module-scoped fixtures
# (Playwright's browser, a served site) are built once, and no test is moved away from
# the tests before it. A bare `.venv/bin/pytest` stays a single process.
# Bytecode is cached (even where PYTHONDONTWRITEBYTECODE is set in the environment): without
# it every worker and every `sauti` or server process the tests start compiles each module
# it imports again, a third of the suite's start-up CPU.
# One worker more than there are cores: each worker waits at times on a server it started,
# PostgreSQL or Chromium, and the extra one keeps the cores busy meanwhile (2 cores, same
# tree, warm: 6:48 with 3 workers, 7:27 with 2; CPU used 158 % against 146 %).
TEST_WORKERS ?= $(shell echo $$(( $$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1) + 1 )))
test: $(STAMP) system-deps
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The pictures in the role guides are taken by the browser journeys, in all five languages;
# run after changing a page the guides show, and commit the pictures with the change.
guide-shots: $(STAMP) system-deps
	SAUTI_GUIDE_SHOTS=1 $(BIN)/pytest -q -p no:randomly -n 2 --dist loadfile \
		tests/web/test_node_onboarding_browser.py tests/web/test_signature_journey.py \
		tests/web/test_hub_analyst_journey.py tests/web/test_assessment_browser.py \
		tests/web/test_hub_audit_browser.py tests/web/test_guides_browser.py
	$(BIN)/python -m tests.web.guide_shots

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy contracts runtime node hub sauti bench

# The import rules of pyproject.toml ([tool.importlinter]); tests/test_import_rules.py runs
# them too, so CI's `make test` checks them.
imports: $(STAMP)
	$(BIN)/lint-imports

check: lint types imports test

# Benches cache bytecode as an installed service does (see `test`): a CLI start-up measured
# with PYTHONDONTWRITEBYTECODE set would time the compiler, not the command.
bench: export PYTHONDONTWRITEBYTECODE =
bench: $(STAMP)
	$(BIN)/python bench/dp_count.py
	$(BIN)/python bench/federation.py
	$(BIN)/python bench/federation_scale.py
	$(BIN)/python bench/query_overhead.py
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/dp_audit.py
	$(BIN)/python bench/import_csv.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/migrations.py
	$(BIN)/python bench/login_timing.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/hub_scale_out.py

# The settings reference page is generated; unchanged code changes nothing.
settings-doc: $(STAMP)
	$(BIN)/python -m sauti.settings_doc

# Re-pin after changing dependencies in pyproject.toml or packaging/*/pyproject.toml. The
# node-only and hub-only installs (deploy/*.Dockerfile) pin the same versions as the full lock.
SPLIT_INSTALLS := node hub
lock: | $(UV)
	$(UV) pip compile pyproject.toml --group dev --generate-hashes --no-emit-index-url \
		--no-header --python-version 3.11 -o requirements.lock
	for side in $(SPLIT_INSTALLS); do \
		$(UV) pip compile packaging/sauti-$$side/pyproject.toml -c requirements.lock \
			--generate-hashes --no-emit-index-url --no-header --python-version 3.11 \
			-o requirements-$$side.lock || exit 1; \
	done

clean:
	rm -rf .tools $(VENV) .mypy_cache .pytest_cache .ruff_cache .import_linter_cache sauti-demo-out
