#!/usr/bin/env bash
# End-to-end: `stagefarm build` on the embedded engine with runc and
# overlayfs, checking files, owners, modes and image config of the results
# for the execution cases of ../shared/spec/dockerfile-semantics.md.
# Usage: build_test.sh BIN_DIR   (needs root, runc, busybox-static, jq)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"

# --- B: ARG and ENV as RUN sees them --------------------------------------
c=$(new_ctx args)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
ARG A=one
ENV B=${A}-env
ARG C
RUN echo "$A $B ${C:-unset}" > /args && env | sort > /env
DF
build_local "$c" --build-arg C=given
check "B: ARG/ENV/build-arg in RUN" "one one-env given" "$(cat "$c.out/args" 2>/dev/null)"
check_contains "B: RUN env has PATH" "PATH=/usr/local/sbin" "$(cat "$c.out/env" 2>/dev/null)"

# --- C1: wildcards, directories and trailing slashes ------------------------
c=$(new_ctx wild)
mkdir -p "$c/sub/dir1/dir2"
echo foo >"$c/foo.go"; echo bar >"$c/bar.go"; echo f >"$c/sub/dir1/dir2/foo"
cat >"$c/Dockerfile" <<'DF'
FROM scratch
COPY *.go /gofiles/
COPY f*.go foo2.go
COPY sub/* /subdest/
COPY sub/*/dir2/foo /subdest2/
COPY sub/*/dir2/foo /subdest3/bar
COPY sub/dir1/ subdest4
COPY sub/dir1/. subdest5
COPY sub/dir1 subdest6
COPY foo.go nomatch* /c2/
DF
build_local "$c"
o=$c.out
r=""
for p in gofiles/foo.go gofiles/bar.go foo2.go subdest/dir2/foo subdest2/foo subdest3/bar \
         subdest4/dir2/foo subdest5/dir2/foo subdest6/dir2/foo c2/foo.go; do
  [ -f "$o/$p" ] && r="$r ok" || r="$r missing:$p"
done
check "C1/C2: COPY wildcard and directory rules" " ok ok ok ok ok ok ok ok ok ok" "$r"
check "C1: a matched directory's contents are copied" "no" "$([ -e "$o/subdest/dir1" ] && echo yes || echo no)"

# --- C3/C4: relative destinations follow WORKDIR ---------------------------
c=$(new_ctx rel)
echo x >"$c/foo"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
WORKDIR /test1
WORKDIR test2
COPY foo ./
ADD foo ./bar/baz
COPY foo ./bar/baz2
WORKDIR ..
COPY foo ./
COPY foo /test3/
WORKDIR /test5/test6
COPY foo ../
ENV empty=""
WORKDIR /var/www
COPY foo $empty
DF
build_local "$c"
r=""
for p in test1/test2/foo test1/test2/bar/baz test1/test2/bar/baz2 test1/foo test3/foo test5/foo var/www/foo; do
  [ -f "$c.out/$p" ] && r="$r ok" || r="$r missing:$p"
done
check "C3/C4: relative COPY destinations" " ok ok ok ok ok ok ok" "$r"

# --- C6/C7/C8: ownership and modes -----------------------------------------
c=$(new_ctx own)
echo foo >"$c/foo"; mkdir -p "$c/bar/sub"
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS source
RUN mkdir -p /dir/subdir && echo n > /dir/subdir/nestedfile && echo f > /file && \
    chown 100:200 /file /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nestedfile
FROM busybox
ENV owner 1000
ARG group
COPY --chown=daemon foo /
COPY --chown=1000:nobody bar /baz
COPY --chown=${owner}:${group} foo /foobis
COPY --from=source /file .
COPY --from=source /dir /dir
COPY --chmod=0644 foo /m644
COPY --chmod=777 foo /parent/foo
COPY --chmod=770 foo /parent/sub/foo
DF
build_local "$c" --build-arg group=nobody
o=$c.out
st() { stat -c "$2" "$o/$1" 2>/dev/null; }
check "C6: --chown=user takes the user's group" "1:1" "$(st foo %u:%g)"
check "C6: --chown on a directory's contents" "1000:65534" "$(st baz/sub %u:%g)"
check "C6: --chown expands ENV and ARG" "1000:65534" "$(st foobis %u:%g)"
check "C7: ownership kept from a stage" "100:200" "$(st file %u:%g)"
check "C7: the new target directory is root's" "0:0" "$(st dir %u:%g)"
check "C7: nested ownership kept" "101:201 102:202" "$(st dir/subdir %u:%g) $(st dir/subdir/nestedfile %u:%g)"
check "C8: --chmod modes incl. created parents" "644 777 777 770" \
  "$(st m644 %a) $(st parent/foo %a) $(st parent %a) $(st parent/sub %a)"
check "C: context files are root's" "0:0" "$(st m644 %u:%g)"

# --- C8: invalid chmod is a clear error -------------------------------------
c=$(new_ctx badchmod)
echo x >"$c/foo"
printf 'FROM scratch\nCOPY --chmod=64a foo /\n' >"$c/Dockerfile"
build_local "$c"; rc=$?
check_contains "C8: invalid --chmod error" "invalid chmod parameter: '64a'" "$(cat "$c.log")"
check_contains "C8: error names file:line" "Dockerfile:2" "$(cat "$c.log")"

# --- C8: symbolic --chmod -------------------------------------------------------------
c=$(new_ctx symchmod)
echo f >"$c/f"; chmod 664 "$c/f"; mkdir -p "$c/d/sub"; echo g >"$c/d/g"; echo x >"$c/d/x"
chmod 700 "$c/d/sub"; chmod 600 "$c/d/g"; chmod 700 "$c/d/x"
printf 'FROM scratch\nCOPY --chmod=go-w f /s1\nCOPY --chmod=u=rw,g=r,o=r f /s2\nCOPY --chmod=a+X d /d/\n' >"$c/Dockerfile"
build_local "$c"
check "C8: symbolic --chmod on files" "644 644" "$(stat -c %a "$c.out/s1" "$c.out/s2" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
check "C8: a+X adds x to directories and executables only" "711 600 711" \
  "$(stat -c %a "$c.out/d/sub" "$c.out/d/g" "$c.out/d/x" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"

# --- C9/C10: symlinks ---------------------------------------------------------
c=$(new_ctx links)
echo target >"$c/bar"; ln -s bar "$c/foo"; mkdir "$c/sub"; echo s >"$c/sub/subfile"
ln -s subfile "$c/sub/l0"; ln -s sub "$c/link"; ln -s ../../../../etc/passwd "$c/escape"
mkdir -p "$c/t/tmp"; ln -s ../tmp/symlink-target "$c/t/symlink"; tar -C "$c/t" -cf "$c/t.tar" symlink
cat >"$c/Dockerfile" <<'DF'
FROM busybox
COPY foo /
COPY sub/l* /alllinks/
COPY link/subfile /through
ADD t.tar /
COPY foo /symlink/
DF
build_local "$c"
o=$c.out
check "C9: a symlink source is followed" "target" "$(cat "$o/foo" 2>/dev/null)"
check "C9: matched links become files" "regular file" "$(stat -c %F "$o/alllinks/l0" 2>/dev/null)"
check "C9: a symlinked directory in the path is followed" "s" "$(cat "$o/through" 2>/dev/null)"
check "C10: destination symlinks resolve inside the rootfs" "target" "$(cat "$o/tmp/symlink-target/foo" 2>/dev/null)"
printf 'FROM busybox\nCOPY escape /escape\n' >"$c/Dockerfile"
build_local "$c"
check_contains "C9: a link out of the context resolves inside it" '"/escape": not found' "$(cat "$c.log")"
check "C9: nothing from outside the context is copied" "no" "$(grep -qs '^root:' "$c.out/escape" && echo yes || echo no)"

# --- C12: ADD of archives ---------------------------------------------------
c=$(new_ctx add)
mkdir -p "$c/a"; echo inside >"$c/a/foo"; tar -C "$c/a" -czf "$c/t.tar.gz" foo
cat >"$c/Dockerfile" <<'DF'
FROM scratch
ADD t.tar.gz /x/
COPY t.tar.gz /y/
ADD --chown=100:200 t.tar.gz /z/
DF
build_local "$c"
check "C12: ADD unpacks a local archive" "inside" "$(cat "$c.out/x/foo" 2>/dev/null)"
check "C12: COPY keeps the archive" "yes" "$([ -f "$c.out/y/t.tar.gz" ] && echo yes || echo no)"
check "C12: ADD --chown applies to unpacked files" "100:200" "$(stat -c %u:%g "$c.out/z/foo" 2>/dev/null)"

# --- D9/E: USER and WORKDIR ---------------------------------------------------
c=$(new_ctx user)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN echo 'dockerio:x:1001:1001::/home:/bin/sh' >> /etc/passwd && \
    echo 'dockerio:x:1001:' >> /etc/group && echo 'supp:x:1002:dockerio' >> /etc/group
RUN id > /root-id
USER dockerio
WORKDIR /mydir
RUN id > /mydir/id1
USER 1234
RUN id > /tmp/id2
USER daemon
RUN id > /tmp/id3
USER 1042:1043
RUN id -u > /tmp/id4 && id -g >> /tmp/id4
USER nobody
DF
build_local "$c"
o=$c.out
check "D9: root is 0:0 with wheel" "uid=0(root) gid=0(root) groups=0(root),10(wheel)" "$(cat "$o/root-id" 2>/dev/null)"
check "D9: user by name with supplementary groups" "uid=1001(dockerio) gid=1001(dockerio) groups=1001(dockerio),1002(supp)" "$(cat "$o/mydir/id1" 2>/dev/null)"
check "D9: unknown numeric uid gets gid 0" "uid=1234 gid=0(root) groups=0(root)" "$(cat "$o/tmp/id2" 2>/dev/null)"
check "D9: daemon" "uid=1(daemon) gid=1(daemon) groups=1(daemon)" "$(cat "$o/tmp/id3" 2>/dev/null)"
check "D9: unknown uid:gid" "1042 1043" "$(tr '\n' ' ' <"$o/tmp/id4" 2>/dev/null | sed 's/ $//')"
check "E2: WORKDIR after USER is the user's" "1001:1001" "$(stat -c %u:%g "$o/mydir" 2>/dev/null)"

# --- H: heredocs -------------------------------------------------------------
c=$(new_ctx heredoc)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS build
ARG name=world
WORKDIR /dest
COPY <<EOF single
Hello ${name}!
EOF
COPY <<'EOF' raw
Hello ${name}!
EOF
COPY <<EOF <<EOF2 double/
first file
EOF
second file
EOF2
RUN <<EOF
echo "i am" >> /dest/run
whoami >> /dest/run
EOF
RUN <<-EOF sh > /dest/indented
	echo bar
	EOF
FROM scratch
COPY --from=build /dest /
DF
build_local "$c" --trace "$c.trace.json"
o=$c.out
# The timeline of the embedded engine's build: both stages on this machine,
# every step of each, the second after the first.
check "build --trace on this machine: stages, their steps, in order" \
  "local: stage build (6 steps) < stage stage-1 (1 steps)" \
  "$(python3 - "$c.trace.json" <<'PY' 2>&1
import json, sys
t = json.load(open(sys.argv[1]))["traceEvents"]
procs = {e["args"]["name"] for e in t if e.get("ph") == "M" and e["name"] == "process_name"}
stages = sorted((e for e in t if e.get("ph") == "X" and e["cat"] == "stage"), key=lambda e: e["ts"])
def steps(s):
    return sum(1 for e in t if e.get("ph") == "X" and e["cat"] != "stage" and e["args"]["stage"] == s["name"][6:])
print(",".join(sorted(procs)) + ": " + " < ".join("%s (%d steps)" % (s["name"], steps(s)) for s in stages))
PY
)"
# This machine's history: the build just made is listed, replayed, traced
# and served by `stagefarm ui`.
hid=$("$SF" builds ls 2>/dev/null | awk 'NR==2{print $1}')
check_contains "builds ls without a farm lists this machine's last build" "succeeded" \
  "$("$SF" builds ls 2>&1 | sed -n 2p)"
check_contains "logs BUILD replays a build from the history" "RUN <<-EOF sh > /dest/indented" \
  "$("$SF" logs "$hid" 2>&1)"
check_contains "builds trace BUILD without a farm" '"traceEvents"' "$("$SF" builds trace "$hid" 2>&1)"
# A build, then the same after its copied file changed: the view says why
# the COPY ran, and its key opens its entry in the action cache.
w=$(new_ctx why)
printf 'FROM scratch\nCOPY a.txt /a.txt\n' >"$w/Dockerfile"
echo one >"$w/a.txt"
build_local "$w"
echo two >"$w/a.txt"
build_local "$w"
wid=$("$SF" builds ls 2>/dev/null | awk 'NR==2{print $1}')
"$SF" ui --listen 127.0.0.1:0 >"$WORK/ui.log" 2>&1 &
ui_pid=$!
for _ in $(seq 50); do grep -q ' at http' "$WORK/ui.log" && break; sleep 0.1; done
ui_url=$(grep -oE 'http://[0-9.:]+/' "$WORK/ui.log" | head -1)
check_contains "stagefarm ui serves this machine's builds" "\"id\":\"$hid\"" \
  "$(curl -s "${ui_url}api/v1/builds" 2>&1)"
check_contains "... and a build's steps" '"instruction":"WORKDIR /dest"' \
  "$(curl -s "${ui_url}api/v1/builds/$hid" 2>&1)"
why=$(curl -s "${ui_url}api/v1/builds/$wid" 2>&1)
check "stagefarm ui: why a step ran (its key's parts that changed), its line and layer" \
  "content 2 True" "$(python3 -c '
import json, sys
s = json.load(sys.stdin)["stages"][0]["steps"][0]
print(" ".join(s.get("miss_parts", [])), s.get("line"), s.get("layer_bytes", 0) > 0)' <<<"$why" 2>&1)"
wkey=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["stages"][0]["steps"][0]["key"][7:])' <<<"$why" 2>/dev/null)
check_contains "... and its cache entry by its key (an action digest)" '"path":"step.json"' \
  "$(curl -s "${ui_url}api/v1/actions/$wkey/32" 2>&1)"
kill -INT "$ui_pid"
wait "$ui_pid"
check "stagefarm ui stops on Ctrl-C" "0" "$?"
check "H3: COPY heredoc expands ARG" "Hello world!" "$(cat "$o/single" 2>/dev/null)"
check "H3: quoted heredoc stays raw" 'Hello ${name}!' "$(cat "$o/raw" 2>/dev/null)"
check "H1: heredoc names are file names in a directory" "first file|second file" "$(cat "$o/double/EOF" 2>/dev/null)|$(cat "$o/double/EOF2" 2>/dev/null)"
check "H5: RUN heredoc runs as a script" "i am root" "$(tr '\n' ' ' <"$o/run" 2>/dev/null | sed 's/ $//')"
check "H4: <<- strips tabs and feeds the command" "bar" "$(cat "$o/indented" 2>/dev/null)"

# --- G1: ONBUILD -------------------------------------------------------------
c=$(new_ctx onbuild)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS base
ONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo
FROM base AS mid
RUN cp /out/foo /out/bar
FROM mid AS child
RUN cp /out/foo /out/baz
FROM scratch
COPY --from=child /out/ /
DF
build_local "$c"
check "G1: a trigger runs in the stage built FROM it" "11" "$(cat "$c.out/bar" 2>/dev/null)"
check "G4: a trigger runs once" "11" "$(cat "$c.out/baz" 2>/dev/null)"

# --- whiteouts and hard links in layers -----------------------------------------
c=$(new_ctx whiteout)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN mkdir -p /d/keep /d/drop && echo a > /d/keep/a && echo b > /d/drop/b && echo f > /gone
RUN rm -rf /d/drop /gone && ln /d/keep/a /d/keep/hard
DF
"$SF" build --progress quiet -t e2e-whiteout -o "type=oci,dest=$c.tar" -o "type=local,dest=$c.out" "$c" >"$c.log" 2>&1
check "whiteouts: deleted paths are gone" "no no" "$([ -e "$c.out/gone" ] && echo yes || echo no) $([ -e "$c.out/d/drop" ] && echo yes || echo no)"
mkdir -p "$c.oci" && tar -C "$c.oci" -xf "$c.tar" 2>/dev/null
m=$(jq -r '.manifests[0].digest' "$c.oci/index.json" 2>/dev/null | sed 's/sha256://')
last=$(jq -r '.layers[-1].digest' "$c.oci/blobs/sha256/$m" 2>/dev/null | sed 's/sha256://')
entries=$(tar -tvzf "$c.oci/blobs/sha256/$last" 2>/dev/null)
check_contains "whiteouts: the layer has .wh. entries" "d/.wh.drop" "$entries"
check_contains "whiteouts: a file deletion" ".wh.gone" "$entries"
check_contains "hard links: kept as links in the layer" "d/keep/hard link to d/keep/a" "$entries"
check "hard links: one inode in the result" "2" "$(stat -c %h "$c.out/d/keep/a" 2>/dev/null)"

# --- RUN mounts and network ------------------------------------------------------
c=$(new_ctx mounts)
echo ctxfile >"$c/input"; echo s3cr3t-value >"$WORK/secret.txt"
mkdir -p "$c/dir"; echo orig >"$c/dir/f"; echo doomed >"$c/dir/gone"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
ARG n=1
RUN --mount=type=cache,target=/cache echo "run $n" >> /cache/log && cat /cache/log > /cachelog
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && test -s /run/secrets/tok && echo seen > /secret-seen
RUN --mount=type=bind,source=input,target=/in cat /in > /bound
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && mount | grep -c ' /scratch ' > /tmpfs
RUN --mount=type=bind,source=dir,target=/rw,rw echo changed > /rw/f && echo new > /rw/new && rm /rw/gone && cat /rw/f /rw/new > /rw-seen && ls /rw > /rw-list
RUN --mount=type=bind,source=input,target=/rwfile,rw echo over > /rwfile && cat /rwfile > /rwfile-seen
RUN --network=none cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /netdev
DF
build_local "$c" --secret "id=tok,src=$WORK/secret.txt" --build-arg n=1
build_local "$c" --secret "id=tok,src=$WORK/secret.txt" --build-arg n=2
o=$c.out
check "mount cache: persists between builds" "run 1|run 2" "$(tr '\n' '|' <"$o/cachelog" 2>/dev/null | sed 's/|$//')"
check "mount secret: readable in RUN" "seen" "$(cat "$o/secret-seen" 2>/dev/null)"
check "mount secret: not in the image" "absent" "$(grep -rqs s3cr3t-value "$o" && echo present || echo absent)"
check "mount secret: no stub left" "no" "$([ -e "$o/run/secrets" ] && echo yes || echo no)"
check "mount bind: context file visible" "ctxfile" "$(cat "$o/bound" 2>/dev/null)"
check "mount tmpfs" "1" "$(cat "$o/tmpfs" 2>/dev/null)"
check "mount bind,rw: the step writes to its view" "changed|new|" "$(tr '\n' '|' <"$o/rw-seen" 2>/dev/null)"
check "mount bind,rw: a deleted file is gone from the view" "f|new|" "$(tr '\n' '|' <"$o/rw-list" 2>/dev/null)"
check "mount bind,rw: the context is untouched" "orig doomed" "$(cat "$c/dir/f") $(cat "$c/dir/gone" 2>/dev/null)"
check "mount bind,rw: the writes are not in the layer" "no" "$([ -e "$o/rw" ] && echo yes || echo no)"
check "mount bind,rw: a file source too" "over ctxfile" "$(cat "$o/rwfile-seen" 2>/dev/null) $(cat "$c/input")"
check "network=none: only lo" "lo" "$(cat "$o/netdev" 2>/dev/null)"
check "bind mount points are removed, tmpfs ones stay empty (as BuildKit)" "no empty" \
  "$([ -e "$o/in" ] && echo yes || echo no) $([ -d "$o/scratch" ] && [ -z "$(ls -A "$o/scratch")" ] && echo empty || echo other)"

# --- ADD of a git repository (a bare repository served over HTTP on loopback) ----------
if command -v git >/dev/null && command -v python3 >/dev/null; then
  g=$WORK/git
  mkdir -p "$g/src" "$g/www"
  gitc() { git -C "$g/src" -c user.name=t -c user.email=t@example.com "$@"; }
  git init -q -b main "$g/src"
  mkdir -p "$g/src/sub"; echo one >"$g/src/a.txt"; echo deep >"$g/src/sub/s.txt"
  gitc add -A; gitc commit -q -m one; gitc tag -a v1 -m v1
  git clone -q --bare "$g/src" "$g/www/repo.git"
  git -C "$g/www/repo.git" update-server-info
  python3 -m http.server --bind 127.0.0.1 --directory "$g/www" 0 >"$g/http.log" 2>&1 &
  GIT_HTTP_PID=$!
  port=""
  for _ in $(seq 50); do
    port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$g/http.log" | head -1)
    [ -n "$port" ] && break; sleep 0.1
  done
  url="http://127.0.0.1:$port/repo.git"
  c=$(new_ctx git)
  cat >"$c/Dockerfile" <<DF
FROM busybox
ADD $url#v1 /tagged
ADD $url#main:sub /subdir
ADD --keep-git-dir=true $url /withgit
RUN cat /tagged/a.txt /subdir/s.txt > /seen && ls -A /tagged > /tagged-list && (cd /withgit && ls -d .git) > /withgit-list
DF
  build_local "$c"
  o=$c.out
  check "ADD git: a tag's tree" "one|deep|" "$(tr '\n' '|' <"$o/seen" 2>/dev/null)"
  check "ADD git: no .git by default" "a.txt|sub|" "$(tr '\n' '|' <"$o/tagged-list" 2>/dev/null)"
  check "ADD git: a subdirectory of a branch" "deep" "$(cat "$o/subdir/s.txt" 2>/dev/null)"
  check "ADD git: --keep-git-dir keeps .git" ".git" "$(cat "$o/withgit-list" 2>/dev/null)"
  check "ADD git: files owned by root" "0:0" "$(stat -c %u:%g "$o/tagged/a.txt" 2>/dev/null)"
  # The branch moves: its steps run again, the tag's comes from the cache.
  echo two >"$g/src/a.txt"; gitc commit -q -am two
  git -C "$g/src" push -q "$g/www/repo.git" main
  git -C "$g/www/repo.git" update-server-info
  "$SF" build --progress plain -o "type=local,dest=$c.out2" "$c" >"$c.log2" 2>&1
  check "ADD git: rebuild after a push succeeds" "0" "$?"
  log=$(cat "$c.log2")
  check_contains "ADD git: the tag's step is cached" "CACHED ADD $url#v1 /tagged" "$log"
  check "ADD git: the moved branch's steps ran again" "0" \
    "$(grep -c "CACHED ADD $url /withgit" <<<"$log")"
  check "ADD git: the new commit is seen" "two" "$(cat "$c.out2/withgit/a.txt" 2>/dev/null)"
  check "ADD git: the build is all cached once more" "3" \
    "$("$SF" build --progress plain "$c" 2>&1 | grep -c 'CACHED ADD')"
  c=$(new_ctx git-bad)
  printf 'FROM busybox\nADD %s#nosuchref /x\n' "$url" >"$c/Dockerfile"
  out=$("$SF" build --progress plain "$c" 2>&1)
  check_contains "ADD git: an unknown ref is an error naming it and the line" \
    "Dockerfile:2: git ref \"nosuchref\" not found in $url" "$out"
  printf 'FROM busybox\nCOPY %s /x\n' "$url" >"$c/Dockerfile"
  out=$("$SF" build --progress plain "$c" 2>&1)
  check_contains "ADD git: COPY refuses a repository" "Dockerfile:2:6: source can't be a URL for COPY" "$out"
  kill $GIT_HTTP_PID 2>/dev/null
else
  fail "ADD git" "git or python3 is not installed"
fi

# --- RUN --mount=type=ssh: the client's agent, never stored ----------------------------
if command -v ssh-agent >/dev/null && command -v ssh-add >/dev/null && command -v ssh-keygen >/dev/null; then
  s=$WORK/ssh
  mkdir -p "$s"
  make_ssh_client_image "$s/root" ssh-client
  ssh-keygen -q -t ed25519 -N '' -C stagefarm-test-key -f "$s/key"
  eval "$(ssh-agent -s -a "$s/agent.sock")" >/dev/null
  ssh-add -q "$s/key" 2>/dev/null
  c=$(new_ctx ssh)
  cat >"$c/Dockerfile" <<'DF'
FROM ssh-client
RUN --mount=type=ssh ssh-add -l > /keys && echo "$SSH_AUTH_SOCK" > /sock
RUN --mount=type=ssh,id=other,required=true true
DF
  out=$("$SF" build --progress plain --ssh default "$c" 2>&1)
  check_contains "ssh: a required agent that was not given is an error" \
    "Dockerfile:3: ssh agent other is required but was not given (--ssh other[=SOCKET])" "$out"
  sed -i '$d' "$c/Dockerfile"
  build_local "$c" --ssh default
  check "ssh: the build succeeds" "0" "$?"
  check_contains "ssh: the step sees the agent's key" "stagefarm-test-key (ED25519)" "$(cat "$c.out/keys" 2>/dev/null)"
  check "ssh: SSH_AUTH_SOCK as BuildKit sets it" "/run/buildkit/ssh_agent.0" "$(cat "$c.out/sock" 2>/dev/null)"
  check "ssh: no socket or key left in the image" "no" \
    "$( ([ -e "$c.out/run/buildkit" ] || grep -rqsF "$(sed -n 2p "$s/key")" "$c.out") && echo yes || echo no)"
  out=$("$SF" build --progress plain --ssh default "$c" 2>&1)
  check_contains "ssh: the agent is not in the key (a rebuild is cached)" "CACHED RUN --mount=type=ssh" "$out"
  out=$("$SF" build --progress plain --ssh "default=$s/key" "$c" 2>&1)
  check_contains "ssh: a key file is refused with a hint" "is not an agent's socket" "$out"
  kill "$SSH_AGENT_PID" 2>/dev/null
else
  fail "ssh" "openssh-client is not installed"
fi

# --- failures ----------------------------------------------------------------------
c=$(new_ctx fail)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN echo before
RUN echo some output && invalidcmd
DF
"$SF" build --progress plain -t e2e-fail:1 "$c" >"$c.log" 2>&1; rc=$?
log=$(cat "$c.log")
check "D5: a failing RUN fails the build" "1" "$rc"
check_contains "D5: names the command" '/bin/sh -c echo some output && invalidcmd' "$log"
check_contains "D5: did not complete successfully" "did not complete successfully: exit code: 127" "$log"
check_contains "D5: the line" "Dockerfile:3" "$log"
check_contains "D5: the last output" "some output" "$log"
check "D5: nothing is tagged" "no" "$("$SF" image ls | grep -q e2e-fail && echo yes || echo no)"
"$SF" build --progress plain "$c" >"$c.log2" 2>&1
check_contains "D5: the failed step is not cached" "[stage-0 2/2] RUN echo some output" "$(cat "$c.log2")"
check_contains "D5: steps before it are" "CACHED RUN echo before" "$(cat "$c.log2")"

c=$(new_ctx missing)
printf 'FROM nosuchimage:1\nRUN true\n' >"$c/Dockerfile"
"$SF" build --progress quiet "$c" >"$c.log" 2>&1
check_contains "a missing base image says how to import it" "stagefarm image import" "$(cat "$c.log")"
printf 'FROM busybox\nCOPY nothere /x\n' >"$c/Dockerfile"
"$SF" build --progress quiet "$c" >"$c.log" 2>&1
check_contains "a missing COPY source is a clear error" '"/nothere": not found' "$(cat "$c.log")"

# --- step cache ----------------------------------------------------------------------
c=$(new_ctx cache)
echo v1 >"$c/file"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN echo first > /first
COPY file /file
RUN cat /file > /copy
DF
"$SF" build --progress plain "$c" >"$c.log1" 2>&1
"$SF" build --progress plain "$c" >"$c.log2" 2>&1
check_contains "cache: a rebuild runs nothing" "(0 steps run, 3 cached)" "$(cat "$c.log2")"
touch -d '2001-01-01' "$c/file"
"$SF" build --progress plain "$c" >"$c.log3" 2>&1
check_contains "cache: mtimes do not enter keys" "(0 steps run, 3 cached)" "$(cat "$c.log3")"
cp -a "$c" "$WORK/elsewhere"
"$SF" build --progress plain "$WORK/elsewhere" >"$c.log4" 2>&1
check_contains "cache: another checkout path hits" "(0 steps run, 3 cached)" "$(cat "$c.log4")"
echo v2 >"$c/file"
"$SF" build --progress plain -o "type=local,dest=$c.out" "$c" >"$c.log5" 2>&1
check_contains "cache: a changed file reruns from its COPY" "(2 steps run, 1 cached)" "$(cat "$c.log5")"
check "cache: the new content is used" "v2" "$(cat "$c.out/copy" 2>/dev/null)"
"$SF" build --progress plain --no-cache "$c" >"$c.log6" 2>&1
check_contains "cache: --no-cache runs everything" "(3 steps run, 0 cached)" "$(cat "$c.log6")"

# --- reproducible layers ------------------------------------------------------------
c=$(new_ctx repro)
echo data >"$c/f"
printf 'FROM busybox\nCOPY f /f\nRUN echo x > /g\n' >"$c/Dockerfile"
d1=$("$SF" build --progress quiet --no-cache --source-date-epoch 1700000000 "$c" 2>/dev/null)
touch "$c/f"
d2=$("$SF" build --progress quiet --no-cache --source-date-epoch 1700000000 "$c" 2>/dev/null)
check "SOURCE_DATE_EPOCH: byte-identical images" "$d1" "$d2"

# --- layer compression: intermediate stages' layers are compressed when an image uses them
c=$(new_ctx compress)
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS base
RUN head -c 300000 /bin/busybox > /blob
FROM base AS mid
RUN echo mid > /mid
FROM mid
RUN echo top > /top
DF
layer_types() { "$SF" image inspect "$1" | jq -r '[.layers[].mediaType | sub(".*[.]"; "")] | join(" ")'; }
"$SF" build --progress quiet -t e2e-compress:gzip "$c" >/dev/null 2>&1
check "layers from earlier stages are gzip in the image" "tar+gzip tar+gzip tar+gzip tar+gzip" \
  "$(layer_types e2e-compress:gzip)"
"$SF" build --progress quiet --no-cache --compression zstd -t e2e-compress:zstd "$c" >/dev/null 2>&1
check "and zstd with --compression zstd" "tar+gzip tar+zstd tar+zstd tar+zstd" \
  "$(layer_types e2e-compress:zstd)"
"$SF" build --progress quiet --target mid -t e2e-compress:mid "$c" >/dev/null 2>&1
check "--target of an intermediate stage: its layers are gzip" "tar+gzip tar+gzip tar+gzip" \
  "$(layer_types e2e-compress:mid)"
o=$WORK/out-compress
rm -rf "$o"; mkdir -p "$o"
"$SF" image export e2e-compress:gzip --format oci -o "$o/img.tar" 2>/dev/null
tar -xf "$o/img.tar" -C "$o" 2>/dev/null
sizes_ok=yes
for l in $(jq -r '.manifests[0].digest' "$o/index.json" | sed 's/sha256://' |
  xargs -I{} jq -r '.layers[].digest' "$o/blobs/sha256/{}" | sed 's/sha256://'); do
  gzip -t "$o/blobs/sha256/$l" 2>/dev/null || sizes_ok="no ($l is not gzip)"
done
check "exported layers are valid gzip streams" "yes" "$sizes_ok"

# --- image config -------------------------------------------------------------------
c=$(new_ctx config)
cat >"$c/Dockerfile" <<'DF'
FROM busybox
ENV foo=bar
LABEL lbl=val "other label"=x
WORKDIR /work
USER nobody
EXPOSE 2375 5000 1234/udp
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost
ENTRYPOINT ["/bin/echo"]
CMD ["hello"]
DF
"$SF" build --progress quiet -t e2e-config:1 --label extra=1 "$c" >/dev/null 2>"$c.log"
cfg=$("$SF" image inspect e2e-config:1 | jq -c '.config.config')
check "D8: Env" '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","foo=bar"]' "$(jq -c .Env <<<"$cfg")"
check "D8: Labels (file and --label)" '{"extra":"1","lbl":"val","other label":"x"}' "$(jq -c .Labels <<<"$cfg")"
check "D8: WorkingDir, User, StopSignal" '"/work" "nobody" "SIGTERM"' "$(jq -c '.WorkingDir, .User, .StopSignal' <<<"$cfg" | tr '\n' ' ' | sed 's/ $//')"
check "D8: ExposedPorts" '["1234/udp","2375/tcp","5000/tcp"]' "$(jq -c '.ExposedPorts | keys' <<<"$cfg")"
check "D8: Volumes" '["/data"]' "$(jq -c '.Volumes | keys' <<<"$cfg")"
check "D8: Entrypoint and Cmd" '["/bin/echo"] ["hello"]' "$(jq -c '.Entrypoint, .Cmd' <<<"$cfg" | tr '\n' ' ' | sed 's/ $//')"
check "D8: Healthcheck" '{"Interval":30000000000,"Retries":3,"Test":["CMD-SHELL","wget -q localhost"]}' "$(jq -c .Healthcheck <<<"$cfg")"
hist=$("$SF" image inspect e2e-config:1 | jq -c '[.config.history[] | select(.created_by | startswith("EXPOSE")) | .empty_layer]')
check "D8: metadata steps are empty layers in history" "[true]" "$hist"
check_contains "D8: EXPOSE history sorted" 'EXPOSE [1234/udp 2375/tcp 5000/tcp]' "$("$SF" image inspect e2e-config:1 | jq -r '.config.history[].created_by')"
check "run: the image's command" "hello" "$("$SF" run e2e-config:1 2>&1)"
check "run: arguments replace Cmd and keep Entrypoint" "a b" "$("$SF" run e2e-config:1 a b 2>&1)"

# --- D1/D2: shell-form ENTRYPOINT -----------------------------------------------------
c=$(new_ctx entry)
printf 'FROM busybox AS base\nCMD ["test"]\nFROM base\nSHELL ["ls"]\nENTRYPOINT my entrypoint\n' >"$c/Dockerfile"
"$SF" build --progress quiet -t e2e-entry "$c" >/dev/null 2>&1
check "D2: SHELL shapes ENTRYPOINT, which resets CMD" '["ls","my entrypoint"] null' \
  "$("$SF" image inspect e2e-entry | jq -c '.config.config.Entrypoint, .config.config.Cmd' | tr '\n' ' ' | sed 's/ $//')"

# --- F1: .dockerignore -------------------------------------------------------------
c=$(new_ctx ignore)
for f in foo bar baz bay; do echo $f >"$c/$f"; done
printf 'ba*\nDockerfile\n!bay\n.dockerignore\n' >"$c/.dockerignore"
printf 'FROM scratch\nCOPY . .\n' >"$c/Dockerfile"
build_local "$c"
check "F1: .dockerignore patterns and exceptions" "bay foo" "$(ls "$c.out" | tr '\n' ' ' | sed 's/ $//')"

# --- outputs ---------------------------------------------------------------------------
c=$(new_ctx outputs)
printf 'FROM busybox\nRUN echo out > /o\n' >"$c/Dockerfile"
"$SF" build --progress quiet -t e2e-out:1 -o "type=docker,dest=$c.docker.tar" -o "type=oci,dest=$c.oci.tar" "$c" >/dev/null 2>&1
check "docker output: manifest.json names the tag" '["e2e-out:1"]' "$(tar -xOf "$c.docker.tar" manifest.json 2>/dev/null | jq -c '.[0].RepoTags')"
check "oci output: an OCI layout" '{"imageLayoutVersion":"1.0.0"}' "$(tar -xOf "$c.oci.tar" oci-layout 2>/dev/null)"
"$SF" image export e2e-out:1 --format docker -o "$c.exported.tar"
"$SF" image rm e2e-out:1 >/dev/null
"$SF" image import "$c.exported.tar" -t e2e-back:1 >/dev/null
check "image export + import round trip" "out" "$("$SF" run e2e-back:1 cat /o 2>&1)"
check "bad --output is a clear error" "2" "$("$SF" build -o type=registry,dest=x "$c" >/dev/null 2>&1; echo $?)"

# --- C13: ADD from a URL (busybox httpd on loopback) ----------------------------------
c=$(new_ctx url)
mkdir -p "$WORK/www"; echo downloaded >"$WORK/www/file.txt"
port=""
for try in 1 2 3 4 5; do
  p=$((20000 + RANDOM % 20000))
  /bin/busybox httpd -f -p "127.0.0.1:$p" -h "$WORK/www" & hp=$!
  sleep 0.3
  if kill -0 $hp 2>/dev/null; then port=$p; break; fi
done
sum=$(sha256sum "$WORK/www/file.txt" | cut -d' ' -f1)
cat >"$c/Dockerfile" <<DF
FROM busybox
ADD http://127.0.0.1:$port/file.txt /dest/
ADD --checksum=sha256:$sum http://127.0.0.1:$port/file.txt /tmp/foo
DF
build_local "$c"
check "C13: ADD <url> dir/ saves the download by name" "downloaded" "$(cat "$c.out/dest/file.txt" 2>/dev/null)"
check "C13: downloads are mode 0600" "600" "$(stat -c %a "$c.out/dest/file.txt" 2>/dev/null)"
check "C13: --checksum verified" "downloaded" "$(cat "$c.out/tmp/foo" 2>/dev/null)"
printf 'FROM busybox\nADD --checksum=sha256:%064d http://127.0.0.1:%s/file.txt /x\n' 0 "$port" >"$c/Dockerfile"
build_local "$c"
check_contains "C13: a checksum mismatch is an error" "digest mismatch" "$(cat "$c.log")"
printf 'FROM busybox\nADD http://127.0.0.1:%s/nothere /x\n' "$port" >"$c/Dockerfile"
build_local "$c"
check_contains "C13: HTTP 404 is an error naming the URL" "nothere failed: HTTP status 404" "$(cat "$c.log")"
kill $hp 2>/dev/null; wait $hp 2>/dev/null

# --- COPY --exclude, --link --------------------------------------------------------
c=$(new_ctx exclude)
mkdir -p "$c/src/sub"; echo a >"$c/src/a.txt"; echo b >"$c/src/b.log"; echo c >"$c/src/sub/c.log"
printf 'FROM scratch\nCOPY --exclude=*.log --exclude=sub/*.log src /x/\nCOPY --link src/a.txt /linked\n' >"$c/Dockerfile"
build_local "$c"
check "COPY --exclude leaves excluded files out" "a.txt sub" "$(ls "$c.out/x" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
check "COPY --exclude inside directories" "" "$(ls "$c.out/x/sub" 2>/dev/null)"
check "COPY --link copies" "a" "$(cat "$c.out/linked" 2>/dev/null)"

# --- COPY --parents ----------------------------------------------------------------------
c=$(new_ctx parents)
mkdir -p "$c/x/sub" "$c/y"; echo xa >"$c/x/a.txt"; echo ya >"$c/y/a.txt"; echo s >"$c/x/sub/s"
printf 'FROM scratch\nCOPY --parents x/a.txt y/a.txt /parents/\nCOPY --parents ./x/./sub /piv/\nCOPY --parents */a.txt /glob/\n' >"$c/Dockerfile"
build_local "$c"
check "COPY --parents keeps source paths" "xa ya" "$(cat "$c.out/parents/x/a.txt" "$c.out/parents/y/a.txt" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
check "COPY --parents with a /./ pivot" "s" "$(cat "$c.out/piv/sub/s" 2>/dev/null)"
check "COPY --parents with a glob" "xa ya" "$(cat "$c.out/glob/x/a.txt" "$c.out/glob/y/a.txt" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"

