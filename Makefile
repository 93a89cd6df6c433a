# The two commands of the README. Both set up what is missing first (scripts/setup.sh).
.PHONY: serve test

serve:
	@scripts/setup.sh serve
	.venv/bin/snaresynth serve $(ARGS)

test:
	@scripts/setup.sh test
	.venv/bin/ruff check snaresynth tests bench
	.venv/bin/python -m pytest -q --durations=15 $(ARGS)
