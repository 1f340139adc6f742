#!/usr/bin/env bash
# End-to-end: the farm across a network. The CAS, the scheduler, three
# workers and the client each run in their own network namespace, joined by
# veth pairs to a bridge in a hub namespace (all created and removed here;
# addresses exist only inside these namespaces). Checks: a four-stage DAG
# runs its three independent stages on three workers at the same time (from
# the progress events' worker names and arrival times); a worker killed with
# SIGKILL mid-RUN and a worker whose network is cut both lose their stage to
# another worker and the build succeeds; the scheduler killed and restarted
# (same --state) mid-build: the build completes and its client reattaches.
# The client knows only the scheduler's address (STAGEFARM_SERVER); images
# go to and come from the CAS the scheduler names, and their names are in
# the farm's index, which every client shares.
# Usage: farm_netns_test.sh BIN_DIR   (needs root, iproute2, runc, busybox-static)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
command -v ip >/dev/null || { echo "FAIL setup: ip (iproute2) is not installed"; exit 1; }

NS=sf$$                  # namespace prefix, unique to this run
NET=10.231.$(($$ % 200)) # only inside this run's namespaces
CAS=$NET.2:8980
SCHED=$NET.3:8981
declare -A PID

cleanup_netns() {
  for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PID[@]}"; do kill -KILL "$p" 2>/dev/null; done
  stop_containers "$WORK"/w*/runc
  for n in hub cas sched w1 w2 w3 client; do ip netns del "$NS-$n" 2>/dev/null; done
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup_netns EXIT

# --- the network: a bridge in the hub, one veth pair per host -----------------------------
ip netns add "$NS-hub" || { echo "FAIL setup: cannot create network namespaces"; exit 1; }
ip -n "$NS-hub" link add br0 type bridge
ip -n "$NS-hub" link set br0 up
host=2
for n in cas sched w1 w2 w3 client; do
  ip netns add "$NS-$n"
  ip -n "$NS-hub" link add "v-$n" type veth peer name eth0 netns "$NS-$n"
  ip -n "$NS-hub" link set "v-$n" master br0 up
  ip -n "$NS-$n" addr add "$NET.$host/24" dev eth0
  ip -n "$NS-$n" link set eth0 up
  ip -n "$NS-$n" link set lo up
  host=$((host + 1))
done
# Runs a command in a host's network namespace only (ip netns exec would also
# remount /sys, hiding the cgroup mounts runc needs).
in_ns() { local n=$1; shift; nsenter --net="/run/netns/$NS-$n" "$@"; }
# The same in the background: `spawn NS CMD... &` leaves $! the command's pid.
spawn() { local n=$1; shift; exec nsenter --net="/run/netns/$NS-$n" "$@"; }
check "the network: the root namespace does not have the farm's addresses" "" \
  "$(ip -o addr | grep -F "$NET." || true)"

