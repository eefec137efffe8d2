# Developer tasks, run in the environment of README command 2 (the `test` extra installed).
# CI (.ci/run) runs the same commands itself, so that it needs no make.

.PHONY: check docs test test-quick bench constraints

# lint, format, types, and the layers' imports (contracts in pyproject.toml): seconds
check:
	ruff check .
	ruff format --check .
	mypy
	lint-imports

# the docs site, as CI builds it: a link to a missing page or heading fails it (the docs extra)
docs:
	NO_MKDOCS_2_WARNING=1 mkdocs build --strict

# the whole suite, a test file per worker, a worker more than the cores (pytest-xdist): about 12 minutes on 2 cores
test:
	pytest

# the inner loop (the `quick` marker, conftest.py's QUICK_FILES): about 2 minutes on 2 cores
test-quick:
	pytest -m quick

# the ingest benchmark in its default mode (14 days of 50,000 messages; dlt too with the `bench` extra)
bench:
	python benchmarks/ingest.py

# re-pin constraints.txt (every extra, Python 3.11) to the newest releases pyproject.toml's
# ranges allow; needs uv (`pip install uv`)
constraints:
	uv pip compile --quiet pyproject.toml --all-extras --python-version 3.11 --upgrade --custom-compile-command "make constraints" -o constraints.txt
