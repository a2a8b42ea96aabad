# The two commands a new user runs (README): `make demo` and `make test`.
# Each sets up its own virtual environment from pyproject.toml first, so a fresh machine with
# python3 (3.11+) is enough.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test setup setup-test dagit ddl ddl-files bench clean mutation mutation-clean

# A new DAGSTER_HOME gets a dagster.yaml with telemetry off (as deploy/dagster.yaml), so Dagster never
# warns "No dagster instance configuration file"; an existing one is left alone.
DAGSTER_YAML := telemetry:\n  enabled: false\n
HOME_DIR = $${DAGSTER_HOME:-$(CURDIR)/.dagster_home}
define ensure_home
	@home=$(HOME_DIR); mkdir -p "$$home" && { test -f "$$home/dagster.yaml" || printf '$(DAGSTER_YAML)' > "$$home/dagster.yaml"; }
endef

demo: setup  ## materialize the last 3 days with the sample source into ./lake, print the table (then: make dagit)
	$(ensure_home)
	@DAGSTER_HOME=$(HOME_DIR) $(PY) -m tweet_assets.cli demo

# Two pytest-xdist workers, a file each at a time (--dist loadfile keeps a file's module fixtures, such as
# the Airflow scheduler's, in one process): the deploy tests wait on installs and services while the
# other worker runs; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test: setup-test  ## run the whole test suite (two workers; TEST_WORKERS=0 for one process)
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

dagit: setup  ## open Dagit (the Dagster UI) on http://127.0.0.1:3000 with dg dev (creates DAGSTER_HOME on a fresh clone)
	$(ensure_home)
	@DAGSTER_HOME=$(HOME_DIR) VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/dg dev --host 127.0.0.1 --port 3000

ddl: setup  ## print a warehouse's DDL, SQL only (make -s ddl > x.sql; LOCATION=s3://bucket/prefix/tweets/ DIALECT=athena|redshift|snowflake FORMAT=hive|iceberg)
	@$(PY) -m tweet_assets.cli ddl $(if $(LOCATION),--location $(LOCATION)) $(if $(DIALECT),--dialect $(DIALECT)) $(if $(FORMAT),--format $(FORMAT))

ddl-files: setup  ## regenerate the checked-in DDL of every warehouse from schema.py (tests compare them)
	$(PY) -m tweet_assets.warehouses .

bench: setup-test  ## the performance benchmark (bench/README.md)
	$(PY) bench/run.py

mutation: setup-test  ## mutation testing (mutmut) of lake.py, io_manager.py, sources/replay.py, pages.py; MUTANTS='tweet_assets.lake.io_manager*' for one module; resumes (make mutation-clean to start over)
	$(PIP) install -e '.[mutation]'
	TWEET_ASSETS_HYPOTHESIS_PROFILE=mutation TWEET_ASSETS_HYPOTHESIS_EXAMPLES=$${TWEET_ASSETS_HYPOTHESIS_EXAMPLES:-15} TWEET_ASSETS_SHARED_DATA=$${TWEET_ASSETS_SHARED_DATA:-$(abspath $(CURDIR)/../shared/x-api-v2)} \
	  timeout $${MUTATION_TIMEOUT:-7200} $(VENV)/bin/mutmut run --max-children 2 $(MUTANTS) || true
	$(VENV)/bin/mutmut results

mutation-clean:  ## forget mutmut's results (the mutants/ folder)
	rm -rf mutants

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) lake .dagster_home
