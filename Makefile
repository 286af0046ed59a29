# DRAW Studio on a fresh machine, two commands:
#   make app    creates .venv if missing, installs requirements.txt, opens the app on the shipped model
#   make test   the same set-up, then the lint and the test suite, as CI runs them (.ci/run calls this)
# The set-up is redone only when requirements.txt changes (the stamp file below records the last install).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-requirements

.PHONY: app test setup

# MALLOC_ARENA_MAX: each of Streamlit's script threads would otherwise get its own malloc arena, and memory freed when
# a class's sessions close would stay with the process (tools/load_test.py measured ~10% more after 30 sessions).
app: setup
	MALLOC_ARENA_MAX=2 $(VENV)/bin/streamlit run app.py

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --no-cache-dir --disable-pip-version-check -r requirements.txt
	touch $@
