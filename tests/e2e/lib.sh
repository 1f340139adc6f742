# Helpers for the end-to-end scripts: a private STAGEFARM_HOME, a busybox
# base image made from Debian's busybox-static, and PASS/FAIL bookkeeping.
# Each check prints "PASS name" or "FAIL name: why"; scripts/test counts them.
set -uo pipefail

E2E_FAILED=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; E2E_FAILED=1; }
# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; fi
}
# check_contains NAME NEEDLE HAYSTACK
check_contains() {
  case "$3" in *"$2"*) pass "$1" ;; *) fail "$1" "[$2] not in [$(printf '%s' "$3" | head -c 600)]" ;; esac
}

e2e_setup() { # BIN_DIR
  SF="$1/stagefarm"
  [ -x "$SF" ] || { echo "FAIL setup: $SF is missing"; exit 1; }
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || { echo "FAIL setup: runc is not installed"; exit 1; }
  [ -x /bin/busybox ] || { echo "FAIL setup: /bin/busybox (busybox-static) is missing"; exit 1; }
  WORK=$(mktemp -d /tmp/stagefarm-e2e.XXXXXX)
  export STAGEFARM_HOME=$WORK/home
  trap 'rm -rf "$WORK"' EXIT
  make_busybox_rootfs "$WORK/busybox"
  "$SF" image import "$WORK/busybox" -t busybox >/dev/null || { echo "FAIL setup: busybox import"; exit 1; }
}

make_busybox_rootfs() { # DIR
  local d=$1
  mkdir -p "$d/bin" "$d/etc" "$d/tmp" "$d/root" "$d/home"
  cp /bin/busybox "$d/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$d/bin/$a"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' \
    'nobody:x:65534:65534:nobody:/home:/bin/false' >"$d/etc/passwd"
  printf '%s\n' 'root:x:0:' 'daemon:x:1:' 'wheel:x:10:root' 'nobody:x:65534:' >"$d/etc/group"
  chmod 1777 "$d/tmp"
}

# new_ctx NAME: a fresh context directory; prints its path.
new_ctx() { local c="$WORK/ctx-$1"; rm -rf "$c"; mkdir -p "$c"; echo "$c"; }

# build CTX [flags...]: quiet build, output to $WORK/out-<ctx> (type=local).
build_local() {
  local ctx=$1; shift
  local out="$ctx.out"
  rm -rf "$out"
  "$SF" build --progress quiet -o "type=local,dest=$out" "$@" "$ctx" >"$ctx.log" 2>&1
}

# start_private_dockerd: Debian's dockerd on a private socket and data root
# under $WORK, without iptables rules, on a bridge of its own made here; sets
# DOCKER, DOCKER_HOST, DOCKER_CONFIG, DOCKERD_PID and DOCKERD_BRIDGE.
# Records PASS or FAIL; returns 1 on failure. The caller's cleanup calls
# stop_private_dockerd.
# Not --bridge=none: with it dockerd deletes the host's docker0 as it starts,
# which breaks any other Docker daemon on the machine.
DOCKERD_PID=""
DOCKERD_BRIDGE=""
start_private_dockerd() {
  DOCKER=/usr/bin/docker
  if ! command -v dockerd >/dev/null || [ ! -x $DOCKER ]; then
    fail "docker" "Debian's docker.io is not installed (scripts/install-deps installs it)"
    return 1
  fi
  mkdir -p "$WORK/docker" "$WORK/docker-exec"
  DOCKERD_LINKS_BEFORE=$(host_links)
  # A name and a subnet of the benchmarking range (198.18.0.0/15) no other
  # run of this script uses at the same time.
  local n=$(( ($$ + RANDOM) % 250 + 1 ))
  DOCKERD_BRIDGE="sfdk$$"
  ip link add "$DOCKERD_BRIDGE" type bridge || { fail "docker" "cannot make a bridge"; return 1; }
  ip addr add "198.18.$n.1/24" dev "$DOCKERD_BRIDGE"
  ip link set "$DOCKERD_BRIDGE" up
  dockerd --data-root "$WORK/docker" --exec-root "$WORK/docker-exec" -H "unix://$WORK/docker.sock" \
    --pidfile "$WORK/docker.pid" --iptables=false --ip-masq=false --bridge="$DOCKERD_BRIDGE" \
    >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  export DOCKER_HOST=unix://$WORK/docker.sock DOCKER_CONFIG=$WORK/docker-config
  mkdir -p "$DOCKER_CONFIG"; echo '{}' >"$DOCKER_CONFIG/config.json"
  for _ in $(seq 120); do $DOCKER version >/dev/null 2>&1 && break; sleep 0.25; done
  if ! $DOCKER version >/dev/null 2>&1; then
    tail -5 "$WORK/dockerd.log"
    fail "docker" "dockerd did not start"
    return 1
  fi
  pass "dockerd started (private socket, data root and bridge)"
}

