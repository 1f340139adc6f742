#!/usr/bin/env bash
# End-to-end: provenance and SBOM attestations. A build with --provenance
# mode=max --sbom and a secret: the OCI output's index holds an
# attestation manifest for each platform's image (BuildKit's layout),
# `stagefarm attest show` prints SLSA v1 provenance naming the Dockerfile,
# args, secret ids and the base image by digest, and an SPDX SBOM listing
# busybox; the secret's value appears in no blob; the attestations survive
# a push to Debian's docker-registry and are fetched back by digest with
# skopeo; mode=min hides build-arg values; bad flags are refused.
# Usage: attest_test.sh BIN_DIR   (needs root, runc, busybox-static,
#        docker-registry, skopeo, jq)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
trap e2e_cleanup EXIT

c=$(new_ctx attest)
echo "hello" >"$c/msg"
secret_value="never-in-an-attestation-$$"
echo "$secret_value" >"$WORK/token"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
ARG GREETING=hi
COPY msg /msg
RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /token-size && echo "$GREETING" > /greeting
DF
"$SF" build --progress plain --provenance mode=max --sbom --build-arg GREETING=hello \
  --secret "id=token,src=$WORK/token" -t attested:1 -o "type=oci,dest=$WORK/attested.tar" \
  "$c" >"$c.out" 2>"$c.log"
check "a build with --provenance mode=max --sbom succeeds" "0" "$?"
raw=$(skopeo inspect --raw "oci-archive:$WORK/attested.tar" 2>&1)
check "the index holds the image and its attestation manifest" \
  "$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/') unknown:attestation-manifest" \
  "$(echo "$raw" | jq -r '[.manifests[] | if .platform.os == "unknown" then "unknown:" + .annotations["vnd.docker.reference.type"] else .platform.architecture end] | join(" ")')"
image_digest=$(echo "$raw" | jq -r '.manifests[0].digest')
check "the attestation manifest names the image it is about" "$image_digest" \
  "$(echo "$raw" | jq -r '.manifests[1].annotations["vnd.docker.reference.digest"]')"

prov=$("$SF" attest show --type provenance attested:1 2>&1)
check "provenance is an in-toto statement of SLSA v1" "https://in-toto.io/Statement/v1 https://slsa.dev/provenance/v1" \
  "$(echo "$prov" | jq -r '._type + " " + .predicateType')"
check "its subject is the image" "${image_digest#sha256:}" "$(echo "$prov" | jq -r '.subject[0].digest.sha256')"
check "it names the Dockerfile by digest" "$(sha256sum <"$c/Dockerfile" | cut -d' ' -f1)" \
  "$(echo "$prov" | jq -r '.predicate.buildDefinition.externalParameters.configSource.digest.sha256')"
check "mode=max records build-arg values" "hello" \
  "$(echo "$prov" | jq -r '.predicate.buildDefinition.externalParameters.request.args["build-arg:GREETING"]')"
check "secrets are named, never their values" "token" \
  "$(echo "$prov" | jq -r '.predicate.buildDefinition.externalParameters.request.secrets[0].id')"
busybox_manifest=$("$SF" image inspect busybox | jq -r '.manifest.digest')
check "the base image is a resolved dependency by digest" "${busybox_manifest#sha256:}" \
  "$(echo "$prov" | jq -r '.predicate.buildDefinition.resolvedDependencies[0].digest.sha256')"
check_contains "mode=max records the stages" "RUN --mount=type=secret" \
  "$(echo "$prov" | jq -c '.predicate.buildDefinition.internalParameters.buildConfig')"
check_contains "the context is named by its tree digest" "context:sha256:" \
  "$(echo "$prov" | jq -r '.predicate.buildDefinition.externalParameters.configSource.uri')"
sbom=$("$SF" attest show --type sbom attested:1 2>&1)
check "the SBOM is SPDX 2.3" "SPDX-2.3" "$(echo "$sbom" | jq -r '.predicate.spdxVersion')"
check_contains "the SBOM lists busybox" "pkg:generic/busybox@" \
  "$(echo "$sbom" | jq -r '.predicate.packages[].externalRefs[].referenceLocator')"
