# Two entry points for a fresh Linux machine:
#   make demo   set up, generate the embedded phantom data, train the quickstart model (1024 then 2048 points), sample backs
#   make test   set up and run the test suite (what .ci/run calls)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup test test-all demo notebooks clean

$(STAMP): pyproject.toml
	@# open3d needs libusb at import time (a Debian package).
	@if ! ldconfig -p 2>/dev/null | grep -q libusb-1.0; then \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq libusb-1.0-0 libgomp1) >/dev/null; \
	  else echo "open3d needs libusb: run 'sudo apt-get install libusb-1.0-0 libgomp1'"; exit 1; fi; fi
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# CPU build of torch (a local wheel on CI machines); a CUDA user installs with conda (environment.yml).
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# Unit tests and the notebooks (executed headless with nbmake) in one run.
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=300 tests notebooks

test-all: $(STAMP)
	$(PY) -m pytest -q -m "" -p no:cacheprovider --nbmake --nbmake-timeout=300 tests notebooks

notebooks: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=300 notebooks

demo: $(STAMP)
	$(PY) -m pcdiff.data.synth --out outputs/phantom --n 200 --seed 0 --points 4096 --overwrite
	$(PY) -m pcdiff.train configs/quickstart.yaml --data.data_dir outputs/phantom
	$(PY) -m pcdiff.train configs/quickstart.yaml --config configs/quickstart_2048.yaml --data.data_dir outputs/phantom
	$(PY) -m pcdiff.generate --checkpoint outputs/quickstart_2048/last.ckpt --cobb 0 40 --curve-type thoracic --out outputs/generated --seed 0 --overwrite

clean:
	rm -rf $(VENV) outputs lightning_logs
