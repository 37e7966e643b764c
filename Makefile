# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
# Tanbih's own address (absolute links, the demo storefront's allowed origin)
# follows HOST and PORT for `make run` unless SITE_URL is set.
RUN_SITE_URL := http://$(if $(filter 0.0.0.0 ::,$(HOST)),127.0.0.1,$(HOST)):$(PORT)

.PHONY: run test install install-test migrate demo screenshots bench-ingest bench-broadcast bench-segments bench-analytics bench-journeys clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt requirements.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test node_modules/.installed

migrate: install
	$(PY) manage.py migrate --noinput

run demo: export SITE_URL ?= $(RUN_SITE_URL)

demo: migrate
	$(PY) manage.py load_demo_store --if-empty
	$(PY) manage.py ensure_admin
	$(PY) manage.py generate_vapid_keys --save
	$(PY) manage.py load_starter_templates
	$(PY) manage.py create_journey_from_recipe abandoned-cart --activate --if-missing
	$(PY) manage.py send_demo_messages --if-empty
	$(PY) manage.py load_demo_analytics --if-empty
	$(PY) manage.py train_predictions --if-never

## Set up everything and run the web server, a Celery worker and celery-beat with a demo store.
run: demo
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py run_tanbih --host $(HOST) --port $(PORT)

## Run the whole test suite (SQLite by default; DATABASE_URL / REDIS_URL for the production path).
test: install-test
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench-ingest: install-test
	$(PY) bench/ingest/run.py

## The web-push broadcast benchmark (PostgreSQL; docs/benchmarks.md). Installs bench/requirements.txt.
bench-broadcast: install-test
	$(PIP) install --quiet -r bench/requirements.txt
	$(PY) bench/broadcast/run.py $(BENCH_ARGS)

## Counting segments over 1,000,000 subscribers and 10,000,000 events (PostgreSQL; docs/benchmarks.md).
bench-segments: install-test
	$(PY) bench/segments/run.py $(BENCH_ARGS)

## The dashboard and a campaign report over 10,000,000 messages vs computing them from raw rows (docs/benchmarks.md).
bench-analytics: install-test
	$(PY) bench/analytics/run.py $(BENCH_ARGS)

## 100,000 journey enrolments due at once through beat's tick and Celery workers vs a countdown task each (docs/benchmarks.md).
bench-journeys: install-test
	$(PY) bench/journeys/run.py $(BENCH_ARGS)

## The README's screenshots (docs/screenshots/) of the demo store's main pages in English and Arabic (Chromium).
screenshots: demo install-test
	$(PY) manage.py take_screenshots

clean:
	rm -rf data node_modules $(VENV)
