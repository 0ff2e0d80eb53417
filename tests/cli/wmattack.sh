#!/bin/sh
# sdl-wmattack: chains applied to real photos (deterministic for a seed, equal to the
# same attacks applied one tool run at a time through a pipe), directory runs, stdin,
# usage errors (exit 2, one message + hint) and bad inputs (exit 1, the file named,
# nothing left behind, the run goes on).
set -u
TOOL="$SDL_BUILD_DIR/tools/sdl-wmattack"
INFO="$SDL_BUILD_DIR/tools/sdl-info"
DATA="$SDL_TESTDATA"
. "$SDL_SOURCE_DIR/tests/cli/lib.sh"

img="$DATA/chelsea.png"

# ---- determinism and composition -----------------------------------------------------
"$TOOL" -q -a crop:0.5@random,brightness:1.5,noise:4,jpeg:80 --seed 7 -o "$WORK/a.png" "$img" ||
    fail "chain run failed"
"$TOOL" -q -a crop:0.5@random,brightness:1.5,noise:4,jpeg:80 --seed 7 -o "$WORK/b.png" "$img" ||
    fail "second chain run failed"
cmp -s "$WORK/a.png" "$WORK/b.png" || fail "same seed, different outputs"
"$TOOL" -q -a crop:0.5@random,brightness:1.5,noise:4,jpeg:80 --seed 8 -o "$WORK/c.png" "$img"
cmp -s "$WORK/a.png" "$WORK/c.png" && fail "different seeds, same output"

# deterministic attacks compose: a chain equals its attacks piped one by one (PNG between)
"$TOOL" -q -a crop:0.5:side@10,20,contrast:0.7,shift:3:-2:wrap,jpeg:60:444 -o "$WORK/chain.png" "$img"
"$TOOL" -q -a crop:0.5:side@10,20 "$img" | "$TOOL" -q -a contrast:0.7 - |
    "$TOOL" -q -a shift:3:-2:wrap - | "$TOOL" -q -a jpeg:60:444 -o "$WORK/piped.png" - ||
    fail "piped run failed"
cmp -s "$WORK/chain.png" "$WORK/piped.png" || fail "chain differs from the piped attacks"

# geometry of the output, read back with sdl-info: 451x300 -> 226x150 -> 452x300
"$TOOL" -q -a crop:0.25,resize:2 -o "$WORK/g.png" "$img"
"$INFO" --json "$WORK/g.png" | grep -q '"width":452,"height":300' || fail "crop 0.25 + resize 2: $("$INFO" --json "$WORK/g.png")"

# ---- directories, JSON lines, outputs never overwrite inputs ------------------------
mkdir "$WORK/in" "$WORK/out"
cp "$DATA/chelsea.png" "$DATA/coins.png" "$WORK/in/"
echo "not an image" >"$WORK/in/notes.txt"
"$TOOL" --json -a jpeg:50 --out-dir "$WORK/out" "$WORK/in" >"$WORK/lines" ||
    fail "directory run failed"
[ "$(grep -c '"ok": true' "$WORK/lines")" -eq 2 ] || fail "directory run: $(cat "$WORK/lines")"
[ -f "$WORK/out/chelsea.png" ] && [ -f "$WORK/out/coins.png" ] || fail "directory outputs missing"
head -n 1 "$WORK/lines" | grep -q '"input": ".*chelsea.png"' || fail "inputs not in sorted order"

# a bad file among good ones: reported on its own, the others written, exit 1
echo "garbage" >"$WORK/in/broken.png"
rm -f "$WORK/out/"*
"$TOOL" -a jpeg:50 --out-dir "$WORK/out" "$WORK/in" >"$WORK/stdout" 2>"$WORK/stderr"
rc=$?
[ "$rc" -eq 1 ] || fail "directory with a broken file: exit $rc"
grep -q '^sdl-wmattack: .*broken.png' "$WORK/stderr" || fail "broken file not named: $(cat "$WORK/stderr")"
[ ! -e "$WORK/out/broken.png" ] || fail "broken file left an output"
[ -f "$WORK/out/coins.png" ] || fail "the run stopped at the broken file"
rm "$WORK/in/broken.png"

# into the input directory, same names: refused per file, inputs untouched
cp "$WORK/in/coins.png" "$WORK/coins.orig.png"
"$TOOL" -q -a jpeg:10 --out-dir "$WORK/in" "$WORK/in/coins.png" 2>"$WORK/stderr"
[ $? -eq 1 ] || fail "overwriting an input was not refused"
cmp -s "$WORK/in/coins.png" "$WORK/coins.orig.png" || fail "an input was overwritten"

# ---- usage errors: exit 2 --------------------------------------------------------
expect_exit 2 "$WORK/u.png" "unknown attack" -- "$TOOL" -a blurr:2 -o "$WORK/u.png" "$img"
grep -q "unknown attack 'blurr'" "$WORK/stderr" || fail "unknown attack message: $(cat "$WORK/stderr")"
expect_exit 2 "$WORK/u.png" "bad number" -- "$TOOL" -a jpeg:high -o "$WORK/u.png" "$img"
grep -q "quality 'high' is not a number" "$WORK/stderr" || fail "bad number message"
expect_exit 2 "$WORK/u.png" "missing parameter" -- "$TOOL" -a crop -o "$WORK/u.png" "$img"
grep -q "missing parameter" "$WORK/stderr" || fail "missing parameter message"
expect_exit 2 "$WORK/u.png" "no chain" -- "$TOOL" -o "$WORK/u.png" "$img"
expect_exit 2 - "two inputs without --out-dir" -- "$TOOL" -a jpeg:50 "$img" "$DATA/coins.png"
expect_exit 2 - "bad seed" -- "$TOOL" -a jpeg:50 --seed -1 "$img"

# ---- bad inputs: exit 1, the file named, nothing left -------------------------------
printf '\211PNG\r\n\032\n' >"$WORK/trunc.png"
expect_exit 1 "$WORK/o1.png" "truncated PNG" -- "$TOOL" -a jpeg:50 -o "$WORK/o1.png" "$WORK/trunc.png"
grep -q "trunc.png" "$WORK/stderr" || fail "truncated PNG not named"
expect_exit 1 "$WORK/o2.png" "missing file" -- "$TOOL" -a jpeg:50 -o "$WORK/o2.png" "$WORK/nope.png"
grep -q "nope.png" "$WORK/stderr" || fail "missing file not named"
expect_exit 1 "$WORK/o3.png" "crop that leaves nothing" -- "$TOOL" -a shift:5000:0:crop -o "$WORK/o3.png" "$img"

# --list names every attack
for name in jpeg crop resize rotate brightness contrast saturation sharpness noise blur shift box text; do
    "$TOOL" --list | grep -q "^$name:" || fail "--list lacks $name"
done

[ "$failures" -eq 0 ] && echo "sdl-wmattack: all checks passed"
exit "$failures"
