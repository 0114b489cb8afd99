# cimspice — the two set-up commands are `make install` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test demo validate bench fidelity

install:
	@if ! command -v ngspice >/dev/null 2>&1; then \
		echo "ngspice not found: installing it with apt"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ngspice; \
	else echo "ngspice present: $$(command -v ngspice)"; fi
	$(PIP) install -e '.[dev]'

test:
	$(PYTHON) -m pytest

demo:
	mkdir -p demo
	cimspice datasets make dvs-bars -o demo/bars.npz --n 60 --seed 0
	cimspice evaluate --dataset demo/bars.npz --spice-train -o demo/run

# tier 3 + 5 (golden table, ngspice and VACASK side by side), then tiers 1, 2, 4, 5 as tests
validate:
	cimspice validate
	$(PYTHON) -m pytest tests/test_devices.py tests/test_circuit.py tests/test_validate.py -q

# speed: one layer (table + ratios), then the 2-process speed-up of evaluate
bench:
	$(PYTHON) bench/simulate_speed.py
	$(PYTHON) bench/evaluate_speed.py

# accuracy of the simulated hardware on every built-in dataset (~35 min on 2 cores)
fidelity:
	$(PYTHON) bench/fidelity.py
