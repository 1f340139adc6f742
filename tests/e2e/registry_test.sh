#!/usr/bin/env bash
# End-to-end: images to and from registries. Debian's docker-registry on
# 127.0.0.1 (port 0) plain, and with TLS (a test CA) and htpasswd basic auth;
# a misbehaving registry (fake_registry.py). Builds push with --push and
# -o type=registry; skopeo and Docker pull the pushes back; a second home
# pulls them and builds FROM them; present blobs are not sent again, other
# repositories' blobs are mounted, chunked uploads work; credentials are
# required and checked; blobs and manifests that do not match their digests
# are refused and leave no tag.
# Usage: registry_test.sh BIN_DIR   (needs root, runc, busybox-static,
#        docker-registry, skopeo, openssl, docker.io)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cleanup_registry() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  stop_private_dockerd
  grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup_registry EXIT
for tool in docker-registry skopeo openssl python3; do
  command -v $tool >/dev/null || { fail "setup" "$tool is not installed (scripts/install-deps)"; exit 1; }
done

start_registry plain
REG=$ADDR
[ -n "$REG" ] || { tail -5 "$WORK/plain.log"; fail "registry" "docker-registry did not start"; exit 1; }
pass "docker-registry started on $REG"
export DOCKER_CONFIG=$WORK/no-credentials

# --- build and push -----------------------------------------------------------------
c=$(new_ctx app)
echo "hello from the registry" >"$c/msg"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
COPY msg /msg
RUN wc -c /msg > /size
CMD ["cat", "/msg", "/size"]
DF
"$SF" build --progress plain -t "$REG/team/app:1" --push "$c" >"$c.out" 2>"$c.log"
check "build --push succeeds" "0" "$?"
digest=$(cat "$c.out")
check_contains "the push sends the three layers and the config" "4 blobs sent, 0 already there" "$(cat "$c.log")"
inspected=$(skopeo inspect --tls-verify=false "docker://$REG/team/app:1" 2>&1)
check_contains "skopeo inspect finds the pushed image by its digest" "\"Digest\": \"$digest\"" "$inspected"
skopeo copy -q --src-tls-verify=false "docker://$REG/team/app:1" "oci:$WORK/skopeo-oci:app" >/dev/null 2>&1
check "skopeo copies it out" "0" "$?"
check "skopeo's copy has the same manifest digest" "$digest" \
  "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$WORK/skopeo-oci/index.json" 2>&1)"

out=$("$SF" push "$REG/team/app:1" 2>&1)
check_contains "a second push sends no blob" "0 blobs sent, 4 already there" "$out"
out=$("$SF" push "$REG/team/app:1" "$REG/other/app:2" 2>&1)
check_contains "a push to another repository mounts the layers" "1 blobs sent, 0 already there, 3 mounted" "$out"
out=$("$SF" build --progress plain -o "type=registry,name=$REG/third/app:3" "$c" 2>&1)
digest3=$(printf '%s\n' "$out" | tail -1)
check_contains "-o type=registry pushes" "$REG/third/app:3: $digest3" "$out"
# Another registry, where nothing can be mounted from.
start_registry chunks
CREG=$ADDR
out=$(STAGEFARM_PUSH_CHUNK_BYTES=65536 "$SF" push "$REG/team/app:1" "$CREG/chunked/app:1" 2>&1)
check_contains "a chunked push (64 KiB PATCHes) succeeds" "$CREG/chunked/app:1: $digest (4 blobs sent" "$out"
patches=$(grep 'http.request.method=PATCH' "$WORK/chunks.log" | grep -c 'uri="*/v2/chunked/app/blobs/uploads/')
check "the chunked push sent the busybox layer in several PATCHes" "yes" "$([ "$patches" -ge 10 ] && echo yes || echo "no ($patches)")"
check "skopeo reads the chunked push" "$digest" \
  "$(skopeo inspect --tls-verify=false "docker://$CREG/chunked/app:1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])' 2>&1)"