listening() { # LOG [TEXT]: waits for TEXT ("listening on") in LOG
  for _ in $(seq 100); do grep -q "${2:-listening on}" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
spawn cas "$BIN/stagefarm-cas" --listen "$CAS" --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PID[cas]=$!
start_scheduler() {
  spawn sched "$BIN/stagefarm-scheduler" --listen "$SCHED" --state "$WORK/sched-state" --cas "$CAS" \
    --lease-timeout-ms 2000 --heartbeat-ms 200 >>"$WORK/scheduler.log" 2>&1 &
  PID[sched]=$!
}
start_scheduler
start_worker() { # NAME [worker flags...]
  local n=$1; shift
  spawn "$n" "$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/$n" \
    --name "$n" "$@" >>"$WORK/$n.log" 2>&1 &
  PID[$n]=$!
}
for w in w1 w2 w3; do start_worker $w; done
if ! listening "$WORK/cas.log" || ! listening "$WORK/scheduler.log"; then
  fail "farm in namespaces" "the CAS or the scheduler did not start"
  cat "$WORK/cas.log" "$WORK/scheduler.log"
  exit 1
fi
for w in w1 w2 w3; do
  listening "$WORK/$w.log" "connected to the scheduler" || fail "farm in namespaces" "$w did not reach the scheduler"
done
pass "CAS, scheduler, three workers and the client in six network namespaces"
check "the network: the client reaches the scheduler through the bridge" "0" \
  "$(in_ns client timeout 5 bash -c "exec 3<>/dev/tcp/${SCHED%:*}/${SCHED#*:}" 2>/dev/null; echo $?)"

# The client is told only where the scheduler is; the scheduler names its CAS.
unset STAGEFARM_CAS
export STAGEFARM_SERVER=$SCHED
sf() { in_ns client "$SF" "$@"; }
sf image import "$WORK/busybox" -t busybox >/dev/null
# Each line of the build's progress with the time it arrived.
stamped() { while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done; }
worker_of() { # LOG STAGE: the worker a stage last started on
  grep -E "\[$2\] started on " "$1" | tail -1 | awk '{print $5}'
}
wait_for() { # LOG PATTERN
  for _ in $(seq 200); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

# --- a four-stage DAG: three independent stages on three workers, at the same time ------------
c=$(new_ctx dag)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS one
RUN sleep 2 && echo one > /one
FROM busybox AS two
RUN sleep 2 && echo two > /two
FROM busybox AS three
RUN sleep 2 && echo three > /three
FROM busybox
COPY --from=one /one /one
COPY --from=two /two /two
COPY --from=three /three /three
CMD ["cat", "/one", "/two", "/three"]
DF
sf build --progress plain -t dag:1 "$c" 2> >(stamped >"$c.log") >/dev/null
rc=$?
sleep 0.2
check "netns DAG: the build succeeds" "0" "$rc"
check "netns DAG: the three independent stages ran on three different workers" "3" \
  "$(for s in one two three; do worker_of "$c.log" $s; done | sort -u | grep -c .)"
# Every independent stage started before any of them finished.
last_start=$(grep -E '\[(one|two|three)\] started on ' "$c.log" | awk '{print $1}' | sort -n | tail -1)
first_end=$(grep -E '\[(one|two|three)\] finished on ' "$c.log" | awk '{print $1}' | sort -n | head -1)
check "netns DAG: they ran at the same time (last start before first finish)" "yes" \
  "$(awk -v s="$last_start" -v e="$first_end" 'BEGIN{print (s != "" && e != "" && s < e) ? "yes" : "no (" s " vs " e ")"}')"
check "netns DAG: the image runs" "one
two
three" "$(sf run dag:1 2>&1)"

# The same build again: the scheduler finds every stage in its cache, and a worker
# only makes the image.
sf build --progress plain -t dag:2 "$c" 2>"$c.again" >/dev/null
check "netns DAG again: the build succeeds" "0" "$?"
steps=$(grep -oE '\(([0-9]+) steps run, ([0-9]+) cached\)' "$c.log" | head -1 | tr -dc '0-9 ' |
  awk '{print $1 + $2}')
check_contains "netns DAG again: nothing runs (all $steps steps counted cached)" "(0 steps run, $steps cached)" \
  "$(cat "$c.again")"
check_contains "netns DAG again: the scheduler completed the stages itself" "found in the cache" \
  "$(cat "$c.again")"
check "netns DAG again: no stage went to a worker but for the image" "1" \
  "$(grep -c ' started on ' "$c.again")"
check "netns DAG again: the image runs" "one
two
three" "$(sf run dag:2 2>&1)"

# --- a secret reaches the RUN on its worker, and nothing keeps it ---------------------------
c=$(new_ctx secret)
printf 'pa55-%s-word' "$$" >"$WORK/token"
# The Dockerfile knows only the secret's digest.
sum=$(sha256sum "$WORK/token" | awk '{print $1}')
printf 'FROM busybox\nRUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | grep -q %s && echo seen > /s\n' "$sum" \
  >"$c/Dockerfile"
sf build --progress plain --secret id=tok,src="$WORK/token" -t secret:1 "$c" 2>"$c.log" >/dev/null
check "netns secret: the RUN on a worker reads the secret" "0" "$?"
check "netns secret: ... and the image has no trace of it" "seen
absent" "$(sf run secret:1 sh -c 'cat /s; [ -e /run/secrets/tok ] && echo present || echo absent' 2>&1)"
check "netns secret: neither the scheduler's state nor the CAS holds it" "" \
  "$(grep -rl "pa55-$$-word" "$WORK/sched-state" "$WORK/cas" 2>/dev/null)"
check "netns secret: the workers removed their copies" "" \
  "$(find "$WORK"/w*/secrets -type f 2>/dev/null)"

# --- SIGKILL of a worker mid-RUN ---------------------------------------------------------------
c=$(new_ctx kill)
printf 'FROM busybox\nRUN echo started && sleep 3 && echo finished > /f\n' >"$c/Dockerfile"
sf build --progress plain -t kill:1 "$c" 2> >(stamped >"$c.log") >/dev/null &
bp=$!
wait_for "$c.log" '| started'
victim=$(worker_of "$c.log" stage-0)
[ -n "$victim" ] || victim=$(grep -oE 'started on w[0-9]' "$c.log" | head -1 | awk '{print $3}')
kill -KILL "${PID[$victim]}" 2>/dev/null
wait $bp; st=$?; sleep 0.2; (exit $st)
check "netns: the build survives SIGKILL of $victim mid-RUN" "0" "$?"
# Its death is seen at once (its Attend stream ends), not at the lease
# timeout; a cut network below still takes the lease timeout.
check_contains "netns: ... its stage moved to another worker, the death seen at once" \
  "worker $victim: process died while running step 1" "$(cat "$c.log")"
check "netns: ... and the result is complete" "finished" "$(sf run kill:1 cat /f 2>&1)"
# The killed worker rejoins with its work directory as it was, here with a layer
# cache bound of one byte: it finds the snapshots it unpacked before it died
# and removes them; after each stage it keeps the bound.
start_worker "$victim" --cache-bytes 1
listening "$WORK/$victim.log" "removed [1-9][0-9]* snapshots"
check_contains "netns: a restarted worker finds its layer cache and keeps it within --cache-bytes" \
  "over 0 MiB: removed" "$(cat "$WORK/$victim.log")"

# --- a worker's network is cut mid-RUN ------------------------------------------------------------
c=$(new_ctx cut)
printf 'FROM busybox\nRUN echo started && sleep 4 && echo finished > /f\n' >"$c/Dockerfile"
sf build --progress plain -t cut:1 "$c" 2> >(stamped >"$c.log") >/dev/null &
bp=$!
wait_for "$c.log" '| started'
cut=$(grep -oE 'started on w[0-9]' "$c.log" | head -1 | awk '{print $3}')
ip -n "$NS-hub" link set "v-$cut" down
wait $bp; st=$?; sleep 0.2; (exit $st)
rc=$?
check "netns: the build survives $cut's network being cut mid-RUN" "0" "$rc"
check_contains "netns: ... the stage moved off the cut worker" "$cut stopped reporting; the stage runs again" \
  "$(cat "$c.log")"
moved=$(grep -oE 'started on w[0-9] \(attempt 2\)' "$c.log" | awk '{print $3}')
check "netns: ... to another worker" "yes" "$([ -n "$moved" ] && [ "$moved" != "$cut" ] && echo yes || echo "no ($moved)")"
check "netns: ... and the result is complete" "finished" "$(sf run cut:1 cat /f 2>&1)"
ip -n "$NS-hub" link set "v-$cut" master br0 up
# Back on the network, the cut worker learns its lease is gone and stops the old RUN.
left=1
for _ in $(seq 100); do
  left=$(runc --root "$WORK/$cut/runc" list 2>/dev/null | grep -c ' running ')
  [ "$left" -eq 0 ] && break
  sleep 0.2
done
check "netns: the cut worker stops its stale RUN once it is back" "0" "$left"

# --- the scheduler killed and restarted mid-build ---------------------------------------------------
c=$(new_ctx restart)
printf 'FROM busybox AS first\nRUN echo started && sleep 3 && echo one > /one\nFROM first\nRUN cat /one > /two && echo two >> /two\n' \
  >"$c/Dockerfile"
sf build --progress plain -t restart:1 "$c" 2> >(stamped >"$c.log") >/dev/null &
bp=$!
wait_for "$c.log" '| started'
kill -KILL "${PID[sched]}"
wait "${PID[sched]}" 2>/dev/null
sleep 1
start_scheduler
wait $bp; st=$?; sleep 0.2; (exit $st)
rc=$?
check "netns: a build survives its scheduler killed (SIGKILL) and restarted mid-RUN" "0" "$rc"
check_contains "netns: ... the restarted scheduler loaded the running build" "1 running" \
  "$(cat "$WORK/scheduler.log")"
check_contains "netns: ... the client reattached" "reattaching to build" "$(cat "$c.log")"
check "netns: ... the running stage kept its worker (ran once)" "1" \
  "$(grep -c '\[first\] started on' "$c.log")"
check "netns: ... and the image is complete" "one
two" "$(sf run restart:1 cat /two 2>&1)"
id=$(grep -m1 -oE 'build [0-9a-f]{24}' "$c.log" | awk '{print $2}')
check_contains "netns: builds ls after the restart knows the earlier builds" "$id succeeded" \
  "$(sf builds ls 2>&1 | tr -s ' ')"
check "netns: ... and every build of this run" "6" \
  "$(sf builds ls 2>&1 | grep -c succeeded)"

# --- the farm's image index: every client sees the same names, across a restart ---------
two() { STAGEFARM_HOME=$WORK/client-two in_ns client "$SF" "$@"; }
check_contains "netns images: another client lists the farm's images (tagged before the restart)" \
  "dag:1" "$(two image ls 2>&1)"
check "netns images: ... and runs one it never built or imported" "one
two" "$(two run restart:1 cat /two 2>&1)"
two image rm dag:2 >/dev/null 2>&1
check "netns images: a name removed by one client is gone for the others" "" \
  "$(sf image ls 2>&1 | grep 'dag:2')"

for _ in $(seq 50); do # a stage it runs may still be reporting
  left=$(find "$WORK/$victim/instances" -type d -path '*/snapshots/*' -prune 2>/dev/null | wc -l)
  [ "$left" -eq 0 ] && break
  sleep 0.2
done
check "netns: the bounded worker keeps no snapshot beyond its bound when idle" "0" "$left"

exit $E2E_FAILED
