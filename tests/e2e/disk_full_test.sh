#!/usr/bin/env bash
# End-to-end: a full disk under the CAS, the scheduler's state, a worker's
# work directory and the embedded store. Each component's data lives on a
# small tmpfs mounted here; a filler file takes the room. Clients get a
# clear RESOURCE_EXHAUSTED-class error that names the component and what to
# do, without the server's paths; the server logs the whole error and counts
# it; writes work again within a second of the filler going; nothing
# acknowledged before is lost.
# Usage: disk_full_test.sh BIN_DIR   (needs root, runc, busybox-static, curl)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
MOUNTS=()
cleanup_disk() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup_disk EXIT

small_disk() { # DIR MB: a tmpfs of MB megabytes at DIR
  mkdir -p "$1"
  mount -t tmpfs -o "size=${2}m" stagefarm-test "$1"
}
# fill DIR: a filler file that takes all the room left on DIR's tmpfs.
fill() { dd if=/dev/zero of="$1/filler" bs=1M status=none 2>/dev/null; sync; }
metric() { # PORT NAME: a metric's value
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2}'
}
metrics_port() { # LOG
  for _ in $(seq 50); do grep -q "metrics on port" "$1" && break; sleep 0.1; done
  sed -n 's/.*metrics on port //p' "$1" | head -1
}
# ms_until CMD...: runs CMD every 50 ms until it succeeds (10 s at most);
# prints how many milliseconds that took, or "never".
ms_until() {
  local t0; t0=$(date +%s%N)
  for _ in $(seq 200); do
    if "$@" >/dev/null 2>&1; then echo $(( ($(date +%s%N) - t0) / 1000000 )); return; fi
    sleep 0.05
  done
  echo never
}

# --- the CAS -------------------------------------------------------------------
small_disk "$WORK/casdisk" 64
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/casdisk/db" --metrics-listen 127.0.0.1:0 \
  >"$WORK/cas.log" 2>"$WORK/cas.err" &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
CAS_METRICS=$(metrics_port "$WORK/cas.log")
[ -n "$CAS" ] && pass "CAS on a 64 MB tmpfs" || { fail "CAS" "did not start"; exit 1; }
mkdir -p "$WORK/blobs"
for i in $(seq 1 8); do head -c 1000000 /dev/urandom >"$WORK/blobs/before-$i"; done
"$SF" cas --cas "$CAS" put "$WORK"/blobs/before-* >"$WORK/acked" 2>"$WORK/put.err"
check "CAS: blobs stored before the disk fills" "8" "$(wc -l <"$WORK/acked")"
fill "$WORK/casdisk"
got_full=0
for i in $(seq 1 40); do
  head -c 1000000 /dev/urandom >"$WORK/blobs/during-$i"
  if ! "$SF" cas --cas "$CAS" put "$WORK/blobs/during-$i" >>"$WORK/acked-during" 2>"$WORK/full.err"; then
    got_full=1
    break
  fi
done
check "CAS: a write fails once the disk is full" "1" "$got_full"
# RocksDB's flush thread waits a second after a failed flush before anything
# else happens; space returning later than that is what operators see.
sleep 1.2
err=$(cat "$WORK/full.err")
check_contains "CAS: the client is told the CAS's disk is full" "the CAS's disk is full" "$err"
case "$err" in *"$WORK/casdisk"*) fail "CAS: no server path reaches the client" "$err" ;; *) pass "CAS: no server path reaches the client" ;; esac
check_contains "CAS: the server logs the whole error" "No space left on device" "$(cat "$WORK/cas.err")"
n=$(metric "$CAS_METRICS" stagefarm_cas_disk_full_errors_total)
[ "${n:-0}" != 0 ] && pass "CAS: the disk-full metric counts ($n)" || fail "CAS: metric" "stagefarm_cas_disk_full_errors_total is ${n:-missing}"
rm -f "$WORK/casdisk/filler"
head -c 1000000 /dev/urandom >"$WORK/blobs/after"
ms=$(ms_until "$SF" cas --cas "$CAS" put "$WORK/blobs/after")
echo "sizes CAS writes again ${ms} ms after space returned"
# The CAS refuses writes while the room to flush its memtables is missing,
# so RocksDB itself never meets the full disk here and nothing needs
# recovering (a flush that did fail would be resumed within tens of ms).
[ "$ms" != never ] && [ "$ms" -le 2000 ] && pass "CAS: writes work again once there is room (${ms} ms)" ||
  fail "CAS: recovery" "took ${ms} ms"
cat "$WORK/acked-during" >>"$WORK/acked" 2>/dev/null
lost=0
while read -r digest file; do
  "$SF" cas --cas "$CAS" get "$digest" -o "$WORK/back" 2>/dev/null && cmp -s "$WORK/back" "$file" || lost=$((lost + 1))
done <"$WORK/acked"
check "CAS: every acknowledged blob is there and intact ($(wc -l <"$WORK/acked") blobs)" "0" "$lost"

# --- the scheduler's state and a worker's work directory --------------------------
small_disk "$WORK/statedisk" 64
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" --state "$WORK/statedisk/state" \
  --metrics-listen 127.0.0.1:0 >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
SCHED_METRICS=$(metrics_port "$WORK/scheduler.log")
small_disk "$WORK/workdisk" 200
# w1 takes stages however little room it has: its steps meet the full disk.
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/workdisk/w1" --name w1 \
  --min-free-bytes 0 --metrics-listen 127.0.0.1:0 >"$WORK/w1.log" 2>&1 &