# --- another home pulls and builds FROM the registry --------------------------------
export STAGEFARM_HOME=$WORK/home2
out=$("$SF" pull "$REG/other/app:2" 2>&1)
check_contains "pull into an empty home" "tagged $REG/other/app:2" "$out"
check "the pulled image has the pushed digest" "$digest" "$(printf '%s\n' "$out" | tail -1)"
check "the pulled image runs" "hello from the registry
24 /msg" "$("$SF" run "$REG/other/app:2" 2>&1)"
c2=$(new_ctx from-registry)
cat >"$c2/Dockerfile" <<DF
FROM $REG/third/app:3
RUN cat /msg > /copy
DF
export STAGEFARM_HOME=$WORK/home3
"$SF" build --progress plain -o "type=local,dest=$c2.rootfs" "$c2" >"$c2.out" 2>"$c2.log"
check "FROM $REG/... pulls the base and builds" "0" "$?"
check_contains "the build says it pulled" "pulling $REG/third/app:3" "$(cat "$c2.log")"
check "the built image holds the base's file" "hello from the registry" "$(cat "$c2.rootfs/copy" 2>&1)"
out=$("$SF" pull "$REG/team/missing:1" 2>&1)
check "pulling a missing image fails" "1" "$?"
check_contains "the error says which image was not found" "manifest of $REG/team/missing:1" "$out"
c3=$(new_ctx missing-base)
printf 'FROM %s/team/missing:1\nRUN true\n' "$REG" >"$c3/Dockerfile"
out=$("$SF" build --progress plain "$c3" 2>&1)
check_contains "a build FROM a missing image names it" "image \"$REG/team/missing:1\" is not in the local image store, and pulling it failed" "$out"

# --- Docker pulls and runs the push --------------------------------------------------
if start_private_dockerd; then
  out=$($DOCKER pull "$REG/team/app:1" 2>&1)
  check_contains "docker pull accepts the push" "$digest" "$out"
  check "docker run of the pulled image" "hello from the registry
24 /msg" "$($DOCKER run --rm --network none "$REG/team/app:1" 2>&1)"
fi
export DOCKER_CONFIG=$WORK/no-credentials

# --- TLS (a test CA) and htpasswd basic auth ----------------------------------------
bash "$ROOT/scripts/make-test-ca" "$WORK/ca" server >/dev/null
python3 -W ignore -c "import crypt; print('alice:' + crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))" >"$WORK/htpasswd"
start_registry secure "auth:
  htpasswd:
    realm: stagefarm-test
    path: $WORK/htpasswd
http:
  addr: 127.0.0.1:0
  tls:
    certificate: $WORK/ca/server.crt
    key: $WORK/ca/server.key"
SREG=$ADDR
# (the second http: key replaces the first one)
[ -n "$SREG" ] || { tail -5 "$WORK/secure.log"; fail "registry" "the TLS registry did not start"; exit 1; }
export STAGEFARM_HOME=$WORK/home
mkdir -p "$STAGEFARM_HOME/certs.d/$SREG"
cp "$WORK/ca/ca.crt" "$STAGEFARM_HOME/certs.d/$SREG/ca.crt"
out=$("$SF" push "$REG/team/app:1" "$SREG/team/app:1" 2>&1)
check_contains "no credentials: a clear error" "asks for a user name and password" "$out"
mkdir -p "$WORK/creds"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$SREG" "$(printf alice:wrong | base64)" >"$WORK/creds/config.json"
out=$(DOCKER_CONFIG=$WORK/creds "$SF" push "$REG/team/app:1" "$SREG/team/app:1" 2>&1)
check_contains "wrong credentials: refused" "rejected the credentials" "$out"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$SREG" "$(printf alice:s3cret | base64)" >"$WORK/creds/config.json"
out=$(DOCKER_CONFIG=$WORK/creds "$SF" push "$REG/team/app:1" "$SREG/team/app:1" 2>&1)
check_contains "push over TLS with basic auth" "to https://$SREG" "$out"
check "skopeo (CA, credentials) reads it" "$digest" \
  "$(skopeo inspect --cert-dir "$STAGEFARM_HOME/certs.d/$SREG" --creds alice:s3cret "docker://$SREG/team/app:1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])' 2>&1)"
