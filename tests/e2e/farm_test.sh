#!/usr/bin/env bash
# End-to-end: the farm on this machine. A CAS, a scheduler and three workers
# (separate processes on 127.0.0.1, port 0, temp dirs); clients build with
# --server/--cas. Independent stages run on different workers at once, a
# second checkout builds nothing, a worker killed mid-RUN loses its stage to
# another (its death seen at once), failures name file:line, Ctrl-C cancels the remote work, and a
# scheduler that dies gives a clear error instead of a hang.
# Usage: farm_test.sh BIN_DIR   (needs root, runc, busybox-static)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
PIDS=()
WORKERS=()
cleanup_farm() {
  for p in "${PIDS[@]}" "${WORKERS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  # A killed worker leaves its container and mounts behind.
  stop_containers "$WORK"/w*/runc
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup_farm EXIT

listen_addr() { # FILE: waits for "listening on ADDR"
  for _ in $(seq 100); do grep -q "listening on" "$1" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/.*listening on //p' "$1"
}
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" --metrics-listen 127.0.0.1:0 >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
start_scheduler() {
  "$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --lease-timeout-ms 1500 --heartbeat-ms 200 \
    --metrics-listen 127.0.0.1:0 >"$WORK/scheduler.log" 2>&1 &
  SCHED_PID=$!
  PIDS+=($SCHED_PID)
  SCHED=$(listen_addr "$WORK/scheduler.log")
}
start_worker() { # NAME
  "$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/$1" --name "$1" \
    --metrics-listen 127.0.0.1:0 >"$WORK/$1.log" 2>&1 &
  WORKERS+=($!)
}
start_scheduler
for w in w1 w2 w3; do start_worker $w; done
if [ -z "$CAS" ] || [ -z "$SCHED" ]; then
  fail "farm" "the CAS or the scheduler did not start"
  exit 1
fi
pass "CAS, scheduler and three workers started"

export STAGEFARM_HOME=$WORK/client-one STAGEFARM_CAS=$CAS STAGEFARM_SERVER=$SCHED
"$SF" image import "$WORK/busybox" -t busybox >/dev/null

# --- a four-stage DAG: three independent stages on three workers at once ------------
c=$(new_ctx dag)
echo data >"$c/data"
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS one
RUN sleep 2 && echo one > /one
FROM busybox AS two
RUN sleep 2 && echo two > /two
FROM busybox AS three
RUN sleep 2 && echo three > /three
FROM busybox
COPY --from=one /one /one
COPY --from=two /two /two
COPY --from=three /three /three
COPY data /data
CMD ["cat", "/one", "/two", "/three", "/data"]
DF
t0=$(date +%s%N)
"$SF" build --progress plain --source-date-epoch 1700000000 -t farm-dag:1 --trace "$WORK/dag-trace.json" \
  "$c" >"$c.out" 2>"$c.log"
rc=$?
t1=$(date +%s%N)
check "farm: the DAG builds" "0" "$rc"
workers=$(grep -E '^\[(one|two|three)\] started on ' "$c.log" | awk '{print $4}' | sort -u | wc -l)
check "farm: the three independent stages ran on three different workers" "3" "$workers"
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e9}')
check "farm: they ran at the same time (${secs} s for three 2 s stages)" "yes" \
  "$(awk -v s="$secs" 'BEGIN{print (s < 5.5) ? "yes" : "no"}')"
check "farm: the image runs" "one
two
three
data" "$("$SF" run farm-dag:1 2>&1)"

# trace_summary FILE: "<stages on distinct workers> <overlapping> <steps>" from a Chrome trace.
trace_summary() {
  python3 - "$1" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["traceEvents"]
names = {e["pid"]: e["args"]["name"] for e in t if e.get("ph") == "M" and e["name"] == "process_name"}
st = {e["name"]: e for e in t if e.get("ph") == "X" and e.get("cat") == "stage"}
three = [st.get("stage " + n) for n in ("one", "two", "three")]
if None in three:
    print("missing stages:", sorted(st)); sys.exit()
workers = len({names[e["pid"]] for e in three})
overlap = max(e["ts"] for e in three) < min(e["ts"] + e["dur"] for e in three)
steps = sum(1 for e in t if e.get("ph") == "X" and e.get("cat") in ("step", "cached"))
print(workers, "overlapping" if overlap else "apart", steps)
PY
}
check "farm: build --trace draws the three stages on three workers, at once" "3 overlapping" \
  "$(trace_summary "$WORK/dag-trace.json" | cut -d' ' -f1-2)"

