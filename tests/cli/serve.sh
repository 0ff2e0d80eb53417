#!/bin/sh
# sdl-serve: a small live run (two tiny requests of different sizes, a malformed line, a
# missing reference, an impossible size): error lines for the bad ones, the rest served
# with PNGs that decode; the profile written by the live run drives a simulated run; a
# FIFO as input; SIGTERM drains (the running request is served, the future one is
# reported not served), a second SIGTERM reports the running one not served and leaves
# no PNG; usage errors exit 2.
# Live runs use --no-admission: whether a request can make its SLO depends on how fast
# this machine (or a sanitizer build) is, and these checks must not; admission is
# checked against hand-computed schedules in tests/unit/test_serve.c.
set -u
TOOL="$SDL_BUILD_DIR/tools/sdl-serve"
INFO="$SDL_BUILD_DIR/tools/sdl-info"
DATA="$SDL_TESTDATA"
. "$SDL_SOURCE_DIR/tests/cli/lib.sh"
PY=""
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# ---- usage errors ----------------------------------------------------------------------
expect_exit 2 - "bad clock" -- "$TOOL" --clock wall
expect_exit 2 - "bad policy" -- "$TOOL" --policy lifo
expect_exit 2 - "sim without a profile" -- "$TOOL" --clock sim
expect_exit 2 - "sim with a missing profile" -- "$TOOL" --clock sim --profile "$WORK/none.json"
expect_exit 2 - "batch 0" -- "$TOOL" --batch 0
expect_exit 2 - "eta above 1" -- "$TOOL" --eta 1.5
expect_exit 2 - "eta not a number" -- "$TOOL" --eta lots
expect_exit 2 - "headroom above 0.5" -- "$TOOL" --headroom 0.7
expect_exit 2 - "headroom not a number" -- "$TOOL" --headroom lots
expect_exit 2 - "writers above 64" -- "$TOOL" --writers 65
expect_exit 2 - "writers not a number" -- "$TOOL" --writers some
expect_exit 1 - "missing input" -- "$TOOL" --profile "$WORK/none.json" "$WORK/no-such-trace"

