# Midline's build. `make test` and `make demo` work on a fresh Debian 12 machine: each installs
# what it needs (`make setup`, idempotent) before it runs.
#
# The TFLite C library comes from .runtime/ (scripts/runtime.sh, Debian unstable's build) unless
# TFLITE_PREFIX names another build: a prefix with include/tensorflow/lite/c/c_api.h and
# lib/libtensorflowlite_c.so, as on a Coral or Jetson box.

SHELL := /bin/bash
.DEFAULT_GOAL := build
.DELETE_ON_ERROR:

GO ?= go
PYTHON ?= python3
STAGE := scripts/stage.sh

# ---- TFLite: where the headers and library are, and how binaries find them at run time -------
RUNTIME := $(CURDIR)/.runtime
TFLITE_PREFIX ?=
ifeq ($(TFLITE_PREFIX),)
TFLITE_LIBDIR := $(RUNTIME)/root/usr/lib/x86_64-linux-gnu
TFLITE_INCLUDE := $(RUNTIME)/root/usr/include
RUNTIME_STAMP := $(RUNTIME)/root/.stamp
# cgo links against a folder holding only libtensorflowlite_c.so and leaves the library's own
# glibc and libstdc++ symbols unresolved at link time. Every dynamic binary then runs under the
# unpacked loader (-I) with the unpacked libraries first (-r). DT_RPATH, unlike DT_RUNPATH, also
# serves the library's own dependencies (abseil, libstdc++), hence --disable-new-dtags.
TFLITE_LDFLAGS := -L$(RUNTIME)/link -Wl,--allow-shlib-undefined -Wl,--disable-new-dtags
GO_LINK := -I=$(TFLITE_LIBDIR)/ld-linux-x86-64.so.2 -r=$(TFLITE_LIBDIR)
else
TFLITE_LIBDIR := $(TFLITE_PREFIX)/lib
TFLITE_INCLUDE := $(TFLITE_PREFIX)/include
RUNTIME_STAMP :=
TFLITE_LDFLAGS := -L$(TFLITE_LIBDIR)
GO_LINK := -r=$(TFLITE_LIBDIR)
endif
export CGO_ENABLED := 1
export CGO_CFLAGS := -I$(TFLITE_INCLUDE) -O2 -g
export CGO_LDFLAGS := $(TFLITE_LDFLAGS) -O2 -g
# Test binaries get the link flags through GOFLAGS; `make build` passes them with its own -ldflags.
export GOFLAGS := $(strip $(GOFLAGS) '-ldflags=$(GO_LINK)')

# ---- Version: from git, set into the binary ------------------------------------------------------
BASE_VERSION := $(shell cat firmware/VERSION)
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
VERSION := $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//')
ifeq ($(VERSION),)
VERSION := $(BASE_VERSION)-dev+g$(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo .dirty)
endif
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# ---- Python model toolchain ------------------------------------------------------------------------
VENV := scripts/model/.venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.stamp
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup debs runtime venv model site-model build test vet gotest fuzz-short golden-check pytest bench demo env clean

## setup: Debian packages, the TFLite runtime and the model toolchain's venv; twice does nothing.
setup: debs runtime venv

debs:
	@scripts/debs.sh

runtime: $(RUNTIME_STAMP)
$(RUNTIME)/root/.stamp: scripts/runtime.lock scripts/runtime.sh
	scripts/runtime.sh fetch

venv: $(VENV_STAMP)
$(VENV_STAMP): scripts/model/pyproject.toml scripts/model/constraints.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c scripts/model/constraints.txt -e 'scripts/model[test]'
	touch $@

## build: bin/midline for this machine.
build: $(RUNTIME_STAMP)
	$(GO) build -ldflags '$(GO_LINK) $(LDFLAGS)' -o bin/midline ./firmware

## test: everything CI checks, stage by stage with times.
test: setup
	@$(STAGE) vet $(MAKE) --no-print-directory vet
	@$(STAGE) go-test $(MAKE) --no-print-directory gotest
	@$(STAGE) fuzz $(MAKE) --no-print-directory fuzz-short
	@$(STAGE) golden $(MAKE) --no-print-directory golden-check
	@$(STAGE) pytest $(MAKE) --no-print-directory pytest

vet:
	$(GO) vet ./...

gotest:
	$(GO) test -race -count=1 ./...

# A short run of every fuzzer of outside bytes (package:Fuzzer); the long runs are by hand
# (go test -fuzz). A new fuzzer is added here.
FUZZ_TIME ?= 10s
FUZZERS := netdicom:FuzzPDU netdicom:FuzzReadHead netdicom:FuzzDecodeRLE netdicom:FuzzSCPAssociation \
	accel:FuzzParseBundleMeta board:FuzzParseSimScript board:FuzzParseMilliC preproc:FuzzLoadInstance \
	firmware/config:FuzzParse firmware/mqtt:FuzzDecodeRecord ota:FuzzUnpack ota:FuzzParseCustom \
	ota:FuzzParseSiteApproval firmware/daemon:FuzzParseOTACommand
