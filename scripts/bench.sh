#!/usr/bin/env bash
# make bench: Midline's engine and its peer, side by side in one run on the same model and inputs.
#   Go:     accel.Model.Run through go-tflite on Debian's TFLite 2.14.1 (builtin kernels)
#   Python: TensorFlow 2.14.1's interpreter, builtin kernels and its default XNNPACK delegate
# Called by the Makefile, which sets the cgo and link variables. Results go to BENCHMARKS.md by hand,
# with this command and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
model=accel/testdata/fixture.tflite
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "## Go (go test -bench, 1 thread)"
go test -run '^$' -bench . -benchmem -count 3 ./accel | grep -E '^Benchmark'
echo "## Python peer (1 thread)"
(cd scripts/model && ../../scripts/model/.venv/bin/python -m midline_model.bench "../../$model" --seconds 3) 2>/dev/null
