#!/usr/bin/env bash
# End-to-end: untidy but ordinary input, on the embedded engine and on a
# farm of two workers. A Dockerfile saved in Latin-1 (bytes that are not
# UTF-8 in RUN, ENV, LABEL, CMD, ENTRYPOINT, HEALTHCHECK and WORKDIR), a
# context with a file name that is not UTF-8, 122 layers over three stages
# (a COPY --from views all of one), a Dockerfile that would make 130 layers
# (refused with Docker's "max depth exceeded" and its file:line), tags
# Docker refuses, and byte sizes with units. Nothing may abort a process: on
# the farm, after each case both workers are alive and the next build
# succeeds at once. (The Latin-1 image's config and files are compared with
# BuildKit's in tests/compat, case latin1.)
# Usage: untidy_input_test.sh BIN_DIR   (needs root, runc, busybox-static, jq)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
PIDS=()
declare -A WPID
trap stop_farm EXIT

# not_aborted NAME RC: the process ended by itself (no signal: 134 is abort).
not_aborted() {
  if [ "$2" -lt 128 ]; then pass "$1: no process aborted (exit $2)"; else fail "$1" "exit code $2 (a signal)"; fi
}

# --- the inputs ------------------------------------------------------------
latin1=$(new_ctx latin1)
printf 'FROM busybox\nENV GREETING=caf\xe9\nLABEL note="d\xe9j\xe0 vu"\nWORKDIR /w\xe9\nRUN echo caf\xe9 > /run-out && pwd > /pwd-out && echo "$GREETING" > /env-out\nCOPY . /ctx/\nHEALTHCHECK CMD echo caf\xe9\nENTRYPOINT ["/bin/echo", "caf\xe9"]\nCMD ["r\xe9sum\xe9"]\n' \
  >"$latin1/Dockerfile"
echo latin1 >"$latin1/caf$(printf '\xe9')"
mkdir -p "$latin1/d$(printf '\xff')"
echo inner >"$latin1/d$(printf '\xff')/x$(printf '\xfe')"

# layers_dockerfile N DIR: stage one makes N/2 layers, stage two N - N/2
# more on top, the last stage copies a file from stage one (a view of all
# its layers): N + 2 layers in the image (busybox's and the COPY's).
layers_dockerfile() {
  local n=$1 d=$2 half=$(( $1 / 2 )) i
  {
    echo "FROM busybox AS one"
    for i in $(seq 1 "$half"); do echo "RUN echo $i > /f$i"; done
    echo "FROM one AS two"
    for i in $(seq $((half + 1)) "$n"); do echo "RUN echo $i > /f$i"; done
    echo "FROM two"
    echo "COPY --from=one /f1 /copied"
  } >"$d/Dockerfile"
}
many=$(new_ctx many); layers_dockerfile 120 "$many"
# The same first 120 steps (cached), then ten more: the step that would make
# the 128th layer is refused.
toomany=$(new_ctx toomany); layers_dockerfile 120 "$toomany"
sed -i '$d' "$toomany/Dockerfile"
for i in $(seq 121 130); do echo "RUN echo $i > /f$i"; done >>"$toomany/Dockerfile"
echo "RUN true" >>"$toomany/Dockerfile"
refused_line=$(grep -n '^RUN echo 127 ' "$toomany/Dockerfile" | cut -d: -f1)
noop=$(new_ctx noop)
printf 'FROM busybox\nRUN true\nRUN echo changed > /c\nRUN cat /c\n' >"$noop/Dockerfile"
small=$(new_ctx small)
printf 'FROM busybox\nRUN echo ok-$RANDOM > /ok\n' >"$small/Dockerfile"

# layer_count IMAGE: the layers of IMAGE in this client's store.
layer_count() { "$SF" image inspect "$1" 2>/dev/null | jq '.layers | length'; }