W1_PID=$!
PIDS+=($W1_PID)
W1_METRICS=$(metrics_port "$WORK/w1.log")
export STAGEFARM_HOME=$WORK/client STAGEFARM_SERVER=$SCHED
"$SF" image import "$WORK/busybox" -t busybox >/dev/null
c=$(new_ctx first)
printf 'FROM busybox\nRUN echo first > /first\n' >"$c/Dockerfile"
"$SF" build --progress plain -t first:1 "$c" >/dev/null 2>"$c.log"
check "farm: a build before the disks fill" "0" "$?"

fill "$WORK/statedisk"
# The state's log file has room preallocated: builds whose logs fill it come
# first (they go on in memory when their events cannot be recorded).
refused=0
for i in $(seq 1 40); do
  c=$(new_ctx "state-full-$i")
  printf 'FROM busybox\nRUN seq %d\n' $((400000 + i)) >"$c/Dockerfile"
  if ! "$SF" build --progress quiet "$c" >/dev/null 2>"$c.log"; then refused=1; break; fi
done
check "scheduler: a build is refused once its state disk is full" "1" "$refused"
sleep 1.2
err=$(cat "$c.log")
check_contains "scheduler: the client is told the scheduler's disk is full" "the scheduler's disk is full" "$err"
case "$err" in *"$WORK/statedisk"*) fail "scheduler: no server path reaches the client" "$err" ;; *) pass "scheduler: no server path reaches the client" ;; esac
check_contains "scheduler: the server logs the whole error" "No space left on device" "$(cat "$WORK/scheduler.log")"
n=$(metric "$SCHED_METRICS" stagefarm_scheduler_disk_full_errors_total)
[ "${n:-0}" != 0 ] && pass "scheduler: the disk-full metric counts ($n)" || fail "scheduler: metric" "${n:-missing}"
rm -f "$WORK/statedisk/filler"
ms=$(ms_until "$SF" build --progress quiet "$c")
[ "$ms" != never ] && [ "$ms" -le 1000 ] && pass "scheduler: builds work again within a second (${ms} ms, the build included)" ||
  fail "scheduler: recovery" "took ${ms} ms"

fill "$WORK/workdisk"
c=$(new_ctx work-full)
printf 'FROM busybox\nRUN head -c 20000000 /dev/zero > /big\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log"
check "worker: a build fails while its work disk is full" "1" "$?"
err=$(cat "$c.log")
check_contains "worker: the stage was tried again before the build failed" "the stage runs again" "$err"
check_contains "worker: the client is told the worker's disk is full" "worker w1: its disk is full" "$err"
case "$err" in *"$WORK/workdisk"*) fail "worker: no worker path reaches the client" "$(echo "$err" | tail -3)" ;; *) pass "worker: no worker path reaches the client" ;; esac
n=$(metric "$W1_METRICS" stagefarm_worker_disk_full_errors_total)
[ "${n:-0}" != 0 ] && pass "worker: the disk-full metric counts ($n)" || fail "worker: metric" "${n:-missing}"
rm -f "$WORK/workdisk/filler"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log"
check "worker: the same build works once there is room" "0" "$?"
"$SF" image export first:1 --format oci -o "$WORK/first.tar" 2>/dev/null
check "farm: the image built before is whole" "0" "$?"

# A worker short of disk (under --min-free-bytes) takes no stages, so it
# cannot fail every stage of the farm in turn; the build waits for room.
kill "$W1_PID"; wait "$W1_PID" 2>/dev/null
small_disk "$WORK/workdisk2" 200
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/workdisk2/w2" --name w2 \
  --min-free-bytes 50000000 >"$WORK/w2.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q "connected to the scheduler" "$WORK/w2.log" && break; sleep 0.1; done
fill "$WORK/workdisk2"
c=$(new_ctx wait-for-room)
printf 'FROM busybox\nRUN echo room > /room\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log" &
BUILD_PID=$!
sleep 3
kill -0 "$BUILD_PID" 2>/dev/null && pass "worker: a worker short of disk takes no stage (the build waits)" ||
  fail "worker: short of disk" "the build ended: $(tail -2 "$c.log")"
check_contains "worker: it says why it takes no stages" "disk nearly full: taking no stages" "$(cat "$WORK/w2.log")"
rm -f "$WORK/workdisk2/filler"
wait "$BUILD_PID"
check "worker: the waiting build succeeds once there is room" "0" "$?"

# --- the embedded store -------------------------------------------------------------
unset STAGEFARM_SERVER
small_disk "$WORK/homedisk" 48
export STAGEFARM_HOME=$WORK/homedisk/home
"$SF" image import "$WORK/busybox" -t busybox >/dev/null
c=$(new_ctx embedded)
printf 'FROM busybox\nRUN head -c 30000000 /dev/urandom > /big\n' >"$c/Dockerfile"
fill "$WORK/homedisk"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log"
check "embedded: a build fails while the home's disk is full" "1" "$?"
check_contains "embedded: the error says the disk is full" "No space left on device" "$(cat "$c.log")"
rm -f "$WORK/homedisk/filler"
"$SF" image ls >"$WORK/ls" 2>&1
check_contains "embedded: the store still lists the base image" "busybox" "$(cat "$WORK/ls")"
printf 'FROM busybox\nRUN echo small > /small\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log"
check "embedded: builds work again once there is room" "0" "$?"
exit $E2E_FAILED