# stop_private_dockerd: stops it (waiting up to 10 s) and removes its bridge.
stop_private_dockerd() {
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    DOCKERD_PID=""
  fi
  if [ -n "$DOCKERD_BRIDGE" ]; then
    ip link del "$DOCKERD_BRIDGE" 2>/dev/null
    DOCKERD_BRIDGE=""
    check "dockerd left the host's network interfaces as they were" \
      "$DOCKERD_LINKS_BEFORE" "$(host_links)"
  fi
}
# The host's network interfaces, by name.
# The host's links but stagefarm's own step networks (sfbrN, sfvNsK: made
# and removed by every build, executor/sandbox_network.h).
host_links() { ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -Ev '^sf(br[0-9]+|v[0-9]+s[0-9]+)$' | sort | tr '\n' ' '; }

# Daemons a script starts: it adds their PIDs to PIDS (in the main shell,
# not in a $(...) subshell) and traps e2e_cleanup, which stops them (each
# waited for up to 5 s), unmounts what is left under $WORK and removes it.
PIDS=()
e2e_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
# stop_containers RUNC_ROOT...: kills and deletes every container runc
# keeps under each state directory (what a killed worker or engine left).
stop_containers() {
  local r c
  for r in "$@"; do
    [ -d "$r" ] || continue
    for c in $(runc --root "$r" list -q 2>/dev/null); do
      runc --root "$r" kill "$c" KILL 2>/dev/null
      runc --root "$r" delete -f "$c" 2>/dev/null
    done
  done
}

# make_ssh_client_image DIR NAME: an image NAME with ssh-add (and the
# libraries it loads) over busybox, its root file system made in DIR.
make_ssh_client_image() {
  local f
  make_busybox_rootfs "$1"
  for f in $(command -v ssh-add) $(ldd "$(command -v ssh-add)" | grep -o '/[^ ]*'); do
    mkdir -p "$1$(dirname "$f")"; cp -L "$f" "$1$f"
  done
  "$SF" image import "$1" -t "$2" >/dev/null
}

# A farm a script starts itself: it sets BIN, CAS and SCHED, keeps the CAS's
# and the scheduler's PIDs in PIDS and the workers' in WPID (declare -A),
# by name.
# start_cas_and_scheduler [scheduler flags...]: a CAS on $WORK/cas and a
# scheduler on 127.0.0.1 (port 0), logs in $WORK; sets CAS and SCHED, adds
# both PIDs to PIDS (so not to be run in a subshell).
start_cas_and_scheduler() {
  "$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
  PIDS+=($!)
  CAS=$(listen_addr "$WORK/cas.log")
  "$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --heartbeat-ms 200 "$@" >"$WORK/scheduler.log" 2>&1 &
  PIDS+=($!)
  SCHED=$(listen_addr "$WORK/scheduler.log")
}
# start_farm_worker NAME [worker flags...]: a worker working in $WORK/NAME;
# returns once it has reached the scheduler.
start_farm_worker() {
  local name=$1; shift
  "$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/$name" --name "$name" "$@" \
    >>"$WORK/$name.log" 2>&1 &
  WPID[$name]=$!
  for _ in $(seq 100); do grep -q "connected to the scheduler" "$WORK/$name.log" 2>/dev/null && break; sleep 0.1; done
}
stop_farm_worker() { kill "${WPID[$1]}" 2>/dev/null; wait "${WPID[$1]}" 2>/dev/null; unset "WPID[$1]"; }
# stop_farm: every process of the farm, the containers its workers left, their
# mounts, and $WORK (kept with KEEP_WORK=1).
stop_farm() {
  for p in "${PIDS[@]}" "${WPID[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  stop_containers "$WORK"/w*/runc
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  [ -n "${KEEP_WORK:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}

# listen_addr FILE: waits for a "listening on HOST:PORT" line; prints the address.
listen_addr() {
  for _ in $(seq 100); do grep -q "listening on" "$1" 2>/dev/null && break; sleep 0.1; done
  grep -o 'listening on [][0-9A-Za-z.:-]*' "$1" | head -1 | sed 's/listening on //'
}

# start_registry NAME [extra YAML for auth/tls]: Debian's docker-registry on
# 127.0.0.1 (port 0), its data under $WORK; sets ADDR to its HOST:PORT and
# adds its PID to PIDS (so not to be run in a subshell).
start_registry() {
  local name=$1 extra=${2:-}
  cat >"$WORK/$name.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $WORK/$name-data
http:
  addr: 127.0.0.1:0
$extra
EOF
  docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  ADDR=$(listen_addr "$WORK/$name.log")
}

# make_tokens WHO...: a random bearer token for each in $WORK/token-WHO
# (0600); tsha WHO: its SHA-256 as a tenants file keeps it (of the token
# alone, no newline).
make_tokens() {
  local who
  for who in "$@"; do
    head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$WORK/token-$who"
    chmod 600 "$WORK/token-$who"
  done
}
tsha() { printf '%s' "$(cat "$WORK/token-$1")" | sha256sum | awk '{print $1}'; }
