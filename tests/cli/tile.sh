#!/bin/sh
# sdl-tile: pipe round trips on real photos and a real video compared byte for byte,
# bad inputs (exit 1, one message, no output file) and usage errors (exit 2).
set -u
TOOL="$SDL_BUILD_DIR/tools/sdl-tile"
DATA="$SDL_TESTDATA"
. "$SDL_SOURCE_DIR/tests/cli/lib.sh"

# ---- round trips: the reference is the image cut as one full-size tile (a plain copy) --
for name in chelsea coins astronaut camera; do
    img="$DATA/$name.png"
    "$TOOL" split -s 65535 -o - "$img" | "$TOOL" merge -o "$WORK/$name.ref.npy" - ||
        fail "$name: reference split/merge failed"
    for blend in feather average; do
        "$TOOL" split -s 128 --overlap 24x37 -o - "$img" |
            "$TOOL" merge --blend "$blend" -o "$WORK/$name.$blend.npy" - ||
            fail "$name $blend: split|merge failed"
        cmp -s "$WORK/$name.ref.npy" "$WORK/$name.$blend.npy" ||
            fail "$name: $blend merge of overlapping tiles differs from the image"
    done
    # through PNG: merge to .png, read it back, same pixels
    "$TOOL" split -s 128 -o - "$img" | "$TOOL" merge -o "$WORK/$name.png" - &&
        "$TOOL" split -s 65535 "$WORK/$name.png" | "$TOOL" merge -o "$WORK/$name.png.npy" &&
        cmp -s "$WORK/$name.ref.npy" "$WORK/$name.png.npy" ||
        fail "$name: split|merge to PNG changed pixels"
done

# the reference itself holds the decoded pixels: compare with FFmpeg's decoding when present
if command -v ffmpeg >/dev/null 2>&1; then
    ffmpeg -v error -i "$DATA/chelsea.png" -f rawvideo -pix_fmt rgb24 - >"$WORK/chelsea.rgb"
    size=$(wc -c <"$WORK/chelsea.rgb")
    [ "$size" -eq $((451 * 300 * 3)) ] || fail "ffmpeg gave $size bytes for chelsea"
    tail -c "$size" "$WORK/chelsea.ref.npy" | cmp -s - "$WORK/chelsea.rgb" ||
        fail "chelsea: pixels differ from FFmpeg's decoding"
fi

# torus grid with a shift larger than the canvas and a negative one: still exact
"$TOOL" split -s 128 --torus --shift -7,1003 -o - "$DATA/astronaut.png" |
    "$TOOL" merge -o "$WORK/astronaut.torus.npy" &&
    cmp -s "$WORK/astronaut.ref.npy" "$WORK/astronaut.torus.npy" ||
    fail "astronaut: shifted torus round trip differs"

# tensors: the merged .npy split again as a tensor file, in a pipe
"$TOOL" split -s 100 --overlap 9 -o - - <"$WORK/chelsea.ref.npy" |
    "$TOOL" merge -o "$WORK/chelsea.tensor.npy" &&
    cmp -s "$WORK/chelsea.ref.npy" "$WORK/chelsea.tensor.npy" ||
    fail "tensor round trip through stdin differs"

# video: groups of 16 frames, overlapping tiles, against the whole video as one tile
"$TOOL" split --frames 1000 -s 65535 -o - "$DATA/tree.avi" | "$TOOL" merge -o "$WORK/tree.ref.npy" ||
    fail "video reference split/merge failed"
"$TOOL" split --frames 16 -s 96 --overlap 16 -o - "$DATA/tree.avi" |
    "$TOOL" merge --json -o "$WORK/tree.npy" >"$WORK/tree.json" &&
    cmp -s "$WORK/tree.ref.npy" "$WORK/tree.npy" || fail "video tiles round trip differs"
grep -q '"frames": 444' "$WORK/tree.json" || fail "video summary: $(cat "$WORK/tree.json")"

# --json summary and the grid listing
"$TOOL" split -s 128 --overlap 16 --json -o "$WORK/c.st" "$DATA/chelsea.png" >"$WORK/split.json" ||
    fail "split --json failed"
grep -q '"records": 12' "$WORK/split.json" || fail "split summary: $(cat "$WORK/split.json")"
[ "$("$TOOL" grid -s 128 --overlap 16 300x451 | grep -vc '^#')" -eq 12 ] ||
    fail "grid does not list 12 tiles"
"$TOOL" grid -s 128 --overlap 16 300x451 | grep -q "^3	0	0	323	1	128	128$" ||
    fail "grid: last tile of a row is not aligned to the edge"

