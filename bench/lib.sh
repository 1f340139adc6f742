# Helpers for the build benchmarks (sourced). Callers set SF (stagefarm
# binary), WORK (temp dir), RUNS, and DOCKER (empty when dockerd is absent).

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
# timed FILE CMD...: appends the wall time in seconds; returns the status.
timed() {
  local f=$1; shift
  local t0 t1 rc
  t0=$(now); "$@" >>"$WORK/log" 2>&1; rc=$?; t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", (b-a)/1e9}' >>"$f"
  return $rc
}
bench_header() {
  printf '%-14s %-24s %10s %10s\n' build builder "cold s" "rebuild s"
}
# bench_pair NAME CONTEXT DOCKERFILE: medians of RUNS "cold" builds (build
# cache ignored: stagefarm --no-cache, BuildKit after `docker builder prune
# -af`; base images present for both) and no-change rebuilds, one row each.
# Tags the results bench-NAME (stagefarm) and bench-NAME:docker (BuildKit).
bench_pair() {
  local name=$1 ctx=$2 df=$3 fails=0 i
  # Warm-up: base snapshots unpacked once, as dockerd has them after load.
  "$SF" build --progress quiet -f "$df" "$ctx" >>"$WORK/log" 2>&1
  : >"$WORK/sc"; : >"$WORK/sr"
  for i in $(seq "$RUNS"); do
    timed "$WORK/sc" "$SF" build --progress quiet --no-cache -f "$df" -t "bench-$name" "$ctx" || fails=$((fails + 1))
    timed "$WORK/sr" "$SF" build --progress quiet -f "$df" -t "bench-$name" "$ctx" || fails=$((fails + 1))
  done
  printf '%-14s %-24s %10s %10s %s\n' "$name" "${SF_LABEL:-stagefarm}" "$(median <"$WORK/sc")" "$(median <"$WORK/sr")" \
    "$([ $fails -gt 0 ] && echo "($fails failed)")"
  if [ -z "${DOCKER:-}" ]; then
    printf '%-14s %-24s %10s %10s\n' "$name" "BuildKit" "n/a" "n/a (dockerd not reachable)"
    return
  fi
  : >"$WORK/bc"; : >"$WORK/br"; fails=0
  for i in $(seq "$RUNS"); do
    "$DOCKER" rmi -f "bench-$name:docker" >>"$WORK/log" 2>&1
    "$DOCKER" builder prune -af >>"$WORK/log" 2>&1
    timed "$WORK/bc" "$DOCKER" build -q -f "$df" -t "bench-$name:docker" "$ctx" || fails=$((fails + 1))
    timed "$WORK/br" "$DOCKER" build -q -f "$df" -t "bench-$name:docker" "$ctx" || fails=$((fails + 1))
  done
  printf '%-14s %-24s %10s %10s %s\n' "$name" "BuildKit (docker 20.10)" "$(median <"$WORK/bc")" \
    "$(median <"$WORK/br")" "$([ $fails -gt 0 ] && echo "($fails failed)")"
}
# bench_load_bases REF...: loads stagefarm's image REF into dockerd unless
# dockerd already has that image id, so both builders start from the same
# base bytes.
bench_load_bases() {
  local ref ours
  for ref in "$@"; do
    ours=$("$SF" image inspect "$ref" | jq -r .manifest.config.digest)
    if [ "$("$DOCKER" image inspect -f '{{.Id}}' "$ref" 2>/dev/null)" != "$ours" ]; then
      "$SF" image export "$ref" --format docker -o "$WORK/base.tar" 2>>"$WORK/log" &&
        "$DOCKER" load -i "$WORK/base.tar" >>"$WORK/log" 2>&1 || echo "bench: docker load $ref failed"
      rm -f "$WORK/base.tar"
    fi
  done
}
