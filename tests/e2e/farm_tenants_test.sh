#!/usr/bin/env bash
# End-to-end: tenants on the farm. The CAS and the scheduler load one tenants
# file (tokens kept as SHA-256): team-a and team-b may each use their own
# instance, the workers' token may lease stages and write the action cache,
# the scheduler's token may read every instance. Team B cannot read team A's
# blobs, builds, logs or images, cannot build on team A's instance or cancel
# its builds; callers without a known token are refused; a client that tries
# to write the action cache itself (a forged result) is refused.
# Usage: farm_tenants_test.sh BIN_DIR   (needs root, runc, busybox-static)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
trap e2e_cleanup EXIT
make_tokens a b workers scheduler
cat >"$WORK/tenants.json" <<EOF
{"tenants": [
  {"name": "team-a", "tokens_sha256": ["$(tsha a)"], "instances": ["team-a"]},
  {"name": "team-b", "tokens_sha256": ["$(tsha b)"], "instances": ["team-b"], "max_builds": 1, "max_bytes": 3000000},
  {"name": "workers", "tokens_sha256": ["$(tsha workers)"], "instances": ["*"], "worker": true},
  {"name": "scheduler", "tokens_sha256": ["$(tsha scheduler)"], "instances": ["*"]}
]}
EOF
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" --tenants "$WORK/tenants.json" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" --tenants "$WORK/tenants.json" \
  --token-file "$WORK/token-scheduler" --log-format json >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/w1" --name w1 \
  --token-file "$WORK/token-workers" --log-format json >"$WORK/w1.log" 2>&1 &
PIDS+=($!)
if [ -z "$CAS" ] || [ -z "$SCHED" ]; then
  tail -n 3 "$WORK/cas.log" "$WORK/scheduler.log"
  fail "tenants" "the CAS or the scheduler did not start"
  exit 1
