#!/usr/bin/env bash
# A stock Bazel (Debian's 4.2.3) uses stagefarm-cas as its remote cache:
# build a small workspace twice, each time in a fresh output base, and check
# from Bazel's own summary that the second build took its actions from the
# remote cache.
#
# Usage: remote_cache_test.sh BIN_DIR   (BIN_DIR holds stagefarm-cas)
set -euo pipefail
BIN=${1:?usage: remote_cache_test.sh BIN_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
T=$(mktemp -d)
CAS_PID=
cleanup() {
  for ob in "$T"/ob1 "$T"/ob2; do
    [ -d "$ob" ] && bazel --output_user_root="$T/root" --output_base="$ob" shutdown >/dev/null 2>&1 || true
  done
  [ -n "$CAS_PID" ] && kill "$CAS_PID" 2>/dev/null && wait "$CAS_PID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/ws"
cp "$HERE"/workspace/*.h "$HERE"/workspace/*.cc "$T/ws/"
cp "$HERE/workspace/BUILD.in" "$T/ws/BUILD"
cp -r "$ROOT/third_party/rules_cc_stub" "$T/rules_cc"
sed "s|@RULES_CC@|$T/rules_cc|" "$HERE/workspace/WORKSPACE.in" > "$T/ws/WORKSPACE"

"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$T/cas" > "$T/cas.out" 2> "$T/cas.err" &
CAS_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$T/cas.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/.*listening on //p' "$T/cas.out")
[ -n "$ADDR" ] || { echo "FAIL: stagefarm-cas did not start"; cat "$T/cas.err"; exit 1; }

build() { # output base
  (cd "$T/ws" && bazel --output_user_root="$T/root" --output_base="$1" \
     --bazelrc=/dev/null --max_idle_secs=30 build //:hello //:report --symlink_prefix=/ \
     --remote_cache="grpc://$ADDR" --nosandbox_debug \
     --coverage_report_generator=@bazel_tools//tools/test:coverage_report_generator \
     2>&1) | tee "$1.log" | grep -E "processes|ERROR" || true
}
processes() { grep -oE '[0-9,]+ processes?:.*' "$1.log" | tail -1; }

echo "first build (empty cache)"
build "$T/ob1"
grep -q "Build completed successfully" "$T/ob1.log" || { echo "FAIL: first build"; tail -30 "$T/ob1.log"; exit 1; }
first=$(processes "$T/ob1")
echo "second build (fresh output base)"
build "$T/ob2"
grep -q "Build completed successfully" "$T/ob2.log" || { echo "FAIL: second build"; tail -30 "$T/ob2.log"; exit 1; }
second=$(processes "$T/ob2")
hits=$(echo "$second" | grep -oE '[0-9]+ remote cache hit' | grep -oE '^[0-9]+' || echo 0)
executed=$(echo "$first" | grep -oE '[0-9]+ (linux-sandbox|processwrapper-sandbox|local)' | grep -oE '^[0-9]+' | paste -sd+ | bc)
local_second=$(echo "$second" | grep -oE '[0-9]+ (linux-sandbox|processwrapper-sandbox|local)' | grep -oE '^[0-9]+' | paste -sd+ | bc || echo 0)
echo "first:  $first"
echo "second: $second"
[ "${hits:-0}" -ge 1 ] || { echo "FAIL: no remote cache hits on the second build"; exit 1; }
[ "${hits}" -ge "${executed:-1}" ] || { echo "FAIL: $hits hits for $executed executed actions"; exit 1; }
[ -z "$local_second" ] || [ "$local_second" -eq 0 ] || { echo "FAIL: $local_second actions ran again"; exit 1; }
# The outputs Bazel fetched are the real ones.
(cd "$T/ws" && bazel --output_user_root="$T/root" --output_base="$T/ob2" --bazelrc=/dev/null \
   run //:hello --symlink_prefix=/ --remote_cache="grpc://$ADDR" 2>/dev/null) | grep -q "hello from a remotely cached build" \
   || { echo "FAIL: the cached binary does not run"; exit 1; }
echo "PASS: second build took $hits actions from stagefarm-cas"