# --- hostile archives ----------------------------------------------------------------
c=$(new_ctx hostile)
mkdir -p "$c/h"; echo evil >"$c/h/evil"
tar -C "$c/h" -cf "$c/bad.tar" --transform 's,^evil,../../../../tmp/stagefarm-e2e-escape,' evil
printf 'FROM busybox\nADD bad.tar /x/\n' >"$c/Dockerfile"
build_local "$c"
check_contains "ADD of a tar with ../ entries is refused" "outside the destination" "$(cat "$c.log")"
check "ADD of a hostile tar writes nothing outside" "no" "$([ -e /tmp/stagefarm-e2e-escape ] && echo yes || echo no)"

# --- independent stages run at the same time -----------------------------------------
c=$(new_ctx parallel)
printf 'FROM busybox AS a\nRUN sleep 1 && echo a\nFROM busybox AS b\nRUN sleep 1 && echo b\nFROM busybox\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >"$c.log" 2>&1
first_done=$(grep -n ' DONE ' "$c.log" | head -1 | cut -d: -f1)
starts_before=$(head -n "${first_done:-0}" "$c.log" | grep -c 'RUN sleep 1')
check "independent stages start before either finishes" "2" "$starts_before"
# A stage's steps before the first that needs another stage run while that
# stage still runs (as BuildKit's solver does); a failure there is reported
# as that stage's own.
c=$(new_ctx overlap)
printf 'FROM busybox AS a\nRUN sleep 2 && echo a > /a\nFROM busybox\nRUN echo early > /early\nCOPY --from=a /a /a\n' >"$c/Dockerfile"
"$SF" build --progress plain -o "type=local,dest=$c.out" "$c" >"$c.log" 2>&1
early_done=$(grep -n 'stage-1 1/2\] DONE' "$c.log" | head -1 | cut -d: -f1)
a_done=$(grep -n '\[a 1/1\] DONE' "$c.log" | head -1 | cut -d: -f1)
check "a stage's first steps run before the stage it copies from ends" "yes" \
  "$([ -n "$early_done" ] && [ -n "$a_done" ] && [ "$early_done" -lt "$a_done" ] && echo yes || echo "no (lines ${early_done:-none} and ${a_done:-none})")"
