#!/usr/bin/env bash
# End-to-end: RUN --mount=type=cache shared by a farm's workers through the
# CAS. A CAS, a scheduler and workers on 127.0.0.1. A cache filled by a
# build on one worker is seen by a --no-cache build on a fresh worker with
# an empty work directory; two builds on two workers adding to the same
# cache at once both keep their entries; with sharing=locked two
# read-modify-write steps on two workers run one after the other; another instance (tenant) does not
# see the cache; a step that fails still publishes what it left; a worker
# killed mid-step publishes nothing of that step.
# Usage: farm_cache_mount_test.sh BIN_DIR   (needs root, runc, busybox-static)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
PIDS=()
declare -A WPID
trap stop_farm EXIT
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --lease-timeout-ms 1500 --heartbeat-ms 200 \
  >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
export STAGEFARM_HOME=$WORK/client STAGEFARM_CAS=$CAS STAGEFARM_SERVER=$SCHED
"$SF" image import "$WORK/busybox" -t busybox >/dev/null
fb() { # CTX [flags]: a --no-cache farm build to CTX.out
  local c=$1; shift
  rm -rf "$c.out"
  "$SF" build --progress plain --no-cache -o "type=local,dest=$c.out" "$@" "$c" >"$c.log" 2>&1
}

start_farm_worker w1
c=$(new_ctx fill)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs echo from-w1 > /var/cache/pkgs/first && head -c 300000 /dev/urandom > /var/cache/pkgs/blob && md5sum /var/cache/pkgs/blob | cut -d' ' -f1 > /sum
DF
fb "$c"
check "a build on w1 fills the cache" "0" "$?"
check_contains "it ran on w1" "started on w1" "$(cat "$c.log")"
sum=$(cat "$c.out/sum" 2>/dev/null)
stop_farm_worker w1

start_farm_worker w2
c=$(new_ctx read)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs cat /var/cache/pkgs/first > /seen && md5sum /var/cache/pkgs/blob | cut -d' ' -f1 > /sum
DF
fb "$c"
check "a fresh worker: the build succeeds" "0" "$?"
check_contains "a fresh worker: it ran on w2" "started on w2" "$(cat "$c.log")"
check "a fresh worker: it sees what w1 left" "from-w1" "$(cat "$c.out/seen" 2>/dev/null)"
check "a fresh worker: the same bytes" "$sum" "$(cat "$c.out/sum" 2>/dev/null)"
check "a fresh worker: the cache is now on its own disk too" "yes" \
  "$([ -n "$sum" ] && [ -f "$(find "$WORK/w2" -name first -path '*cache-mounts*' | head -1)" ] && echo yes)"

# Another instance (tenant) has caches of its own.
c=$(new_ctx other)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs ls /var/cache/pkgs | wc -l > /count
DF
STAGEFARM_HOME=$WORK/client-other "$SF" image import --instance other "$WORK/busybox" -t busybox >/dev/null 2>&1
STAGEFARM_HOME=$WORK/client-other fb "$c" --instance other
check "another instance: the build succeeds" "0" "$?"
check "another instance: does not see the cache" "0" "$(tr -d ' ' <"$c.out/count" 2>/dev/null)"

# Two workers adding to the cache at once: both entries are kept.
start_farm_worker w1
ca=$(new_ctx add-a); cb=$(new_ctx add-b)
for x in a b; do
  d=$WORK/ctx-add-$x
  printf 'FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs sleep 1 && echo %s > /var/cache/pkgs/entry-%s\n' "$x" "$x" >"$d/Dockerfile"
done
fb "$ca" & pa=$!
fb "$cb" & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
check "two at once: both builds succeed" "0 0" "$ra $rb"
check "two at once: they ran on two workers" "2" \
  "$(cat "$ca.log" "$cb.log" | grep -o 'started on w[12]' | sort -u | wc -l)"
c=$(new_ctx list)
printf 'FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs ls /var/cache/pkgs > /list\n' >"$c/Dockerfile"
for w in w1 w2; do
  fb "$c"
  check "two at once: a later build sees both entries (${w} round)" "blob entry-a entry-b first" \
    "$(tr '\n' ' ' <"$c.out/list" 2>/dev/null | sed 's/ $//')"
done

# sharing=locked holds the cache across workers: two read-modify-write
# steps on two workers at once never lose an update.
for x in a b; do
  d=$(new_ctx count-$x)
  printf 'FROM busybox\nARG x\nRUN --mount=type=cache,id=counter,target=/c,sharing=locked n=$(cat /c/n 2>/dev/null || echo 0) && sleep 1 && echo $((n + 1)) > /c/n && echo %s >> /c/who\n' "$x" >"$d/Dockerfile"