# --- placement: a stage built on another stage goes where that one ran ----------------
cc=$(new_ctx chain)
printf 'FROM busybox AS base\nRUN echo base > /b\nFROM base AS mid\nRUN cat /b > /m\nFROM mid\nRUN cat /m > /t\n' \
  >"$cc/Dockerfile"
"$SF" build --progress plain "$cc" >/dev/null 2>"$cc.log"
check "farm: a chain of stages stays on one worker (its layers are there)" "1" \
  "$(grep -E '^\[[a-z0-9-]+\] started on ' "$cc.log" | awk '{print $4}' | sort -u | wc -l)"

# --- another client, another checkout: nothing runs -----------------------------------
c2=$(new_ctx dag-copy)
(umask 077; cp "$c/Dockerfile" "$c/data" "$c2/")
# Same modes as the first checkout (COPY keeps modes, so a file checked out
# 0600 is another build input), other times and another owner.
chmod 644 "$c2/Dockerfile" "$c2/data"
chown 65534:65534 "$c2/data"
touch -d '2001-01-01' "$c2/data"
STAGEFARM_HOME=$WORK/client-two "$SF" image import "$WORK/busybox" -t busybox >/dev/null
d2=$(STAGEFARM_HOME=$WORK/client-two "$SF" build --progress plain --source-date-epoch 1700000000 "$c2" 2>"$c2.log")
check_contains "farm: a second client with another checkout runs nothing" "(0 steps run, 7 cached)" \
  "$(cat "$c2.log")"
check "farm: and gets the same image" "$(cat "$c.out")" "$d2"

# --- a worker killed in the middle of a RUN ----------------------------------------------
c=$(new_ctx kill)
printf 'FROM busybox\nRUN echo started && sleep 3 && echo finished > /f\n' >"$c/Dockerfile"
"$SF" build --progress plain -t farm-kill:1 "$c" >"$c.out" 2>"$c.log" &
bp=$!
victim=""
for _ in $(seq 100); do
  victim=$(grep -oE 'started on w[0-9]' "$c.log" 2>/dev/null | head -1 | awk '{print $3}')
  [ -n "$victim" ] && grep -q '| started' "$c.log" && break
  sleep 0.1
