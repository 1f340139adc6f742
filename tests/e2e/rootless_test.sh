#!/usr/bin/env bash
# End-to-end: stagefarm without root. The test makes an ordinary user (with
# subordinate ids, as useradd gives them) and runs, as that user, the
# embedded engine and a rootless worker of a farm whose CAS and scheduler
# run as root. Checks: the images are the same (digest for digest) as a
# rootful engine's for steps that set owners, modes, links, whiteouts and
# opaque directories; a RUN reaches a server outside through slirp4netns
# but nothing on the loopback; --network=none has none; what runs leaves
# nothing behind (slirp4netns processes, namespaces).
# Usage: rootless_test.sh BIN_DIR  (root, runc, busybox-static, uidmap,
# slirp4netns, /dev/net/tun mode 0666 (as udev makes it), python3)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
for tool in newuidmap slirp4netns useradd; do
  command -v "$tool" >/dev/null || { echo "FAIL setup: $tool is not installed"; exit 1; }
done
[ "$(stat -c %a /dev/net/tun 2>/dev/null)" = 666 ] ||
  { echo "FAIL setup: /dev/net/tun is not mode 0666 (scripts/install-deps makes it so)"; exit 1; }
RL=sfrl$$
NS=sfrl$$
declare -A PID=()
cleanup_rootless() {
  for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  pkill -KILL -u "$RL" 2>/dev/null
  userdel "$RL" 2>/dev/null
  for n in rl out; do ip netns del "$NS-$n" 2>/dev/null; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup_rootless EXIT
useradd -M -d "$WORK/rl" -s /bin/sh "$RL" || { echo "FAIL setup: useradd"; exit 1; }
grep -q "^$RL:" /etc/subuid || usermod --add-subuids 200000-265535 --add-subgids 200000-265535 "$RL"
chmod 711 "$WORK"
mkdir -p "$WORK/rl"
cp -a "$BIN" "$WORK/rl/bin"
cp -a "$WORK/busybox" "$WORK/rl/busybox"
chown -R "$RL:" "$WORK/rl"

# Two network namespaces: "rl", where everything of the user runs, and
# "out", a server outside it; a veth pair between them.
ip netns add "$NS-rl" && ip netns add "$NS-out" || { echo "FAIL setup: cannot create network namespaces"; exit 1; }
ip -n "$NS-rl" link add eth0 type veth peer name eth0 netns "$NS-out"
ip -n "$NS-rl" addr add 10.231.7.1/24 dev eth0
ip -n "$NS-out" addr add 10.231.7.2/24 dev eth0
for n in rl out; do ip -n "$NS-$n" link set eth0 up; ip -n "$NS-$n" link set lo up; done
ip -n "$NS-rl" route add default via 10.231.7.2
mkdir -p "$WORK/www"
echo "hello from outside" >"$WORK/www/index.html"
chmod -R a+rX "$WORK/www"
nsenter --net="/run/netns/$NS-out" python3 -m http.server --bind 10.231.7.2 --directory "$WORK/www" 8000 >"$WORK/out.log" 2>&1 &
PID[out]=$!
nsenter --net="/run/netns/$NS-rl" python3 -m http.server --bind 127.0.0.1 --directory "$WORK/www" 8001 >"$WORK/lo.log" 2>&1 &
PID[lo]=$!
for _ in $(seq 50); do grep -q "Serving" "$WORK/out.log" && grep -q "Serving" "$WORK/lo.log" && break; sleep 0.1; done
# as_user CMD...: runs CMD as the user, in the "rl" namespace, with its home.
as_user() {
  nsenter --net="/run/netns/$NS-rl" runuser -u "$RL" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME="$WORK/rl" STAGEFARM_HOME="$WORK/rl/home" "$@"
}
RSF=$WORK/rl/bin/stagefarm
as_user "$RSF" image import "$WORK/rl/busybox" -t busybox >/dev/null 2>"$WORK/import.err"
check "rootless: the base image imports" "0" "$?"

# --- the same image as a rootful engine's ---------------------------------------------
c=$WORK/rl/ctx
mkdir -p "$c"
echo copied >"$c/f.txt"
cat >"$c/Dockerfile" <<'DOCKERFILE'
FROM busybox
RUN mkdir -p /data/sub /data/keep && echo a > /data/a && echo b > /data/sub/b && \
    chown -R 5:7 /data/sub && chmod 4755 /data/a && ln /data/a /data/hard && \
    ln -s a /data/link && touch /etc/gone && mkfifo /data/fifo && \
    chown 65534:65534 /data/keep
COPY --chown=1000:1000 f.txt /copied/
RUN rm /etc/gone /bin/seq && rm -rf /data/sub && mkdir /data/sub && echo new > /data/sub/c
USER nobody
RUN echo me > /tmp/mine
DOCKERFILE
chown -R "$RL:" "$c"
cp -a "$c" "$WORK/ctx-root"
chown -R root: "$WORK/ctx-root"
"$SF" build --progress quiet --source-date-epoch 0 -t cases:root "$WORK/ctx-root" >"$WORK/root.digest" 2>"$WORK/root.err"
check "rootful: the cases build" "0" "$?"
as_user "$RSF" build --progress plain --source-date-epoch 0 -t cases:rl "$c" >"$WORK/rl.digest" 2>"$WORK/rl.err"
check "rootless: the cases build" "0" "$?"
check "rootless: the image is the rootful one, digest for digest" "$(tail -1 "$WORK/root.digest")" "$(tail -1 "$WORK/rl.digest")"
[ "$(tail -1 "$WORK/root.digest")" = "$(tail -1 "$WORK/rl.digest")" ] || tail -5 "$WORK/rl.err"
printf 'FROM busybox\nRUN awk '"'"'{print "map:", $1, $2, $3; exit}'"'"' /proc/self/uid_map\n' >"$WORK/rl/map.Dockerfile"
mkdir -p "$WORK/rl/map" && mv "$WORK/rl/map.Dockerfile" "$WORK/rl/map/Dockerfile" && chown -R "$RL:" "$WORK/rl/map"
out=$(as_user "$RSF" build --progress plain --no-cache "$WORK/rl/map" 2>&1)
check_contains "rootless: a step's root is the user's own id outside" "map: 0 $(id -u "$RL") 1" "$out"

# --- the network -------------------------------------------------------------------------
n=$WORK/rl/net
mkdir -p "$n"
printf 'FROM busybox\nRUN wget -q -O- http://10.231.7.2:8000/ ; wget -q -T 3 -O- http://10.0.2.2:8001/ || echo "no host loopback"; wget -q -T 3 -O- http://127.0.0.1:8001/ || echo "no loopback"\n' >"$n/Dockerfile"
chown -R "$RL:" "$n"
out=$(as_user "$RSF" build --progress plain --no-cache "$n" 2>&1)
check_contains "rootless: a RUN reaches a server outside through slirp4netns" "hello from outside" "$out"
check_contains "rootless: a RUN does not reach the host's loopback" "no host loopback" "$out"
check_contains "rootless: a RUN has a loopback of its own" "no loopback" "$out"
printf 'FROM busybox\nRUN --network=none wget -q -T 3 -O- http://10.231.7.2:8000/ || echo "no network"\n' >"$n/Dockerfile"
out=$(as_user "$RSF" build --progress plain --no-cache "$n" 2>&1)
check_contains "rootless: --network=none has no network" "no network" "$out"
printf 'FROM busybox\nRUN --network=host wget -q -O- http://10.231.7.2:8000/ && ls /sys/class/net\n' >"$n/Dockerfile"
out=$(as_user "$RSF" build --progress plain --no-cache --allow network.host "$n" 2>&1)
check_contains "rootless: --network=host reaches the outside" "hello from outside" "$out"
check_contains "rootless: --network=host sees the host's /sys" "eth0" "$out"
check "rootless: no slirp4netns is left running" "0" "$(pgrep -u "$RL" -c slirp4netns)"

# --- a rootless worker in a farm ---------------------------------------------------------
# The CAS and the scheduler run as root on the "rl" namespace's loopback;
# the worker as the user, with --rootless.
in_rl() { nsenter --net="/run/netns/$NS-rl" "$@"; }
spawn_rl() { exec nsenter --net="/run/netns/$NS-rl" "$@"; }
spawn_rl "$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PID[cas]=$!
CAS=$(listen_addr "$WORK/cas.log")
spawn_rl "$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" >"$WORK/scheduler.log" 2>&1 &
PID[sched]=$!
SCHED=$(listen_addr "$WORK/scheduler.log")
as_user "$WORK/rl/bin/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/rl/w1" \
  --name w1 --rootless >"$WORK/w1.log" 2>&1 &
PID[w1]=$!
for _ in $(seq 100); do grep -q "connected to the scheduler" "$WORK/w1.log" && break; sleep 0.1; done
check_contains "farm: a rootless worker connects" "connected to the scheduler" "$(cat "$WORK/w1.log")"
out=$(as_user "$WORK/rl/bin/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/rl/w2" 2>&1)
check_contains "farm: an ordinary user's worker without --rootless says what to do" "with --rootless" "$out"
export STAGEFARM_SERVER=$SCHED
in_rl "$SF" image import "$WORK/busybox" -t busybox >/dev/null
in_rl "$SF" build --progress plain --source-date-epoch 0 -t cases:farm "$WORK/ctx-root" >"$WORK/farm.digest" 2>"$WORK/farm.err"
check "farm: the cases build on the rootless worker" "0" "$?"
check_contains "farm: the rootless worker ran them" "w1" "$(cat "$WORK/farm.err")"
check "farm: the image is the rootful engine's, digest for digest" "$(tail -1 "$WORK/root.digest")" "$(tail -1 "$WORK/farm.digest")"
cas_port=${CAS##*:}
mkdir -p "$WORK/farmnet"
printf 'FROM busybox\nRUN wget -q -T 3 -O- http://10.0.2.2:%s/ >/dev/null 2>&1 && echo "reached the CAS" || echo "no CAS"; wget -q -O- http://10.231.7.2:8000/\n' "$cas_port" >"$WORK/farmnet/Dockerfile"
out=$(in_rl "$SF" build --progress plain --no-cache "$WORK/farmnet" 2>&1)
check_contains "farm: a rootless worker's RUN does not reach the CAS on loopback" "no CAS" "$out"
check_contains "farm: a rootless worker's RUN reaches the outside" "hello from outside" "$out"
unset STAGEFARM_SERVER
# The worker itself (PID[w1] is nsenter's, which runuser and the user
# namespace's entry run under).
wpid=$(pgrep -u "$RL" -x stagefarm-worke | head -1)
[ -n "$wpid" ] && kill -KILL "$wpid"
wait "${PID[w1]}" 2>/dev/null
unset "PID[w1]"
sleep 0.5
check "rootless: nothing of the user runs after its worker's SIGKILL" "0" "$(pgrep -u "$RL" -c .)"
exit $E2E_FAILED
