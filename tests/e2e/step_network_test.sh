#!/usr/bin/env bash
# End-to-end: each RUN step's own network. A CAS, a scheduler, a worker, a
# client and an "outside" server each run in a network namespace of their
# own, joined by a bridge in a hub namespace (all made and removed here).
# Checks, on the farm: a RUN reaches the outside server through NAT (the
# server sees the worker's address), and cannot reach the scheduler, the
# CAS, a server on the worker's loopback or one on the worker's own
# address; RUN --network=host is refused at submission without
# `--allow network.host`, refused by a worker that does not permit it, and
# runs in the worker's network on one that does; nothing is left behind
# after 50 builds, a worker SIGKILLed mid-RUN leaves its namespace and
# bridge and the restarted worker removes them, and a stopped worker leaves
# no bridge, namespace or iptables rule. The same isolation on the embedded
# engine (run in the client's namespace).
# (busybox-static's wget needs NSS libraries a busybox root lacks: HTTP
# goes through nc.)
# Usage: step_network_test.sh BIN_DIR   (needs root, iproute2, iptables,
# runc, busybox-static, python3)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
for t in ip iptables python3; do
  command -v $t >/dev/null || { echo "FAIL setup: $t is not installed"; exit 1; }
done

NS=sn$$                  # namespace prefix, unique to this run
NET=10.232.$(($$ % 200)) # only inside this run's namespaces
CAS=$NET.2:8980
SCHED=$NET.3:8981
OUT=$NET.6
declare -A PID

cleanup_netns() {
  for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PID[@]}"; do kill -KILL "$p" 2>/dev/null; done
  stop_containers "$WORK"/w1/runc "$STAGEFARM_HOME"/runc
  # Sandbox namespaces of this run's worker or client that a failure left.
  for n in w1 client; do
    for s in $(slot_of $n); do
      for f in /run/netns/sf"$s"s*; do [ -e "$f" ] && ip netns del "${f##*/}" 2>/dev/null; done
    done
  done
  for n in hub cas sched w1 out client; do ip netns del "$NS-$n" 2>/dev/null; done
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup_netns EXIT

ip netns add "$NS-hub" || { echo "FAIL setup: cannot create network namespaces"; exit 1; }
ip -n "$NS-hub" link add br0 type bridge
ip -n "$NS-hub" link set br0 up
host=2
for n in cas sched w1 client out; do
  ip netns add "$NS-$n"
  ip -n "$NS-hub" link add "v-$n" type veth peer name eth0 netns "$NS-$n"
  ip -n "$NS-hub" link set "v-$n" master br0 up
  ip -n "$NS-$n" addr add "$NET.$host/24" dev eth0
  ip -n "$NS-$n" link set eth0 up
  ip -n "$NS-$n" link set lo up
  host=$((host + 1))
