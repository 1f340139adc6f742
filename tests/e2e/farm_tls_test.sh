#!/usr/bin/env bash
# End-to-end: the farm with mutual TLS on every connection. A test CA
# (scripts/make-test-ca) signs the CAS's, the scheduler's, a worker's and a
# client's certificates; each server requires client certificates from that
# CA. A build goes client -> scheduler -> worker -> CAS over TLS; plaintext
# clients, clients without a certificate, with one from another CA, or
# trusting another CA are all refused; bad TLS flags are clear errors.
# Usage: farm_tls_test.sh BIN_DIR   (needs root, runc, busybox-static, openssl)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
trap e2e_cleanup EXIT
bash "$ROOT/scripts/make-test-ca" "$WORK/ca" cas scheduler worker client stranger >/dev/null
bash "$ROOT/scripts/make-test-ca" "$WORK/rogue" client >/dev/null
tls() { # NAME: the flags for a program holding NAME's certificate
  echo "--tls-ca $WORK/ca/ca.crt --tls-cert $WORK/ca/$1.crt --tls-key $WORK/ca/$1.key"
}
# shellcheck disable=SC2046
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" $(tls cas) >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
# shellcheck disable=SC2046
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" $(tls scheduler) --http-listen 127.0.0.1:0 \
  >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
# The web view takes the farm's certificate: HTTPS only.
for _ in $(seq 50); do grep -q 'web view at' "$WORK/scheduler.log" && break; sleep 0.1; done
web=$(sed -n 's/.*web view at \(https[^ ]*\).*/\1/p' "$WORK/scheduler.log" | head -1)
check_contains "the web view is served over HTTPS with the scheduler's certificate" '"tenants":false' \
  "$(curl -s --cacert "$WORK/ca/ca.crt" "${web}api/v1/session" 2>&1)"
check "... and not over plain HTTP" "000" \
  "$(curl -s -o /dev/null -w '%{http_code}' "http${web#https}api/v1/session" 2>/dev/null)"
check "... nor to a client that does not trust the farm's CA" "60" \
  "$(curl -s -o /dev/null "${web}api/v1/session" 2>/dev/null; echo $?)"
# shellcheck disable=SC2046
"$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/w1" --name w1 $(tls worker) \
  >"$WORK/w1.log" 2>&1 &
PIDS+=($!)
if [ -z "$CAS" ] || [ -z "$SCHED" ]; then
  tail -3 "$WORK/cas.log" "$WORK/scheduler.log"
  fail "tls farm" "the CAS or the scheduler did not start"
  exit 1
fi
for _ in $(seq 100); do grep -q "connected to the scheduler" "$WORK/w1.log" && break; sleep 0.1; done
check_contains "the worker reaches the scheduler over mutual TLS" "connected to the scheduler" "$(cat "$WORK/w1.log")"

client_env() { # NAME CA-DIR
  echo "STAGEFARM_TLS_CA=$WORK/$2/ca.crt STAGEFARM_TLS_CERT=$WORK/$2/$1.crt STAGEFARM_TLS_KEY=$WORK/$2/$1.key"
}
c=$(new_ctx tls)
echo secret-free >"$c/data"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
COPY data /data
RUN cat /data > /copy
DF
export STAGEFARM_HOME=$WORK/client
# shellcheck disable=SC2046
env $(client_env client ca) "$SF" image import "$WORK/busybox" -t busybox --server "$SCHED" >/dev/null 2>&1
# shellcheck disable=SC2046
env $(client_env client ca) "$SF" build --progress plain --server "$SCHED" -o "type=local,dest=$c.out" "$c" >"$c.log" 2>&1
check "a build over mutual TLS succeeds" "0" "$?"
check "... and ran on the worker" "secret-free" "$(cat "$c.out/copy" 2>&1)"
check_contains "... the worker said so" "on w1" "$(cat "$c.log")"

out=$("$SF" builds ls --server "$SCHED" 2>&1)
check "a plaintext client is refused by the scheduler" "1" "$?"
echo "plaintext client: $out" | head -3
out=$("$SF" cas stats --cas "$CAS" 2>&1)
check "a plaintext client is refused by the CAS" "1" "$?"
out=$(STAGEFARM_TLS_CA=$WORK/ca/ca.crt "$SF" builds ls --server "$SCHED" 2>&1)
check "a TLS client without a certificate is refused" "1" "$?"
# shellcheck disable=SC2046
out=$(env STAGEFARM_TLS_CA=$WORK/ca/ca.crt STAGEFARM_TLS_CERT=$WORK/rogue/client.crt \
  STAGEFARM_TLS_KEY=$WORK/rogue/client.key "$SF" builds ls --server "$SCHED" 2>&1)
check "a client certificate from another CA is refused" "1" "$?"
# shellcheck disable=SC2046
out=$(env $(client_env client rogue) "$SF" builds ls --server "$SCHED" 2>&1)
check "a client that trusts another CA refuses the scheduler" "1" "$?"
# shellcheck disable=SC2046
out=$(env $(client_env client ca) "$SF" builds ls --server "$SCHED" 2>&1)
check "the right certificate lists the builds" "0" "$?"
check_contains "... including the TLS build" "succeeded" "$out"

# Tenants known by their client certificates (the common name).
cat >"$WORK/tenants.json" <<'EOF'
{"tenants": [
  {"name": "team-c", "certificates": ["client"], "instances": ["team-c"]},
  {"name": "workers", "certificates": ["worker"], "instances": ["*"], "worker": true}
]}
EOF
# shellcheck disable=SC2046
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" --tenants "$WORK/tenants.json" \
  $(tls scheduler) >"$WORK/scheduler2.log" 2>&1 &
PIDS+=($!)
SCHED2=$(listen_addr "$WORK/scheduler2.log")
# shellcheck disable=SC2046
out=$(env $(client_env client ca) "$SF" builds ls --server "$SCHED2" 2>&1)
check "tenants by certificate: the client's certificate names its tenant" "0" "$?"
# shellcheck disable=SC2046
out=$(env $(client_env stranger ca) "$SF" builds ls --server "$SCHED2" 2>&1)
check_contains "... a valid certificate of no tenant is refused" "needs to know who is calling" "$out"
# shellcheck disable=SC2046
out=$(env $(client_env client ca) "$SF" build --progress plain --server "$SCHED2" --instance team-d "$c" 2>&1)
check_contains "... and the tenant builds only on its instances" "tenant team-c may not use instance \"team-d\"" "$out"

out=$("$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas2" --tls-ca "$WORK/ca/ca.crt" 2>&1)
check "a CAS with --tls-ca and no certificate does not start" "2" "$?"
check_contains "... and says why" "needs --tls-cert and --tls-key" "$out"
out=$("$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --tls-cert "$WORK/ca/nothing.crt" --tls-key "$WORK/ca/cas.key" 2>&1)
check_contains "an unreadable certificate names the flag" "--tls-cert $WORK/ca/nothing.crt" "$out"
out=$(STAGEFARM_TLS_CERT=$WORK/ca/client.crt "$SF" builds ls --server "$SCHED" 2>&1)
check_contains "a certificate without a key is a clear error" "--tls-cert and --tls-key go together" "$out"
exit $E2E_FAILED