fuzz-short:
	@GO=$(GO) scripts/fuzz-short.sh $(FUZZ_TIME) $(FUZZERS)

# The fixture's goldens are remade by TensorFlow in Python and must equal the committed ones, so
# they can neither drift nor have come from the Go side.
golden-check: $(VENV_STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd scripts/model && ../../$(VENV_PY) -m midline_model.fixture golden \
		--model ../../accel/testdata/fixture.tflite --out "$$tmp") && \
	diff -r accel/testdata/fixture_golden "$$tmp" && echo "golden: committed goldens match TensorFlow's"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd scripts/model && ../../$(VENV_PY) -m midline_model.runner_golden --out "$$tmp") && \
	diff -r accel/testdata/runner_golden "$$tmp" && echo "golden: runner goldens match the Python reference"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd scripts/model && ../../$(VENV_PY) -m midline_model.seed4_reference --out "$$tmp/reference.json" >/dev/null) && \
	for f in "$$tmp"/*; do cmp "$$f" testdata/phantom/seed4/$$(basename "$$f") || exit 1; done && \
	echo "golden: the seed4 reference and parity goldens match the shipped models through the Python pipeline"

pytest: $(VENV_STAMP)
	cd scripts/model && ../../$(VENV_PY) -m pytest -q

## model: regenerate phantom data, train, evaluate and export the three shipped bundles and
## scripts/model/RESULTS.md (about four hours on 2 cores with the ablation; the 1.4.0 bundles are
## one such run's; resumes where it stopped, in MODEL_WORK, which must not hold another recipe's work).
## MODEL_VERSION is what the bundles are released as; it must be above the committed ones
## (no default: the pipeline would find that out only after hours of training).
MODEL_WORK ?= build/model-v20
model: $(VENV_STAMP)
	@[ -n "$(MODEL_VERSION)" ] || { echo "make model: set MODEL_VERSION above every shipped bundle's version (now $$(grep -ho '"version": "[^"]*"' models/*/model.json | cut -d'"' -f4 | sort -u | tr '\n' ' '| sed 's/ $$//'))" >&2; exit 2; }
	cd scripts/model && ../../$(VENV_PY) -m midline_model.pipeline --work ../../$(MODEL_WORK) \
		--models ../../models --results RESULTS.md --ablation --version $(MODEL_VERSION)

## site-model: a hospital's own bundles from its contoured cases, the same recipe on a BraTS-style
## folder (scripts/model/README.md, "Retraining on a hospital's own cases"):
## make site-model SITE_CASES=/data/dmg SITE_VERSION=2.0.0 [SITE_OUT=...] [SITE_WORK=...]
SITE_WORK ?= build/site
SITE_OUT ?= build/site-models
site-model: $(VENV_STAMP)
	@[ -n "$(SITE_CASES)" ] && [ -n "$(SITE_VERSION)" ] || { echo "make site-model: set SITE_CASES (a folder of case folders) and SITE_VERSION (above the boxes' bundles)" >&2; exit 2; }
	cd scripts/model && ../../$(VENV_PY) -m midline_model.site --cases "$(abspath $(SITE_CASES))" \
		--work "$(abspath $(SITE_WORK))" --out "$(abspath $(SITE_OUT))" --version $(SITE_VERSION)

## bench: speed of the Go engine beside TensorFlow's Python interpreter on the same model, and of
## the DICOM receiver beside storescp and Orthanc (netdicom/bench_test.go).
bench: setup
	scripts/bench.sh
	scripts/bench-daemon.sh
	@[ -x /usr/sbin/Orthanc ] || { s=; [ "$$(id -u)" -eq 0 ] || s=sudo; \
		DEBIAN_FRONTEND=noninteractive $$s apt-get install -y -q --no-install-recommends orthanc; }
	set -o pipefail; MIDLINE_BENCH=1 $(GO) test -count=1 -timeout 60m -v -run '^TestBenchReceivers$$' ./netdicom | grep -Ev '^(=== RUN|--- PASS|PASS$$|ok )'

## demo: the main job on the embedded default (scripts/demo.sh; README says what it shows).
demo: setup build
	@scripts/demo.sh

## env: prints the cgo variables, for `eval "$(make -s env)"` before plain go commands.
env:
	@echo "export CGO_ENABLED=1 CGO_CFLAGS='$(CGO_CFLAGS)' CGO_LDFLAGS='$(CGO_LDFLAGS)' GOFLAGS=\"$(GOFLAGS)\""

clean:
	rm -rf bin
