#!/usr/bin/env bash
# End-to-end: provenance signed by the farm. A scheduler with --signing-key
# (Ed25519) and tenants, two workers. A tenant's build with --provenance
# and --verify-reproducible runs twice, each stage of the rebuild on the
# other worker, and gets the scheduler's signed provenance (builder id,
# reproducible); `stagefarm attest verify --key` accepts it and a policy
# it meets, and refuses: another key, a policy it does not meet, a
# provenance changed inside its envelope, an unsigned statement changed
# beside it, a provenance the tenant signed with its own key, another
# image's provenance, a locally built (unsigned) provenance. A build that
# is not reproducible fails naming the layer and file. Forged attestations
# enter the farm's CAS as the tenant (image import), which the tenant may
# do: verify is what refuses them.
# Usage: farm_attest_test.sh BIN_DIR   (needs root, runc, busybox-static,
#        openssl, jq, python3)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
trap e2e_cleanup EXIT
openssl genpkey -algorithm ed25519 -out "$WORK/farm.key" 2>/dev/null
openssl pkey -in "$WORK/farm.key" -pubout -out "$WORK/farm.pub" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$WORK/tenant.key" 2>/dev/null
openssl pkey -in "$WORK/tenant.key" -pubout -out "$WORK/tenant.pub" 2>/dev/null
make_tokens a workers scheduler
cat >"$WORK/tenants.json" <<EOT
{"tenants": [
  {"name": "team-a", "tokens_sha256": ["$(tsha a)"], "instances": ["team-a"]},
  {"name": "workers", "tokens_sha256": ["$(tsha workers)"], "instances": ["*"], "worker": true},
  {"name": "scheduler", "tokens_sha256": ["$(tsha scheduler)"], "instances": ["*"]}
]}
EOT
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" --tenants "$WORK/tenants.json" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
out=$("$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --signing-key "$WORK/farm.pub" 2>&1)
check_contains "a public key is refused as --signing-key" "not a PEM private key" "$out"
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" --tenants "$WORK/tenants.json" \
  --token-file "$WORK/token-scheduler" --signing-key "$WORK/farm.key" \
  --builder-id stagefarm-scheduler://test-farm >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
for w in w1 w2; do
  "$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" --work "$WORK/$w" --name "$w" \
    --token-file "$WORK/token-workers" --allow-insecure-entitlement network.host >"$WORK/$w.log" 2>&1 &
  PIDS+=($!)
done
if [ -z "$CAS" ] || [ -z "$SCHED" ]; then
  tail -n 3 "$WORK/cas.log" "$WORK/scheduler.log"
  fail "farm attest" "the CAS or the scheduler did not start"
  exit 1
fi
as() { # COMMAND [SUBCOMMAND] ARGS...: as team A on the farm
  local n=1
  case "$1" in attest | image) n=2 ;; esac
  STAGEFARM_TOKEN=$(cat "$WORK/token-a") STAGEFARM_HOME=$WORK/home-a \
    "$SF" "${@:1:$n}" --server "$SCHED" --instance team-a "${@:$((n + 1))}"
}
as image import "$WORK/busybox" -t busybox >/dev/null 2>&1

c=$(new_ctx app)
echo "hello" >"$c/msg"
printf 'FROM busybox AS base\nCOPY msg /msg\nRUN cat /msg > /copy\nFROM base\nRUN echo two > /two\n' >"$c/Dockerfile"
out=$(as build --progress plain --provenance=min --verify-reproducible -t app:1 "$c" 2>&1)
check_contains "--verify-reproducible needs SOURCE_DATE_EPOCH" "needs --source-date-epoch" "$out"
as build --progress plain --provenance=min --verify-reproducible --source-date-epoch 1700000000 \
  -t app:1 "$c" >"$c.out" 2>"$c.log"
