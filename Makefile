# Developer entry points. The two commands a new user needs are `make run` and `make test`
# (equivalently scripts/dev.sh run|test, which also works where make is not installed).

.PHONY: run test setup bench fault clean

run:
	scripts/dev.sh run

test:
	scripts/dev.sh test

setup:
	scripts/dev.sh setup

clean:
	rm -rf .venv .state build *.egg-info
