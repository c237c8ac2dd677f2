#!/usr/bin/env bash
# stage.sh NAME CMD...: runs one stage of a make target and prints its wall time, so that CI logs
# show where the time goes. The exit status is the command's.
name=$1
shift
start=$EPOCHREALTIME
printf '== %s: %s\n' "$name" "$*" >&2
"$@"
rc=$?
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
if [ $rc -eq 0 ]; then verdict=ok; else verdict="FAILED (exit $rc)"; fi
printf '== %s: %ss %s\n' "$name" "$secs" "$verdict" >&2
exit $rc
