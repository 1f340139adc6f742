#!/usr/bin/env bash
# End-to-end: the examples built with stagefarm from local base images
# (scripts/base-images), run with `stagefarm run`, and loaded into and run by
# Debian's Docker engine (dockerd started here on a private socket, data root
# and exec root, without a bridge; stopped at the end) and by podman (with its
# own storage and configuration under the test's temp dir).
# Usage: examples_test.sh BIN_DIR   (needs root, debootstrap, docker.io, podman)
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SF="$1/stagefarm"
[ -x "$SF" ] || { echo "FAIL setup: $SF is missing"; exit 1; }
WORK=$(mktemp -d /tmp/stagefarm-examples.XXXXXX)
# Base images are slow to make (debootstrap): keep them between runs.
export STAGEFARM_HOME=${STAGEFARM_EXAMPLES_HOME:-$ROOT/.stagefarm/examples-home}
cleanup() {
  stop_private_dockerd
  [ -n "${CONTAINERS_CONF:-}" ] && podman rmi -af >/dev/null 2>&1
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && SF="$SF" bash scripts/base-images busybox runtime golang node) >"$WORK/base.log" 2>&1 ||
  { tail -5 "$WORK/base.log"; echo "FAIL setup: base images"; exit 1; }
pass "base images busybox, runtime, golang:1.19, node:18 made locally"

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
  check "href-counter:$tag counts the links" "$expected" "$("$SF" run --network host "href-counter:$tag" "$url" 2>&1)"
done
sdk=$(bytes_of href-counter:build); multi=$(bytes_of href-counter:multi)
pattern=$(bytes_of href-counter:builder-pattern)
echo "sizes (compressed): href-counter:build $sdk B, builder-pattern $pattern B, multi $multi B"
pct=$(awk -v a="$sdk" -v b="$multi" 'BEGIN{ if (a > 0) printf "%.1f", 100 * (1 - b / a); else print 0 }')
check "href-counter: the multi-stage image is >= 95% smaller than the SDK image" "yes" \
  "$(awk -v p="$pct" 'BEGIN{print (p >= 95) ? "yes" : "no (" p "%)"}')"
# Two platforms from Dockerfile.multi: the Go stage cross-compiles on this
# machine for each target; the arm64 image runs under emulation.
"$SF" build --progress plain --platform linux/amd64,linux/arm64 -f "$H/Dockerfile.multi" \
  -t href-counter:multi-platform -o "type=local,dest=$WORK/mp" "$H" >"$WORK/b4.log" 2>&1 ||
  tail -5 "$WORK/b4.log"
check "href-counter two platforms: the arm64 binary is aarch64" "183" \
  "$(od -An -tu2 -j18 -N2 "$WORK/mp/linux_arm64/app" 2>&1 | tr -d ' ')"
check "href-counter two platforms: the amd64 binary is x86-64" "62" \
  "$(od -An -tu2 -j18 -N2 "$WORK/mp/linux_amd64/app" 2>&1 | tr -d ' ')"
for p in amd64 arm64; do
  check "href-counter two platforms: the $p image counts the links" "$expected" \
    "$("$SF" run --network host --platform "linux/$p" href-counter:multi-platform "$url" 2>&1)"
done
"$SF" image export href-counter:multi-platform --platform linux/arm64 --format docker \
  -o "$WORK/multi-arm64.tar" 2>>"$WORK/b4.log"
echo "sizes (compressed): href-counter:multi-platform $(for p in amd64 arm64; do
  "$SF" image inspect --platform "linux/$p" href-counter:multi-platform |
    jq -r --arg p "$p" '"linux/" + $p + " " + ([.manifest.size] + [.layers[].size] | add | tostring) + " B"'
done | tr '\n' ' ')"
kill $hp 2>/dev/null; wait $hp 2>/dev/null

# --- node: plain on node:18, and multi-stage FROM scratch -------------------------
N=$ROOT/examples/node
"$SF" build --progress quiet -t node-app:plain -o "type=docker,dest=$WORK/node-plain.tar" "$N" \
  >"$WORK/n1.log" 2>&1 || tail -5 "$WORK/n1.log"
"$SF" build --progress quiet -f "$N/Dockerfile.multi" -t node-app:multi \
  -o "type=docker,dest=$WORK/node-multi.tar" "$N" >"$WORK/n2.log" 2>&1 || tail -5 "$WORK/n2.log"
node_expected='Hello farm from Node 18: sha256 c8cf701f30ad, 1. März 2024, 29 gzip bytes'
for tag in plain multi; do
  check "node-app:$tag prints the line (crypto, Intl, zlib)" "$node_expected" "$("$SF" run "node-app:$tag" farm 2>&1)"
done
nplain=$(bytes_of node-app:plain); nmulti=$(bytes_of node-app:multi)
echo "sizes (compressed): node-app:plain $nplain B, multi $nmulti B"
check "node-app: the multi-stage image is >= 75% smaller than the plain one" "yes" \
  "$(awk -v a="$nplain" -v b="$nmulti" 'BEGIN{print (a > 0 && b <= a / 4) ? "yes" : "no"}')"
