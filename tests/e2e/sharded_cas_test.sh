#!/usr/bin/env bash
# End-to-end: the farm on a sharded CAS. Three stagefarm-cas processes hold
# the blobs (rendezvous hashing on the digest, two replicas of each); the
# scheduler, two workers and the clients are given the same shard list. A
# multi-stage build succeeds and its blobs spread over all three shards;
# with one shard killed, another client builds the same thing from the
# cache (nothing runs) and runs the image.
# Usage: sharded_cas_test.sh BIN_DIR   (needs root, runc, busybox-static)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
trap e2e_cleanup EXIT
export STAGEFARM_CAS_REPLICAS=2
SHARDS=""
CAS_PIDS=()
for i in 0 1 2; do
  "$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas$i" --shard >"$WORK/cas$i.log" 2>&1 &
  PIDS+=($!)
  CAS_PIDS+=($!)
  SHARDS="$SHARDS${SHARDS:+,}$(listen_addr "$WORK/cas$i.log")"
done
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$SHARDS" >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
for w in w1 w2; do
  "$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$SHARDS" --work "$WORK/$w" --name "$w" \
    >"$WORK/$w.log" 2>&1 &
  PIDS+=($!)
done
check "three CAS shards, a scheduler and two workers started" "3" "$(echo "$SHARDS" | tr ',' '\n' | grep -c :)"

export STAGEFARM_HOME=$WORK/client-one STAGEFARM_SERVER=$SCHED
"$SF" image import "$WORK/busybox" -t busybox >/dev/null
c=$(new_ctx sharded)
head -c 300000 /dev/urandom >"$c/blob"
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS one
RUN echo one > /one
FROM busybox AS two
COPY blob /blob
RUN md5sum /blob | cut -d' ' -f1 > /sum
FROM busybox
COPY --from=one /one /one
COPY --from=two /sum /sum
CMD ["cat", "/one", "/sum"]
DF
expected="one
$(md5sum "$c/blob" | cut -d' ' -f1)"
"$SF" build --progress plain -t sharded:1 "$c" >"$c.out" 2>"$c.log"
rc=$?; [ $rc = 0 ] || { cat "$c.log"; tail -n 5 "$WORK/w1.log" "$WORK/w2.log"; }
check "a build on the sharded CAS succeeds" "0" "$rc"
check "its image runs" "$expected" "$("$SF" run sharded:1 2>&1)"
spread=0
for addr in $(echo "$SHARDS" | tr ',' ' '); do
  n=$("$SF" cas stats --cas "$addr" | awk '$1 == "blob_count" {print $2}')
  echo "shard $addr: $n blobs"
  [ "${n:-0}" -gt 0 ] && spread=$((spread + 1))
done
check "the build's blobs spread over all three shards" "3" "$spread"

kill -KILL "${CAS_PIDS[1]}"
export STAGEFARM_HOME=$WORK/client-two
"$SF" build --progress plain -t sharded:2 "$c" >"$c.out2" 2>"$c.log2"
rc=$?; [ $rc = 0 ] || tail -n 5 "$WORK/scheduler.log" "$WORK/w1.log" "$WORK/w2.log"
check "with a shard lost, another client's build still succeeds" "0" "$rc"
check_contains "... from the cache (nothing runs)" "0 steps run" "$(cat "$c.log2")"
check "... and its image runs" "$expected" "$("$SF" run sharded:2 2>&1)"
exit $E2E_FAILED
