#!/usr/bin/env bash
# End-to-end: images for several platforms. A busybox base for linux/amd64
# and linux/arm64 (Debian's busybox-static of each architecture, an image
# index); builds with --platform give an index whose images hold binaries of
# their architecture, RUN steps run under qemu-user-static for arm64, the
# predefined platform args have BuildKit's values, a $BUILDPLATFORM stage
# that does not depend on the target is built once; outputs (oci, local,
# docker refused, registry) and `run --platform`; Docker pulls and runs the
# arm64 image; a farm with an amd64-only worker and one that also emulates
# arm64 places arm64 stages on the second, and a platform no worker runs
# waits with a clear message.
# Usage: multiplatform_test.sh BIN_DIR   (needs root, runc, busybox-static,
#        qemu-user-static registered with `stagefarm emulation install`,
#        busybox-static:arm64 downloadable, docker-registry, skopeo, docker.io)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cleanup_multi() {
  stop_private_dockerd
  e2e_cleanup
}
trap cleanup_multi EXIT

if ! "$SF" emulation status | grep -q '^linux/arm64.*yes$'; then
  fail "emulation" "no usable arm64 emulator: install qemu-user-static and run stagefarm emulation install"
  exit 1
fi
pass "an arm64 emulator is registered"
SF=$SF bash "$ROOT/scripts/base-images" busybox >"$WORK/base.log" 2>&1
check "the two-platform busybox base is made" "0" "$?"
check_contains "image ls shows both platforms" "linux/amd64,linux/arm64" "$("$SF" image ls)"

# elf_machine FILE: the ELF header's e_machine (62 x86-64, 183 aarch64).
elf_machine() { od -An -tu2 -j18 -N2 "$1" | tr -d ' '; }

c=$(new_ctx cross)
echo "source" >"$c/src"
cat >"$c/Dockerfile" <<'DF'
FROM --platform=$BUILDPLATFORM busybox AS tools
COPY src /src
RUN uname -m > /tools-arch && cp /bin/busybox /tools-busybox

FROM --platform=$BUILDPLATFORM busybox AS build
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH
RUN echo "$TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT] $BUILDPLATFORM $BUILDARCH" > /args && uname -m > /build-arch

FROM busybox
COPY --from=tools /tools-arch /tools-arch
COPY --from=build /args /args
COPY --from=build /build-arch /build-arch
RUN uname -m > /arch
CMD ["cat", "/arch"]
DF
"$SF" build --progress plain --platform linux/amd64,linux/arm64 -t multi:1 \
  -o "type=oci,dest=$WORK/multi.tar" -o "type=local,dest=$WORK/multi-out" "$c" >"$c.out" 2>"$c.log"
check "a two-platform build succeeds" "0" "$?"
raw=$(skopeo inspect --raw "oci-archive:$WORK/multi.tar" 2>&1)
check "the OCI archive holds an index of two images" "linux/amd64 linux/arm64" \
  "$(echo "$raw" | jq -r '[.manifests[].platform | .os + "/" + .architecture] | join(" ")' 2>&1)"
check "skopeo reads the arm64 image's config" "arm64" \
  "$(skopeo inspect --override-arch arm64 "oci-archive:$WORK/multi.tar" 2>&1 | jq -r .Architecture)"
check "the amd64 image holds an x86-64 busybox" "62" "$(elf_machine "$WORK/multi-out/linux_amd64/bin/busybox")"
check "the arm64 image holds an aarch64 busybox" "183" "$(elf_machine "$WORK/multi-out/linux_arm64/bin/busybox")"
check "uname -m in the amd64 RUN" "x86_64" "$(cat "$WORK/multi-out/linux_amd64/arch")"
check "uname -m in the arm64 RUN (emulated)" "aarch64" "$(cat "$WORK/multi-out/linux_arm64/arch")"
check "a \$BUILDPLATFORM stage runs natively for the arm64 target" "x86_64" \
  "$(cat "$WORK/multi-out/linux_arm64/build-arch")"
check "the platform args for arm64" "linux/arm64 linux arm64 [] linux/amd64 amd64" \
  "$(cat "$WORK/multi-out/linux_arm64/args")"
check "the platform args for amd64" "linux/amd64 linux amd64 [] linux/amd64 amd64" \
  "$(cat "$WORK/multi-out/linux_amd64/args")"
check "a \$BUILDPLATFORM stage the target does not change runs once (the platforms build at once)" \
  "1 1" "$(grep -c 'tools 2/2\] DONE' "$c.log") $(grep -c 'tools 2/2\] CACHED' "$c.log")"
