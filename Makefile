# Developer tasks, run in the environment of README command 2 (the `test` extra installed).
# CI (.ci/run) runs the same commands itself, so that it needs no make.

.PHONY: check docs test test-quick test-lake bench constraints

# lint, format, types, and the layers' imports (contracts in pyproject.toml): seconds
check:
	ruff check .
	ruff format --check .
	mypy
	lint-imports

# the docs site, as CI builds it: a link to a missing page or heading fails it (the docs extra)
docs:
	NO_MKDOCS_2_WARNING=1 mkdocs build --strict

# the whole suite, a test file per worker, a worker more than the cores (pytest-xdist): about 8 min 30 s on 2 cores
test:
	pytest

# the inner loop (the `quick` marker, conftest.py's QUICK_FILES): about a minute on 2 cores
test-quick:
	pytest -m quick

# the DuckLake tests (`lake` marker, test_lake.py) in .venv-lake: duckdb 1.5.5 and its extensions
# (constraints-lake.txt), as the extensions exist for no later duckdb yet. Made once, with uv
# when it is installed (seconds), else pip; remove .venv-lake to make it again
test-lake:
	test -x .venv-lake/bin/pytest || { if command -v uv >/dev/null; then uv venv -q -p python3 .venv-lake && VIRTUAL_ENV=$(CURDIR)/.venv-lake uv pip install -q -c constraints-lake.txt -e '.[test,lake]'; else python3 -m venv .venv-lake && .venv-lake/bin/pip install -q -c constraints-lake.txt -e '.[test,lake]'; fi; }
	.venv-lake/bin/pytest -m lake

# the ingest benchmark in its default mode (14 days of 50,000 messages; dlt too with the `bench` extra)
bench:
	python benchmarks/ingest.py

# re-pin constraints.txt (every extra but `lake`, Python 3.11) to the newest releases pyproject.toml's
# ranges allow; then constraints-lake.txt: the same pins (it starts from them), but duckdb at the
# release the `lake` extra's DuckLake extensions require (1.5.5); needs uv (`pip install uv`)
constraints:
	uv pip compile --quiet pyproject.toml --extra test --extra deploy --extra k8s --extra bench --extra docs --python-version 3.11 --upgrade --custom-compile-command "make constraints" -o constraints.txt
	grep -v '^duckdb==' constraints.txt > constraints-lake.txt
	uv pip compile --quiet pyproject.toml --all-extras --python-version 3.11 --custom-compile-command "make constraints" -o constraints-lake.txt
