#!/usr/bin/env bash
# make bench, the daemon's part: per series, the time from its last acknowledged instance to its
# structure set delivered (dcmtk storescp) and its contour message received (mosquitto_sub), and
# the daemon process's peak RSS, for the committed phantom study (3 series, 160x160x14) and a
# full-size phantom (seed 3000: 448x448x33 T2, 448x448x36 T1C, 256x256x30 FLAIR), CPU engine,
# 2 threads. Called by the Makefile with the cgo and link variables set.
set -euo pipefail
cd "$(dirname "$0")/.."
full=build/bench/seed3000
if [ ! -f "$full/study.json" ]; then
	echo "bench-daemon: generating the full-size phantom (seed 3000) into $full" >&2
	mkdir -p "$full"
	(cd scripts/model && ../../scripts/model/.venv/bin/python -m midline_model.phantom --seed 3000 --out "../../$full") >&2
fi
echo "## Daemon: series latency and peak RSS ($(nproc) cores; go test -bench StudyLatency)"
MIDLINE_BENCH_STUDIES="$PWD/$full" go test -count=1 -timeout 60m -run '^$' -bench StudyLatency -benchtime 1x ./firmware/daemon |
	grep -Ev 'level=|^(goos|goarch|pkg|cpu):|^PASS$|^ok '