# ---- bad data: exit 1, one message, no output ---------------------------------------
"$TOOL" split -s 128 -o "$WORK/c.st" "$DATA/chelsea.png" || fail "split to a file failed"
header=$(od -An -t u8 -N8 "$WORK/c.st" | tr -d ' ')
record=$((8 + header + 128 * 128 * 3))
[ $((12 * record)) -eq "$(wc -c <"$WORK/c.st")" ] || fail "records are not $record bytes each"
head -c 1000 /dev/urandom >"$WORK/garbage"
head -c 8 "$WORK/c.st" >"$WORK/trunc8.st"
head -c $((2 * record + 640)) "$WORK/c.st" >"$WORK/cut.st"
head -c $((5 * record)) "$WORK/c.st" >"$WORK/short.st"
{ head -c "$record" "$WORK/c.st"; tail -c +$((2 * record + 1)) "$WORK/c.st"; } >"$WORK/missing.st"
{ head -c "$record" "$WORK/c.st"; cat "$WORK/c.st"; } >"$WORK/dup.st"
{ cat "$WORK/c.st"; "$TOOL" split -s 128 "$DATA/coins.png"; } >"$WORK/mixed.st"
: >"$WORK/empty.st"
out="$WORK/out.png"
expect_exit 1 "$out" "missing input" -- "$TOOL" merge -o "$out" "$WORK/nonexistent.st"
expect_exit 1 "$WORK/x.st" "missing image" -- "$TOOL" split -o "$WORK/x.st" "$WORK/nonexistent.png"
expect_exit 1 "$WORK/x.st" "garbage input" -- "$TOOL" split -o "$WORK/x.st" "$WORK/garbage"
expect_exit 1 "$out" "garbage stream" -- "$TOOL" merge -o "$out" "$WORK/garbage"
expect_exit 1 "$out" "empty stream" -- "$TOOL" merge -o "$out" "$WORK/empty.st"
expect_exit 1 "$out" "truncated stream" -- "$TOOL" merge -o "$out" "$WORK/trunc8.st"
expect_exit 1 "$out" "record cut in the middle" -- "$TOOL" merge -o "$out" "$WORK/cut.st"
grep -q "record 3" "$WORK/stderr" || fail "cut record: message does not name record 3"
expect_exit 1 "$out" "stream missing its last tiles" -- "$TOOL" merge -o "$out" "$WORK/short.st"
grep -q "tile 5 is missing" "$WORK/stderr" || fail "short stream: $(cat "$WORK/stderr")"
expect_exit 1 "$out" "a tile missing" -- "$TOOL" merge -o "$out" - <"$WORK/missing.st"
grep -q "tile 1 is missing" "$WORK/stderr" || fail "missing tile: $(cat "$WORK/stderr")"
grep -q "record 11" "$WORK/stderr" || fail "missing tile: no record number: $(cat "$WORK/stderr")"
expect_exit 1 "$out" "duplicate tile" -- "$TOOL" merge -o "$out" "$WORK/dup.st"
grep -q "record 2: tile 0 was given twice" "$WORK/stderr" || fail "dup: $(cat "$WORK/stderr")"
expect_exit 1 "$out" "tiles of two images" -- "$TOOL" merge -o "$out" "$WORK/mixed.st"
grep -q "record 13" "$WORK/stderr" || fail "mixed: $(cat "$WORK/stderr")"
# an f32 canvas (a hand-made .npy [2,3,1]) cannot become a PNG: refused, nothing written
{
    printf '\223NUMPY\001\000\166\000'
    printf '%-117s\n' "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 1), }"
    head -c 24 /dev/zero
} >"$WORK/f32.npy"
"$TOOL" split -s 2 -o "$WORK/f32.st" "$WORK/f32.npy" || fail "split of an f32 .npy failed"
expect_exit 1 "$out" "f32 canvas to PNG" -- "$TOOL" merge -o "$out" "$WORK/f32.st"
"$TOOL" merge -o "$WORK/f32.back.npy" "$WORK/f32.st" && cmp -s "$WORK/f32.npy" "$WORK/f32.back.npy" ||
    fail "f32 .npy round trip differs"

# ---- usage errors: exit 2 ---------------------------------------------------------
expect_exit 2 - "no command" -- "$TOOL"
expect_exit 2 - "unknown command" -- "$TOOL" bogus
expect_exit 2 - "split without input" -- "$TOOL" split -o "$WORK/x.st"
expect_exit 2 "$WORK/x.st" "tile size 0" -- "$TOOL" split -s 0 -o "$WORK/x.st" "$DATA/chelsea.png"
expect_exit 2 "$WORK/x.st" "overlap >= tile" -- "$TOOL" split -s 64 --overlap 64 -o "$WORK/x.st" "$DATA/chelsea.png"
expect_exit 2 "$WORK/x.st" "torus + overlap" -- "$TOOL" split --torus --overlap 4 -o "$WORK/x.st" "$DATA/chelsea.png"
expect_exit 2 "$WORK/x.st" "shift without torus" -- "$TOOL" split --shift 1,2 -o "$WORK/x.st" "$DATA/chelsea.png"
expect_exit 2 "$WORK/x.st" "bad shift" -- "$TOOL" split --torus --shift 1 -o "$WORK/x.st" "$DATA/chelsea.png"
expect_exit 2 "$WORK/x.st" "torus not dividing" -- "$TOOL" split --torus -s 128 -o "$WORK/x.st" "$DATA/chelsea.png"
expect_exit 2 "$out" "bad blend" -- "$TOOL" merge --blend median -o "$out" "$WORK/c.st"
expect_exit 2 "$out" "two streams" -- "$TOOL" merge -o "$out" "$WORK/c.st" "$WORK/c.st"
expect_exit 2 - "bad canvas" -- "$TOOL" grid 300x
"$TOOL" --help | grep -q "sdl-tile split" || fail "--help"
"$TOOL" merge --help | grep -q "sdl-tile merge" || fail "merge --help"
"$TOOL" --version | grep -q "^sdl-tile (sdl) " || fail "--version"

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all sdl-tile checks passed"