fi
as() { # TENANT COMMAND...: run stagefarm as a tenant (its token and home)
  local who=$1; shift
  STAGEFARM_TOKEN=$(cat "$WORK/token-$who") STAGEFARM_HOME=$WORK/home-$who "$SF" "$@"
}
as a image import "$WORK/busybox" -t busybox --server "$SCHED" --instance team-a >/dev/null 2>&1
c=$(new_ctx team-a)
echo "private to team a" >"$c/private.txt"
printf 'FROM busybox\nCOPY private.txt /private.txt\nRUN cat /private.txt > /copy\n' >"$c/Dockerfile"
as a build --progress plain --server "$SCHED" --instance team-a -t app-a:1 "$c" >"$c.out" 2>"$c.log"
check "team A builds on its instance" "0" "$?"
check_contains "... on the worker (whose token writes the action cache)" "on w1" "$(cat "$c.log")"
build_a=$(sed -n 's/^\[farm\] build \([0-9a-f]*\).*/\1/p' "$c.log" | head -1)
blob="$(sha256sum "$c/private.txt" | awk '{print $1}')/$(stat -c %s "$c/private.txt")"
check "team A reads its own blob" "private to team a" "$(as a cas get --cas "$CAS" --instance team-a "$blob" 2>&1)"
check_contains "team A lists its build" "$build_a" "$(as a builds ls --server "$SCHED" 2>&1)"
# JSON logs carry the build, stage, worker and tenant.
jq_ok() { python3 -c 'import json,sys
want = dict(a.split("=", 1) for a in sys.argv[1:])
for line in sys.stdin:
    if not line.startswith("{"): continue
    j = json.loads(line)
    if all(j.get(k) == v for k, v in want.items()): print("found"); break' "$@"; }
check "the scheduler logs the build as JSON with its tenant" "found" \
  "$(jq_ok msg=build-finished build="$build_a" tenant=team-a code=0 <"$WORK/scheduler.log")"
check "... and the stage with its worker" "found" \
  "$(jq_ok msg=stage-started build="$build_a" worker=w1 <"$WORK/scheduler.log")"
check "the worker logs the stage as JSON" "found" \
  "$(jq_ok msg=stage-done build="$build_a" worker=w1 <"$WORK/w1.log")"

out=$(as b cas get --cas "$CAS" --instance team-a "$blob" 2>&1)
check_contains "team B cannot read team A's blobs" "tenant team-b may not use instance \"team-a\"" "$out"
out=$(as b cas get --cas "$CAS" --instance team-b "$blob" 2>&1)
check "... nor find them in its own instance" "1" "$?"
out=$(as b builds ls --server "$SCHED" 2>&1)
check "team B lists builds" "0" "$?"
check "... but not team A's" "" "$(printf '%s' "$out" | grep "$build_a")"
out=$(as b logs "$build_a" --server "$SCHED" 2>&1)
check_contains "team B cannot read team A's logs" "no build $build_a" "$out"
out=$(as b builds trace "$build_a" --server "$SCHED" 2>&1)
check_contains "team B cannot read team A's build record (builds trace)" "no build $build_a" "$out"
out=$(as a builds trace "$build_a" --server "$SCHED" 2>&1)
check_contains "team A can" '"traceEvents"' "$out"
out=$(as b cancel "$build_a" --server "$SCHED" 2>&1)
check_contains "team B cannot cancel team A's builds" "no build $build_a" "$out"
out=$(as b image ls --server "$SCHED" --instance team-a 2>&1)
check_contains "team B cannot list team A's images" "may not use instance" "$out"
out=$(as b build --progress plain --server "$SCHED" --instance team-a "$c" 2>&1)
check_contains "team B cannot build on team A's instance" "may not use instance" "$out"
out=$(STAGEFARM_HOME=$WORK/home-anon "$SF" builds ls --server "$SCHED" 2>&1)
check_contains "a caller without a token is refused" "needs to know who is calling" "$out"
out=$(STAGEFARM_TOKEN=not-a-token STAGEFARM_HOME=$WORK/home-anon "$SF" cas stats --cas "$CAS" 2>&1; \
  STAGEFARM_TOKEN=not-a-token STAGEFARM_HOME=$WORK/home-anon "$SF" cas get --cas "$CAS" --instance team-a "$blob" 2>&1)
check_contains "an unknown token is refused" "bearer token is not known" "$out"
out=$(as a builds ls --server "$SCHED" >/dev/null 2>&1; as a cas has --cas "$CAS" --instance team-a "$blob" 2>&1)
check_contains "team A still reads its blob" "present" "$out"

# team-b may run one build at a time: a second is refused while it runs.
as b image import "$WORK/busybox" -t busybox --server "$SCHED" --instance team-b >/dev/null 2>&1
cb=$(new_ctx team-b)
printf 'FROM busybox\nRUN sleep 3\n' >"$cb/Dockerfile"
as b build --progress plain --server "$SCHED" --instance team-b "$cb" >"$cb.log" 2>&1 &
bp=$!
for _ in $(seq 50); do grep -q "started on" "$cb.log" 2>/dev/null && break; sleep 0.1; done
out=$(as b build --progress plain --server "$SCHED" --instance team-b "$cb" 2>&1)
check_contains "a tenant over its max_builds is refused" "builds running, its limit (max_builds)" "$out"
check_contains "... while another tenant still builds" "on w1" \
  "$(as a build --progress plain --server "$SCHED" --instance team-a "$c" 2>&1)"
wait $bp
check "... and the first build of team-b finishes" "0" "$?"

# team-b's instance may hold 3 MB in the CAS.
head -c 4000000 /dev/urandom >"$WORK/big.bin"
out=$(as b cas put --cas "$CAS" --instance team-b "$WORK/big.bin" 2>&1)
check_contains "a tenant over its storage quota is refused" "storage quota: this instance holds" "$out"
head -c 100000 /dev/urandom >"$WORK/small.bin"
check_contains "... what fits still goes in" "small.bin" \
  "$(as b cas put --cas "$CAS" --instance team-b "$WORK/small.bin" 2>&1)"
check_contains "... and other tenants are not limited by it" "big.bin" \
  "$(as a cas put --cas "$CAS" --instance team-a "$WORK/big.bin" 2>&1)"

# A client building on its own against the CAS would write step results into
# the action cache itself: the CAS refuses (only workers write it).
c2=$(new_ctx forged)
printf 'FROM busybox\nRUN echo forged > /f\n' >"$c2/Dockerfile"
as a image import "$WORK/busybox" -t busybox --cas "$CAS" --instance team-a >/dev/null 2>&1
out=$(as a build --progress plain --cas "$CAS" --instance team-a "$c2" 2>&1)
check_contains "a client's own action-cache write is refused" "only workers write the action cache" "$out"
exit $E2E_FAILED