# ---- live: two good requests and three bad ones ----------------------------------------
mkdir -p "$WORK/out"
cat >"$WORK/trace.jsonl" <<EOF
{"id": "small", "height": 64, "width": 64, "steps": 3, "reference": "$DATA/coins.png", "slo_ms": 600000}
{"id": "wide", "height": 64, "width": 128, "steps": 2, "seed": 3, "reference": "$DATA/chelsea.png"}
{"id": "broken", "height": 64,
{"id": "ghost", "height": 64, "width": 64, "steps": 2, "reference": "$WORK/missing.png"}
{"id": "odd", "height": 100, "width": 64, "steps": 2, "reference": "$DATA/coins.png"}
EOF
"$TOOL" --json --no-admission --threads 2 --batch 4 --profile "$WORK/profile.json" --out "$WORK/out" \
    "$WORK/trace.jsonl" >"$WORK/results.jsonl" 2>"$WORK/stderr"
rc=$?
[ "$rc" -eq 1 ] || fail "live run with bad requests: exit $rc, expected 1: $(cat "$WORK/stderr")"
[ "$(wc -l <"$WORK/results.jsonl")" -eq 5 ] || fail "want 5 result lines: $(cat "$WORK/results.jsonl")"
grep -q 'trace.jsonl:3: not JSON' "$WORK/stderr" || fail "no error naming the malformed line"
grep -q "request ghost: reference: .*missing.png" "$WORK/stderr" || fail "no error for the missing reference"
grep -q "request odd: 100x64 is not a multiple" "$WORK/stderr" || fail "no error for the impossible size"
grep -q "2 served .* 3 failed" "$WORK/stderr" || fail "summary: $(tail -1 "$WORK/stderr")"
[ -s "$WORK/profile.json" ] || fail "the live run did not write its profile"
for id in small wide; do
    [ -f "$WORK/out/$id.png" ] || fail "no $id.png"
    "$INFO" "$WORK/out/$id.png" >"$WORK/info" 2>&1 || fail "$id.png does not decode: $(cat "$WORK/info")"
done
grep -q "width  *128" "$WORK/info" && grep -q "height  *64" "$WORK/info" ||
    fail "wide.png has the wrong size: $(cat "$WORK/info")"
[ ! -e "$WORK/out/ghost.png" ] && [ ! -e "$WORK/out/odd.png" ] || fail "a PNG for a failed request"
# the PNGs were written by a writer thread (--writers 1, the default); on the loop
# (--writers 0) the same requests give the same bytes
mkdir -p "$WORK/out0"
"$TOOL" --json --no-admission --threads 2 --batch 4 --writers 0 --profile "$WORK/profile.json" \
    --out "$WORK/out0" "$WORK/trace.jsonl" >"$WORK/results0.jsonl" 2>"$WORK/stderr0"
for id in small wide; do
    cmp -s "$WORK/out/$id.png" "$WORK/out0/$id.png" || fail "--writers 0 wrote another $id.png"
done
find "$WORK/out" -name '*.tmp' | grep -q . && fail "a temporary file left in the output directory"
if [ -n "$PY" ]; then
    "$PY" - "$WORK/results.jsonl" "$WORK/out" <<'PYEOF' || fail "result lines wrong"
import json, os, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
by = {l["id"]: l for l in lines}
assert by["small"]["ok"] and by["wide"]["ok"], lines
s = by["small"]
assert s["height"] == 64 and s["width"] == 64 and s["steps"] == 3 and s["tiles"] == 1, s
assert s["computed"] == 3 and s["skipped"] == 0 and s["slo_met"] is True, s
assert abs(s["latency_ms"] - (s["finish_ms"] - s["arrival_ms"])) < 0.01, s
assert s["start_ms"] <= s["finish_ms"], s
w = by["wide"]
assert w["tiles"] == 2 and w["computed"] == 4 and w["slo_ms"] > 0, w  # slo_scale x standalone
for l in lines:
    if l.get("ok"):
        assert os.path.isfile(l["output"]), l  # nothing reported served that was not written
fails = [l for l in lines if not l["ok"]]
assert len(fails) == 3 and all(l["status"] == "failed" and l["error"] for l in fails), fails
PYEOF
fi

# ---- sim: the profile of the live run, a trace with arrivals, every policy -------------
i=0
: >"$WORK/sim.jsonl"
while [ $i -lt 40 ]; do
    printf '{"id": "s%d", "arrival_ms": %d, "height": %d, "width": 256, "steps": 10, "reference": "x.png"}\n' \
        $i $((i * 50)) $(( (i % 3 + 1) * 64 )) >>"$WORK/sim.jsonl"
    i=$((i + 1))
done
for policy in tile tile-fcfs fcfs grouped; do
    "$TOOL" --clock sim --policy $policy --batch 4 --profile "$WORK/profile.json" --json \
        "$WORK/sim.jsonl" >"$WORK/sim.$policy" 2>"$WORK/sim.err" ||
        fail "sim $policy exited $?: $(cat "$WORK/sim.err")"
    [ "$(wc -l <"$WORK/sim.$policy")" -eq 40 ] || fail "sim $policy: want 40 result lines"
    grep -q "40 requests: .* $policy policy, sim clock" "$WORK/sim.err" ||
        fail "sim $policy summary: $(cat "$WORK/sim.err")"
done
grep -q '"ok":true' "$WORK/sim.fcfs" || fail "sim fcfs served nothing"
# an explicit headroom is accepted and serves the same 40 requests
"$TOOL" --clock sim --headroom 0.2 --batch 4 --profile "$WORK/profile.json" --json \
    "$WORK/sim.jsonl" >"$WORK/sim.headroom" 2>"$WORK/sim.err" ||
    fail "sim --headroom 0.2 exited $?: $(cat "$WORK/sim.err")"
[ "$(wc -l <"$WORK/sim.headroom")" -eq 40 ] || fail "sim --headroom 0.2: want 40 result lines"
grep -q '"output"' "$WORK/sim.tile" && fail "the simulator claims it wrote a file"
# with the writes on the loop (--writers 0) the simulator serves the same 40 requests
"$TOOL" --clock sim --writers 0 --batch 4 --profile "$WORK/profile.json" --json \
    "$WORK/sim.jsonl" >"$WORK/sim.w0" 2>"$WORK/sim.err" || fail "sim --writers 0 exited $?"
[ "$(wc -l <"$WORK/sim.w0")" -eq 40 ] || fail "sim --writers 0: want 40 result lines"

# ---- the region cache: off by default, on skips tile-steps after the warm-up ----------
expect_exit 2 - "cache on with the sim clock" -- "$TOOL" --clock sim --cache on --profile "$WORK/profile.json"
expect_exit 2 - "cache on with an untiled policy" -- "$TOOL" --cache on --policy grouped
expect_exit 2 - "tau without the cache" -- "$TOOL" --tau 0.3
expect_exit 2 - "bad cache value" -- "$TOOL" --cache maybe
for c in off on; do
    printf '{"id": "cache-%s", "height": 64, "width": 128, "steps": 9, "seed": 2, "reference": "%s"}\n' \
        $c "$DATA/coins.png" >"$WORK/cache.jsonl"
    "$TOOL" --json --no-admission --threads 2 --batch 4 --cache $c $( [ $c = on ] && echo --tau 1e9 ) \
        --policy tile-fcfs --profile "$WORK/profile.json" --out "$WORK/out" "$WORK/cache.jsonl" \
        >"$WORK/cache.$c" 2>"$WORK/cache.err" || fail "cache $c exited $?: $(cat "$WORK/cache.err")"
    "$INFO" "$WORK/out/cache-$c.png" >"$WORK/info" 2>&1 || fail "cache-$c.png does not decode"
done
# 2 tiles x 9 steps; off: all 18 computed; on (tau 1e9): steps 5..7 may be skipped (the
# warm-up of 5 and the last step always compute)
grep -q '"computed":18,"skipped":0' "$WORK/cache.off" || fail "cache off: $(cat "$WORK/cache.off")"
grep -q '"computed":1[2-7],"skipped":[1-6],' "$WORK/cache.on" || fail "cache on skipped nothing: $(cat "$WORK/cache.on")"
grep -q "region cache on" "$WORK/cache.err" || fail "cache on: summary does not say so"

# ---- a FIFO as input: served when the writer sends a line, done at its end --------------
mkfifo "$WORK/fifo"
"$TOOL" --json --no-admission --threads 1 --profile "$WORK/profile.json" --out "$WORK/out" "$WORK/fifo" \
    >"$WORK/fifo.out" 2>"$WORK/fifo.err" &
pid=$!
printf '{"id": "viafifo", "height": 64, "width": 64, "steps": 2, "reference": "%s"}\n' \
    "$DATA/camera.png" >"$WORK/fifo"
wait $pid || fail "FIFO run exited $?: $(cat "$WORK/fifo.err")"
grep -q '"id":"viafifo","ok":true' "$WORK/fifo.out" || fail "FIFO request not served: $(cat "$WORK/fifo.out")"
[ -f "$WORK/out/viafifo.png" ] || fail "no viafifo.png"

# ---- SIGTERM: drain what arrived, report what did not -----------------------------------
cat >"$WORK/term.jsonl" <<EOF
{"id": "running", "height": 64, "width": 64, "steps": 12, "reference": "$DATA/coins.png"}
{"id": "future", "arrival_ms": 600000, "height": 64, "width": 64, "steps": 2, "reference": "$DATA/coins.png"}
EOF
"$TOOL" --json --no-admission --threads 1 --profile "$WORK/profile.json" --out "$WORK/out" \
    "$WORK/term.jsonl" >"$WORK/term.out" 2>"$WORK/term.err" &
pid=$!
sleep 1
kill -TERM $pid
wait $pid
rc=$?
[ "$rc" -eq 1 ] || fail "SIGTERM: exit $rc, expected 1 (one request not served): $(cat "$WORK/term.err")"
grep -q '"id":"running","ok":true' "$WORK/term.out" || fail "SIGTERM did not drain the running request: $(cat "$WORK/term.out")"
grep -q '"id":"future","ok":false,"status":"not served"' "$WORK/term.out" ||
    fail "SIGTERM: the future request is not reported as not served: $(cat "$WORK/term.out")"
[ -f "$WORK/out/running.png" ] || fail "SIGTERM: drained request has no PNG"

# a second SIGTERM: the long request is abandoned, reported, and leaves no PNG
printf '{"id": "long", "height": 64, "width": 64, "steps": 1000, "reference": "%s"}\n' \
    "$DATA/coins.png" >"$WORK/long.jsonl"
"$TOOL" --json --no-admission --threads 1 --profile "$WORK/profile.json" --out "$WORK/out" \
    "$WORK/long.jsonl" >"$WORK/long.out" 2>"$WORK/long.err" &
pid=$!
sleep 1
kill -TERM $pid
sleep 0.2
kill -TERM $pid
wait $pid
rc=$?
[ "$rc" -eq 1 ] || fail "two SIGTERMs: exit $rc, expected 1: $(cat "$WORK/long.err")"
grep -q '"id":"long","ok":false,"status":"not served"' "$WORK/long.out" ||
    fail "two SIGTERMs: long not reported as not served: $(cat "$WORK/long.out")"
[ ! -e "$WORK/out/long.png" ] || fail "an abandoned request left a PNG"
find "$WORK/out" -name '*.tmp' | grep -q . && fail "a temporary file left behind"

[ "$failures" -eq 0 ] || exit 1
echo "sdl-serve: all checks passed"
