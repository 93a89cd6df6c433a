# The two commands of the README. Both set up what is missing first (scripts/setup.sh).
.PHONY: serve test

serve:
	@scripts/setup.sh serve
	.venv/bin/snaresynth serve $(ARGS)

# Tests run on JOBS processes (pytest-xdist), each file's tests on one of them: the files start
# their own JACK servers, daemons and TensorFlow runs, and a test file keeps its fixtures.
JOBS ?= 2

test:
	@scripts/setup.sh test
	.venv/bin/ruff check snaresynth tests bench
	.venv/bin/python -m pytest -q -n $(JOBS) --dist loadfile --durations=15 $(ARGS)