# SBOMs of the examples: Debian's packages of node:18 (nodejs, npm), the
# Go toolchain that built href-counter, busybox in the runtime base.
"$SF" build --progress quiet --sbom -t node-app:sbom "$N" >"$WORK/n3.log" 2>&1 || tail -5 "$WORK/n3.log"
sbom=$("$SF" attest show --type sbom node-app:sbom 2>&1 | jq -r '.predicate.packages[].externalRefs[].referenceLocator' 2>&1)
check_contains "node-app's SBOM lists Debian's nodejs" "pkg:deb/debian/nodejs@" "$sbom"
check_contains "node-app's SBOM lists npm" "pkg:deb/debian/npm@" "$sbom"
"$SF" build --progress quiet --sbom -f "$H/Dockerfile.multi" -t href-counter:sbom "$H" >"$WORK/b5.log" 2>&1 || tail -5 "$WORK/b5.log"
sbom=$("$SF" attest show --type sbom href-counter:sbom 2>&1 | jq -r '.predicate.packages[].externalRefs[].referenceLocator' 2>&1)
check_contains "href-counter's SBOM lists the Go that built it" "pkg:golang/stdlib@go1.19" "$sbom"
check_contains "href-counter's SBOM lists busybox of the runtime base" "pkg:generic/busybox@" "$sbom"
"$SF" image ls >"$WORK/ls.txt"
check_contains "stagefarm image ls shows the sizes" "node-app:multi" "$(cat "$WORK/ls.txt")"
cat "$WORK/ls.txt"

# --- Docker loads and runs what we made ---------------------------------------------
start_private_dockerd || exit $E2E_FAILED
for t in hello build pattern multi multi-arm64 node-plain node-multi; do
  out=$($DOCKER load -i "$WORK/$t.tar" 2>&1)
  check_contains "docker load accepts $t.tar" "Loaded image" "$out"
done
check "docker run hello-scratch: same output" "Hello world!" "$($DOCKER run --rm --network none hello-scratch:1 2>&1)"
for tag in build builder-pattern multi; do
  check "docker run href-counter:$tag: same output" "$expected" \
    "$($DOCKER run --rm --network none -v "$WORK/www/page.html:/page.html:ro" "href-counter:$tag" /page.html 2>&1)"
done
for tag in plain multi; do
  check "docker run node-app:$tag: same output" "$node_expected" \
    "$($DOCKER run --rm --network none "node-app:$tag" farm 2>&1)"
done
check "docker run --platform linux/arm64 of the arm64 href-counter: same output" "$expected" \
  "$($DOCKER run --rm --platform linux/arm64 --network none -v "$WORK/www/page.html:/page.html:ro" \
      href-counter:multi-platform /page.html 2>&1)"
for img in href-counter:build href-counter:multi node-app:plain node-app:multi; do
  echo "sizes (docker, uncompressed): $img $($DOCKER image inspect -f '{{.Size}}' "$img" 2>&1) B"
done

# --- podman loads and runs them too ------------------------------------------------
if ! command -v podman >/dev/null; then
  fail "podman" "podman is not installed (scripts/install-deps installs it)"
else
  P=$WORK/podman
  mkdir -p "$P/conf"
  printf '[storage]\ndriver = "overlay"\nrunroot = "%s/run"\ngraphroot = "%s/storage"\n' "$P" "$P" \
    >"$P/conf/storage.conf"
  # runc and cgroupfs as on this kind of machine; podman would raise
  # RLIMIT_NOFILE above the hard limit, which needs CAP_SYS_RESOURCE.
  hn=$(ulimit -Hn)
  cat >"$P/conf/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$hn:$hn", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$P/libpod"
volume_path = "$P/volumes"
CONF
  printf 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n' >"$P/conf/registries.conf"
  export CONTAINERS_STORAGE_CONF=$P/conf/storage.conf CONTAINERS_CONF=$P/conf/containers.conf \
    CONTAINERS_REGISTRIES_CONF=$P/conf/registries.conf
  for t in hello multi node-multi; do
    check_contains "podman load accepts $t.tar" "Loaded image" "$(podman load -i "$WORK/$t.tar" 2>&1)"
  done
  "$SF" image export node-app:plain --format oci -o "$WORK/node-plain.oci.tar"
  check_contains "podman load accepts an OCI archive (node-app:plain)" "Loaded image" \
    "$(podman load -i "$WORK/node-plain.oci.tar" 2>&1)"
  check "podman run hello-scratch: same output" "Hello world!" \
    "$(podman run --rm --network none localhost/hello-scratch:1 2>&1)"
  check "podman run href-counter:multi: same output" "$expected" \
    "$(podman run --rm --network none -v "$WORK/www/page.html:/page.html:ro" localhost/href-counter:multi /page.html 2>&1)"
  for tag in multi plain; do
    check "podman run node-app:$tag: same output" "$node_expected" \
      "$(podman run --rm --network none "localhost/node-app:$tag" farm 2>&1)"
  done
fi

if command -v skopeo >/dev/null; then
  "$SF" image export href-counter:multi --format oci -o "$WORK/multi.oci.tar"
  check_contains "skopeo inspects the OCI archive" '"Architecture": "amd64"' \
    "$(skopeo inspect "oci-archive:$WORK/multi.oci.tar" 2>&1)"
fi
exit $E2E_FAILED
