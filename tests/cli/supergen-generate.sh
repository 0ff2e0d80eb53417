#!/bin/sh
# sdl-supergen --generate: stage 1 made by an exec model (the C test worker) from a
# prompt, then stage 2 as usual. Frame count and sizes, the JSON summary, determinism
# for a seed, a crashing worker recovered (same bytes) and a failing one reported
# (exit 1, nothing left behind), usage errors (exit 2, naming the problem), Ctrl-C
# during stage 1.
set -u
TOOL="$SDL_BUILD_DIR/tools/sdl-supergen"
INFO="$SDL_BUILD_DIR/tools/sdl-info"
. "$SDL_SOURCE_DIR/tests/cli/lib.sh"

worker="$SDL_TEST_WORKER --tile 1x32x32 --channels 3"
# 5 frames of 48x40 (padded to 64x64: 4 tiles of 32), made in chunks of 3 frames that
# share 1, 4 sampling steps; then x2 to 96x80 with 3 refinement steps
gen="--generate --prompt fox --sketch-size 48x40 --frames 5 --chunk 3 --overlap 1
     --sketch-steps 4 --steps 3 --warmup 1"

"$TOOL" $gen -q --model "exec:$worker" -o "$WORK/a/" || fail "generate to PNG frames failed"
n=$(ls "$WORK/a" | grep -c '^frame_.*\.png$')
[ "$n" -eq 5 ] || fail "expected 5 PNG frames, got $n"
"$INFO" "$WORK/a/frame_000005.png" >"$WORK/info" 2>&1 || fail "sdl-info on an output frame"
grep -q 'width *96' "$WORK/info" && grep -q 'height *80' "$WORK/info" ||
    fail "output frame is not 96x80: $(cat "$WORK/info")"

# the summary says what stage 1 did: 2 chunks of 3 frames x 4 tiles x 4 steps = 96
"$TOOL" $gen --json --cache off --model "exec:$worker" -o "$WORK/s.mkv" >"$WORK/summary" ||
    fail "generate with --json failed"
for want in '"input":null' '"frames":5' '"in_width":48' '"width":96' '"stage1":{' \
    '"prompt":"fox"' '"chunks":2,"steps":4,"tile_evals":96,"computed":96'; do
    grep -qF "$want" "$WORK/summary" || fail "summary lacks $want: $(cat "$WORK/summary")"
done
[ -s "$WORK/s.mkv" ] || fail "no .mkv output"

# one seed, one video; another seed or prompt, another video
"$TOOL" $gen -q --model "exec:$worker" -o "$WORK/b/" || fail "second run failed"
"$TOOL" $gen -q --seed 2 --model "exec:$worker" -o "$WORK/c/" || fail "seed 2 run failed"
"$TOOL" $gen -q --prompt "a grey wolf" --model "exec:$worker" -o "$WORK/d/" ||
    fail "other prompt run failed"
for f in $(ls "$WORK/a"); do
    cmp -s "$WORK/a/$f" "$WORK/b/$f" || fail "$f differs between two runs with one seed"
done
cmp -s "$WORK/a/frame_000001.png" "$WORK/c/frame_000001.png" && fail "seed does not matter"
cmp -s "$WORK/a/frame_000001.png" "$WORK/d/frame_000001.png" && fail "prompt does not matter"

# a worker that crashes mid-run (device 1, after 2 batches): its tiles are re-run on the
# other worker and the output is byte for byte the same
"$TOOL" $gen -q --model "exec:$worker --mode crash --after 2 --only-device 1" \
    --devices 0,1 -o "$WORK/e/" || fail "run with a crashing worker failed"
for f in $(ls "$WORK/a"); do
    cmp -s "$WORK/a/$f" "$WORK/e/$f" || fail "$f differs after a worker crash"
done

# a longer sketch chunk than stage 2's: 5 frames in one stage-1 chunk
"$TOOL" $gen --json --cache off --sketch-chunk 5 --sketch-overlap 2 \
    --model "exec:$worker" -o "$WORK/g/" >"$WORK/summary" || fail "--sketch-chunk run failed"
grep -qF '"chunks":1,"steps":4,"tile_evals":80' "$WORK/summary" ||
    fail "--sketch-chunk 5: $(cat "$WORK/summary")"

# one frame into one image
"$TOOL" --generate --prompt fox --frames 1 --sketch-steps 3 --steps 2 -q \
    --model "exec:$worker" -o "$WORK/one.png" || fail "one-frame run failed"
"$INFO" "$WORK/one.png" >"$WORK/info" 2>&1 && grep -q 'width *64' "$WORK/info" ||
    fail "one-frame output (the model's 32x32 tile, x2): $(cat "$WORK/info")"

# a worker that fails every batch: reported, nothing written
expect_exit 1 "$WORK/u.mkv" "worker that always fails" -- \
    "$TOOL" $gen --model "exec:$worker --mode error" -o "$WORK/u.mkv"
grep -q 'stage 1' "$WORK/stderr" || fail "failure does not name stage 1: $(cat "$WORK/stderr")"
# a worker that refuses the request: the request is bad for this model (exit 2, as
# the exec backend reports a refused OPEN)
expect_exit 2 "$WORK/u.mkv" "worker that refuses the prompt" -- \
    "$TOOL" $gen --model "exec:$worker --mode refuse" -o "$WORK/u.mkv"
grep -q 'refuses' "$WORK/stderr" || fail "refusal not passed on: $(cat "$WORK/stderr")"

# ---- usage errors -------------------------------------------------------------------
expect_exit 2 "$WORK/u.mkv" "--generate with the built-in model" -- \
    "$TOOL" --generate --prompt fox -o "$WORK/u.mkv"
grep -q 'needs an exec model' "$WORK/stderr" && grep -q 'no prior' "$WORK/stderr" ||
    fail "built-in model refusal: $(cat "$WORK/stderr")"
expect_exit 2 "$WORK/u.mkv" "--generate with exemplar named" -- \
    "$TOOL" --generate --model exemplar:patch=8 -o "$WORK/u.mkv"
expect_exit 2 "$WORK/u.mkv" "--generate and an input" -- \
    "$TOOL" --generate --model "exec:$worker" -o "$WORK/u.mkv" "$SDL_TESTDATA/tree.avi"
grep -q 'no INPUT' "$WORK/stderr" || fail "input with --generate: $(cat "$WORK/stderr")"
expect_exit 2 "$WORK/u.mkv" "--sketch-size without --generate" -- \
    "$TOOL" --sketch-size 64x64 -o "$WORK/u.mkv" "$SDL_TESTDATA/tree.avi"
expect_exit 2 "$WORK/u.mkv" "bad --sketch-size" -- \
    "$TOOL" --generate --sketch-size 64 --model "exec:$worker" -o "$WORK/u.mkv"
expect_exit 2 "$WORK/u.mkv" "--sketch-overlap not below --sketch-chunk" -- \
    "$TOOL" --generate --sketch-chunk 4 --sketch-overlap 4 --model "exec:$worker" \
    -o "$WORK/u.mkv"
expect_exit 2 "$WORK/u.mkv" "bad --sketch-steps" -- \
    "$TOOL" --generate --sketch-steps 0 --model "exec:$worker" -o "$WORK/u.mkv"

# ---- Ctrl-C during stage 1: the partial output and its temporary file are removed ----
expect_interrupt_cleans "$WORK/int.mkv" 1 -- "$TOOL" --generate --sketch-size 512x512 --frames 4 \
    --sketch-steps 1000 -q --model "exec:$worker" -o "$WORK/int.mkv"

[ "$failures" -eq 0 ] || exit 1
echo "supergen-generate: all checks passed"
