#!/usr/bin/env bash
# Differential test: every Dockerfile in tests/compat/cases is built by
# stagefarm and by BuildKit (Debian's dockerd 20.10, started here on a
# private socket and data root), from the same busybox base bytes and the
# same context. Both images are loaded into dockerd and exported as
# containers; every path's type, mode, owner, size, content and link
# target, and the config (Env, Cmd, Entrypoint, WorkingDir, User, Labels,
# ExposedPorts, Volumes, Healthcheck), must be equal unless docs/compatibility.md lists
# the difference (a line "- `CASE` `PATH-OR-FIELD`: reason").
# Usage: compat_test.sh BIN_DIR   (needs root, runc, busybox-static, docker.io, jq)
. "$(dirname "$0")/../e2e/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
e2e_setup "$1"
trap 'stop_private_dockerd;
      grep " $WORK/" /proc/self/mountinfo | awk "{print \$5}" | sort -r | xargs -r -n1 umount -l 2>/dev/null; rm -rf "$WORK"' EXIT
start_private_dockerd >/dev/null || { tail -5 "$WORK/dockerd.log"; echo "FAIL setup: dockerd did not start"; exit 1; }
export DOCKER_BUILDKIT=1

# The same base bytes for both builders.
"$SF" image export busybox --format docker -o "$WORK/busybox.tar"
$DOCKER load -q -i "$WORK/busybox.tar" >/dev/null || { echo "FAIL setup: docker load busybox"; exit 1; }

ALLOWED=$ROOT/docs/compatibility.md
allowed() { # CASE ITEM
  grep -qF -- "- \`$1\` \`$2\`" "$ALLOWED" 2>/dev/null
}

make_context() { # DIR
  local c=$1
  mkdir -p "$c/dir/sub"
  echo a >"$c/a.txt"; echo b >"$c/b.txt"; echo f >"$c/dir/sub/f"; echo g >"$c/dir/g"
  chmod 0644 "$c/a.txt" "$c/b.txt" "$c/dir/sub/f" "$c/dir/g"
  ln -s a.txt "$c/link-to-a"
  tar -C "$c" --owner=0 --group=0 -czf "$WORK/ctx.tar.gz" dir a.txt && mv "$WORK/ctx.tar.gz" "$c/"
}

# listing IMAGE DIR: one line per path: path type mode uid gid size target sha.
listing() {
  local image=$1 dir=$2 id
  id=$($DOCKER create "$image" /bin/true 2>/dev/null) || return 1
  mkdir -p "$dir"
  $DOCKER export "$id" | tar -C "$dir" --numeric-owner -xpf - 2>/dev/null
  $DOCKER rm "$id" >/dev/null
  (cd "$dir" && find . -mindepth 1 ! -path './proc/*' ! -path './sys/*' ! -path './dev/*' \
      -printf '%P %y %m %U %G %s %l\n' | sort | while read -r p y m u g s l; do
    case $y in
      f) echo "$p f $m $u:$g $s $(sha256sum <"$p" | cut -c1-16)" ;;
      l) echo "$p l $l" ;;
      *) echo "$p $y $m $u:$g" ;;
    esac
  done)
}

config() { # IMAGE
  $DOCKER image inspect "$1" | jq -S -c '.[0].Config | {Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes, Healthcheck}'
}

for case_dir in "$ROOT"/tests/compat/cases/*/; do
  name=$(basename "$case_dir")
  ctx=$WORK/ctx-$name
  make_context "$ctx"
  cp "$case_dir/Dockerfile" "$ctx/Dockerfile"
  [ -f "$case_dir/dockerignore" ] && cp "$case_dir/dockerignore" "$ctx/.dockerignore"
  if ! "$SF" build --progress quiet -t "compat-$name:sf" -o "type=docker,dest=$WORK/$name.tar" "$ctx" >"$WORK/$name.sf.log" 2>&1; then
    fail "compat $name" "stagefarm build failed: $(tail -2 "$WORK/$name.sf.log" | tr '\n' ' ')"; continue
  fi
  $DOCKER load -q -i "$WORK/$name.tar" >/dev/null
  if ! $DOCKER build -q --network host -t "compat-$name:bk" "$ctx" >"$WORK/$name.bk.log" 2>&1; then
    fail "compat $name" "BuildKit build failed: $(tail -2 "$WORK/$name.bk.log" | tr '\n' ' ')"; continue
  fi
  listing "compat-$name:sf" "$WORK/fs-$name-sf" >"$WORK/$name.sf.list"
  listing "compat-$name:bk" "$WORK/fs-$name-bk" >"$WORK/$name.bk.list"
  diffs=""
  while read -r path; do
    allowed "$name" "$path" || diffs="$diffs $path"
  done < <(diff <(cat "$WORK/$name.sf.list") <(cat "$WORK/$name.bk.list") | grep -E '^[<>]' | awk '{print $2}' | sort -u)
  a=$(config "compat-$name:sf"); b=$(config "compat-$name:bk")
  for field in Env Cmd Entrypoint WorkingDir User Labels ExposedPorts Volumes Healthcheck; do
    if [ "$(jq -c ".$field" <<<"$a")" != "$(jq -c ".$field" <<<"$b")" ]; then
      allowed "$name" "$field" || diffs="$diffs config.$field"
    fi
  done
  if [ -z "$diffs" ]; then
    pass "compat $name: files and config identical to BuildKit's ($(wc -l <"$WORK/$name.sf.list") paths)"
  else
    fail "compat $name" "differs from BuildKit in:$diffs"
    diff "$WORK/$name.sf.list" "$WORK/$name.bk.list" | grep -E '^[<>]' | head -6 | sed 's/^/    /'
    for field in Env Cmd Entrypoint WorkingDir User Labels ExposedPorts Volumes Healthcheck; do
      [ "$(jq -c ".$field" <<<"$a")" = "$(jq -c ".$field" <<<"$b")" ] ||
        echo "    $field: stagefarm $(jq -c ".$field" <<<"$a") BuildKit $(jq -c ".$field" <<<"$b")"
    done
  fi
done
exit $E2E_FAILED
