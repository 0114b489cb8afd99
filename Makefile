# cimspice — set-up is two commands on a fresh Debian machine: `make demo` and `make test`;
# each installs what is missing first (the install stamp), `make install` forces it alone.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
STAMP := .make/installed

.PHONY: install test demo validate bench fidelity

install:
	@if ! command -v ngspice >/dev/null 2>&1; then \
		echo "ngspice not found: installing it with apt"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ngspice; \
	else echo "ngspice present: $$(command -v ngspice)"; fi
	$(PIP) install -e '.[dev]'
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

# installed once per checkout, again when the dependencies change
$(STAMP): pyproject.toml
	$(MAKE) install

test: $(STAMP)
	$(PYTHON) -m pytest

demo: $(STAMP)
	mkdir -p demo
	$(PYTHON) -m cimspice.cli datasets make dvs-bars -o demo/bars.npz --n 60 --seed 0
	$(PYTHON) -m cimspice.cli evaluate --dataset demo/bars.npz --circuit-train -o demo/run

# tier 3 + 5 (golden table, ngspice and VACASK side by side), then tiers 1, 2, 4, 5 as tests
validate: $(STAMP)
	$(PYTHON) -m cimspice.cli validate
	$(PYTHON) -m pytest tests/test_devices.py tests/test_circuit.py tests/test_validate.py tests/test_trace_golden.py -q

# speed: one layer (table + ratios), then the 2-process speed-up of evaluate
bench: $(STAMP)
	$(PYTHON) bench/simulate_speed.py
	$(PYTHON) bench/evaluate_speed.py

# accuracy of the simulated hardware on every built-in dataset (~35 min on 2 cores)
fidelity: $(STAMP)
	$(PYTHON) bench/fidelity.py