done
idx=$((${victim#w} - 1))
kill -KILL "${WORKERS[$idx]}" 2>/dev/null
wait $bp
rc=$?
check "farm: the build survives a worker killed mid-RUN (SIGKILL to $victim)" "0" "$rc"
# The scheduler sees the process die (its Attend stream ends), not a lease
# timeout, and says where it died.
check_contains "farm: the stage moved to another worker, the death seen at once" \
  "worker $victim: process died while running step 1 (RUN echo started" "$(cat "$c.log")"
check_contains "farm: and runs again" "the stage runs again on another worker" "$(cat "$c.log")"
check "farm: the result is complete" "finished" "$("$SF" run farm-kill:1 cat /f 2>&1)"
start_worker "w${victim#w}b"

# --- failures and cancellation ---------------------------------------------------------------
c=$(new_ctx fail)
printf 'FROM busybox\nRUN echo about to fail && exit 3\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log"
rc=$?
check "farm: a failing RUN fails the build" "1" "$rc"
check_contains "farm: the error names file:line and the exit code" "Dockerfile:2" "$(cat "$c.log")"
check_contains "farm: ... and the exit code" "exit code: 3" "$(cat "$c.log")"

c=$(new_ctx cancel)
printf 'FROM busybox\nRUN echo running && sleep 30\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log" &
bp=$!
for _ in $(seq 100); do grep -q '| running' "$c.log" 2>/dev/null && break; sleep 0.1; done
kill -INT $bp
wait $bp
rc=$?
check "farm: Ctrl-C cancels the build (exit 130)" "130" "$rc"
left=1
for _ in $(seq 50); do
  left=0
  for r in "$WORK"/w*/runc; do
    n=$(runc --root "$r" list 2>/dev/null | grep -c ' running ')
    left=$((left + n))
  done
  [ "$left" -eq 0 ] && break
  sleep 0.2
done
check "farm: the cancelled RUN stops on its worker" "0" "$left"

# --- builds ls, logs, cancel ---------------------------------------------------------------------
"$SF" builds ls >"$WORK/builds.txt" 2>&1
check_contains "builds ls lists the finished builds" "succeeded" "$(cat "$WORK/builds.txt")"
dag_id=$(grep -m1 -oE 'build [0-9a-f]{24}' "$WORK/ctx-dag.log" | awk '{print $2}')
check_contains "logs BUILD replays a finished build" "[three] started on" \
  "$("$SF" logs "$dag_id" 2>&1)"
"$SF" builds trace "$dag_id" -o "$WORK/dag-trace2.json" 2>"$WORK/trace2.log"
check "builds trace BUILD writes the same timeline" "$(trace_summary "$WORK/dag-trace.json")" \
  "$(trace_summary "$WORK/dag-trace2.json")"
check_contains "builds trace of an unknown build is a clear error" "no build 000" \
  "$("$SF" builds trace 000 -o "$WORK/none.json" 2>&1; test -e "$WORK/none.json" && echo written)"
c=$(new_ctx remote-cancel)
printf 'FROM busybox\nRUN echo running && sleep 30\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log" &
bp=$!
for _ in $(seq 100); do grep -q '| running' "$c.log" 2>/dev/null && break; sleep 0.1; done
id=$(grep -m1 -oE 'build [0-9a-f]{24}' "$c.log" | awk '{print $2}')
check_contains "builds ls shows it running" "$id running" "$("$SF" builds ls 2>&1 | tr -s ' ')"
"$SF" cancel "$id" 2>/dev/null
wait $bp
check_contains "cancel BUILD stops it and its client says so" "cancelled (stagefarm cancel)" "$(cat "$c.log")"
check_contains "logs of an unknown build is a clear error" "no build 000" "$("$SF" logs 000 2>&1)"

# --- operators' view: Prometheus metrics and gRPC health ---------------------------------------
metrics_port() { sed -n 's/.*metrics on port //p' "$1" | head -1; }
scrape() { curl -sf "http://127.0.0.1:$(metrics_port "$1")/metrics"; }
# value NAME{LABELS} FILE: the sample's value (0 when absent)
value() { awk -v m="$1" '$1 == m {print $2; found=1} END {if (!found) print 0}' "$2"; }
scrape "$WORK/scheduler.log" >"$WORK/m-sched.txt"
scrape "$WORK/cas.log" >"$WORK/m-cas.txt"
# Every worker still running (one was killed above); which ones ran stages
# is the scheduler's choice.
# A cancelled stage ends on its worker at the worker's next report (every
# 200 ms here), after the client has exited: give it a second.
for _ in $(seq 20); do
  : >"$WORK/m-workers.txt"
  for log in "$WORK"/w*.log; do scrape "$log" >>"$WORK/m-workers.txt" 2>/dev/null; done
  [ "$(awk '$1 == "stagefarm_worker_busy_slots" {s += $2} END {print s + 0}' "$WORK/m-workers.txt")" = 0 ] && break
  sleep 0.1
done
positive() { awk -v v="$1" 'BEGIN {print (v > 0) ? "yes" : "no (" v ")"}'; }
check "metrics: the scheduler counts the stages it dispatched" "yes" \
  "$(positive "$(value stagefarm_scheduler_dispatches_total "$WORK/m-sched.txt")")"
# (the killed worker's replacement makes four within the last minute)
check "metrics: ... sees the workers" "yes" \
  "$(awk -v v="$(value stagefarm_scheduler_workers "$WORK/m-sched.txt")" 'BEGIN {print (v >= 3) ? "yes" : "no (" v ")"}')"
check "metrics: ... an empty queue when idle" "0" "$(value stagefarm_scheduler_queue_depth "$WORK/m-sched.txt")"
check "metrics: ... the builds that succeeded" "yes" \
  "$(positive "$(value 'stagefarm_scheduler_builds{state="succeeded"}' "$WORK/m-sched.txt")")"
check "metrics: the CAS counts the bytes uploaded" "yes" \
  "$(positive "$(value stagefarm_cas_received_bytes_total "$WORK/m-cas.txt")")"
check "metrics: ... and stored" "yes" "$(positive "$(value stagefarm_cas_stored_bytes "$WORK/m-cas.txt")")"
check_contains "metrics: the CAS times its RPCs" \
  'stagefarm_rpc_duration_seconds_count{code="0",method="/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs"}' \
  "$(cat "$WORK/m-cas.txt")"
check_contains "metrics: the scheduler times its RPCs" 'method="/stagefarm.v1.Scheduler/Report"' \
  "$(cat "$WORK/m-sched.txt")"
check "metrics: a worker counts the stages it ran" "yes" \
  "$(positive "$(awk '$1 == "stagefarm_worker_stages_total{result=\"done\"}" {s += $2} END {print s + 0}' "$WORK/m-workers.txt")")"
check "metrics: ... and no slot is busy when idle" "0" \
  "$(awk '$1 == "stagefarm_worker_busy_slots" {s += $2} END {print s + 0}' "$WORK/m-workers.txt")"
check "health: the scheduler serves" "SERVING" "$("$SF" health "$SCHED" 2>&1)"
check "health: the CAS serves" "SERVING" "$("$SF" health "$CAS" 2>&1)"
check "health: an unknown service is not found" "1" "$("$SF" health "$CAS" --service no.such.Service >/dev/null 2>&1; echo $?)"

# --- load: 50 builds from 10 clients at once ---------------------------------------------------
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
rss0=$(rss "$SCHED_PID")
L=$WORK/load
mkdir -p "$L"
client() { # N: five builds, each its own Dockerfile and context
  local n=$1 i c
  for i in 1 2 3 4 5; do
    c=$L/c$n-$i
    mkdir -p "$c"
    printf 'FROM busybox\nRUN echo build %s-%s > /x\n' "$n" "$i" >"$c/Dockerfile"
    if timeout 120 "$SF" build --progress quiet "$c" >"$c.out" 2>"$c.log"; then echo ok; else echo "fail $c"; fi
  done
}
t0=$(date +%s%N)
clients=()
for n in $(seq 10); do
  client "$n" >"$L/client$n.res" &
  clients+=($!)
done
wait "${clients[@]}"
t1=$(date +%s%N)
ok=$(cat "$L"/client*.res | grep -c '^ok$')
check "farm load: 50 builds from 10 concurrent clients all succeed" "50" "$ok"
grep -h '^fail' "$L"/client*.res | head -3 | while read -r _ c; do tail -3 "$c.log"; done
rss1=$(rss "$SCHED_PID")
echo "farm load: 50 builds in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e9}') s; scheduler RSS ${rss0} kB -> ${rss1} kB"
check "farm load: the scheduler's memory stays bounded (RSS grew by under 32 MB)" "yes" \
  "$(awk -v a="$rss0" -v b="$rss1" 'BEGIN{print (b - a < 32768) ? "yes" : "no (" a " -> " b " kB)"}')"

# --- the scheduler dies mid-build: a clear error, no hang ------------------------------------
c=$(new_ctx sched-dies)
printf 'FROM busybox\nRUN echo running && sleep 20\n' >"$c/Dockerfile"
timeout 60 "$SF" build --progress plain --reattach-seconds 2 "$c" >/dev/null 2>"$c.log" &
bp=$!
for _ in $(seq 100); do grep -q '| running' "$c.log" 2>/dev/null && break; sleep 0.1; done
kill -KILL "$SCHED_PID"
wait $bp
rc=$?
check "farm: a dead scheduler fails the build (not a hang)" "1" "$rc"
check_contains "farm: ... naming the farm" "the farm at $SCHED" "$(cat "$c.log")"
check_contains "farm: ... after trying to reattach" "reattaching to build" "$(cat "$c.log")"

# --- stagefarm cluster up / down ----------------------------------------------------------
"$SF" cluster up --workers 2 --state "$WORK/cluster" >"$WORK/cluster.env" 2>"$WORK/cluster.log"
check "cluster up starts a farm" "0" "$?"
web=$(sed -n 's/.*web view at \(http[^;]*\);.*/\1/p' "$WORK/cluster.log")
check_contains "cluster up prints its web view's address, which answers" '"tenants":false' \
  "$(curl -s "${web}api/v1/session" 2>&1)"
(
  . "$WORK/cluster.env"
  export STAGEFARM_HOME=$WORK/client-cluster
  "$SF" image import "$WORK/busybox" -t busybox >/dev/null
  c=$(new_ctx cluster)
  printf 'FROM busybox\nRUN echo on the cluster > /x\n' >"$c/Dockerfile"
  "$SF" build --progress quiet -t on-cluster:1 "$c" >/dev/null 2>"$c.log" || cat "$c.log"
  "$SF" run on-cluster:1 cat /x
) >"$WORK/cluster.out" 2>&1
check "cluster up: builds run on it" "on the cluster" "$(cat "$WORK/cluster.out")"
check_contains "cluster up twice is refused" "already running" \
  "$("$SF" cluster up --state "$WORK/cluster" 2>&1)"
pids=$(cat "$WORK/cluster/pids" 2>/dev/null | tr '\n' ' ')
"$SF" cluster down --state "$WORK/cluster" 2>/dev/null
alive=0
# (a stopped process may linger as a zombie until its parent reaps it)
for p in $pids; do readlink "/proc/$p/exe" >/dev/null 2>&1 && alive=$((alive + 1)); done
check "cluster down stops its $(echo $pids | wc -w) processes" "0" "$alive"

exit $E2E_FAILED
