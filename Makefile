# Everything runs from a local virtual environment so a fresh clone needs only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# jupyter-builder and the kernel must resolve to the venv's tools.
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed
# The policy checker of the k8s manifests, in a venv of its own (see pyproject.toml).
CHECKOV := $(VENV)/checkov/bin/checkov
DEMO_DIR := build/demo_service
DEMO_PORT ?= 8765

.PHONY: install demo dist docs test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The frontend is built into the install: a change under labextension/ reinstalls.
LABEXT_SOURCES := $(wildcard labextension/src/*.ts labextension/schema/*.json labextension/style/*) labextension/package.json

$(STAMP): $(BIN)/python pyproject.toml $(LABEXT_SOURCES)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

$(CHECKOV): $(BIN)/python pyproject.toml
	$(PYTHON) -m venv --without-pip $(VENV)/checkov
	$(BIN)/python -m pip --python $(VENV)/checkov/bin/python install --quiet --group checkov
	touch $(CHECKOV)

install: $(STAMP) $(CHECKOV)

# The demo needs promoter and the example notebook's libraries, nothing of the development
# toolchain (no checkov, browser tests, Node or JupyterLab build): HATCH_BUILD_NO_HOOKS skips
# building the JupyterLab extension, which `make install` adds later.
DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): $(BIN)/python pyproject.toml
	@echo "Installing promoter and the demo notebook's libraries (numpy, pandas, scikit-learn, matplotlib) into $(VENV)/ ..."
	HATCH_BUILD_NO_HOOKS=true $(BIN)/python -m pip install -e ".[demo]"
	$(BIN)/python -c "import promoter, sklearn, pandas, matplotlib"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(DEMO_STAMP)

demo: $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))
	$(BIN)/python scripts/demo.py --notebook "examples/notebooks/iris_classifier.ipynb" \
		--out $(DEMO_DIR) --port $(DEMO_PORT)

lint: install
	$(BIN)/ruff check promoter tests bench scripts
	$(BIN)/ruff format --check promoter tests bench scripts
	$(BIN)/mypy

# The wheel users install with pip, no Node needed: the JupyterLab extension is built afresh
# here (Node 20; a stale build is never shipped) and packed inside, with the server extension's
# config; scripts/check_wheel.py refuses a wheel without it.
dist: $(STAMP)
	rm -rf dist promoter/labextension && mkdir -p build
	$(BIN)/python -m build --wheel --no-isolation --outdir dist . > build/dist.log 2>&1 \
		|| (tail -20 build/dist.log; exit 1)
	$(BIN)/python scripts/check_wheel.py dist/promoter-*.whl

# The user guide (docs/, MkDocs): --strict fails on a broken link or a page left out of nav.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

# The whole suite (what .ci/run calls); the slowest tests are listed at the end of the run.
test: install lint docs
	$(BIN)/python -m pytest -n auto --dist loadgroup --durations=25

# The edit loop: unit and static tests, no kernel, service or browser (tests marked slow).
test-fast: install
	$(BIN)/python -m pytest -n auto -m "not slow"

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
