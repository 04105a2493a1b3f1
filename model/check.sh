#!/bin/sh
# model/check.sh - model check of the failover protocol (docs/FAILOVER.md,
# model/failover.pml) with SPIN. Run by `make model-check`.
#
# 1. MUST HOLD: bounded configurations of the model, each searched
#    exhaustively (pan -DSAFETY: assertions and invalid end states;
#    -DCOLLAPSE: lossless state compression). A run passes only if pan says
#    "errors: 0" and its search was complete: no "Search not completed", no
#    "max search depth too small", no memory limit hit.
# 2. MUST FAIL: variants with one rule deliberately broken. Each must give a
#    counterexample to the property it breaks (P1 split brain, P2 lost global
#    write, P3 divergence): the proof that the properties are really checked.
#    The counterexample, as SPIN replays it, is narrated in
#    build/model/NAME/counterexample.txt (the end of it is printed).
#
# Exit status 0 only if every run did what it must. Two pan runs at a time.
# Environment: MODEL_OUT (work directory, default build/model),
# MODEL_MEMLIM (MB per pan run, default 3000; the largest run needs ~1.8 GB),
# MODEL_SLOW=1 adds broken-handover (needs reordering on one pair: 2 messages
# in flight per pair and 4 epochs; about 7 minutes and 3 GB alone).
set -eu

MODEL_DIR=$(cd "$(dirname "$0")" && pwd)
OUT=${MODEL_OUT:-$MODEL_DIR/../build/model}
MEMLIM=${MODEL_MEMLIM:-3000}
DEPTH=200000

for tool in spin gcc; do
	command -v $tool >/dev/null 2>&1 || {
		echo "model-check: $tool not found (scripts/deps.sh deps/model.txt installs it)" >&2
		exit 2
	}
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/*/result   # results of an earlier run must not count

# run NAME EXPECT SPIN-FLAGS...   EXPECT: pass, or P1/P2/P3 (must be violated)
run() {
	name=$1 expect=$2
	shift 2
	d=$OUT/$name
	rm -rf "$d" && mkdir -p "$d" && cp "$MODEL_DIR/failover.pml" "$d/"
	echo "$*" > "$d/flags"
	t0=$(date +%s)
	(
		cd "$d"
		if ! spin "$@" -a failover.pml > spin.log 2>&1; then
			echo "FAIL $name: spin -a failed (see $d/spin.log)" > result; exit 0
		fi
		# a refutation is found in a few seconds: compile it fast
		opt=-O2; [ "$expect" = pass ] || opt=-O0
		if ! gcc $opt -w -DSAFETY -DCOLLAPSE -DMEMLIM="$MEMLIM" -o pan pan.c > gcc.log 2>&1; then
			echo "FAIL $name: gcc failed (see $d/gcc.log)" > result; exit 0
		fi
		./pan -m$DEPTH -w25 > pan.out 2>&1 || true
		errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.out | tail -n 1)
		states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out | tail -n 1)
		secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' pan.out | tail -n 1)
		secs=${secs:-?}
		what="$states states, ${secs}s"
		if [ "$expect" = pass ]; then
			if [ "${errors:-x}" = 0 ] && ! grep -q -e 'Search not completed' \
				-e 'max search depth too small' -e 'out of memory' -e 'memory limit' pan.out; then
				echo "ok   $name: no error, exhaustive ($what)" > result
			else
				echo "FAIL $name: ${errors:-?} error(s) or incomplete search ($what, see $d/pan.out)" > result
				[ -f failover.pml.trail ] && spin -t "$@" failover.pml > replay.txt 2>&1 || true
			fi
		else
			viol=$(grep -m 1 'assertion violated' pan.out || true)
			case "$viol" in
			*lease\[*) got=P1 ;;
			*gack*) got=P2 ;;
			*lg\[*) got=P3 ;;
			*) got=none ;;
			esac
			if [ "$got" = "$expect" ] && [ -f failover.pml.trail ]; then
				spin -t "$@" failover.pml > replay.txt 2>&1 || true
				steps=$(sed -n 's/^spin: trail ends after \([0-9]*\) steps.*/\1/p' replay.txt)
				# the narration: printf lines (process columns squeezed), repeats dropped
				sed -e 's/^[[:space:]]*//' -e 's/[[:space:]][[:space:]]*/ /g' -e 's/ $//' replay.txt |
					grep -E '^(EU|US|W) |^-- tick|^spin: text of failed assertion' | uniq > counterexample.txt
				echo "ok   $name: $expect violated as it must be, counterexample of ${steps:-?} steps ($what)" > result
			else
				echo "FAIL $name: expected a $expect violation, got ${got} (errors: ${errors:-?}; $what, see $d/pan.out)" > result
			fi
		fi
	)
	echo "$(cat "$d/result") [$(($(date +%s) - t0))s wall]"
}