done
W1=$NET.4
in_ns() { local n=$1; shift; nsenter --net="/run/netns/$NS-$n" "$@"; }
spawn() { local n=$1; shift; exec nsenter --net="/run/netns/$NS-$n" "$@"; }
# The sandbox slots (bridges sfbrN) in a namespace.
slot_of() { in_ns "$1" ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | sed -n 's/^sfbr\([0-9]*\).*/\1/p'; }
# Our iptables rules in a namespace.
rules_in() { in_ns "$1" sh -c 'iptables -w -S; iptables -w -t nat -S' 2>/dev/null | grep -c 'stagefarm:sfbr'; }
# Waits (up to 5 s) for a namespace to have no sandbox bridge and no rule:
# a process's teardown finishes in a child just after it exits.
settle() { for _ in $(seq 50); do [ "$(slot_of "$1" | grep -c .) $(rules_in "$1")" = "0 0" ] && return; sleep 0.1; done; }
listening() { # LOG [TEXT]
  for _ in $(seq 100); do grep -q "${2:-listening on}" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# Servers: outside (port 8000), on the worker's loopback (8001), on the
# worker's own address (8002); each logs the clients it served.
mkdir -p "$WORK/www"
echo "hello from outside" >"$WORK/www/index.html"
http_server() { # NS BIND PORT LOG
  spawn "$1" python3 -m http.server --bind "$2" --directory "$WORK/www" "$3" >"$4" 2>&1
}
http_server out 0.0.0.0 8000 "$WORK/out.log" &
PID[out]=$!
http_server w1 127.0.0.1 8001 "$WORK/w1-loopback.log" &
PID[w1lo]=$!
http_server w1 "$W1" 8002 "$WORK/w1-own.log" &
PID[w1own]=$!

spawn cas "$BIN/stagefarm-cas" --listen "$CAS" --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PID[cas]=$!
spawn sched "$BIN/stagefarm-scheduler" --listen "$SCHED" --state "$WORK/sched-state" --cas "$CAS" \
  --lease-timeout-ms 2000 --heartbeat-ms 200 >"$WORK/scheduler.log" 2>&1 &
PID[sched]=$!
start_worker() { # [worker flags...]
  spawn w1 "$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/w1" \
    --name w1 "$@" >>"$WORK/w1.log" 2>&1 &
  PID[w1]=$!
}
start_worker
if ! listening "$WORK/cas.log" || ! listening "$WORK/scheduler.log" ||
  ! listening "$WORK/w1.log" "connected to the scheduler"; then
  fail "farm in namespaces" "the CAS, the scheduler or the worker did not start"
  tail -5 "$WORK/cas.log" "$WORK/scheduler.log" "$WORK/w1.log"
  exit 1
fi
for p in 8000 8001 8002; do
  for _ in $(seq 50); do
    case $p in 8000) n=out a=$OUT ;; 8001) n=w1 a=127.0.0.1 ;; *) n=w1 a=$W1 ;; esac
    in_ns $n timeout 2 bash -c "exec 3<>/dev/tcp/$a/$p" 2>/dev/null && break
    sleep 0.1
  done
done
check "the outside server answers the worker's namespace" "hello from outside" \
  "$(in_ns w1 timeout 5 python3 -c "import urllib.request;print(urllib.request.urlopen('http://$OUT:8000/').read().decode().strip())" 2>&1)"

export STAGEFARM_SERVER=$SCHED
unset STAGEFARM_CAS
sf() { in_ns client "$SF" "$@"; }
sf image import "$WORK/busybox" -t busybox >/dev/null

