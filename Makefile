# Two commands do everything: `make demo` (compile the bundled example for GAP8) and `make test`.
# Both create .venv if missing and install the package (editable) with its test extras, at the
# exact versions of constraints.txt (the versions the suite was run with).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tvm-gap8-installed
OUT    ?= out
PYTEST_ARGS ?=
# test workers: one per core (CI has 2)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install demo test test-all clean riscv gvsoc

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python examples/build_models.py $(OUT)/models
	$(BIN)/tvm-gap8 compile $(OUT)/models/mobilenet_v1_025_96.onnx --check -o $(OUT)/mobilenet_v1_025_96 -q
	@echo "float MobileNetV1 x0.25: $(OUT)/mobilenet_v1_025_96/report.json"
	$(BIN)/tvm-gap8 quantize $(OUT)/models/mobilenet_v1_025_96.onnx -o $(OUT)/models/mobilenet_v1_025_96_int8.onnx --calibration-samples 16
	$(BIN)/tvm-gap8 compile $(OUT)/models/mobilenet_v1_025_96_int8.onnx --check -o $(OUT)/mobilenet_v1_025_96_int8

# CI's command. Slow model-scale checks are marked `slow` and run with `make test-all`.
# the --emit-c --run rv32 tests need the RISC-V toolchain and QEMU: installed here when missing
# and possible (root + apt-get); otherwise those tests skip, saying why
riscv:
	-sh tools/ensure_riscv.sh

# --run gvsoc tests need GVSOC and pulp-runtime: unpacked from ../shared/tools/gvsoc (or built from
# the pinned GitHub revisions) into .tools/gvsoc; never fails, the tests skip with the reason
gvsoc:
	-sh tools/ensure_gvsoc.sh

test: install riscv gvsoc
	$(BIN)/python -m pytest -q -m "not slow" -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

test-all: install riscv gvsoc
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(OUT) .pytest_cache .hypothesis