check "and its result has both stages' files" "early a" "$(cat "$c.out/early" "$c.out/a" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
printf 'FROM busybox AS a\nRUN sleep 1; exit 3\nFROM busybox\nRUN true\nCOPY --from=a /a /a\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >"$c.log" 2>&1
check_contains "a failed stage is reported, not its dependent's wait" "exit code: 3" "$(tail -5 "$c.log")"
check "the dependent's waiting step says CANCELED, as BuildKit's does" "CANCELED" \
  "$(grep -o 'stage-1 2/2\] [A-Z]*' "$c.log" | tail -1 | cut -d' ' -f3)"
# Two stages with the very same step (same key) run it once, as BuildKit
# merges identical steps: the second waits and takes the first's result.
c=$(new_ctx same-step)
printf 'FROM busybox AS a\nRUN sleep 1 && cat /proc/sys/kernel/random/uuid > /t\nFROM busybox AS b\nRUN sleep 1 && cat /proc/sys/kernel/random/uuid > /t\nFROM busybox\nCOPY --from=a /t /a\nCOPY --from=b /t /b\n' >"$c/Dockerfile"
build_local "$c"
check "two stages with the same step run it once (same output)" "same" \
  "$(cmp -s "$c.out/a" "$c.out/b" && echo same || echo different)"

