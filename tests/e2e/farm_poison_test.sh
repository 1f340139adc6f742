#!/usr/bin/env bash
# End-to-end: a poison build is contained on the farm. A CAS, a scheduler
# and three workers on 127.0.0.1, each started with the test-only fault
# flag --test-crash-on-step-containing, so a worker process aborts when it
# starts a step carrying the marker (as one killed by a bug or the OOM
# killer would end). The build whose stage trips it fails after exactly two
# workers died, with the reason, within a bounded time and long before the
# lease timeout; the third worker is never offered the stage; `builds ls`
# and the web view's API say why; the next ordinary build succeeds at once
# on the survivor; the dead workers, restarted as a supervisor would (same
# names and work directories), take work again.
# Prints the time from a worker's death to the scheduler taking its stage
# back ("detection").
# Usage: farm_poison_test.sh BIN_DIR   (needs root, runc, busybox-static)
. "$(dirname "$0")/lib.sh"
e2e_setup "$1"
BIN=$1
PIDS=()
declare -A WPID
trap stop_farm EXIT
MARK=POISON-$$-$RANDOM
# A long lease timeout: a stage taken back within it was taken back because
# the worker's death was seen, not because its lease ran out.
start_cas_and_scheduler --http-listen 127.0.0.1:0 --lease-timeout-ms 30000
UI=$(grep -oE 'http://[0-9.:]+/' "$WORK/scheduler.log" | head -1)
if [ -z "$CAS" ] || [ -z "$SCHED" ]; then
  fail "farm" "the CAS or the scheduler did not start"
  exit 1
fi
export STAGEFARM_HOME=$WORK/client STAGEFARM_CAS=$CAS STAGEFARM_SERVER=$SCHED
"$SF" image import "$WORK/busybox" -t busybox >/dev/null
for w in w1 w2 w3; do start_farm_worker $w --test-crash-on-step-containing "$MARK"; done
alive() { local n=0 w; for w in w1 w2 w3; do kill -0 "${WPID[$w]}" 2>/dev/null && n=$((n + 1)); done; echo $n; }
check "three workers attend the scheduler" "3" \
  "$(grep -l 'attending the scheduler' "$WORK"/w[123].log 2>/dev/null | wc -l)"

# --- the poison build ---------------------------------------------------------
c=$(new_ctx poison)
printf 'FROM busybox\nRUN echo fine > /fine\nRUN echo %s > /poison\n' "$MARK" >"$c/Dockerfile"
t0=$(date +%s%N)
timeout 60 "$SF" build --progress plain --no-cache "$c" >"$c.out" 2>"$c.log"
rc=$?
t1=$(date +%s%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e9}')
check "poison: the build fails (not a hang)" "yes" "$([ "$rc" != 0 ] && [ "$rc" != 124 ] && echo yes)"
check "poison: it failed within 15 s, well before one 30 s lease timeout (${secs} s)" "yes" \
  "$(awk -v s="$secs" 'BEGIN{print (s < 15) ? "yes" : "no"}')"
log=$(cat "$c.log")
check_contains "poison: the reason names the stage and two deaths" "killed 2 workers" "$log"
check_contains "poison: the reason names the step each died in" \
  "process died while running step 2 (RUN echo $MARK > /poison)" "$log"
check_contains "poison: no third worker" "not offered to a third" "$log"
sleep 0.5
check "poison: exactly two workers died" "1" "$(alive)"
ran_on=$(grep -oE 'started on w[123]' "$c.log" | awk '{print $3}' | sort | tr '\n' ' ')
check "poison: the stage was offered twice" "2" "$(echo $ran_on | wc -w)"
survivor=""
for w in w1 w2 w3; do kill -0 "${WPID[$w]}" 2>/dev/null && survivor=$w; done
check "poison: the survivor was never offered it" "no" \
  "$(case " $ran_on" in *" $survivor "*) echo yes ;; *) echo no ;; esac)"
check "poison: the dead are the two it ran on" "$(echo $ran_on)" \
  "$(for w in w1 w2 w3; do kill -0 "${WPID[$w]}" 2>/dev/null || echo $w; done | tr '\n' ' ' | sed 's/ $//')"
check "poison: no lease timed out" "0" "$(grep -c 'stopped reporting' "$c.log")"
check_contains "builds ls shows the reason" "killed 2 workers" "$("$SF" builds ls 2>&1)"
if [ -n "$UI" ]; then
  check_contains "the web view's API shows the reason" "killed 2 workers" \
    "$(curl -s "${UI}api/v1/builds" 2>&1)"
else
  fail "web view" "the scheduler printed no web view address"
fi

# Detection: from each worker's abort (logged 100 ms before it) to the
# scheduler taking the stage back.
ms() { date -d "$1" +%s%3N; }
detect=""
for w in $ran_on; do
  died=$(grep 'test-only fault' "$WORK/$w.log" | head -1 | awk '{print $1}')
  seen=$(grep "worker-died.*worker=$w" "$WORK/scheduler.log" | head -1 | awk '{print $1}')
  if [ -n "$died" ] && [ -n "$seen" ]; then
    detect="$detect $(( $(ms "$seen") - $(ms "$died") - 100 ))"
  fi
done
gone=""
for w in $ran_on; do
  died=$(grep 'test-only fault' "$WORK/$w.log" | head -1 | awk '{print $1}')
  seen=$(grep "worker-gone worker=$w" "$WORK/scheduler.log" | head -1 | awk '{print $1}')
  [ -n "$died" ] && [ -n "$seen" ] && gone="$gone $(( $(ms "$seen") - $(ms "$died") - 100 ))"
done
echo "stream end seen (ms after a worker's death):$gone"
echo "detection (ms from a worker's death to the scheduler's reaction):$detect"
check "detection: both deaths seen within 2 s" "yes" \
  "$(echo $detect | awk '{ok = NF == 2; for (i = 1; i <= NF; i++) if ($i > 2000) ok = 0; print ok ? "yes" : "no"}')"

# --- the farm goes on ----------------------------------------------------------
c=$(new_ctx after)
printf 'FROM busybox\nRUN echo after-%s > /after\n' "$$" >"$c/Dockerfile"
timeout 60 "$SF" build --progress plain --no-cache "$c" >"$c.out" 2>"$c.log"
check "next build: succeeds at once" "0" "$?"
check_contains "next build: on the survivor" "started on $survivor" "$(cat "$c.log")"

# The dead restarted as a supervisor would: same names, same work directories.
for w in $ran_on; do
  unset "WPID[$w]"
  start_farm_worker "$w" --test-crash-on-step-containing "$MARK"
done
sleep 0.5
check "restarted: three workers alive" "3" "$(alive)"
c=$(new_ctx spread)
cat >"$c/Dockerfile" <<DF
FROM busybox AS one
RUN sleep 2 && echo one-$$ > /one
FROM busybox AS two
RUN sleep 2 && echo two-$$ > /two
FROM busybox AS three
RUN sleep 2 && echo three-$$ > /three
FROM busybox
COPY --from=one /one /one
COPY --from=two /two /two
COPY --from=three /three /three
DF
timeout 120 "$SF" build --progress plain --no-cache "$c" >"$c.out" 2>"$c.log"
check "restarted: a three-stage build succeeds" "0" "$?"
check "restarted: its independent stages ran on all three workers" "3" \
  "$(grep -E '^\[(one|two|three)\] started on ' "$c.log" | awk '{print $4}' | sort -u | wc -l)"
check "restarted: every worker still alive" "3" "$(alive)"
exit $E2E_FAILED
