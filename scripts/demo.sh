#!/usr/bin/env bash
# make demo: the main job on this machine. Starts mosquitto and a dcmtk storescp (the planning
# system) on loopback, runs `midline serve --config firmware/demo.yaml` (CPU engine, shipped
# models, simulated board), sends the committed phantom study (T2, FLAIR, T1C) with storescu,
# and reports what came out: each job's timings from the daemon's own records, Dice against the
# phantom's ground truth (plastimatch rasterizes the structure set the planning system received),
# dciodvfy's verdict, the contour messages mosquitto_sub saw, the status page and the previews.
# Exits 0 only if all of that happened; stops everything it started; says what failed.
set -uo pipefail
cd "$(dirname "$0")/.."

CONFIG=firmware/demo.yaml
STUDY=testdata/phantom/seed4
WORK=/tmp/midline-demo
BROKER_PORT=18830 PLANNING_PORT=11114 DICOM_PORT=11113 HTTP=127.0.0.1:18080
VENV_PY=scripts/model/.venv/bin/python
pids=()
failed=0

say() { printf '%s\n' "$*"; }
fail() { printf 'demo: FAILED: %s\n' "$*" >&2; failed=1; }
stop_all() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
}
trap stop_all EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

for p in $BROKER_PORT $PLANNING_PORT $DICOM_PORT ${HTTP##*:}; do
	port_free "$p" || { fail "port $p is in use; stop what uses it (a previous demo?) and run make demo again"; exit 1; }
done
rm -rf "$WORK" && mkdir -p "$WORK/planning"

mosquitto -p $BROKER_PORT >"$WORK/mosquitto.log" 2>&1 &
pids+=($!)
wait_port $BROKER_PORT || { fail "mosquitto did not start (see $WORK/mosquitto.log)"; exit 1; }
mosquitto_sub -h 127.0.0.1 -p $BROKER_PORT -q 1 -v -t 'midline/#' >"$WORK/mqtt.log" 2>&1 &
pids+=($!)
TCP_NODELAY=1 storescp -aet PLANNING -od "$WORK/planning" $PLANNING_PORT >"$WORK/storescp.log" 2>&1 &
pids+=($!)
wait_port $PLANNING_PORT || { fail "storescp did not start (see $WORK/storescp.log)"; exit 1; }
bin/midline serve --config $CONFIG >"$WORK/midline.log" 2>&1 &
daemon=$!
pids+=($daemon)
wait_port ${HTTP##*:} && wait_port $DICOM_PORT || { fail "midline serve did not start (see $WORK/midline.log)"; tail -5 "$WORK/midline.log" >&2; exit 1; }
say "demo: mosquitto on :$BROKER_PORT, storescp (planning) on :$PLANNING_PORT, midline serve on DICOM :$DICOM_PORT and http://$HTTP"

say "demo: sending $STUDY (T2, FLAIR, T1C) with storescu"
TCP_NODELAY=1 storescu -aec MIDLINE +sd +r +sp '*.dcm' 127.0.0.1 $DICOM_PORT "$STUDY" >"$WORK/storescu.log" 2>&1 ||
	{ fail "storescu could not send the study (see $WORK/storescu.log)"; exit 1; }

# Wait for the three jobs to end, from the daemon's own records.
jobs_json="$WORK/jobs.json"
for _ in $(seq 1 600); do
	curl -sf "http://$HTTP/api/jobs" >"$jobs_json" 2>/dev/null &&
		python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if len(j)>=3 and all(x["state"] in ("done","skipped","failed") for x in j) else 1)' "$jobs_json" &&
		break
	sleep 0.5
done

# Every done job's structure set at the planning system: dciodvfy, then Dice against the phantom.
rts=$(python3 -c 'import json,sys; [print(j["sequence"], d["sop_instance_uid"], j["id"]) for j in json.load(open(sys.argv[1])) if j["state"]=="done" for d in j.get("deliveries") or [] if d.get("sop_instance_uid")]' "$jobs_json")
# One per sequence of the study: T2, FLAIR and T1C each have a shipped model.
[ "$(grep -c . <<<"$rts")" -eq 3 ] || fail "$(grep -c . <<<"$rts") structure sets, not one for each of T2, FLAIR and T1C"
while read -r seq uid job; do
	[ -n "$uid" ] || continue
	f="$WORK/planning/RS.$uid"
	for _ in $(seq 1 100); do [ -f "$f" ] && break; sleep 0.1; done
	if [ ! -f "$f" ]; then fail "$seq: the planning system never received RS.$uid"; continue; fi
	if dciodvfy "$f" 2>&1 | grep -q "^Error"; then fail "$seq: dciodvfy reports errors on $f"; dciodvfy "$f" 2>&1 | grep "^Error" | head -3 >&2; fi
	dice=$(cd scripts/model && ../../$VENV_PY -m midline_model.rtdice --study "../../$STUDY" --seq "$seq" --rtstruct "$f" 2>"$WORK/rtdice.err") ||
		{ fail "$seq: Dice could not be computed (see $WORK/rtdice.err)"; continue; }
	say "demo: $seq structure set $f: dciodvfy: no errors; against the phantom GTV: $dice"
	# Report it to the daemon, whose status page shows Dice where ground truth exists.
	d=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["dice"])' "$dice")
	curl -sf -X POST -H 'Content-Type: application/json' -d "{\"reference\":\"phantom seed 4 GTV (plastimatch)\",\"dice\":$d}" \
		"http://$HTTP/api/jobs/$job/agreement" >/dev/null || fail "$seq: the daemon did not take the agreement"
