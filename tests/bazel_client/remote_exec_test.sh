#!/usr/bin/env bash
# A stock Bazel (Debian's 4.2.3) sends every action of a small workspace to
# a stagefarm farm (a CAS, a scheduler and two workers on loopback) with
# --remote_executor=grpc://SCHEDULER alone: genrules, a directory output, a
# cc_binary compiled in an execution image the farm built itself from a
# Dockerfile (apt-get in a RUN step), tests that pass, fail and run over
# their timeout, an action that fails. Then a fresh output base is served
# from the action cache, and --remote_download_minimal works. One PASS/FAIL
# line per check.
#
# Usage: remote_exec_test.sh BIN_DIR
set -uo pipefail
BIN=${1:?usage: remote_exec_test.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/tests/e2e/lib.sh"
SF=$BIN/stagefarm
WORK=$(mktemp -d /tmp/stagefarm-e2e.XXXXXX)
PIDS=()
declare -A WPID
bazel_in() { # OUTPUT_BASE ARGS...: bazel in the test's workspace
  local ob=$1; shift
  (cd "$WORK/ws" && bazel --output_user_root="$WORK/bazel-root" --output_base="$ob" \
    --bazelrc=/dev/null --max_idle_secs=60 "$@" --symlink_prefix=/ --nosandbox_debug \
    --coverage_report_generator=//coverage_stub:coverage_report_generator 2>&1)
}
cleanup() {
  for ob in "$WORK"/ob*; do
    [ -d "$ob" ] && (cd "$WORK/ws" 2>/dev/null && bazel --output_user_root="$WORK/bazel-root" \
      --output_base="$ob" shutdown >/dev/null 2>&1)
  done
  stop_farm
}
trap cleanup EXIT

"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" --state "$WORK/state" \
  --lease-timeout-ms 3000 --heartbeat-ms 500 --action-image rexec:1 >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
start_farm_worker w1
start_farm_worker w2
export STAGEFARM_HOME=$WORK/client STAGEFARM_CAS=$CAS STAGEFARM_SERVER=$SCHED

# The execution image: Debian (scripts/base-images) with gcc added by a
# Dockerfile built on the farm itself.
if ! SF=$SF bash "$ROOT/scripts/base-images" debian >"$WORK/base.log" 2>&1; then
  fail "debian base image" "$(tail -3 "$WORK/base.log")"
  exit 1
fi
"$SF" build --progress plain -t rexec:1 "$HERE/exec_image" >"$WORK/image.log" 2>&1
check "the farm builds the execution image (apt-get in a RUN step)" 0 $?

mkdir -p "$WORK/ws"
cp "$HERE"/exec_workspace/*.c "$HERE"/exec_workspace/*.sh "$HERE"/exec_workspace/*.bzl "$WORK/ws/"
cp "$HERE/exec_workspace/BUILD.in" "$WORK/ws/BUILD"
cp -r "$ROOT/third_party/rules_cc_stub" "$WORK/rules_cc"
cp -r "$ROOT/third_party/coverage_stub" "$WORK/ws/coverage_stub"
sed "s|@RULES_CC@|$WORK/rules_cc|" "$HERE/exec_workspace/WORKSPACE.in" >"$WORK/ws/WORKSPACE"
REMOTE=(--remote_executor="grpc://$SCHED" --jobs=8 --spawn_strategy=remote --genrule_strategy=remote
  --strategy=TestRunner=remote --remote_timeout=120)
GOOD=(//:hello //:upper //:no_network //:dir_list //:hi //:hi_out //:write_input)

out=$(bazel_in "$WORK/ob1" build "${REMOTE[@]}" "${GOOD[@]}")
echo "$out" >"$WORK/build1.log"
check_contains "bazel builds with --remote_executor alone" "Build completed successfully" "$out"
procs=$(echo "$out" | grep -oE '[0-9,]+ processes?:.*' | tail -1)
check_contains "every action ran remotely" "remote" "$procs"
case "$procs" in *linux-sandbox* | *local* | *processwrapper*) fail "no local actions" "$procs" ;; *) pass "no local actions" ;; esac
bb=$(bazel_in "$WORK/ob1" info bazel-bin "${REMOTE[@]}" | tail -1)
check_contains "a genrule's output, made in the image (Debian 12)" "HELLO FROM 12." "$(cat "$bb/upper.txt" 2>/dev/null)"
check "actions have no network (only lo)" "lo" "$(cat "$bb/links.txt" 2>/dev/null | tr '\n' ' ' | xargs)"
check "a directory output (tree artifact) with a symlink" "a.txt link sub/b.txt b-content" \
  "$(cat "$bb/dir_list.txt" 2>/dev/null | tr '\n' ' ' | xargs)"
check "a cc_binary compiled remotely in the execution image runs" "hi from a remotely compiled binary" \
  "$(cat "$bb/hi_out.txt" 2>/dev/null)"
check "an action may not write its inputs (shared by hard links), as an ordinary user" "refused 65534" \
  "$(cat "$bb/write_input.txt" 2>/dev/null | tr '\n' ' ' | xargs)"
check "the cc_binary runs here too" "hi from a remotely compiled binary" "$("$bb/hi" 2>&1)"
check_contains "builds ls lists the actions" "action " "$("$SF" builds ls 2>&1)"

out=$(bazel_in "$WORK/ob1" build "${REMOTE[@]}" //:fails)
echo "$out" >"$WORK/fails.log"
check_contains "a failing action fails the build" "FAILED: Build did NOT complete successfully" "$out"
check_contains "its exit code reaches Bazel" "Exit 3" "$out"
check_contains "its stderr reaches Bazel" "this action fails on purpose" "$out"

out=$(bazel_in "$WORK/ob1" test "${REMOTE[@]}" --test_timeout=4 --test_output=errors \
  //:passing_test //:failing_test //:slow_test)
echo "$out" >"$WORK/test.log"
check_contains "a passing test passes remotely" "//:passing_test                                                          PASSED" \
  "$(echo "$out" | sed 's/ in [0-9.]*s//')"
check_contains "a failing test fails" "//:failing_test" "$(echo "$out" | grep FAILED)"
check_contains "its log is fetched" "the failing test says goodbye" "$out"
check_contains "a test over its timeout times out" "//:slow_test" "$(echo "$out" | grep TIMEOUT)"

# A fresh output base: everything from the action cache, nothing runs.
out=$(bazel_in "$WORK/ob2" build "${REMOTE[@]}" "${GOOD[@]}")
echo "$out" >"$WORK/build2.log"
check_contains "a second build from a fresh output base succeeds" "Build completed successfully" "$out"
procs=$(echo "$out" | grep -oE '[0-9,]+ processes?:.*' | tail -1)
check_contains "it is served from the action cache" "remote cache hit" "$procs"
case "$procs" in *" remote"[,.]* | *" remote") fail "no remote executions the second time" "$procs" ;;
  *) pass "no remote executions the second time" ;; esac

# (Bazel 4 refuses symlinks among outputs with it: not the tree.)
out=$(bazel_in "$WORK/ob3" build "${REMOTE[@]}" --remote_download_minimal //:upper //:hi_out //:no_network)
check_contains "--remote_download_minimal works" "Build completed successfully" "$out"

# An image the farm does not have is a clear error.
out=$(bazel_in "$WORK/ob1" build "${REMOTE[@]}" --remote_default_exec_properties=container-image=docker://nosuch:9 //:hello \
  --noremote_accept_cached --action_env=CHANGE=1)
check_contains "an unknown container-image is named" "container-image nosuch:9 is not in the farm's image index" "$out"

# A worker SIGKILLed while it runs an action: the action runs again on the
# other worker and Bazel's build succeeds.
cat >>"$WORK/ws/BUILD" <<'BUILD'

genrule(
    name = "slow",
    outs = ["slow.txt"],
    cmd = "sleep 3; echo slow-done > $@",
)
BUILD
before=$(grep -c "stage-started" "$WORK/scheduler.log")
bazel_in "$WORK/ob1" build "${REMOTE[@]}" //:slow >"$WORK/kill.log" 2>&1 &
BZ=$!
victim=
for _ in $(seq 300); do
  victim=$(grep "stage-started" "$WORK/scheduler.log" | tail -n +"$((before + 1))" |
    grep -oE 'worker=w[0-9]+' | tail -1 | cut -d= -f2)
  [ -n "$victim" ] && break
  sleep 0.1
done
sleep 1  # well into its sleep
if [ -n "$victim" ]; then
  kill -9 "${WPID[$victim]}" 2>/dev/null
  wait "${WPID[$victim]}" 2>/dev/null
  unset "WPID[$victim]"
fi
wait "$BZ"
check "a worker killed mid-action: the action moves and the build succeeds" 0 $?
# The scheduler sees the process die (its Attend stream ends), not a lease
# timeout, and runs the action again elsewhere.
check_contains "the scheduler saw $victim die and ran it again" "worker=$victim" \
  "$(grep 'worker-died' "$WORK/scheduler.log")"
check "its output" "slow-done" "$(cat "$bb/slow.txt" 2>/dev/null)"
[ -n "$victim" ] && start_farm_worker "$victim"

# Dockerfile builds and Bazel actions on the same workers at once.
c=$(new_ctx mixed)
printf 'FROM debian:bookworm\nRUN sleep 2 && echo dockerfile-step > /made\n' >"$c/Dockerfile"
for i in 1 2 3; do
  printf '\ngenrule(\n    name = "mixed%s",\n    outs = ["mixed%s.txt"],\n    cmd = "sleep 1; echo mixed%s > $@",\n)\n' \
    "$i" "$i" "$i" >>"$WORK/ws/BUILD"
done
"$SF" build --progress plain --no-cache -o "type=local,dest=$c.out" "$c" >"$c.log" 2>&1 &
DF=$!
out=$(bazel_in "$WORK/ob1" build "${REMOTE[@]}" //:mixed1 //:mixed2 //:mixed3)
check_contains "Bazel actions beside a Dockerfile build succeed" "Build completed successfully" "$out"
wait "$DF"
check "the Dockerfile build beside them succeeds" 0 $?
check "its step ran" "dockerfile-step" "$(cat "$c.out/made" 2>/dev/null)"

exit "$E2E_FAILED"
