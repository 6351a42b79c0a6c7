# gemini-chunk-proxy: `make test`, `make bench`, `make demo`, `make run`.
# Everything runs from a virtualenv this Makefile builds from the pinned requirements files.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 1231
SIM_PORT ?= 8090

.PHONY: test lint bench demo demo-ports run require-keys clean

$(BIN)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed (PYTHON=...)")'
	@echo "Building the virtualenv $(VENV) from the pinned requirements (first run only, about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Under gevent's monkey-patching, like a gunicorn gevent worker: the upstream reads wait on
# cooperative sockets (a gevent read watcher).
test: lint
	$(BIN)/python -m gevent.monkey --module pytest

# Not a test: loads on loopback against the simulator, several minutes; writes BENCHMARKS.md.
bench: $(BIN)/.installed
	$(BIN)/python -m tests.bench

# The real thing: keys and settings from the environment (see README: Configuration).
run: require-keys $(BIN)/.installed
	exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# Checked before the virtualenv is built, so a missing key list fails at once with one line.
NO_KEYS := GEMINI_API_KEY_LIST (or GEMINI_API_KEY_LIST_FILE) is not set: export your Gemini keys, or try 'make demo' (no keys needed)
require-keys:
	$(if $(strip $(GEMINI_API_KEY_LIST)$(GEMINI_API_KEY_LIST_FILE)),,$(error $(NO_KEYS)))

# "taken" if something answers on loopback port $(1) (the simulator's address; the proxy's
# 0.0.0.0 includes it), else nothing.
PORT_TAKEN = $(shell $(PYTHON) -c 'import socket, sys; probe = socket.socket(); probe.settimeout(1); \
	print("taken" if probe.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else "")' $(1))
taken = Port $(1) ($(2), $(3)) is in use: stop what holds it or pick another, e.g. make demo $(2)=$(4)

# Checked before the virtualenv is built or anything starts, so a taken port fails at once with
# one line naming the variable to change (a busy SIM_PORT used to print a traceback, a busy PORT
# a curl for a proxy that then could not bind).
demo-ports:
	$(if $(call PORT_TAKEN,$(SIM_PORT)),$(error $(call taken,$(SIM_PORT),SIM_PORT,the Gemini simulator,$(shell expr $(SIM_PORT) + 1))))
	$(if $(call PORT_TAKEN,$(PORT)),$(error $(call taken,$(PORT),PORT,the proxy,$(shell expr $(PORT) + 1))))

# No keys needed: the local Gemini simulator on SIM_PORT, the proxy on PORT wired to it.
demo: demo-ports $(BIN)/.installed
	@set -e; \
	log=$$(mktemp); \
	$(BIN)/python -m simulator --port $(SIM_PORT) > $$log 2>&1 & sim=$$!; \
	trap 'kill $$sim 2>/dev/null; rm -f $$log' EXIT INT TERM; \
	until grep -q simulator_listening $$log; do \
		if ! kill -0 $$sim 2>/dev/null; then \
			echo "The Gemini simulator did not start on port $(SIM_PORT) (try SIM_PORT=...):"; \
			cat $$log; exit 1; \
		fi; \
		sleep 0.1; \
	done; \
	echo "Gemini simulator on 127.0.0.1:$(SIM_PORT). Proxy on port $(PORT); in another terminal try:"; \
	echo ""; \
	echo "  curl --no-buffer -X POST 'http://localhost:$(PORT)/generate?password=kkb' \\"; \
	echo "    -H 'Content-Type: application/json' \\"; \
	echo "    -d '{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"Tell me a story\"}]}]}'"; \
	echo ""; \
	GEMINI_API_KEY_LIST=demo-key-1,demo-key-2 GEMINI_API_BASE=http://127.0.0.1:$(SIM_PORT) \
		PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
