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

# ---- Issue 5: series through preproc + accel, beside the Python reference pipeline ------------
# Phantom studies are made once into build/bench (minutes; deleted by hand to remake them).
py=scripts/model/.venv/bin/python
work=build/bench
mkdir -p "$work"
phantom() { # folder, then phantom options
	local out=$work/$1; shift
	[ -f "$out/study.json" ] || (cd scripts/model && ../../$py -m midline_model.phantom --small --out "../../$out" "$@") >/dev/null
}
phantom ax512 --seed 3001 --spec '{"rows": 512, "columns": 512, "pixel_spacing": [0.45, 0.45], "slice_thickness": 5.0, "slice_spacing": 5.0, "slices": 30}'
phantom sag512 --seed 21 --site thalamus_l --plane sagittal --spec '{"rows": 512, "columns": 512, "pixel_spacing": [0.5, 0.5], "slice_thickness": 1.0, "slice_spacing": 1.0, "slices": 176}'
threads=${BENCH_THREADS:-2}
subjects="$PWD/testdata/phantom/seed4,$PWD/$work/ax512"
for c in hfs hfs_r ffs hfp tilted coronal sagittal; do subjects="$subjects,$PWD/testdata/phantom/orientation/$c"; done
echo "## Series: Go pipeline (preproc + accel, dmg-t2, $threads threads), gating off and on"
MIDLINE_BENCH_SERIES=$subjects MIDLINE_BENCH_THREADS=$threads go test -count=1 -v -timeout 60m -run '^TestBenchSeries$' ./accel | grep '^|'
echo "## Series: Python reference pipeline (infer.run_series, TFLite builtin kernels, $threads threads, gating on)"
for s in testdata/phantom/seed4 "$work/ax512"; do
	(cd scripts/model && ../../$py -m midline_model.bench_series "../../$s/T2" ../../models/dmg-t2 --threads "$threads") 2>/dev/null
done
echo "## int8 peak: a stack of four 3x3 int8 convolutions (64x64x128), same library, $threads threads"
conv_macs=$(cd scripts/model && ../../$py -m midline_model.peak conv "../../$work/conv.tflite" 2>/dev/null | tail -1)
model_macs=$(cd scripts/model && ../../$py -m midline_model.peak macs ../../models/dmg-t2/model.tflite 2>/dev/null | tail -1)
echo "MACs per invocation: conv microbenchmark $conv_macs, dmg-t2 tile $model_macs"
MIDLINE_PEAK_MODEL=$PWD/$work/conv.tflite MIDLINE_BENCH_THREADS=$threads \
	go test -count=1 -run '^$' -bench '^BenchmarkInvoke$' -benchtime 20x ./accel | grep -E '^Benchmark'
MIDLINE_PEAK_MODEL=$PWD/models/dmg-t2/model.tflite MIDLINE_BENCH_THREADS=$threads \
	go test -count=1 -run '^$' -bench '^BenchmarkInvoke$' -benchtime 50x ./accel | grep -E '^Benchmark'

echo "## Peak memory: the 512x512x176 sagittal series under a 1 GiB memory cgroup"
go test -c -o "$work/accel.test" ./accel
rss() { # label, then environment for the test binary
	local label=$1; shift
	local cg=/sys/fs/cgroup/memory/midline-bench-$$
	if [ -d /sys/fs/cgroup/memory ] && mkdir "$cg" 2>/dev/null; then
		echo $((1 << 30)) >"$cg/memory.limit_in_bytes"
		[ -f "$cg/memory.memsw.limit_in_bytes" ] && echo $((1 << 30)) >"$cg/memory.memsw.limit_in_bytes"
		sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
		(echo $BASHPID >"$cg/cgroup.procs"; cd accel && exec env "$@" ../$work/accel.test -test.run '^TestPeakRSS$' -test.v) | grep -E 'rss:|FAIL|ok'
		echo "$label: cgroup limit 1 GiB, cgroup peak (RSS + page cache of the files read) $(( $(cat "$cg/memory.max_usage_in_bytes") >> 20 )) MB, OOM kills $(awk '/^oom_kill /{print $2}' "$cg/memory.oom_control")"
		rmdir "$cg"
	else
		echo "$label: no memory cgroup here (needs root and cgroup v1's memory controller); VmHWM only"
		(cd accel && env "$@" ../$work/accel.test -test.run '^TestPeakRSS$' -test.v) | grep -E 'rss:|FAIL|ok'
	fi
}
rss "default GC" MIDLINE_RSS_SERIES=$PWD/$work/sag512/T2
rss "GOMEMLIMIT=250MiB" MIDLINE_RSS_SERIES=$PWD/$work/sag512/T2 GOMEMLIMIT=250MiB
rss "GOMEMLIMIT=280MiB" MIDLINE_RSS_SERIES=$PWD/$work/sag512/T2 GOMEMLIMIT=280MiB