# --- what a RUN reaches ---------------------------------------------------------------------
c=$(new_ctx reach)
cat >"$c/Dockerfile" <<DF
FROM busybox
RUN printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $OUT 8000 | tail -1
RUN for t in sched=${SCHED} cas=${CAS} loopback=127.0.0.1:8001 worker=$W1:8002 gateway=GW:8002; do \\
      a=\${t#*=}; a=\${a/GW/\$(ip route | awk '/^default/ {print \$3}')}; \\
      if nc -w 3 \${a%:*} \${a#*:} </dev/null >/dev/null 2>&1; then echo "REACHED \${t%%=*}"; \\
      else echo "blocked \${t%%=*}"; fi; done
RUN ip -4 -o addr show dev eth0 | awk '{print "address " \$4}'
DF
out=$(sf build --no-cache --progress plain "$c" 2>&1)
check "farm: the build with network RUN steps succeeds" "0" "$?"
check_contains "farm: a RUN reaches a server outside the worker through NAT" "hello from outside" "$out"
check_contains "farm: the server saw the worker's address (NAT), not the step's" "$W1 - -" "$(cat "$WORK/out.log")"
for t in sched cas loopback worker gateway; do
  check_contains "farm: a RUN cannot reach the $t" "blocked $t" "$out"
done
check "farm: nothing was reached" "" "$(printf '%s\n' "$out" | grep -o '| REACHED [a-z]*' | sort -u | tr '\n' ' ')"
check "farm: the worker's loopback and own servers served nobody" "0 0" \
  "$(grep -c 'GET' "$WORK/w1-loopback.log") $(grep -c 'GET' "$WORK/w1-own.log")"
check_contains "farm: the step has its own address in the sandbox pool" "address 10.213." "$out"
slot=$(slot_of w1)
check "farm: the worker made one sandbox bridge" "1" "$(printf '%s\n' "$slot" | grep -c .)"

# --- host network: entitlement and permission --------------------------------------------------
c=$(new_ctx host)
printf 'FROM busybox\nRUN --network=host ip -4 -o addr show dev eth0 | awk "{print \\"host-address \\" \\$4}"\n' >"$c/Dockerfile"
out=$(sf build --no-cache --progress plain "$c" 2>&1)
rc=$?
check "host network: refused without the entitlement" "1" "$([ $rc -ne 0 ] && echo 1)"
check_contains "host network: the refusal names the line and the entitlement" \
  "Dockerfile:2: RUN --network=host needs the network.host entitlement (build with --allow network.host)" "$out"
out=$(sf build --no-cache --progress plain --allow network.host "$c" 2>&1)
rc=$?
check "host network: refused by a worker that does not permit it" "1" "$([ $rc -ne 0 ] && echo 1)"
check_contains "host network: the worker says how to permit it" \
  "this worker does not permit the network.host entitlement (stagefarm-worker --allow-insecure-entitlement network.host)" "$out"
out=$(sf build --progress plain --allow network.hots "$c" 2>&1)
check_contains "host network: an unknown entitlement is refused by name" 'unknown entitlement "network.hots"' "$out"
kill "${PID[w1]}"; wait "${PID[w1]}" 2>/dev/null
start_worker --allow-insecure-entitlement network.host
listening "$WORK/w1.log" "connected to the scheduler" || true
out=$(sf build --no-cache --progress plain --allow network.host "$c" 2>&1)
check "host network: runs with the entitlement on a worker that permits it" "0" "$?"
check_contains "host network: the step sees the worker's own address" "host-address $W1/24" "$out"

# --- nothing left behind -----------------------------------------------------------------------
c=$(new_ctx many)
printf 'FROM busybox\nRUN ip -4 -o addr show dev eth0 >/dev/null && echo ok\n' >"$c/Dockerfile"
failed=0
for i in $(seq 50); do
  sf build --no-cache --progress quiet "$c" >/dev/null 2>&1 || failed=$((failed + 1))
done
check "50 builds with a RUN each succeed" "0" "$failed"
slot=$(slot_of w1)
# The last step's namespace goes a moment after its stage (a helper thread).
for _ in $(seq 30); do [ "$(ls /run/netns | grep -c "^sf${slot}s")" -le 1 ] && break; sleep 0.1; done
check "after 50 builds: one bridge, and of the namespaces only the spare made ahead" "1 1" \
  "$(printf '%s\n' "$slot" | grep -c .) $(ls /run/netns | grep -c "^sf${slot}s")"
# NAT, INPUT, two FORWARD accepts, and the scheduler and the CAS denied.
check "after 50 builds: the worker's rules are the bridge's six" "6" "$(rules_in w1)"

# A worker killed mid-RUN leaves its step's namespace; the restarted one
# removes it.
c=$(new_ctx killed)
printf 'FROM busybox\nRUN echo started && sleep 6\n' >"$c/Dockerfile"
sf build --no-cache --progress plain "$c" >"$c.log" 2>&1 &
bp=$!
for _ in $(seq 200); do grep -q "started" "$c.log" 2>/dev/null && break; sleep 0.05; done
sleep 0.5
left=$(ls /run/netns | grep -c "^sf${slot}s")
kill -KILL "${PID[w1]}"
wait "${PID[w1]}" 2>/dev/null
# runc's container outlives the worker; kill it as a crashed machine would.
for ct in $(runc --root "$WORK/w1/runc" list -q 2>/dev/null); do
  runc --root "$WORK/w1/runc" kill "$ct" KILL 2>/dev/null
  runc --root "$WORK/w1/runc" delete -f "$ct" 2>/dev/null
done
check "SIGKILL mid-RUN: the step's namespace (and the spare) and the bridge are left" "yes 1" \
  "$([ "$left" -ge 1 ] && echo yes) $(slot_of w1 | grep -c .)"
start_worker --allow-insecure-entitlement network.host
listening "$WORK/w1.log" "connected to the scheduler" || true
wait $bp
check "SIGKILL mid-RUN: the build succeeds on the restarted worker" "0" "$?"
c2=$(new_ctx after)
printf 'FROM busybox\nRUN echo again\n' >"$c2/Dockerfile"
sf build --no-cache --progress quiet "$c2" >/dev/null 2>&1
check "restarted worker: it builds" "0" "$?"
# The restarted worker takes the first free slot, the killed one's once it
# has cleaned it: then the spare it makes ahead after a step is there too
# (asynchronously), and nothing else once the last step's namespace is gone.
may=$([ "$(slot_of w1)" = "$slot" ] && echo 1 || echo 0)
for _ in $(seq 30); do [ "$(ls /run/netns | grep -c "^sf${slot}s")" -le "$may" ] && break; sleep 0.1; done
check "restarted worker: what the killed one left is gone (in its slot at most the new spare)" "yes" \
  "$([ "$(ls /run/netns | grep -c "^sf${slot}s")" -le "$may" ] && echo yes)"
check_contains "restarted worker: it says it removed the leftovers" "removing what a stopped process left" \
  "$(cat "$WORK/w1.log")"
check "restarted worker: one bridge and six rules" "1 6" "$(slot_of w1 | grep -c .) $(rules_in w1)"
kill "${PID[w1]}"
wait "${PID[w1]}" 2>/dev/null
unset 'PID[w1]'
settle w1
check "stopped worker: no bridge, no namespace, no rule left" "0 0 0" \
  "$(slot_of w1 | grep -c .) $(ls /run/netns | grep -c "^sf${slot}s") $(rules_in w1)"

# --- the embedded engine, in the client's namespace ------------------------------------------
http_server client 127.0.0.1 8003 "$WORK/client-loopback.log" &
PID[clientlo]=$!
for _ in $(seq 50); do in_ns client timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/8003" 2>/dev/null && break; sleep 0.1; done
unset STAGEFARM_SERVER
c=$(new_ctx local)
cat >"$c/Dockerfile" <<DF
FROM busybox
RUN printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $OUT 8000 | tail -1
RUN if nc -w 3 127.0.0.1 8003 </dev/null >/dev/null 2>&1; then echo "REACHED loopback"; else echo "blocked loopback"; fi
RUN --network=none if nc -w 3 $OUT 8000 </dev/null >/dev/null 2>&1; then echo "REACHED none"; else echo "blocked none"; fi
DF
out=$(sf build --no-cache --progress plain "$c" 2>&1)
check "embedded: the build succeeds" "0" "$?"
check_contains "embedded: a RUN reaches the outside through NAT" "hello from outside" "$out"
check_contains "embedded: a RUN cannot reach the client's loopback" "blocked loopback" "$out"
check_contains "embedded: --network=none reaches nothing" "blocked none" "$out"
check "embedded: nothing reached" "" "$(printf '%s\n' "$out" | grep -o '| REACHED [a-z]*' | tr '\n' ' ')"
settle client
check "embedded: no bridge, namespace or rule left after the build" "0 0" \
  "$(slot_of client | grep -c .) $(rules_in client)"
# stagefarm run: its own network by default, as docker run; --network host
# when asked.
probe='if nc -w 3 127.0.0.1 8003 </dev/null >/dev/null 2>&1; then echo reached; else echo blocked; fi'
check "run: the client's loopback is out of reach by default" "blocked" "$(sf run busybox sh -c "$probe" 2>&1)"
check "run --network host: reachable" "reached" "$(sf run --network host busybox sh -c "$probe" 2>&1)"
check "run --network none: only lo" "lo" \
  "$(sf run --network none busybox sh -c "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '" 2>&1)"
c=$(new_ctx local-host)
printf 'FROM busybox\nRUN --network=host ip -4 -o addr show dev eth0 | awk "{print \\"host-address \\" \\$4}"\n' >"$c/Dockerfile"
out=$(sf build --no-cache --progress plain "$c" 2>&1)
check_contains "embedded: host network refused without the entitlement" "needs the network.host entitlement" "$out"
out=$(sf build --no-cache --progress plain --allow network.host "$c" 2>&1)
check_contains "embedded: host network with --allow network.host" "host-address $NET.5/24" "$out"

exit $E2E_FAILED