# --- one build cache in a shared CAS (--cas) -------------------------------------------
CASBIN="$(dirname "$SF")/stagefarm-cas"
# Instances are tenants; team-a and team-a-ci share one namespace.
"$CASBIN" --listen 127.0.0.1:0 --data "$WORK/shared-cas" --share-instances team-a,team-a-ci \
  >"$WORK/cas.out" 2>"$WORK/cas.err" & cas_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/cas.out" 2>/dev/null && break; sleep 0.1; done
cas_addr=$(sed -n 's/.*listening on //p' "$WORK/cas.out")
# Two clients: their own homes, checkouts in different places with other
# mtimes and another umask.
c1=$(new_ctx shared-one); c2=$(new_ctx shared-two)
printf 'hello\n' >"$c1/greeting"
printf 'FROM busybox\nCOPY greeting /g\nRUN cat /g /g > /twice\nCMD ["cat", "/twice"]\n' >"$c1/Dockerfile"
(umask 077; cp "$c1/greeting" "$c1/Dockerfile" "$c2/")
chmod 644 "$c2/greeting" "$c2/Dockerfile"
touch -d '2001-01-01' "$c2/greeting"
inst_one=team-a; inst_two=team-a-ci; inst_three=team-b
for who in one two three; do
  eval "inst=\$inst_$who"
  STAGEFARM_HOME=$WORK/home-$who "$SF" image import --cas "$cas_addr" --instance "$inst" \
    "$WORK/busybox" -t busybox >/dev/null 2>&1