mkdir -p "$WORK/unpacked" && tar -C "$WORK/unpacked" -xf "$WORK/attested.tar"
check "the secret's value is in no blob of the output" "0" \
  "$(grep -rl -- "$secret_value" "$WORK/unpacked" 2>/dev/null | wc -l)"
check "the built image still runs" "hello" "$("$SF" run attested:1 cat /greeting 2>&1)"

out=$("$SF" build --progress quiet --provenance mode=min --build-arg GREETING=hello -t attested:min "$c" 2>&1)
check "mode=min hides build-arg values" "" \
  "$("$SF" attest show --type provenance attested:min | jq -r '.predicate.buildDefinition.externalParameters.request.args["build-arg:GREETING"]')"
out=$("$SF" attest show --type sbom attested:min 2>&1)
check_contains "asking for an SBOM that was not made says so" "has no sbom attestations" "$out"
out=$("$SF" build --progress quiet --provenance mode=full "$c" 2>&1)
check_contains "a bad provenance mode is refused" "mode must be min or max" "$out"
out=$("$SF" build --progress quiet --attest type=vex "$c" 2>&1)
check_contains "an unknown attestation type is refused" "type must be provenance or sbom" "$out"

# --- through a registry -----------------------------------------------------------
start_registry plain
REG=$ADDR
[ -n "$REG" ] || { fail "registry" "docker-registry did not start"; exit 1; }
export DOCKER_CONFIG=$WORK/no-credentials
"$SF" push attested:1 "$REG/team/attested:1" >"$WORK/push.out" 2>"$WORK/push.log"
check "push of the image with its attestations" "0" "$?"
raw=$(skopeo inspect --tls-verify=false --raw "docker://$REG/team/attested:1" 2>&1)
att=$(echo "$raw" | jq -r '.manifests[] | select(.annotations["vnd.docker.reference.type"] == "attestation-manifest") | .digest')
check_contains "the pushed index names the attestation manifest" "sha256:" "$att"
layers=$(skopeo inspect --tls-verify=false --raw "docker://$REG/team/attested@$att" 2>&1)
check "the registry serves the attestation manifest by digest" \
  "https://slsa.dev/provenance/v1 https://spdx.dev/Document" \
  "$(echo "$layers" | jq -r '[.layers[].annotations["in-toto.io/predicate-type"]] | join(" ")')"
# BuildKit's BUILDKIT_SBOM_SCAN_STAGE: an intermediate stage's packages.
c5=$(new_ctx scanstage)
printf 'FROM busybox AS tools\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nRUN echo made > /made\nFROM scratch\nCOPY --from=tools /made /made\n' >"$c5/Dockerfile"
"$SF" build --progress quiet --sbom -t scanstage:1 "$c5" >/dev/null 2>&1
check "a build with a scanned stage succeeds" "0" "$?"
sboms=$("$SF" attest show --type sbom scanstage:1 2>&1)
check "it has an SBOM for the image and one for the stage" "2" "$(echo "$sboms" | wc -l)"
check "the stage's SBOM is named for it and lists busybox" "busybox" \
  "$(echo "$sboms" | jq -r 'select(.predicate.name | endswith("stage tools")) | .predicate.packages[].name' | grep -x busybox)"
check "the image's own SBOM does not" "" \
  "$(echo "$sboms" | jq -r 'select(.predicate.name | endswith("stage tools") | not) | .predicate.packages[].name' | grep -x busybox)"
"$SF" build --progress quiet --sbom --build-arg BUILDKIT_SBOM_SCAN_STAGE=false -t scanoff:1 "$c5" >/dev/null 2>&1
check "--build-arg BUILDKIT_SBOM_SCAN_STAGE=false turns it off" "1" "$("$SF" attest show --type sbom scanoff:1 2>&1 | wc -l)"
exit $E2E_FAILED
