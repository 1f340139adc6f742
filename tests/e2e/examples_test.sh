#!/usr/bin/env bash
# End-to-end: the examples built with stagefarm from local base images
# (scripts/base-images), run with `stagefarm run`, and loaded into and run by
# Debian's Docker engine (dockerd started here on a private socket, data root
# and exec root, without a bridge; stopped at the end).
# Usage: examples_test.sh BIN_DIR   (needs root, debootstrap, docker.io)
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SF="$1/stagefarm"
[ -x "$SF" ] || { echo "FAIL setup: $SF is missing"; exit 1; }
WORK=$(mktemp -d /tmp/stagefarm-examples.XXXXXX)
# Base images are slow to make (debootstrap): keep them between runs.
export STAGEFARM_HOME=${STAGEFARM_EXAMPLES_HOME:-$ROOT/.stagefarm/examples-home}
DOCKERD_PID=""
cleanup() {
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && SF="$SF" bash scripts/base-images busybox runtime golang) >"$WORK/base.log" 2>&1 ||
  { tail -5 "$WORK/base.log"; echo "FAIL setup: base images"; exit 1; }
pass "base images busybox, runtime, golang:1.19 made locally"

# A page to count links in, served on loopback for `stagefarm run` (which
# shares the host's network) and mounted as a file for `docker run`.
mkdir -p "$WORK/www"
cat >"$WORK/www/page.html" <<'HTML'
<html><body>
<a href="/docs">docs</a> <a href="about.html">about</a> <a href="#top">top</a>
<a href="https://golang.org/">go</a> <a href="http://example.com/x">x</a>
<a href="mailto:a@b.c">mail</a>
</body></html>
HTML
expected='{"internal":4,"external":2}'
port=""
for try in 1 2 3 4 5; do
  p=$((20000 + RANDOM % 20000))
  /bin/busybox httpd -f -p "127.0.0.1:$p" -h "$WORK/www" & hp=$!
  sleep 0.3
  if kill -0 $hp 2>/dev/null; then port=$p; break; fi
done
url="http://127.0.0.1:$port/page.html"

bytes_of() { # manifest + config + layers, from inspect
  "$SF" image inspect "$1" | jq '[.manifest.size] + [.layers[].size] | add'
}

# --- hello-scratch ---------------------------------------------------------------
"$SF" build --progress quiet -t hello-scratch:1 -o "type=docker,dest=$WORK/hello.tar" \
  "$ROOT/examples/hello-scratch" >"$WORK/hello.log" 2>&1 || tail -5 "$WORK/hello.log"
check "hello-scratch: stagefarm run prints Hello world!" "Hello world!" "$("$SF" run hello-scratch:1 2>&1)"
"$SF" build --progress quiet -o "type=local,dest=$WORK/hello-fs" "$ROOT/examples/hello-scratch" >/dev/null 2>&1
check "hello-scratch: the image holds only the binary" "hello" "$(ls -A "$WORK/hello-fs" 2>/dev/null)"
check "hello-scratch: one layer" "1" "$("$SF" image inspect hello-scratch:1 | jq '.layers | length')"
echo "sizes (compressed): hello-scratch:1 $(bytes_of hello-scratch:1) B"

# --- href-counter, three ways ------------------------------------------------------
H=$ROOT/examples/href-counter
"$SF" build --progress quiet -f "$H/Dockerfile.build" -t href-counter:build \
  -o "type=docker,dest=$WORK/build.tar" "$H" >"$WORK/b1.log" 2>&1 || tail -5 "$WORK/b1.log"
bash "$H/build.sh" "$SF" >"$WORK/b2.log" 2>&1 || tail -5 "$WORK/b2.log"
"$SF" image export href-counter:builder-pattern --format docker -o "$WORK/pattern.tar" 2>>"$WORK/b2.log"
"$SF" build --progress quiet -f "$H/Dockerfile.multi" -t href-counter:multi \
  -o "type=docker,dest=$WORK/multi.tar" "$H" >"$WORK/b3.log" 2>&1 || tail -5 "$WORK/b3.log"
for tag in build builder-pattern multi; do
  check "href-counter:$tag counts the links" "$expected" "$("$SF" run "href-counter:$tag" "$url" 2>&1)"
done
sdk=$(bytes_of href-counter:build); multi=$(bytes_of href-counter:multi)
pattern=$(bytes_of href-counter:builder-pattern)
echo "sizes (compressed): href-counter:build $sdk B, builder-pattern $pattern B, multi $multi B"
pct=$(awk -v a="$sdk" -v b="$multi" 'BEGIN{ if (a > 0) printf "%.1f", 100 * (1 - b / a); else print 0 }')
check "href-counter: the multi-stage image is >= 95% smaller than the SDK image" "yes" \
  "$(awk -v p="$pct" 'BEGIN{print (p >= 95) ? "yes" : "no (" p "%)"}')"
kill $hp 2>/dev/null; wait $hp 2>/dev/null

# --- Docker loads and runs what we made ---------------------------------------------
DOCKER=/usr/bin/docker
if ! command -v dockerd >/dev/null || [ ! -x $DOCKER ]; then
  fail "docker" "Debian's docker.io is not installed (scripts/install-deps installs it)"
  exit $E2E_FAILED
fi
mkdir -p "$WORK/docker" "$WORK/docker-exec"
dockerd --data-root "$WORK/docker" --exec-root "$WORK/docker-exec" -H "unix://$WORK/docker.sock" \
  --pidfile "$WORK/docker.pid" --iptables=false --ip-masq=false --bridge=none \
  >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST=unix://$WORK/docker.sock DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG"; echo '{}' >"$DOCKER_CONFIG/config.json"
for _ in $(seq 120); do $DOCKER version >/dev/null 2>&1 && break; sleep 0.25; done
if ! $DOCKER version >/dev/null 2>&1; then
  tail -5 "$WORK/dockerd.log"
  fail "docker" "dockerd did not start"
  exit $E2E_FAILED
fi
pass "dockerd started (private socket and data root)"
for t in hello build pattern multi; do
  out=$($DOCKER load -i "$WORK/$t.tar" 2>&1)
  check_contains "docker load accepts $t.tar" "Loaded image" "$out"
done
check "docker run hello-scratch: same output" "Hello world!" "$($DOCKER run --rm --network none hello-scratch:1 2>&1)"
for tag in build builder-pattern multi; do
  check "docker run href-counter:$tag: same output" "$expected" \
    "$($DOCKER run --rm --network none -v "$WORK/www/page.html:/page.html:ro" "href-counter:$tag" /page.html 2>&1)"
done
if command -v skopeo >/dev/null; then
  "$SF" image export href-counter:multi --format oci -o "$WORK/multi.oci.tar"
  check_contains "skopeo inspects the OCI archive" '"Architecture": "amd64"' \
    "$(skopeo inspect "oci-archive:$WORK/multi.oci.tar" 2>&1)"
fi
exit $E2E_FAILED
