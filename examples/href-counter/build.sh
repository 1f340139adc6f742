#!/usr/bin/env bash
# The builder pattern without `docker create`/`docker cp`: build the SDK
# stage, take its binary out with --output type=local, then build the
# runtime image from a second Dockerfile around it.
# Usage: build.sh [STAGEFARM]   (default ./bin/stagefarm of the project)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SF=${1:-$here/../../bin/stagefarm}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$SF" build --progress quiet -f "$here/Dockerfile.build" -t href-counter:build "$here" >/dev/null
"$SF" build --progress quiet -f "$here/Dockerfile.build" -o "type=local,dest=$out/fs" "$here" >/dev/null
cp "$out/fs/usr/local/bin/href-counter" "$out/app"
cp "$here/Dockerfile.runtime" "$out/Dockerfile"
"$SF" build --progress quiet -t href-counter:builder-pattern "$out"