start=$(date +%s)
echo "model-check: SPIN $(spin -V | sed -n 's/^Spin Version \([^ ]*\).*/\1/p'), work directory $OUT"

# Must hold. Default bounds: epochs 1..3, positions 1..2, 1 crash, 1
# switchover, 1 message in flight per ordered pair, worst-case drift.
lane1() {
	run crashes       pass -DMAXCRASH=2 -DMAXHO=0
	run epochs        pass -DMAXEP=4 -DMAXPOS=1 -DMAXCRASH=1 -DMAXHO=0
	run no-poscheck   pass -DNO_POSCHECK -DMAXCRASH=0 -DMAXHO=1
	run no-vote-grant-check pass -DNO_VOTE_GRANT_CHECK -DMAXCRASH=1 -DMAXHO=0
	run broken-grant   P1 -DBROKEN_GRANT
	run broken-expiry  P1 -DBROKEN_EXPIRY
	run broken-tsend   P1 -DBROKEN_TSEND
	run broken-margin  P1 -DBROKEN_MARGIN
	run broken-isolation P1 -DBROKEN_ISOLATION
}
lane2() {
	run crash-switch  pass -DMAXCRASH=1 -DMAXHO=1 -DMAXPOS=1
	run switchover    pass -DMAXCRASH=0 -DMAXHO=1
	run drift-ranges  pass -DWIDE -DMAXCRASH=0 -DMAXHO=0
	run force-durable pass -DFORCE -DNO_P1 -DMAXCRASH=0 -DMAXHO=0
	run broken-self    P1 -DBROKEN_SELF
	run broken-restart P1 -DBROKEN_RESTART -DMAXHO=0
	run force          P1 -DFORCE
	run broken-ack     P2 -DBROKEN_ACK
	run broken-rejoin  P3 -DBROKEN_REJOIN
	if [ "${MODEL_SLOW:-0}" = 1 ]; then
		run broken-handover P1 -DBROKEN_HANDOVER -DCAP=2 -DMAXEP=4 -DMAXPOS=0 -DMAXCRASH=0
	fi
}
lane1 > "$OUT/lane1.log" 2>&1 &
pid1=$!
lane2 > "$OUT/lane2.log" 2>&1 || true
wait $pid1 || true
cat "$OUT/lane1.log" "$OUT/lane2.log"

echo
echo "== counterexamples of the broken variants (end of each; in full in $OUT/NAME/counterexample.txt)"
for d in "$OUT"/broken-* "$OUT"/force; do
	[ -f "$d/counterexample.txt" ] || continue
	echo "-- $(basename "$d") ($(cat "$d/flags")): $(grep -c '' "$d/counterexample.txt") narrated events, the last ones:"
	tail -n 14 "$d/counterexample.txt" | sed 's/^/   /'
done

total=0 failed=0
for r in "$OUT"/*/result; do
	total=$((total + 1))
	case "$(cat "$r")" in FAIL*) failed=$((failed + 1)) ;; esac
done
echo
expected=18
[ "${MODEL_SLOW:-0}" = 1 ] && expected=19
if [ "$failed" -ne 0 ] || [ "$total" -ne $expected ]; then
	echo "model-check: FAILED ($failed of $total runs did not do what they must; $expected expected) in $(($(date +%s) - start))s"
	exit 1
fi
echo "model-check: OK, $total runs (5 bounded configurations and 3 rule-drops hold, exhaustively; $((total - 8)) broken variants refuted) in $(($(date +%s) - start))s"