check_contains "the index is tagged" "linux/amd64,linux/arm64" "$("$SF" image ls | grep '^multi:1 ')"
check "run --platform linux/arm64 runs the arm64 image" "aarch64" "$("$SF" run --platform linux/arm64 multi:1 2>&1)"
check "run without --platform runs this machine's" "x86_64" "$("$SF" run multi:1 2>&1)"
out=$("$SF" build --progress plain --platform linux/amd64,linux/arm64 -t multi:1 "$c" 2>&1)
check_contains "a rebuild of both platforms runs nothing" "(0 steps run," "$out"

out=$("$SF" build --progress plain --platform linux/amd64,linux/arm64 -o "type=docker,dest=$WORK/d.tar" "$c" 2>&1)
check "type=docker with two platforms is refused" "2" "$?"
check_contains "and says why" "type=docker holds one platform" "$out"
check "and writes nothing" "no" "$([ -e "$WORK/d.tar" ] && echo yes || echo no)"
"$SF" build --progress quiet --platform linux/arm64 -o "type=docker,dest=$WORK/arm.tar" "$c" >/dev/null 2>&1
check "one --platform gives one image (type=docker works)" "0" "$?"
out=$("$SF" build --progress plain --platform linux/s390x "$c" 2>&1)
check_contains "a platform the base lacks is named" "no image for linux/s390x (it has: linux/amd64, linux/arm64)" "$out"
out=$("$SF" build --progress plain --platform windows/amd64 "$c" 2>&1)
check_contains "a platform that cannot be built is refused" "only linux images are built" "$out"

# A foreign stage on a platform no emulator serves fails on its RUN, saying how.
c2=$(new_ctx noemu)
printf 'FROM --platform=linux/s390x scratch\nCOPY --from=busybox /bin/busybox /bin/sh\nRUN true\n' >"$c2/Dockerfile"
if "$SF" emulation status | grep -q '^linux/s390x.*yes$'; then
  pass "s390x is emulated here (the missing-emulator case is a unit test)"
else
  out=$("$SF" build --progress plain "$c2" 2>&1)
  check_contains "a RUN no emulator serves says how to enable one" "stagefarm emulation install" "$out"
fi

# --- the index through a registry, and Docker running the arm64 image ---------------
start_registry plain
REG=$ADDR
[ -n "$REG" ] || { fail "registry" "docker-registry did not start"; exit 1; }
export DOCKER_CONFIG=$WORK/no-credentials
"$SF" push multi:1 "$REG/team/multi:1" >"$WORK/push.out" 2>"$WORK/push.log"
check "push of the index" "0" "$?"
raw=$(skopeo inspect --tls-verify=false --raw "docker://$REG/team/multi:1" 2>&1)
check "skopeo inspect --raw shows the index" "application/vnd.oci.image.index.v1+json 2" \
  "$(echo "$raw" | jq -r '.mediaType + " " + (.manifests | length | tostring)' 2>&1)"
HOME2=$WORK/home-pull
out=$(STAGEFARM_HOME=$HOME2 "$SF" pull --platform linux/arm64 "$REG/team/multi:1" 2>&1)
check "pull --platform linux/arm64 picks the arm64 image" "arm64" \
  "$(STAGEFARM_HOME=$HOME2 "$SF" image inspect "$REG/team/multi:1" 2>&1 | jq -r .config.architecture)"
if start_private_dockerd; then
  $DOCKER pull --platform linux/arm64 "$REG/team/multi:1" >/dev/null 2>&1
  check "docker pulls the arm64 image" "0" "$?"
  check "docker runs the arm64 image" "aarch64" \
    "$($DOCKER run --rm --platform linux/arm64 --network none "$REG/team/multi:1" 2>&1)"

  # Differential: BuildKit (Docker's, the same emulator registered) and
  # stagefarm build the same Dockerfile from the same base bytes (our
  # two-platform busybox, pushed) for each platform: the same files.
  "$SF" push busybox "$REG/base/busybox:1" >/dev/null 2>&1
  c5=$(new_ctx diff)
  echo "context file" >"$c5/f"
  cat >"$c5/Dockerfile" <<DF
FROM --platform=\$BUILDPLATFORM $REG/base/busybox:1 AS build
ARG TARGETPLATFORM TARGETARCH BUILDPLATFORM
COPY f /f
RUN echo "\$TARGETPLATFORM \$TARGETARCH \$BUILDPLATFORM \$(uname -m)" > /built && chmod 0640 /built

