#!/usr/bin/env bash
# The web view in a real browser: a farm with tenants (a CAS, a scheduler
# with --http-listen, two workers) runs team A's builds (a multi-stage build
# with a failing stage, a build and its cached rebuild), then Debian's
# headless Chromium, driven by playwright-core (npm, installed once into a
# cache outside the tree), loads each page as team A and as team B
# (browser_test.js). Screenshots go to $STAGEFARM_SCREENSHOTS (default: the
# work directory, kept when a check fails).
# The main pages are loaded again in Firefox ESR.
# Usage: web_view_test.sh BIN_DIR   (needs root, runc, busybox-static, chromium, firefox-esr, node)
. "$(dirname "$0")/../e2e/lib.sh"
e2e_setup "$1"
BIN=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
trap '[ "$E2E_FAILED" = 1 ] && KEEP_WORK=1; stop_farm' EXIT
command -v chromium >/dev/null || { fail "web view" "chromium is not installed (scripts/install-deps)"; exit 1; }
command -v firefox-esr >/dev/null || { fail "web view" "firefox-esr is not installed (scripts/install-deps)"; exit 1; }
command -v node >/dev/null || { fail "web view" "node is not installed (scripts/install-deps)"; exit 1; }
PW=${STAGEFARM_PLAYWRIGHT:-$HOME/.cache/stagefarm/playwright}
if [ ! -f "$PW/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$PW" &&
    npm install --prefix "$PW" --no-audit --no-fund --loglevel=error playwright-core@1.64.1 >/dev/null 2>&1 ||
    { fail "web view" "npm install playwright-core@1.64.1 failed"; exit 1; }
fi

make_tokens a b workers scheduler
cat >"$WORK/tenants.json" <<EOF
{"tenants": [
  {"name": "team-a", "tokens_sha256": ["$(tsha a)"], "instances": ["team-a"]},
  {"name": "team-b", "tokens_sha256": ["$(tsha b)"], "instances": ["team-b"]},
  {"name": "workers", "tokens_sha256": ["$(tsha workers)"], "instances": ["*"], "worker": true},
  {"name": "scheduler", "tokens_sha256": ["$(tsha scheduler)"], "instances": ["*"]}
]}
EOF
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" --tenants "$WORK/tenants.json" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" --tenants "$WORK/tenants.json" \
  --token-file "$WORK/token-scheduler" --http-listen 127.0.0.1:0 >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
for i in 1 2; do
  "$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/w$i" --name "worker-$i" \
    --token-file "$WORK/token-workers" >"$WORK/w$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 50); do grep -q 'web view at' "$WORK/scheduler.log" && break; sleep 0.1; done
URL=$(sed -n 's/.*web view at \(http[^ ]*\).*/\1/p' "$WORK/scheduler.log" | head -1)
if [ -z "$CAS" ] || [ -z "$SCHED" ] || [ -z "$URL" ]; then
  tail -n 3 "$WORK/cas.log" "$WORK/scheduler.log"
  fail "web view" "the farm did not start"
  exit 1
fi
pass "the scheduler serves the web view at $URL"
as() { # TENANT COMMAND...
  local who=$1; shift
  STAGEFARM_TOKEN=$(cat "$WORK/token-$who") STAGEFARM_HOME=$WORK/home-$who "$SF" "$@"
}
as a image import "$WORK/busybox" -t busybox --server "$SCHED" --instance team-a >/dev/null 2>&1

# A multi-stage build whose last stage fails; a build and its cached rebuild.
c=$(new_ctx failing)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS sdk
RUN echo compiling the sdk && sleep 1 && echo built > /out
FROM busybox AS assets
RUN echo packing assets > /a
FROM busybox
COPY --from=sdk /out /out
COPY --from=assets /a /a
RUN echo about to fail; echo the last line before the end; exit 3
DF
as a build --progress plain --server "$SCHED" --instance team-a "$c" >/dev/null 2>"$c.log"
check "team A's failing build fails" "yes" "$(grep -q 'exit code: 3' "$c.log" && echo yes)"
FAILED=$(sed -n 's/^\[farm\] build \([0-9a-f]*\).*/\1/p' "$c.log" | head -1)
g=$(new_ctx good)
printf 'FROM busybox AS base\nRUN echo base > /b\nFROM base\nRUN cat /b > /c\nCMD ["cat", "/c"]\n' >"$g/Dockerfile"
as a build --progress plain --server "$SCHED" --instance team-a -t good:1 "$g" >/dev/null 2>"$g.log"
check "team A's build succeeds" "0" "$?"
as a build --progress plain --server "$SCHED" --instance team-a -t good:1 "$g" >/dev/null 2>"$g.log2"
CACHED=$(sed -n 's/^\[farm\] build \([0-9a-f]*\).*/\1/p' "$g.log2" | head -1)
check_contains "... and its rebuild is cached" "0 steps run" "$(cat "$g.log2")"

# A build, then the same after one copied file changed: the second says
# why its steps ran.
ch=$(new_ctx changed)
printf 'FROM busybox\nCOPY app.txt /app.txt\nRUN cat /app.txt > /copy\n' >"$ch/Dockerfile"
echo one >"$ch/app.txt"
as a build --progress plain --server "$SCHED" --instance team-a -t changed:1 "$ch" >/dev/null 2>"$ch.log"
echo two >"$ch/app.txt"
as a build --progress plain --server "$SCHED" --instance team-a -t changed:2 "$ch" >/dev/null 2>"$ch.log2"
CHANGED=$(sed -n 's/^\[farm\] build \([0-9a-f]*\).*/\1/p' "$ch.log2" | head -1)
check_contains "a build after a changed file runs its steps again" "2 steps run" "$(cat "$ch.log2")"

# The browser, with a build started while a page is open.
slow=$(new_ctx slow)
printf 'FROM busybox\nRUN echo slow start && sleep 4 && echo slow end\n' >"$slow/Dockerfile"
long=$(new_ctx long)
printf 'FROM busybox\nRUN echo waiting && sleep 60\n' >"$long/Dockerfile"
cat >"$WORK/start-slow.sh" <<EOF
STAGEFARM_TOKEN=\$(cat "$WORK/token-a") STAGEFARM_HOME=$WORK/home-a \
  "$SF" build --progress plain --server "$SCHED" --instance team-a "$slow" >/dev/null 2>"$slow.log" &
EOF
cat >"$WORK/start-long.sh" <<EOF
STAGEFARM_TOKEN=\$(cat "$WORK/token-a") STAGEFARM_HOME=$WORK/home-a \
  "$SF" build --progress plain --server "$SCHED" --instance team-a "$long" >/dev/null 2>"$long.log" &
EOF
SHOTS=${STAGEFARM_SCREENSHOTS:-$WORK/screenshots}
mkdir -p "$SHOTS"
WEB_URL=$URL TOKEN_A=$(cat "$WORK/token-a") TOKEN_B=$(cat "$WORK/token-b") FAILED_BUILD=$FAILED \
  CACHED_BUILD=$CACHED CHANGED_BUILD=$CHANGED START_SLOW="bash $WORK/start-slow.sh" START_LONG="bash $WORK/start-long.sh" \
  SCREENSHOTS=$SHOTS PLAYWRIGHT=$PW/node_modules/playwright-core FIREFOX=$(command -v firefox-esr) \
  node "$ROOT/tests/webui/browser_test.js" >"$WORK/browser.log" 2>&1
rc=$?
cat "$WORK/browser.log"
grep -q '^FAIL' "$WORK/browser.log" && E2E_FAILED=1
[ "$rc" = 0 ] || fail "browser_test.js" "exited $rc"
check_contains "the cancelled build's client says so" "cancelled" "$(cat "$long.log" 2>/dev/null)"
echo "screenshots in $SHOTS"