done
fb "$WORK/ctx-count-a" & pa=$!
fb "$WORK/ctx-count-b" & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
check "locked: both builds succeed" "0 0" "$ra $rb"
check "locked: they ran on two workers" "2" \
  "$(cat "$WORK/ctx-count-a.log" "$WORK/ctx-count-b.log" | grep -o 'started on w[12]' | sort -u | wc -l)"
c=$(new_ctx count-read)
printf 'FROM busybox\nRUN --mount=type=cache,id=counter,target=/c,sharing=locked cat /c/n > /n\n' >"$c/Dockerfile"
fb "$c"
check "locked: the counter saw both steps, one after the other" "2" "$(cat "$c.out/n" 2>/dev/null)"

# A failing step still publishes what it left (as a cache does locally).
c=$(new_ctx failing)
printf 'FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs echo kept > /var/cache/pkgs/from-failure && false\n' >"$c/Dockerfile"
fb "$c"
check "a failing step: the build fails" "1" "$([ $? -ne 0 ] && echo 1)"
stop_farm_worker w1
fb "$WORK/ctx-list"
check_contains "a failing step: what it left is shared" "from-failure" "$(cat "$WORK/ctx-list.out/list" 2>/dev/null)"

# A worker killed mid-step publishes nothing of that step.
c=$(new_ctx killed)
printf 'FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs echo partial > /var/cache/pkgs/partial && echo started && sleep 30\n' >"$c/Dockerfile"
"$SF" build --progress plain --no-cache "$c" >"$c.log" 2>&1 &
bp=$!
for _ in $(seq 100); do grep -q "| started" "$c.log" 2>/dev/null && break; sleep 0.1; done
kill -KILL "${WPID[w2]}"; wait "${WPID[w2]}" 2>/dev/null; unset 'WPID[w2]'
stop_containers "$WORK/w2/runc"
"$SF" cancel "$(sed -n 's/.*build \([0-9a-f]\{8,\}\).*/\1/p' "$c.log" | head -1)" >/dev/null 2>&1
kill $bp 2>/dev/null; wait $bp 2>/dev/null
start_farm_worker w3
fb "$WORK/ctx-list"
check "killed mid-step: the other entries are there" "yes" \
  "$(grep -q entry-b "$WORK/ctx-list.out/list" 2>/dev/null && echo yes)"
check "killed mid-step: nothing of that step was published" "no" \
  "$(grep -q partial "$WORK/ctx-list.out/list" 2>/dev/null && echo yes || echo no)"

# stagefarm cache ls|prune on the farm's shared caches.
out=$("$SF" cache ls 2>&1)
check_contains "cache ls: lists the shared cache" "pkgs" "$out"
check_contains "cache ls: with its size" "kB" "$(echo "$out" | grep '^pkgs')"
check_contains "cache ls: and the locked one" "counter" "$out"
out=$("$SF" cache prune pkgs 2>&1)
check_contains "cache prune: says what it pruned" "pruned 1 shared caches" "$out"
check "cache prune: gone from cache ls" "no" "$("$SF" cache ls | grep -q '^pkgs ' && echo yes || echo no)"
# w3 had a copy (the list build above pulled it): it empties it.
fb "$WORK/ctx-list"
check "cache prune: a worker that had a copy starts afresh" "" "$(cat "$WORK/ctx-list.out/list" 2>/dev/null)"
check_contains "cache prune: it ran on the worker with the copy" "started on w3" "$(cat "$WORK/ctx-list.log")"

# The bound: a worker whose instance's caches exceed --cache-mount-bytes
# prunes the least recently published.
stop_farm_worker w3
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/w4" --name w4 \
  --cache-mount-bytes 500000 >>"$WORK/w4.log" 2>&1 &
WPID[w4]=$!
for _ in $(seq 100); do grep -q "connected to the scheduler" "$WORK/w4.log" 2>/dev/null && break; sleep 0.1; done
for x in old new; do
  c=$(new_ctx bound-$x)
  printf 'FROM busybox\nRUN --mount=type=cache,id=big-%s,target=/c head -c 300000 /dev/urandom > /c/data\n' "$x" >"$c/Dockerfile"
  fb "$c"
  check "bound: the $x cache's build succeeds" "0" "$?"
  sleep 1.1  # publication times a second apart
done
out=$("$SF" cache ls 2>&1)
check "bound: the least recently published cache was pruned" "no" "$(echo "$out" | grep -q '^big-old ' && echo yes || echo no)"
check_contains "bound: the newest is kept" "big-new" "$out"
check_contains "bound: the worker says why" "exceed their bound" "$(cat "$WORK/w4.log")"

exit $E2E_FAILED