# run_cases MODE: every case, on the engine the environment names.
run_cases() {
  local mode=$1 rc out
  # Latin-1 everywhere.
  "$SF" build --progress plain -t "latin1-$mode:1" -o "type=local,dest=$latin1.$mode" "$latin1" >"$latin1.$mode.log" 2>&1
  rc=$?
  check "$mode: the Latin-1 Dockerfile builds" 0 "$rc"
  [ "$rc" -eq 0 ] || tail -5 "$latin1.$mode.log"
  not_aborted "$mode: Latin-1" "$rc"
  check "$mode: RUN's bytes reach the command as Docker passes them (U+FFFD)" \
    "caf$(printf '\xef\xbf\xbd')" "$(cat "$latin1.$mode/run-out" 2>/dev/null)"
  check "$mode: ENV's bytes reach the command" "caf$(printf '\xef\xbf\xbd')" "$(cat "$latin1.$mode/env-out" 2>/dev/null)"
  check "$mode: a context file whose name is not UTF-8 is copied byte for byte" \
    "latin1" "$(cat "$latin1.$mode/ctx/caf$(printf '\xe9')" 2>/dev/null)"
  check "$mode: and one in a directory whose name is not UTF-8" \
    "inner" "$(cat "$latin1.$mode/ctx/d$(printf '\xff')/x$(printf '\xfe')" 2>/dev/null)"
  out=$("$SF" image inspect "latin1-$mode:1" 2>&1)
  local fffd; fffd=$(printf '\xef\xbf\xbd')
  check "$mode: the config's Env holds U+FFFD where the byte was (as Docker)" "GREETING=caf$fffd" \
    "$(jq -r '.config.config.Env[] | select(startswith("GREETING"))' <<<"$out" 2>/dev/null)"
  check "$mode: Labels" "d${fffd}j$fffd vu" "$(jq -r '.config.config.Labels.note' <<<"$out" 2>/dev/null)"
  check "$mode: WorkingDir" "/w$fffd" "$(jq -r '.config.config.WorkingDir' <<<"$out" 2>/dev/null)"
  check "$mode: Cmd stays exec form" "[\"r${fffd}sum$fffd\"]" "$(jq -c '.config.config.Cmd' <<<"$out" 2>/dev/null)"
  check "$mode: Entrypoint" "[\"/bin/echo\",\"caf$fffd\"]" "$(jq -c '.config.config.Entrypoint' <<<"$out" 2>/dev/null)"
  check "$mode: Healthcheck" "[\"CMD-SHELL\",\"echo caf$fffd\"]" "$(jq -c '.config.config.Healthcheck.Test' <<<"$out" 2>/dev/null)"
  after_case "$mode" "the Latin-1 Dockerfile"

  # Layers: 122 in one image; a COPY --from views 61 at once.
  "$SF" build --progress plain -t "many-$mode:1" "$many" >"$many.$mode.log" 2>&1
  rc=$?
  check "$mode: 122 layers over three stages build" 0 "$rc"
  [ "$rc" -eq 0 ] || tail -5 "$many.$mode.log"
  check "$mode: the image has 122 layers" 122 "$(layer_count "many-$mode:1")"
  "$SF" build --progress plain "$toomany" >"$toomany.$mode.log" 2>&1
  rc=$?
  check "$mode: a Dockerfile of more than 127 layers fails" 1 "$rc"
  not_aborted "$mode: 130 layers" "$rc"
  check_contains "$mode: with Docker's message and the instruction's file:line" \
    "Dockerfile:$refused_line" "$(grep 'max depth exceeded' "$toomany.$mode.log")"
  after_case "$mode" "122 and 130 layers"
  # A RUN that changed nothing makes no layer.
  "$SF" build --progress plain -t "noop-$mode:1" "$noop" >"$noop.$mode.log" 2>&1
  check "$mode: RUN true and RUN cat make no layer" 2 "$(layer_count "noop-$mode:1")"

  # Tags Docker refuses: refused at the input, before any build.
  local t
  for t in 'a<b>c:1' 'x/UPPER:1' 'UPPER:1' '../../x' "caf$(printf '\xe9'):1" 'x:-bad' "$(printf 'a%.0s' $(seq 300))"; do
    out=$("$SF" build --progress plain -t "$t" "$small" 2>&1)
    rc=$?
    check "$mode: tag $(printf '%q' "$t" | head -c 40) is refused" 2 "$([ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && echo 2 || echo "$rc")"
    check_contains "$mode: tag $(printf '%q' "$t" | head -c 40): Docker's message" "invalid reference format" "$out"
  done
  after_case "$mode" "odd tags"
  # Byte sizes with Docker's units.
  "$SF" build --progress plain --memory 256m --shm-size 64m "$small" >"$small.$mode.log" 2>&1
  check "$mode: --memory 256m --shm-size 64m" 0 "$?"
  out=$("$SF" build --progress plain --memory 12parsecs "$small" 2>&1)
  check_contains "$mode: a bad size names the flag" "--memory" "$out"
}

# after_case MODE WHAT: on the farm, both workers still run and a new build
# succeeds at once.
after_case() { [ "$1" = farm ] && workers_alive "$2"; return 0; }
workers_alive() {
  local w dead=""
  for w in w1 w2; do kill -0 "${WPID[$w]}" 2>/dev/null || dead="$dead $w"; done
  check "farm: after $1, both workers are alive" "" "$dead"
  local start=$SECONDS
  "$SF" build --progress plain --no-cache "$small" >"$small.after.log" 2>&1
  check "farm: after $1, the next build succeeds" 0 "$?"
  check "farm: after $1, at once (under 20 s)" yes "$([ $((SECONDS - start)) -lt 20 ] && echo yes)"
}

# --- embedded ----------------------------------------------------------------
run_cases embedded

# --- a farm of two workers ---------------------------------------------------
start_cas_and_scheduler --lease-timeout-ms 3000
export STAGEFARM_HOME=$WORK/client STAGEFARM_CAS=$CAS STAGEFARM_SERVER=$SCHED
"$SF" image import "$WORK/busybox" -t busybox >/dev/null
start_farm_worker w1
start_farm_worker w2
run_cases farm
out=$("$SF" builds ls 2>&1)
check_contains "farm: builds ls lists the refused 130-layer build as failed" "failed" "$out"
exit $E2E_FAILED