done
d1=$(STAGEFARM_HOME=$WORK/home-one "$SF" build --cas "$cas_addr" --instance team-a --progress plain --source-date-epoch 1700000000 \
  -t shared:1 "$c1" 2>"$WORK/shared1.log")
d2=$(STAGEFARM_HOME=$WORK/home-two "$SF" build --cas "$cas_addr" --instance team-a-ci --progress plain --source-date-epoch 1700000000 \
  -t shared:1 "$c2" 2>"$WORK/shared2.log")
STAGEFARM_HOME=$WORK/home-three "$SF" build --cas "$cas_addr" --instance team-b --progress plain \
  "$c2" >/dev/null 2>"$WORK/shared3.log"
check_contains "--cas: another tenant reuses nothing of team-a's cache" "(2 steps run, 0 cached)" \
  "$(cat "$WORK/shared3.log")"
check_contains "--cas: the first client runs the steps" "(2 steps run, 0 cached)" "$(cat "$WORK/shared1.log")"
check_contains "--cas: the second client, another checkout, runs nothing" "(0 steps run, 2 cached)" \
  "$(cat "$WORK/shared2.log")"
check "--cas: both get the same image" "yes" \
  "$([ -n "$d1" ] && [ "$d1" = "$d2" ] && echo yes || echo "no ([$d1] and [$d2])")"
