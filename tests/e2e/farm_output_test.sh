#!/usr/bin/env bash
# End-to-end: build output on a farm is bytes, bounded, and never loses a
# stage. A CAS, a scheduler (with --state) and one worker on 127.0.0.1;
# steps print binary bytes, 5 MB and 50 MB of lines, a 20 MB line with no
# newline, 100,000 short lines and `\r` progress bars. Each build succeeds
# in seconds, says where its output was clipped, and the whole output comes
# back byte for byte from `stagefarm logs BUILD --step N --full`; the next
# build starts at once; the scheduler's memory and state stay bounded. The
# same on the embedded engine, and for a failing step.
# Usage: farm_output_test.sh BIN_DIR   (needs root, runc, busybox-static)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
cleanup_farm() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup_farm EXIT

"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" --state "$WORK/state" \
  --lease-timeout-ms 3000 --heartbeat-ms 300 >"$WORK/scheduler.log" 2>&1 &
SCHED_PID=$!
PIDS+=($SCHED_PID)
SCHED=$(listen_addr "$WORK/scheduler.log")
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/w1" --name w1 \
  >"$WORK/w1.log" 2>&1 &
PIDS+=($!)
if [ -z "$CAS" ] || [ -z "$SCHED" ]; then
  fail "farm" "the CAS or the scheduler did not start"
  exit 1
fi
export STAGEFARM_HOME=$WORK/client STAGEFARM_SERVER=$SCHED
"$SF" image import "$WORK/busybox" -t busybox >/dev/null

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
RSS_START=$(rss_kb "$SCHED_PID")

# farm_case NAME 'SHELL' [SECONDS]: builds `FROM busybox / RUN SHELL` on the
# farm with plain progress; checks that it succeeds within SECONDS (default
# 60), that the clipped note is there when the output is over 2 MiB, and
# that --full gives back exactly what the same shell prints on this host.
farm_case() {
  local name=$1 script=$2 limit=${3:-60}
  local c; c=$(new_ctx "$name")
  printf 'FROM busybox\nRUN %s\n' "$script" >"$c/Dockerfile"
  local t0 t1 rc
  t0=$(date +%s%N)
  timeout 300 "$SF" build --progress plain "$c" >"$c.out" 2>"$c.log"
  rc=$?
  t1=$(date +%s%N)
  local secs=$(( (t1 - t0) / 1000000000 ))
  check "$name: the build succeeds" "0" "$rc"
  if [ "$rc" -ne 0 ]; then tail -c 800 "$c.log"; return; fi
  [ "$secs" -le "$limit" ] && pass "$name: done in ${secs}s" || fail "$name: time" "took ${secs}s (limit ${limit}s)"
  BUILD_ID=$(grep -ao 'build [0-9a-z]*: [0-9]* stages to run' "$c.log" | head -1 | awk '{print $2}' | tr -d :)
  # The expected bytes: the same script run by the same busybox here.
  (cd "$WORK" && /bin/busybox sh -c "$script") >"$c.expected" 2>&1
  local size; size=$(stat -c %s "$c.expected")
  if [ "$size" -gt $((2 << 20)) ]; then
    check_contains "$name: the live log says it was clipped" "output clipped" "$(grep -a 'output clipped' "$c.log" | head -3)"
  fi
  "$SF" logs "$BUILD_ID" --step 1 --full >"$c.full" 2>"$c.full.err"
  if [ "$name" = binary ]; then
    # Random bytes differ from run to run: compare around them.
    check "$name: --full ends with the line after the binary bytes" "after-binary" "$(tail -n1 "$c.full")"
    check "$name: --full has all of it" "$size" "$(stat -c %s "$c.full")"
  else
    check "$name: stagefarm logs --step 1 --full gives the whole output ($size bytes)" \
      "$(sha256sum <"$c.expected" | cut -c1-64)" "$(sha256sum <"$c.full" | cut -c1-64)"
  fi
}

farm_case binary 'head -c 3000 /dev/urandom; echo; echo after-binary' 20
check_contains "binary: the line after the bytes reached the client" "after-binary" "$(grep -a after-binary "$WORK/ctx-binary.log")"
farm_case lines-5mb "head -c 5000000 /dev/zero | tr '\\0' c | fold -w 100" 30
farm_case lines-50mb "head -c 50000000 /dev/zero | tr '\\0' d | fold -w 100" 90
farm_case line-20mb "head -c 20000000 /dev/zero | tr '\\0' e" 60
farm_case short-lines 'seq 100000' 30
farm_case progress-bars 'for i in $(seq 1 200); do printf "\r%3d%% [%-50s]" $i ====; done; echo; echo done' 20
check_contains "progress-bars: carriage returns pass through" "$(printf '\r')200%" "$(cat "$WORK/ctx-progress-bars.log")"

