# The two set-up commands of the README: `make demo` (main job) and `make test` (tests).
VENV ?= .venv
BIN = $(VENV)/bin
RUN ?= runs/demo

.PHONY: setup demo test bench clean

setup:
	bash scripts/setup.sh

# Data, default teacher (trained once and cached), a short NSGA-II search with KD, the report, the export.
demo: setup
	rm -rf $(RUN)
	$(BIN)/evofusion search --data fashion-mnist --strategy nsga2 --population 8 --generations 3 \
	  --steps 100 --constraint "params<=50000" --constraint "flops<=10000000" --top-k 1 --final-epochs 2 \
	  --seed 0 --run-dir $(RUN)
	$(BIN)/evofusion report $(RUN)
	$(BIN)/evofusion export $(RUN) --candidate best --out $(RUN)/best
	$(BIN)/evofusion evaluate $(RUN)/best --data fashion-mnist

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs bench_runs .pytest_cache
