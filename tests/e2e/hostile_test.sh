#!/usr/bin/env bash
# End-to-end: inputs built to escape or exhaust. Contexts with symlinks out
# of the context, `..` sources, archives with `..`, absolute and
# symlink-traversing entries, device and setuid entries, a tar bomb, a
# million tiny files, a 10 GB sparse file, overlong paths, invalid UTF-8
# names and a Dockerfile of deeply nested expansions. Each gets a clear
# error or a safe result; nothing outside the build's sandbox changes; and
# a farm that was handed the worst of them keeps serving other builds.
# Usage: hostile_test.sh BIN_DIR   (needs root, runc, busybox-static, python3)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
cleanup_hostile() {
  rm -f /hostile-escape-abs /hostile-escape-link
  e2e_cleanup
}
trap cleanup_hostile EXIT
echo HOSTSECRET >"$WORK/host-secret"
# build CTX [flags...]: plain build to $CTX.out (type=local); output in $CTX.log
hbuild() {
  local ctx=$1; shift
  rm -rf "$ctx.out"
  "$SF" build --progress plain -o "type=local,dest=$ctx.out" "$@" "$ctx" >"$ctx.log" 2>&1
}
nothing_escaped() { # NAME: no file the archives aimed outside exists
  local found=""
  for p in "$WORK/hostile-escape-dotdot" /hostile-escape-abs /hostile-escape-link "$WORK/escape-via-link"; do
    [ -e "$p" ] && found="$found $p"
  done
  check "$1: nothing written outside the sandbox" "" "$found"
}

# --- symlinks out of the context, and .. sources -------------------------------------
c=$(new_ctx links)
ln -s "$WORK/host-secret" "$c/abs-link"
ln -s ../host-secret "$c/rel-link"
printf 'FROM busybox\nCOPY abs-link /a\n' >"$c/Dockerfile"
hbuild "$c"
rc=$?
check "COPY of an absolute symlink out of the context: no host file in the image" "" \
  "$(grep -rl HOSTSECRET "$c.out" 2>/dev/null)"
[ $rc -ne 0 ] && check_contains "... or a clear error" "abs-link" "$(cat "$c.log")"
printf 'FROM busybox\nCOPY rel-link /b\n' >"$c/Dockerfile"
hbuild "$c"
rc=$?
check "COPY of a ../ symlink out of the context: no host file in the image" "" \
  "$(grep -rl HOSTSECRET "$c.out" 2>/dev/null)"
printf 'FROM busybox\nCOPY . /ctx\n' >"$c/Dockerfile"
hbuild "$c"
check "COPY . keeps the links as links" "$WORK/host-secret" "$(readlink "$c.out/ctx/abs-link" 2>&1)"
check "... and copies no host file" "" "$(grep -rl HOSTSECRET "$c.out" 2>/dev/null)"
printf 'FROM busybox\nCOPY ../host-secret /x\n' >"$c/Dockerfile"
hbuild "$c"
check "COPY ../file fails" "1" "$?"
check_contains "... naming the Dockerfile line" "Dockerfile:2" "$(cat "$c.log")"

# --- hostile archives ------------------------------------------------------------------
c=$(new_ctx archives)
python3 - "$c" "$WORK" <<'PY'
import io, sys, tarfile
ctx, work = sys.argv[1], sys.argv[2]
def add(t, name, data=b"x", **kw):
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if info.type == tarfile.REGTYPE:
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    else:
        t.addfile(info)
with tarfile.open(ctx + "/dotdot.tar", "w") as t:
    add(t, "ok.txt", b"fine")
    add(t, "../../../../../../../.." + work + "/hostile-escape-dotdot")
with tarfile.open(ctx + "/abs.tar", "w") as t:
    add(t, "/hostile-escape-abs", b"abs")
with tarfile.open(ctx + "/link.tar", "w") as t:
    add(t, "lnk", type=tarfile.SYMTYPE, linkname="/")
    add(t, "lnk/hostile-escape-link", b"through a link")
    add(t, "wlnk", type=tarfile.SYMTYPE, linkname=work)
    add(t, "wlnk/escape-via-link", b"through a link")