# The worker is free again at once: a trivial build takes well under the
# minute a stuck report used to hold the slot.
c=$(new_ctx next)
printf 'FROM busybox\nRUN echo next\n' >"$c/Dockerfile"
t0=$(date +%s%N)
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "next build: succeeds" "0" "$rc"
[ "$ms" -lt 5000 ] && pass "next build: starts at once (${ms} ms)" || fail "next build" "took ${ms} ms"

# A failing step with a flood of output: the error has the tail and names
# the kept whole output.
c=$(new_ctx failing)
printf 'FROM busybox\nRUN seq 300000; echo last-line-before-exit; exit 3\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log"
check "failing: the build fails" "1" "$?"
err=$(cat "$c.log")
check_contains "failing: the error names the exit code" "exit code: 3" "$err"
check_contains "failing: the error has the last output" "last-line-before-exit" "$err"
blob=$(grep -ao 'stagefarm logs --blob [0-9a-f]*/[0-9]*' "$c.log" | tail -1 | awk '{print $4}')
"$SF" logs --blob "$blob" --server "$SCHED" >"$c.full" 2>"$c.err"
check "failing: the whole output from logs --blob" \
  "$( (seq 300000; echo last-line-before-exit) | sha256sum | cut -c1-64)" "$(sha256sum <"$c.full" | cut -c1-64)"

# --log-max-bytes: a build asks for less.
c=$(new_ctx small-limit)
printf 'FROM busybox\nRUN seq 5000\n' >"$c/Dockerfile"
"$SF" build --progress plain --log-max-bytes 4096 "$c" >/dev/null 2>"$c.log"
check "--log-max-bytes 4096: the build succeeds" "0" "$?"
check_contains "--log-max-bytes 4096: clipped at 4 KiB" "4.0 KiB of 23.3 KiB shown live" "$(cat "$c.log")"

# Bounded: the scheduler's memory and state.
RSS_END=$(rss_kb "$SCHED_PID")
STATE_KB=$(du -sk "$WORK/state" | cut -f1)
echo "sizes scheduler RSS ${RSS_START} kB -> ${RSS_END} kB, state ${STATE_KB} kB"
[ "$RSS_END" -lt 120000 ] && pass "scheduler RSS stays under 120 MB (${RSS_END} kB)" || fail "scheduler RSS" "${RSS_END} kB"
[ "$STATE_KB" -lt 40000 ] && pass "scheduler state stays under 40 MB (${STATE_KB} kB)" || fail "scheduler state" "${STATE_KB} kB"
if grep -qa "invalid UTF-8\|refused" "$WORK/scheduler.log" "$WORK/w1.log"; then
  fail "no refused reports" "$(grep -a 'invalid UTF-8\|refused' "$WORK/scheduler.log" "$WORK/w1.log" | head -3)"
else
  pass "no report was refused"
fi

# The embedded engine: the same bounds, the whole output in the local store.
unset STAGEFARM_SERVER
export STAGEFARM_HOME=$WORK/embedded
"$SF" image import "$WORK/busybox" -t busybox >/dev/null
c=$(new_ctx embedded)
printf 'FROM busybox\nRUN head -c 3000 /dev/urandom; seq 600000; echo embedded-end\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >/dev/null 2>"$c.log"
check "embedded: binary and 4 MB of lines build" "0" "$?"
check_contains "embedded: the end of the output is shown" "embedded-end" "$(grep -a embedded-end "$c.log")"
blob=$(grep -ao 'stagefarm logs --blob [0-9a-f]*/[0-9]*' "$c.log" | tail -1 | awk '{print $4}')
"$SF" logs --blob "$blob" | tail -c 4000000 >"$c.full"
check "embedded: logs --blob gives the whole output" \
  "$( (seq 600000; echo embedded-end) | tail -c 4000000 | sha256sum | cut -c1-64)" "$(sha256sum <"$c.full" | cut -c1-64)"
exit $E2E_FAILED
