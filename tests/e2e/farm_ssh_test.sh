#!/usr/bin/env bash
# End-to-end: RUN --mount=type=ssh on a farm. A CAS, a scheduler and a
# worker on 127.0.0.1; the client holds an ssh-agent with a test key.
# Checks: a step on the worker lists the client's key through the agent
# (the scheduler relays the connection); several connections in one step
# work; SSH_AUTH_SOCK is BuildKit's path; nothing of the key reaches the
# worker's disk, the image or the step's cache key (a rebuild is cached);
# a required agent not given is an error naming it; a worker that is not
# running a stage of the build cannot reach the agent.
# Usage: farm_ssh_test.sh BIN_DIR   (needs root, runc, busybox-static,
# openssh-client)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
for tool in ssh-agent ssh-add ssh-keygen; do
  command -v "$tool" >/dev/null || { echo "FAIL setup: $tool (openssh-client) is not installed"; exit 1; }
done
PIDS=()
cleanup_farm() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "${SSH_AGENT_PID:-}" ] && kill "$SSH_AGENT_PID" 2>/dev/null
  wait 2>/dev/null
  stop_containers "$WORK"/w*/runc
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup_farm EXIT
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/w1" --name w1 >"$WORK/w1.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "connected to the scheduler" "$WORK/w1.log" 2>/dev/null && break; sleep 0.1; done
export STAGEFARM_HOME=$WORK/client STAGEFARM_CAS=$CAS STAGEFARM_SERVER=$SCHED

s=$WORK/ssh
mkdir -p "$s"
make_ssh_client_image "$s/root" ssh-client
ssh-keygen -q -t ed25519 -N '' -C stagefarm-farm-key -f "$s/key"
eval "$(ssh-agent -s -a "$s/agent.sock")" >/dev/null
ssh-add -q "$s/key" 2>/dev/null

c=$WORK/ctx
mkdir -p "$c"
cat >"$c/Dockerfile" <<'DF'
FROM ssh-client
RUN --mount=type=ssh ssh-add -l > /keys && ssh-add -L > /public && ssh-add -l > /again && echo "$SSH_AUTH_SOCK" > /sock
RUN --mount=type=ssh,id=other,required=true true
DF
out=$("$SF" build --progress plain --ssh default "$c" 2>&1)
check_contains "farm ssh: a required agent that was not given is an error" \
  "ssh agent other is required but was not given" "$out"
sed -i '$d' "$c/Dockerfile"
"$SF" build --progress plain --ssh default -o "type=local,dest=$c.out" "$c" >"$c.log" 2>&1
check "farm ssh: the build succeeds on the farm" "0" "$?"
check_contains "farm ssh: it ran on the worker" "w1" "$(cat "$c.log")"
check_contains "farm ssh: the step on the worker lists the client's key" "stagefarm-farm-key (ED25519)" "$(cat "$c.out/keys" 2>/dev/null)"
check "farm ssh: the agent answers every connection of the step" "$(cat "$c.out/keys" 2>/dev/null)" "$(cat "$c.out/again" 2>/dev/null)"
check "farm ssh: the public key came through whole" "$(cut -d' ' -f1,2 "$s/key.pub")" "$(cut -d' ' -f1,2 "$c.out/public" 2>/dev/null)"
check "farm ssh: SSH_AUTH_SOCK as BuildKit sets it" "/run/buildkit/ssh_agent.0" "$(cat "$c.out/sock" 2>/dev/null)"
secret=$(sed -n 2p "$s/key")
leaked=no
grep -rqsF "$secret" "$WORK/w1" "$WORK/cas" "$c.out" "$WORK/scheduler.log" "$WORK/w1.log" && leaked=yes
check "farm ssh: no private key material on the worker, the CAS or the image" "no" "$leaked"
check "farm ssh: no agent socket left on the worker" "0" "$(find "$WORK/w1" -type s 2>/dev/null | wc -l)"
out=$("$SF" build --progress plain --ssh default "$c" 2>&1)
check_contains "farm ssh: the agent is not in the key (a rebuild is cached)" "(0 steps run, 1 cached)" "$out"

# An "agent" that hangs up on every connection: the step sees a closed
# connection (the close travels from the client through the scheduler)
# and fails instead of hanging.
python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
while True:
    c, _ = s.accept(); c.close()
' "$s/hangup.sock" &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$s/hangup.sock" ] && break; sleep 0.1; done
t0=$(date +%s)
out=$(timeout 60 "$SF" build --progress plain --no-cache --ssh "default=$s/hangup.sock" "$c" 2>&1)
rc=$?
check "farm ssh: an agent that hangs up fails the step" "1" "$rc"
check_contains "farm ssh: ... with ssh-add's own error" "ssh-add" "$out"
[ $(( $(date +%s) - t0 )) -lt 30 ] && pass "farm ssh: ... without hanging" || fail "farm ssh: hang" "took over 30 s"
exit $E2E_FAILED