check "a farm build with --provenance=min --verify-reproducible succeeds" "0" "$?"
check_contains "... after a rebuild that made the same image" "reproducible: the rebuild made the same image" "$(cat "$c.log")"
rebuild=$(sed -n 's/.*without cache, each stage on another worker than the first time (build \([0-9a-f]*\)).*/\1/p' "$c.log" | head -1)
first_workers=$(grep -o 'stage-done.* on w[12]\|\] on w[12]' "$c.log" | grep -o 'w[12]' | tr '\n' ' ')
rebuild_log=$(STAGEFARM_TOKEN=$(cat "$WORK/token-a") "$SF" logs "$rebuild" --server "$SCHED" 2>&1)
second_workers=$(echo "$rebuild_log" | grep -o '\] on w[12]' | grep -o 'w[12]' | tr '\n' ' ')
check "the rebuild ran as many stages as the build" "$(echo $first_workers | wc -w)" "$(echo $second_workers | wc -w)"
differ=yes
set -- $second_workers
for w in $first_workers; do [ "$w" = "$1" ] && differ=no; shift; done
check "... each on the other worker ($first_workers / $second_workers)" "yes" "$differ"

prov=$(as attest show --type provenance app:1 2>&1)
check "the provenance names the farm as builder" "stagefarm-scheduler://test-farm" \
  "$(echo "$prov" | jq -r '.predicate.runDetails.builder.id')"
check "... and the verified rebuild" "true" "$(echo "$prov" | jq -r '.predicate.runDetails.metadata.reproducible.verified')"
out=$(as attest verify app:1 --key "$WORK/farm.pub" 2>&1)
check "attest verify accepts the farm's signature" "0" "$?"
check_contains "... saying so" "provenance verified (signed by key" "$out"
echo '{"builder": "stagefarm-scheduler://test-farm", "reproducible": true}' >"$WORK/policy-ok.json"
out=$(as attest verify app:1 --key "$WORK/farm.pub" --policy "$WORK/policy-ok.json" 2>&1)
check "... and a policy it meets" "0" "$?"
echo '{"builder": "stagefarm-scheduler://elsewhere"}' >"$WORK/policy-builder.json"
out=$(as attest verify app:1 --key "$WORK/farm.pub" --policy "$WORK/policy-builder.json" 2>&1)
check_contains "a policy naming another builder fails" "policy: built by \"stagefarm-scheduler://test-farm\"" "$out"
echo '{"context": "sha256:0000"}' >"$WORK/policy-context.json"
out=$(as attest verify app:1 --key "$WORK/farm.pub" --policy "$WORK/policy-context.json" 2>&1)
check "a policy naming another context fails" "1" "$?"
echo '{"bulider": "x"}' >"$WORK/policy-typo.json"
out=$(as attest verify app:1 --key "$WORK/farm.pub" --policy "$WORK/policy-typo.json" 2>&1)
check_contains "an unknown policy key is an error" "unknown key \"bulider\"" "$out"
out=$(as attest verify app:1 --key "$WORK/tenant.pub" 2>&1)
check "another key fails" "1" "$?"
check_contains "... saying whose signature it is" "not by the given key" "$out"

# Forgeries, written into the farm's CAS by the tenant.
as image export app:1 --format oci -o "$WORK/app.tar" >/dev/null 2>&1
check "the signed image exports" "0" "$?"
forge() { # MODE NAME [ARG]
  python3 "$HERE/farm_attest_tamper.py" "$1" "$WORK/app.tar" "$WORK/$2.tar" "${3:-}" &&
    as image import "$WORK/$2.tar" -t "$2:1" >/dev/null 2>&1
}
forge payload changed
out=$(as attest verify changed:1 --key "$WORK/farm.pub" 2>&1)
check_contains "a provenance changed inside its envelope fails" "does not verify" "$out"
forge unsigned beside
out=$(as attest verify beside:1 --key "$WORK/farm.pub" 2>&1)
check_contains "an unsigned statement changed beside it fails" "differs from it" "$out"
forge resign resigned "$WORK/tenant.key"
out=$(as attest verify resigned:1 --key "$WORK/farm.pub" 2>&1)
check "a provenance the tenant signed itself fails" "1" "$?"
out2=$(as attest verify resigned:1 --key "$WORK/tenant.pub" 2>&1)
check "... though it verifies with the tenant's own key (the check is the key)" "0" "$?"
c2=$(new_ctx other)
echo "other" >"$c2/msg"
printf 'FROM busybox\nCOPY msg /other\n' >"$c2/Dockerfile"
as build --progress quiet --provenance=min -t other:1 "$c2" >/dev/null 2>&1
as image export other:1 --format oci -o "$WORK/other.tar" >/dev/null 2>&1
forge swap swapped "$WORK/other.tar"
out=$(as attest verify swapped:1 --key "$WORK/farm.pub" 2>&1)
check_contains "another image's signed provenance fails" "not this image" "$out"
out=$(as attest verify other:1 --key "$WORK/farm.pub" 2>&1)
check "... which verifies for its own image" "0" "$?"