FROM $REG/base/busybox:1
ARG TARGETVARIANT
COPY --from=build /built /built
RUN uname -m > /arch && mkdir -p /data/sub && echo "[\$TARGETVARIANT]" > /data/sub/variant && ln -s ../arch /data/link
DF
  # listing DIR: path type mode size link-target sha, sorted.
  listing() {
    (cd "$1" && find . -mindepth 1 -printf '%P %y %m %s %l\n' | sort | while read -r p y m sz l; do
      if [ "$y" = f ]; then echo "$p f $m $sz $(sha256sum <"$p" | cut -c1-16)"; else echo "$p $y $m $l"; fi
    done)
  }
  for p in amd64 arm64; do
    "$SF" build --progress quiet --platform "linux/$p" -o "type=local,dest=$WORK/ours-$p" "$c5" >/dev/null 2>"$WORK/ours-$p.log"
    check "stagefarm builds the differential case for linux/$p" "0" "$?"
    DOCKER_BUILDKIT=1 $DOCKER build -q --platform "linux/$p" -o "type=local,dest=$WORK/theirs-$p" "$c5" >/dev/null 2>"$WORK/theirs-$p.log"
    check "BuildKit builds the differential case for linux/$p" "0" "$?"
    # Docker 20.10's BuildKit leaves the RUN's /dev, /proc and /sys mount
    # points in the image; stagefarm removes them as current BuildKit does
    # (docs/compatibility.md).
    ours=$(listing "$WORK/ours-$p")
    theirs=$(listing "$WORK/theirs-$p" | grep -vxE '(dev|proc|sys) d 755 ?')
    if [ -n "$ours" ] && [ "$ours" = "$theirs" ]; then
      pass "linux/$p: stagefarm and BuildKit give the same files ($(echo "$ours" | wc -l) paths)"
    else
      fail "linux/$p: stagefarm and BuildKit give the same files" \
        "$(diff <(echo "$ours") <(echo "$theirs") | head -10 | tr '\n' ' ')"
    fi
  done
  check "BuildKit's arm64 values match" "linux/arm64 arm64 linux/amd64 x86_64" "$(cat "$WORK/theirs-arm64/built" 2>&1)"
fi

# --- the farm: placement by platform ------------------------------------------------
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --lease-timeout-ms 2000 --heartbeat-ms 200 \
  --metrics-listen 127.0.0.1:0 >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/wa" --name amd-only \
  --platforms linux/amd64 >"$WORK/wa.log" 2>&1 &
PIDS+=($!)
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/wb" --name emulating \
  --platforms linux/amd64,linux/arm64 >"$WORK/wb.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q "platforms" "$WORK/wb.log" && break; sleep 0.1; done
check_contains "a worker says what it offers" "platforms linux/amd64 (emulated: linux/arm64)" "$(cat "$WORK/wb.log")"
export STAGEFARM_HOME=$WORK/farm-client STAGEFARM_CAS=$CAS STAGEFARM_SERVER=$SCHED
SF=$SF bash "$ROOT/scripts/base-images" busybox >"$WORK/farm-base.log" 2>&1
check "the two-platform base goes into the farm's index" "0" "$?"
c3=$(new_ctx farm)
printf 'FROM busybox\nRUN uname -m > /arch\n' >"$c3/Dockerfile"
for i in 1 2 3; do
  echo "$i" >"$c3/n"
  printf 'FROM busybox\nCOPY n /n\nRUN uname -m > /arch\n' >"$c3/Dockerfile"
  "$SF" build --progress plain --platform linux/arm64 -o "type=local,dest=$WORK/farm-out-$i" "$c3" >"$c3.out" 2>"$c3.log" ||
    { fail "farm arm64 build $i" "$(tail -3 "$c3.log")"; continue; }
  check "farm arm64 build $i ran emulated" "aarch64" "$(cat "$WORK/farm-out-$i/arch")"
  check_contains "farm arm64 build $i went to the emulating worker" "on emulating (linux/arm64, emulated)" "$(cat "$c3.log")"
done
metrics_port=$(sed -n 's/.*metrics on port \([0-9]*\).*/\1/p' "$WORK/scheduler.log" | head -1)
check_contains "the scheduler counts emulated arm64 dispatches" \
  'stagefarm_scheduler_platform_dispatches_total{how="emulated",platform="linux/arm64"}' \
  "$(curl -s "http://127.0.0.1:$metrics_port/metrics")"
c4=$(new_ctx farm-s390x)
printf 'FROM scratch\nCOPY n /n\n' >"$c4/Dockerfile"
echo 1 >"$c4/n"
timeout 6 "$SF" build --progress plain --platform linux/s390x "$c4" >"$c4.out" 2>"$c4.log" &
waiting_pid=$!
sleep 3
check_contains "builds ls says what a build waits for" "waiting for a worker that runs linux/s390x" \
  "$("$SF" builds ls 2>&1 | grep linux/s390x)"
wait $waiting_pid
check "a build for a platform no worker runs does not finish" "124" "$?"
check_contains "it says what it waits for" "waiting for a worker that runs linux/s390x" "$(cat "$c4.log")"
exit $E2E_FAILED
