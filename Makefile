# The same commands people and CI use; each installs what it needs first.
.PHONY: install run test check schema bench

install:
	scripts/install --dev

run:
	scripts/run

test:
	scripts/test

check:
	scripts/check

schema:
	scripts/install && .venv/bin/mmos export-schema > schema.graphql

bench:
	scripts/install --dev && .venv/bin/python -m benchmarks