export STAGEFARM_HOME=$WORK/home4
mkdir -p "$STAGEFARM_HOME/certs.d/$SREG"
cp "$WORK/ca/ca.crt" "$STAGEFARM_HOME/certs.d/$SREG/ca.crt"
out=$(DOCKER_CONFIG=$WORK/creds "$SF" pull "$SREG/team/app:1" 2>&1)
check "pull over TLS with basic auth" "$digest" "$(printf '%s\n' "$out" | tail -1)"
# A CA that did not sign the server's certificate: refused even on loopback.
bash "$ROOT/scripts/make-test-ca" "$WORK/other-ca" >/dev/null
cp "$WORK/other-ca/ca.crt" "$STAGEFARM_HOME/certs.d/$SREG/ca.crt"
out=$(DOCKER_CONFIG=$WORK/creds "$SF" pull "$SREG/team/app:1" 2>&1)
check_contains "a certificate from another CA is refused" "cannot reach the registry $SREG" "$out"

# --- bearer tokens from a token service ---------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$WORK/token.key" -out "$WORK/token.crt" \
  -subj "/CN=token signer" 2>/dev/null
python3 "$(dirname "$0")/token_server.py" "$WORK/token.key" "$WORK/token.crt" test-issuer \
  test-registry alice s3cret >"$WORK/token.log" 2>&1 &
PIDS+=($!)
TOKENS=$(listen_addr "$WORK/token.log")
start_registry tokens "auth:
  token:
    realm: http://$TOKENS/token
    service: test-registry
    issuer: test-issuer
    rootcertbundle: $WORK/token.crt"
TREG=$ADDR
export STAGEFARM_HOME=$WORK/home
out=$("$SF" push "$REG/team/app:1" "$TREG/team/app:1" 2>&1)
check_contains "token registry, no credentials: refused by the token service" "token for repository:team/app:pull,push from http://$TOKENS/token: HTTP 401" "$out"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$TREG" "$(printf alice:s3cret | base64)" >"$WORK/creds/config.json"
out=$(DOCKER_CONFIG=$WORK/creds "$SF" push "$REG/team/app:1" "$TREG/team/app:1" 2>&1)
check_contains "push with a bearer token" "$TREG/team/app:1: $digest" "$out"
check "skopeo (credentials, the same token service) reads it" "$digest" \
  "$(skopeo inspect --tls-verify=false --creds alice:s3cret "docker://$TREG/team/app:1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])' 2>&1)"
export STAGEFARM_HOME=$WORK/home6
out=$(DOCKER_CONFIG=$WORK/creds "$SF" pull "$TREG/team/app:1" 2>&1)
check "pull with a bearer token" "$digest" "$(printf '%s\n' "$out" | tail -1)"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$TREG" "$(printf alice:wrong | base64)" >"$WORK/creds/config.json"
out=$(DOCKER_CONFIG=$WORK/creds "$SF" pull "$TREG/team/app:1" 2>&1)
check_contains "a wrong password gets no token" "HTTP 401" "$out"

# --- a registry that lies ------------------------------------------------------------
python3 "$(dirname "$0")/fake_registry.py" >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
FAKE=$(listen_addr "$WORK/fake.log")
good=$(sed -n 's/^manifest //p' "$WORK/fake.log")
export STAGEFARM_HOME=$WORK/home5
out=$("$SF" pull "$FAKE/bad/layer:1" 2>&1)
check_contains "a layer that does not match its digest is refused" "does not match its digest" "$out"
check "... and nothing is tagged" "" "$("$SF" image ls | tail -n +2)"
out=$("$SF" pull "$FAKE/bad/lies@$good" 2>&1)
check_contains "a manifest that is not the digest asked for is refused" "not the $good asked for" "$out"
out=$("$SF" pull "$FAKE/bad/list:1" 2>&1)
check_contains "a manifest list without linux/amd64 says what it has" "has no image for linux/amd64 (it has: linux/arm64)" "$out"
out=$("$SF" pull "$FAKE/bad/huge:1" 2>&1)
check_contains "an oversized manifest is refused" "the response is over" "$out"
check "the farm-less store is still whole after the refusals" "0" "$("$SF" image ls >/dev/null 2>&1; echo $?)"
exit $E2E_FAILED