# The policy's default: no RUN step on the host's network.
c4=$(new_ctx hostnet)
printf 'FROM busybox\nRUN --network=host echo on the host network > /net\n' >"$c4/Dockerfile"
as build --progress quiet --provenance=min -t hostnet:1 --allow network.host "$c4" >"$c4.out" 2>&1
check "a farm build with RUN --network=host (--allow network.host) succeeds" "0" "$?"
echo '{}' >"$WORK/policy-empty.json"
out=$(as attest verify hostnet:1 --key "$WORK/farm.pub" --policy "$WORK/policy-empty.json" 2>&1)
check_contains "a policy refuses a host-network step by default" "policy: a RUN step used --network=host" "$out"
echo '{"allow_host_network": true}' >"$WORK/policy-host.json"
out=$(as attest verify hostnet:1 --key "$WORK/farm.pub" --policy "$WORK/policy-host.json" 2>&1)
check "... unless it allows one" "0" "$?"
out=$(as attest verify app:1 --key "$WORK/farm.pub" --policy "$WORK/policy-empty.json" 2>&1)
check "... and a build without one meets it" "0" "$?"

# The context's git source, as buildx records it, without credentials.
c5=$(new_ctx vcs)
echo "in git" >"$c5/msg"
printf 'FROM busybox\nCOPY msg /msg\n' >"$c5/Dockerfile"
(cd "$c5" && git init -q && git remote add origin https://bot:hunter2@example.com/org/app.git &&
  git add -A && git -c user.name=t -c user.email=t@example.com commit -qm one)
as build --progress quiet --provenance=min -t vcs:1 "$c5" >/dev/null 2>&1
prov=$(as attest show --type provenance vcs:1 2>&1)
check "the provenance records the context's git remote without credentials" "https://example.com/org/app.git" \
  "$(echo "$prov" | jq -r '.predicate.buildDefinition.externalParameters.request.args["vcs:source"]')"
check "... and its commit" "$(git -C "$c5" rev-parse HEAD)" \
  "$(echo "$prov" | jq -r '.predicate.buildDefinition.externalParameters.request.args["vcs:revision"]')"
check "... and no password" "" "$(echo "$prov" | grep -o hunter2)"
echo '{"source": "https://example.com/org/app.git"}' >"$WORK/policy-source.json"
out=$(as attest verify vcs:1 --key "$WORK/farm.pub" --policy "$WORK/policy-source.json" 2>&1)
check "a policy naming the source repository passes" "0" "$?"
out=$(as attest verify app:1 --key "$WORK/farm.pub" --policy "$WORK/policy-source.json" 2>&1)
check_contains "... and fails for a build from elsewhere" "policy: the source is" "$out"

# A provenance made on this machine is not signed.
"$SF" build --progress quiet --provenance=min -t local:1 "$c2" >/dev/null 2>&1
out=$("$SF" attest verify local:1 --key "$WORK/farm.pub" 2>&1)
check_contains "a locally made provenance is refused as unsigned" "not signed" "$out"

# Not reproducible: the rebuild writes another time.
c3=$(new_ctx unrepro)
printf 'FROM busybox\nRUN echo same > /same && cat /proc/sys/kernel/random/uuid > /stamp\n' >"$c3/Dockerfile"
out=$(as build --progress plain --verify-reproducible --source-date-epoch 1700000000 -t unrepro:1 "$c3" 2>&1)
check "a build that is not reproducible fails" "1" "$?"
check_contains "... naming the layer and file" "layer 2 of 2 (RUN /bin/sh -c echo same > /same && cat /proc" "$out"
check_contains "... and what differs" "/stamp: content differs" "$out"
out=$("$SF" build --progress plain --verify-reproducible --source-date-epoch 1700000000 "$c3" 2>&1)
check_contains "the same on this machine" "/stamp: content differs" "$out"
out=$("$SF" build --progress quiet --verify-reproducible --source-date-epoch 1700000000 --provenance=min -t localrepro:1 "$c2" 2>&1)
check "a reproducible local build passes" "0" "$?"
check "... and its provenance says so" "true" \
  "$("$SF" attest show --type provenance localrepro:1 | jq -r '.predicate.runDetails.metadata.reproducible.verified')"
exit $E2E_FAILED