check "--cas: the second client runs the image from the shared store" "hello
hello" "$(STAGEFARM_HOME=$WORK/home-two "$SF" run --cas "$cas_addr" --instance team-a-ci shared:1 2>&1)"
check "--cas: nothing went into the local stores" "" \
  "$(ls "$WORK/home-one/cas" "$WORK/home-two/cas" "$WORK/home-three/cas" 2>/dev/null)"
kill $cas_pid; wait $cas_pid 2>/dev/null
check_contains "--cas: an unreachable CAS is a clear error" "cannot reach the CAS at 127.0.0.1:1" \
  "$(STAGEFARM_HOME=$WORK/home-one "$SF" build --cas 127.0.0.1:1 "$c1" 2>&1)"

# --- Ctrl-C ------------------------------------------------------------------------------
c=$(new_ctx interrupt)
printf 'FROM busybox\nRUN echo started && sleep 60\n' >"$c/Dockerfile"
"$SF" build --progress plain "$c" >"$c.log" 2>&1 & bp=$!
for i in $(seq 50); do grep -q started "$c.log" 2>/dev/null && break; sleep 0.1; done
kill -INT $bp; wait $bp; rc=$?
check "Ctrl-C stops the build (exit 130)" "130" "$rc"
check "Ctrl-C leaves no container" "" "$(runc --root "$STAGEFARM_HOME/runc" list -q 2>/dev/null)"
check "Ctrl-C leaves no mount" "0" "$(grep -c "$STAGEFARM_HOME" /proc/self/mountinfo)"
printf 'FROM busybox\nRUN echo after > /after\n' >"$c/Dockerfile"
build_local "$c"
check "the store works after an interrupted build" "after" "$(cat "$c.out/after" 2>/dev/null)"

exit $E2E_FAILED
