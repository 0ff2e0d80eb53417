#!/bin/sh
# sdl-supergen: a small real run (sizes, padding and crop, frame count), determinism for
# a seed, identical output for 1 and 2 workers and with static assignment, the cache
# trace, chunked streaming, usage errors (exit 2) and bad inputs (exit 1, nothing left
# behind), Ctrl-C removing the partial output.
set -u
TOOL="$SDL_BUILD_DIR/tools/sdl-supergen"
INFO="$SDL_BUILD_DIR/tools/sdl-info"
DATA="$SDL_TESTDATA"
. "$SDL_SOURCE_DIR/tests/cli/lib.sh"

clip="$DATA/tree.avi"
# 3 frames of tree.avi at 128x96 (x0.4): 96 is not a multiple of the 64-pixel tile, so
# the run pads to 128x128 and crops back. 4 steps keep it to a second or two.
small="--frames 3 --size 128x96 --steps 4 --warmup 1 --tau 0.5"

"$TOOL" $small -q -o "$WORK/a/" "$clip" || fail "run to PNG frames failed"
n=$(ls "$WORK/a" | grep -c '^frame_.*\.png$')
[ "$n" -eq 3 ] || fail "expected 3 PNG frames, got $n"
"$INFO" "$WORK/a/frame_000001.png" >"$WORK/info" 2>&1 || fail "sdl-info on an output frame"
grep -q 'width *128' "$WORK/info" && grep -q 'height *96' "$WORK/info" ||
    fail "output frame is not 128x96: $(cat "$WORK/info")"

# odd sizes are padded to whole tiles and cropped back
"$TOOL" --frames 1 --size 125x93 --steps 2 -q -o "$WORK/odd/" "$clip" || fail "odd-size run failed"
"$INFO" "$WORK/odd/frame_000001.png" >"$WORK/info" 2>&1
grep -q 'width *125' "$WORK/info" && grep -q 'height *93' "$WORK/info" ||
    fail "odd-size frame: $(cat "$WORK/info")"

# the same seed gives the same frames; workers and assignment do not change the output
"$TOOL" $small -q -o "$WORK/b/" "$clip" || fail "second run failed"
"$TOOL" $small -q --workers 2 -o "$WORK/c/" "$clip" || fail "2-worker run failed"
"$TOOL" $small -q --workers 2 --static -o "$WORK/d/" "$clip" || fail "static run failed"
for f in frame_000001.png frame_000002.png frame_000003.png; do
    cmp -s "$WORK/a/$f" "$WORK/b/$f" || fail "$f differs between two runs with one seed"
    cmp -s "$WORK/a/$f" "$WORK/c/$f" || fail "$f differs with 2 workers"
    cmp -s "$WORK/a/$f" "$WORK/d/$f" || fail "$f differs with static assignment"
done
"$TOOL" $small -q --seed 2 -o "$WORK/e/" "$clip" || fail "seed 2 run failed"
cmp -s "$WORK/a/frame_000001.png" "$WORK/e/frame_000001.png" && fail "seed does not matter"

# chunks: 2-frame chunks with 1 frame of overlap stream the same 3 frames
"$TOOL" $small -q --chunk 2 --overlap 1 -o "$WORK/f/" "$clip" || fail "chunked run failed"
n=$(ls "$WORK/f" | grep -c '^frame_.*\.png$')
[ "$n" -eq 3 ] || fail "chunked run wrote $n frames, expected 3"

# trace: one row per tile and step (3 frames x 2x2 tiles x 4 steps = 48), JSON summary
"$TOOL" $small --json --trace "$WORK/trace.jsonl" -o "$WORK/t.mkv" "$clip" >"$WORK/summary" ||
    fail "traced run failed"
rows=$(grep -c '"computed":' "$WORK/trace.jsonl")
[ "$rows" -eq 48 ] || fail "trace has $rows rows, expected 48"
grep -q '"tile_evals":48' "$WORK/summary" || fail "summary: $(cat "$WORK/summary")"
computed=$(grep -c '"computed":true' "$WORK/trace.jsonl")
grep -q "\"computed\":$computed," "$WORK/summary" || fail "trace and summary disagree"
# the first (warm-up) and last steps are always computed
grep '"step":0,' "$WORK/trace.jsonl" | grep -q '"computed":false' && fail "warm-up step skipped"
grep '"step":3,' "$WORK/trace.jsonl" | grep -q '"computed":false' && fail "last step skipped"
[ -s "$WORK/t.mkv" ] || fail "no .mkv output"

