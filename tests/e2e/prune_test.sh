#!/usr/bin/env bash
# End-to-end: the local store's disk use and freeing it. `stagefarm system
# df` counts blobs, tagged images, snapshots and cache mounts; `stagefarm
# prune` removes snapshots and every blob no tagged image needs (least
# recently used first, down to --keep-bytes), cache mounts only with --all;
# tagged images still run and rebuild all cached afterwards;
# STAGEFARM_MAX_BYTES keeps a bound after each build; bad values are clear
# errors.
# Usage: prune_test.sh BIN_DIR   (needs root, runc, busybox-static)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"

field() { # df-output TYPE COLUMN(2 items, 3 size, 4 reclaimable)
  awk -v t="$2" -v c="$3" '$1 == t || ($1 " " $2) == t {
    if ($1 " " $2 == t) c++; n = split($0, f, /  +/); print f[c] }' <<<"$1" | head -1
}
bytes_of() { # "12.3 MB" -> bytes (approximate)
  awk '{v=$1; u=$2; m=1; if(u=="kB")m=1e3; if(u=="MB")m=1e6; if(u=="GB")m=1e9; printf "%d\n", v*m}' <<<"$1"
}

c=$(new_ctx kept)
printf 'FROM busybox\nRUN head -c 1000000 /dev/urandom > /kept.bin\nRUN echo kept > /name\nCMD ["cat", "/name"]\n' >"$c/Dockerfile"
"$SF" build --progress quiet -t kept:1 "$c" >/dev/null 2>&1
check "the tagged image builds" "0" "$?"
c2=$(new_ctx scratchwork)
cat >"$c2/Dockerfile" <<'DF'
FROM busybox AS builder
RUN head -c 3000000 /dev/urandom > /big.bin
RUN --mount=type=cache,target=/cache head -c 500000 /dev/urandom > /cache/pkg && cp /cache/pkg /pkg
FROM busybox
COPY --from=builder /pkg /pkg
DF
"$SF" build --progress quiet -o "type=local,dest=$c2.out" "$c2" >/dev/null 2>&1
check "the untagged build succeeds" "0" "$?"

df1=$("$SF" system df 2>&1)
check_contains "df: has a header" "TYPE" "$df1"
check "df: two tagged images (the base and ours)" "2" "$(awk '$1 == "Images" {print $2}' <<<"$df1")"
check "df: one cache mount" "1" "$(awk '$1 == "Cache" {print $3}' <<<"$df1")"
snaps=$(awk '$1 == "Snapshots" {print $2}' <<<"$df1")
check "df: snapshots counted" "yes" "$([ "${snaps:-0}" -gt 0 ] && echo yes)"
reclaim=$(awk '$1 == "Blobs" {print $(NF-1), $NF}' <<<"$df1")
check "df: the untagged build's blobs are reclaimable (over 3 MB)" "yes" \
  "$([ "$(bytes_of "$reclaim")" -gt 3000000 ] && echo yes)"

out=$("$SF" prune 2>&1)
check "prune: succeeds" "0" "$?"
check_contains "prune: says what it removed" "total reclaimed:" "$out"
df2=$("$SF" system df 2>&1)
check "prune: nothing reclaimable left among blobs" "0 B" "$(awk '$1 == "Blobs" {print $(NF-1), $NF}' <<<"$df2")"
check "prune: no snapshot left" "0" "$(awk '$1 == "Snapshots" {print $2}' <<<"$df2")"
check "prune: the cache mount stays without --all" "1" "$(awk '$1 == "Cache" {print $3}' <<<"$df2")"
check "prune: the tagged image runs" "kept" "$("$SF" run kept:1 2>&1)"
rebuilt=$("$SF" build --progress plain -t kept:1 "$c" 2>&1)
check_contains "prune: the tagged image rebuilds all cached" "(0 steps run, 2 cached)" "$rebuilt"
ls=$("$SF" cache ls 2>&1)
check_contains "cache ls: the cache mount by its id (its target)" "/cache" "$(grep '^/cache ' <<<"$ls")"
check_contains "cache ls: with its size" "500.0 kB" "$(grep '^/cache ' <<<"$ls")"
out=$("$SF" cache prune 2>&1)
check_contains "cache prune: without ids or --all, says what to give" "give --all" "$out"
out=$("$SF" cache prune /nothing 2>&1)
check_contains "cache prune: an unknown id removes nothing" "pruned 0 cache mounts" "$out"
check "cache prune: ... and the cache stays" "1" "$(awk '$1 == "Cache" {print $3}' <<<"$("$SF" system df 2>&1)")"
"$SF" build --progress quiet "$c2" >/dev/null 2>&1
out=$("$SF" prune --all 2>&1)
check_contains "prune --all: the cache mount goes" "1 cache mounts" "$out"
check "prune --all: cache ls is empty" "1" "$("$SF" cache ls 2>&1 | wc -l)"
"$SF" build --progress quiet "$c2" >/dev/null 2>&1
out=$("$SF" cache prune /cache 2>&1)
check_contains "cache prune ID: removes that cache" "pruned 1 cache mounts" "$out"
check "prune --all: none left" "0" "$(awk '$1 == "Cache" {print $3}' <<<"$("$SF" system df 2>&1)")"

# A bound kept after each build.
kept=$(awk '$1 == "Images" {print $3, $4}' <<<"$("$SF" system df 2>&1)")
bound=$(( $(bytes_of "$kept") + 1500000 ))
STAGEFARM_MAX_BYTES=$bound "$SF" build --progress plain -o "type=local,dest=$c2.out2" "$c2" >"$c2.log" 2>&1
check "bound: the build succeeds" "0" "$?"
check_contains "bound: it says it freed space" "to stay within STAGEFARM_MAX_BYTES" "$(cat "$c2.log")"
total=$(awk '$1 == "Total" {print $2, $3}' <<<"$("$SF" system df 2>&1)")
check "bound: the store is within it afterwards" "yes" "$([ "$(bytes_of "$total")" -le $((bound + 100000)) ] && echo yes || echo "no ($total > $bound)")"
check "bound: the tagged image still runs" "kept" "$("$SF" run kept:1 2>&1)"
out=$(STAGEFARM_MAX_BYTES=lots "$SF" build --progress quiet "$c" 2>&1)
check_contains "bound: a bad value is a clear error" 'STAGEFARM_MAX_BYTES="lots": want a number of bytes' "$out"
out=$("$SF" prune --keep-bytes -5 2>&1)
check "prune: a negative bound is refused" "yes" "$([ -n "$out" ] && ! grep -q reclaimed <<<"$out" && echo yes)"

exit $E2E_FAILED