done <<<"$rts"

# The jobs as the daemon recorded them, deliveries included.
curl -sf "http://$HTTP/api/jobs" >"$jobs_json" || fail "the daemon's job API did not answer"
python3 - "$jobs_json" >"$WORK/jobs.txt" <<'EOF' || fail "not every job is done (see $WORK/jobs.txt and $WORK/midline.log)"
import json, sys
jobs = json.load(open(sys.argv[1]))
ended = [j for j in jobs if j["state"] in ("done", "skipped", "failed")]
for j in sorted(jobs, key=lambda j: j.get("sequence", "")):
    t = j.get("timings_ms") or {}
    line = f'{j["id"]} {j.get("sequence","?"):5} {j["state"]:7}'
    if j["state"] == "done":
        line += (f' latency {j["latency_ms"]:.0f} ms (load {t.get("load",0):.0f}, infer {t.get("infer",0):.0f},'
                 f' post {t.get("post",0):.0f}, trace {t.get("trace",0):.0f}, write {t.get("write",0):.0f}); '
                 + ", ".join(f"{k} {v:.2f} cm3" for k, v in (j.get("volumes_cm3") or {}).items()))
        for d in j.get("deliveries") or []:
            line += f'\n      -> {d["destination"]}: {d.get("skipped") or d.get("state")} {d.get("sop_instance_uid","")}'
    else:
        line += " " + j.get("reason", "")
    print(line)
sys.exit(0 if len(ended) == len(jobs) >= 3 and all(j["state"] == "done" for j in jobs) else 1)
EOF
say "demo: jobs (from the daemon's job records):"
sed 's/^/  /' "$WORK/jobs.txt"

# What mosquitto_sub saw.
python3 - "$WORK/mqtt.log" <<'EOF' || fail "mosquitto_sub did not see a contour message for each of the three series"
import json, sys
n = 0
for line in open(sys.argv[1]):
    topic, _, payload = line.partition(" ")
    if "/contours/" not in topic:
        continue
    m = json.loads(payload)
    n += 1
    for r in m["rois"]:
        polys = sum(len(s["polygons"]) for s in r["slices"])
        print(f'demo: MQTT {topic}: {m["model"]["name"]} {m["model"]["version"]}, {r["name"]} {r["volume_cm3"]} cm3, '
              f'{len(r["slices"])} slices, {polys} polygons, {m["approval"]}, message_id {m["message_id"]}')
events = sum(1 for line in open(sys.argv[1]) if "/events " in line)
print(f"demo: MQTT: {n} contour messages, {events} events")
sys.exit(0 if n >= 3 else 1)
EOF

previews=$(python3 -c 'import json,sys; [print(j["preview"]) for j in json.load(open(sys.argv[1])) if j.get("preview")]' "$jobs_json")
say "demo: status page: http://$HTTP/ (while the demo runs); previews:"
for p in $previews; do say "  $p"; done
curl -sf "http://$HTTP/" >/dev/null || fail "the status page did not answer"

kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; rc=$?
[ $rc -eq 0 ] || fail "midline serve exited with $rc on SIGTERM (see $WORK/midline.log)"
say "demo: logs and outputs in $WORK"
if [ $failed -ne 0 ]; then
	say "demo: FAILED (see above)"
	exit 1
fi
say "demo: OK"