with tarfile.open(ctx + "/special.tar", "w") as t:
    add(t, "dev-null-copy", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
    add(t, "suid-shell", b"#!/bin/sh\necho hi\n", mode=0o4755)
PY
for a in dotdot abs link; do
  printf 'FROM busybox\nADD %s.tar /unpacked/\n' "$a" >"$c/Dockerfile"
  hbuild "$c"
  rc=$?
  if [ $rc -eq 0 ]; then
    pass "ADD $a.tar: built (entries kept inside the image)"
  else
    check_contains "ADD $a.tar: a clear error naming the entry" "archive entry" "$(cat "$c.log")"
  fi
  nothing_escaped "ADD $a.tar"
done
printf 'FROM busybox\nADD special.tar /special/\nRUN ls -ln /special\n' >"$c/Dockerfile"
hbuild "$c"
check "ADD of a tar with a device and a setuid file builds" "0" "$?"
check "... the device node stays inside the image's root" "c" \
  "$(stat -c %F "$c.out/special/dev-null-copy" 2>/dev/null | cut -c1)"
nothing_escaped "ADD special.tar"

# --- a tar bomb ------------------------------------------------------------------------------
c=$(new_ctx bomb)
python3 - "$c/bomb.tar.gz" <<'PY'
import gzip, sys, tarfile
# 1 GiB of zeros in ~1 MiB.
class Zeros:
    def __init__(self, n): self.n = n
    def read(self, k=-1):
        k = self.n if k < 0 else min(k, self.n)
        self.n -= k
        return b"\0" * k
with gzip.open(sys.argv[1], "wb", compresslevel=9) as g, tarfile.open(fileobj=g, mode="w") as t:
    info = tarfile.TarInfo("zeros")
    info.size = 1 << 30
    t.addfile(info, Zeros(1 << 30))
PY
printf 'FROM busybox\nADD bomb.tar.gz /bomb/\n' >"$c/Dockerfile"
df_before=$(df --output=avail -k "$STAGEFARM_HOME" 2>/dev/null | tail -1)
STAGEFARM_MAX_UNPACK_BYTES=$((64 << 20)) hbuild "$c"
check "a tar bomb over the unpack limit fails" "1" "$?"
check_contains "... saying so, with the Dockerfile line" "Dockerfile:2" "$(cat "$c.log")"
check_contains "... and the limit" "STAGEFARM_MAX_UNPACK_BYTES" "$(cat "$c.log")"
printf 'FROM busybox\nRUN echo after the bomb > /after\n' >"$c/Dockerfile"
hbuild "$c"
check "the next build works" "after the bomb" "$(cat "$c.out/after" 2>&1)"
# The same bomb as an image to import: the same extractor, the same bound.
STAGEFARM_MAX_UNPACK_BYTES=$((64 << 20)) "$SF" image import "$c/bomb.tar.gz" -t bomb >"$c.import" 2>&1
check "image import of a tar bomb over the unpack limit fails" "1" "$?"
check_contains "... naming the limit" "STAGEFARM_MAX_UNPACK_BYTES" "$(cat "$c.import")"
check "... and tags nothing" "" "$("$SF" image ls 2>/dev/null | grep -w bomb)"

# --- a million tiny files --------------------------------------------------------------
c=$(new_ctx many)
python3 - "$c/files" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(1000):
    p = os.path.join(root, "%03d" % d)
    os.makedirs(p)
    for f in range(1000):
        with open(os.path.join(p, "%03d" % f), "w") as fh:
            fh.write("%d" % f)
PY
printf 'FROM busybox\nCOPY files /files\nRUN find /files -type f | wc -l > /count\n' >"$c/Dockerfile"
t0=$(date +%s)
"$SF" build --progress plain -t many:1 "$c" >"$c.log" 2>&1
rc=$?
t1=$(date +%s)
echo "sizes: a million tiny files: build took $((t1 - t0)) s"
check "COPY of a million tiny files builds" "0" "$rc"
check "... all of them" "1000000" "$("$SF" run many:1 cat /count 2>&1 | tr -d ' ')"
rm -rf "$c"

# --- a 10 GB sparse file ---------------------------------------------------------------------
c=$(new_ctx sparse)
truncate -s 10G "$c/sparse"
echo end >>"$c/sparse"
printf 'FROM busybox\nCOPY sparse /sparse\nRUN tail -c 4 /sparse > /tail\n' >"$c/Dockerfile"
t0=$(date +%s)
hbuild "$c"
rc=$?
t1=$(date +%s)
echo "sizes: a 10 GB sparse file: build took $((t1 - t0)) s"
check "COPY of a 10 GB sparse file builds" "0" "$rc"
check "... with its content" "end" "$(cat "$c.out/tail" 2>&1)"
rm -rf "$c" "$c.out"

# --- overlong paths and names, invalid UTF-8 ---------------------------------------
c=$(new_ctx names)
long=$(printf 'd%.0s' $(seq 300))
printf 'FROM busybox\nCOPY Dockerfile /%s\n' "$long" >"$c/Dockerfile"
hbuild "$c"
check "a 300-byte file name fails" "yes" "$([ $? -ne 0 ] && echo yes || echo no)"
check_contains "... clearly, with the line" "Dockerfile:2" "$(cat "$c.log")"
deep=$(printf 'abcdefghij/%.0s' $(seq 500))
printf 'FROM busybox\nWORKDIR /%s\nRUN pwd\n' "$deep" >"$c/Dockerfile"
hbuild "$c"
rc=$?
if [ $rc -eq 0 ]; then
  pass "a 5,500-byte WORKDIR builds"
else
  check_contains "a 5,500-byte WORKDIR: an error with the line" "error: Dockerfile:2: " "$(cat "$c.log")"
  check_contains "... saying why" "File name too long" "$(cat "$c.log")"
fi
c=$(new_ctx utf8)
printf 'bad name' >"$c/$(printf 'caf\xe9-\xff\xfe')"
printf 'FROM busybox\nCOPY . /in/\n' >"$c/Dockerfile"
hbuild "$c"
check "a name that is not UTF-8 builds" "0" "$?"
check "... and keeps its bytes" "bad name" "$(cat "$c.out/in/$(printf 'caf\xe9-\xff\xfe')" 2>&1)"

# --- a Dockerfile of nested expansions --------------------------------------------------
c=$(new_ctx nested)
nest='x'
for _ in $(seq 20000); do nest="\${a:-$nest}"; done
printf 'FROM busybox\nARG a\nENV v=%s\n' "$nest" >"$c/Dockerfile"
hbuild "$c"
rc=$?
check "20,000 nested expansions do not crash the parser" "yes" "$([ $rc -le 2 ] && echo yes || echo "no (exit $rc)")"
[ $rc -ne 0 ] && check_contains "... a clear error with the line" "Dockerfile:3: expansions nested deeper" "$(cat "$c.log")"

# --- the farm keeps serving ---------------------------------------------------------------
"$BIN/stagefarm-cas" --listen 127.0.0.1:0 --data "$WORK/cas" >"$WORK/cas.log" 2>&1 &
PIDS+=($!)
CAS=$(listen_addr "$WORK/cas.log")
"$BIN/stagefarm-scheduler" --listen 127.0.0.1:0 --cas "$CAS" >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
SCHED=$(listen_addr "$WORK/scheduler.log")
STAGEFARM_MAX_UNPACK_BYTES=$((64 << 20)) "$BIN/stagefarm-worker" --scheduler "$SCHED" --cas "$CAS" \
  --work "$WORK/w1" --name w1 >"$WORK/w1.log" 2>&1 &
PIDS+=($!)
export STAGEFARM_HOME=$WORK/farm-client STAGEFARM_SERVER=$SCHED
"$SF" image import "$WORK/busybox" -t busybox >/dev/null 2>&1
cp "$WORK/ctx-archives/"*.tar "$WORK/ctx-bomb/bomb.tar.gz" "$WORK/ctx-links/" 2>/dev/null
c=$WORK/ctx-links
for df in 'ADD dotdot.tar /u/' 'ADD link.tar /u/' 'ADD bomb.tar.gz /u/' 'COPY abs-link /a'; do
  printf 'FROM busybox\n%s\n' "$df" >"$c/Dockerfile"
  "$SF" build --progress plain "$c" >"$c.log" 2>&1
  echo "farm: $df -> exit $?"
  case "$df" in
    *dotdot*) check_contains "farm: ADD dotdot.tar: a clear error" "archive entry" "$(cat "$c.log")" ;;
    *bomb*) check_contains "farm: the tar bomb stops at the worker's limit" "STAGEFARM_MAX_UNPACK_BYTES" "$(cat "$c.log")" ;;
  esac
done
nothing_escaped "the farm's worker"
check "the worker is still running" "yes" "$(kill -0 "${PIDS[2]}" 2>/dev/null && echo yes || echo no)"
c=$(new_ctx after)
printf 'FROM busybox\nRUN echo still serving > /s\n' >"$c/Dockerfile"
"$SF" build --progress plain -o "type=local,dest=$c.out" "$c" >"$c.log" 2>&1
check "the farm still builds after the hostile inputs" "still serving" "$(cat "$c.out/s" 2>&1)"
exit $E2E_FAILED
