# Developer entry points. The two commands a new user needs are `make run` and `make test`
# (equivalently scripts/dev.sh run|test, which also works where make is not installed).

.PHONY: run test setup fault bench bench-quick fuzz badinput sim deb clean

run:
	scripts/dev.sh run

test:
	scripts/dev.sh test

setup:
	scripts/dev.sh setup

# The fault suite at full size (the normal suite runs each scenario small); the outage shapes
# (tests/fault/test_outage_shapes.py) run 10 minutes each with the production retry settings.
fault: setup
	DHIS2GW_FAULT_SUBMISSIONS=5000 DHIS2GW_OUTAGE_SUBMISSIONS=1000 DHIS2GW_2W_SUBMISSIONS=20000 \
	DHIS2GW_2W_LATENCY=0.05 DHIS2GW_2W_CONCURRENCY=5 DHIS2GW_2W_OUTAGE=300 \
	DHIS2GW_SHAPES_SUBMISSIONS=2000 DHIS2GW_SHAPES_OUTAGE=600 DHIS2GW_SHAPES_PRODUCTION=1 \
	.venv/bin/pytest tests/fault tests/delivery/test_outage.py -v -s

# Benchmarks print figures and append them to bench-results/*.md (never timed assertions).
bench: setup
	.venv/bin/python -m tests.bench.bench_load
	.venv/bin/python -m tests.bench.bench_auth

bench-quick: setup
	.venv/bin/python -m tests.bench.bench_load --quick

# Hostile input against every route (also part of `make test`).
badinput: setup
	.venv/bin/pytest tests/badinput -v

# Property-based fuzzing of every documented operation with more examples than the normal suite.
fuzz: setup
	DHIS2GW_FUZZ_EXAMPLES=100 .venv/bin/pytest tests/operations/test_fuzz.py -v

# The Debian package (dist/dhis2gw_<version>_amd64.deb).
deb:
	scripts/build-deb.sh

# A standalone DHIS2 simulator on 127.0.0.1:8099 (DHIS2 2.40).
sim: setup
	.venv/bin/twistd -n --pidfile= dhis2sim --version 2.40 --port 8099

clean:
	rm -rf .venv .state build *.egg-info