# one image in, one image out
"$TOOL" -q --scale 0.5 --steps 3 -o "$WORK/one.png" "$DATA/coins.png" || fail "image run failed"
"$INFO" "$WORK/one.png" >"$WORK/info" 2>&1 && grep -q 'width *192' "$WORK/info" ||
    fail "image output: $(cat "$WORK/info")"

# exec backend: the C test worker (out = 0.5 x + k, deterministic) on two "devices";
# when the worker of device 1 crashes mid-run its tiles are re-run elsewhere and the
# output is the same as without the crash
worker="$SDL_TEST_WORKER --tile 1x64x64 --channels 3"
"$TOOL" $small -q --model "exec:$worker" --devices 0,1 -o "$WORK/x/" "$clip" ||
    fail "exec run failed"
"$TOOL" $small -q --model "exec:$worker --mode crash --after 2 --only-device 1" \
    --devices 0,1 -o "$WORK/y/" "$clip" || fail "exec run with a crashing worker failed"
for f in frame_000001.png frame_000002.png frame_000003.png; do
    [ -s "$WORK/x/$f" ] || fail "exec run: no $f"
    cmp -s "$WORK/x/$f" "$WORK/y/$f" || fail "$f differs after a worker crash"
done
expect_exit 1 "$WORK/u.mkv" "exec worker that always fails" -- \
    "$TOOL" $small --model "exec:$worker --mode error" -o "$WORK/u.mkv" "$clip"

# ---- usage errors -------------------------------------------------------------------
expect_exit 2 "$WORK/u.mkv" "no input" -- "$TOOL" -o "$WORK/u.mkv"
expect_exit 2 - "no output" -- "$TOOL" "$clip"
expect_exit 2 "$WORK/u.mkv" "bad --cache" -- "$TOOL" --cache maybe -o "$WORK/u.mkv" "$clip"
expect_exit 2 "$WORK/u.mkv" "bad preset" -- "$TOOL" --preset 8k -o "$WORK/u.mkv" "$clip"
expect_exit 2 "$WORK/u.mkv" "bad steps" -- "$TOOL" --steps -1 -o "$WORK/u.mkv" "$clip"
expect_exit 2 "$WORK/u.mkv" "tile below the patch (no halo)" -- \
    "$TOOL" --model exemplar:halo=0 --tile 4 -o "$WORK/u.mkv" "$clip"

expect_exit 2 - "--json with -o -" -- "$TOOL" --json -o - "$clip"
expect_exit 2 "$WORK/u.mp4" "odd size into H.264" -- \
    "$TOOL" $small --size 127x96 -o "$WORK/u.mp4" "$clip"
grep -q 'even' "$WORK/stderr" || fail "odd H.264 size: $(cat "$WORK/stderr")"

# ---- bad inputs -----------------------------------------------------------------------
expect_exit 1 "$WORK/u.mkv" "missing input" -- "$TOOL" -o "$WORK/u.mkv" "$WORK/nope.avi"
grep -q 'nope.avi' "$WORK/stderr" || fail "missing input not named: $(cat "$WORK/stderr")"
printf 'not a video at all' >"$WORK/garbage.avi"
expect_exit 1 "$WORK/u.mkv" "garbage input" -- "$TOOL" -o "$WORK/u.mkv" "$WORK/garbage.avi"
: >"$WORK/empty.mp4"
expect_exit 1 "$WORK/u.mkv" "empty input" -- "$TOOL" -o "$WORK/u.mkv" "$WORK/empty.mp4"
expect_exit 1 "$WORK/u.png" "two frames into one image" -- \
    "$TOOL" $small -o "$WORK/u.png" "$clip"
expect_exit 1 "$WORK/u.mkv" "exec model that cannot start" -- \
    "$TOOL" $small --model "exec:$WORK/no-such-worker" -o "$WORK/u.mkv" "$clip"

# ---- Ctrl-C: the partial output and its temporary file are removed --------------------
expect_interrupt_cleans "$WORK/int.mkv" 2 -- "$TOOL" --frames 40 --size 256x192 --steps 30 -q -o "$WORK/int.mkv" "$clip"

[ "$failures" -eq 0 ] || exit 1
echo "supergen: all checks passed"
