#!/bin/sh
# sdl-bench digits: the quantized MLP on the real handwritten digits (tests/data/digits.png),
# quick mode. Checks computed accuracies, not timings: float > 85 % on the held-out split,
# w8a8 within 1 point of float (post-training and quantization-aware), every precision
# reported with its float baseline and the GEMM routes; the family itself aborts (exit 1)
# when a layer's int32 GEMM differs from a naive integer matmul, and its footnotes must say
# that check ran. Also: the trained weights written with SDL_DIGITS_WEIGHTS, a missing
# digits.png skipped, an image that does not cut into 20x20 tiles refused.
set -u
bench="$SDL_BUILD_DIR/tools/sdl-bench"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$bench" --list | grep -q "^digits " || bad "--list does not name digits"

SDL_DIGITS_WEIGHTS="$tmp/mlp.safetensors" "$bench" --quick --tmpdir "$tmp" \
    --data "$SDL_TESTDATA" digits >"$tmp/table" 2>"$tmp/log"; rc=$?
cat "$tmp/log" "$tmp/table"
[ $rc -eq 0 ] || bad "--quick digits exits $rc"
rows=$(grep -c "^digits " "$tmp/table")
[ "$rows" -eq 8 ] || bad "want 8 digits rows (4 precisions x PTQ/QAT), got $rows"
for p in w1a2 w2a2 w4a4 w8a8; do
    for m in PTQ QAT; do
        grep -Eq "^digits  *$p $m: acc [0-9.]+% vs float [0-9.]+% \([-+][0-9.]+\) \[[0-9]+\] .* img/s  *float MLP \(sgemm\) .* img/s +[0-9]+\.[0-9][0-9]x +3$" \
            "$tmp/table" || bad "no well-formed $p $m row"
    done
done
grep -Eq "^\[[0-9]+\] PTQ: .*routes (bitserial|int8)/(bitserial|int8); int32 GEMM of each layer = naive matmul" \
    "$tmp/table" || bad "footnotes do not say the GEMM was checked against a naive matmul"
grep -q "routes bitserial/bitserial" "$tmp/table" || bad "no precision ran the bit-serial route"

# accuracies, as fractions of 100, from the row names
acc() { sed -n "s/^digits  *$1 $2: acc \([0-9.]*\)% vs float \([0-9.]*\)%.*/\\$3/p" "$tmp/table"; }
float=$(acc w8a8 PTQ 2)
[ -n "$float" ] || bad "no float accuracy"
if [ -n "$float" ]; then
    awk -v f="$float" 'BEGIN { exit !(f > 85) }' || bad "float accuracy $float% is not above 85%"
    for m in PTQ QAT; do
        q=$(acc w8a8 $m 1)
        awk -v f="$float" -v q="$q" 'BEGIN { d = q - f; exit !(q != "" && d <= 1 && d >= -1) }' ||
            bad "w8a8 $m accuracy $q% is not within 1 point of float $float%"
    done
    for p in w1a2 w2a2 w4a4; do   # sane: better than chance by far, never above 100
        q=$(acc $p QAT 1)
        awk -v q="$q" 'BEGIN { exit !(q != "" && q > 50 && q <= 100) }' ||
            bad "$p QAT accuracy '$q' is not sane"
    done
fi
grep -q "float 400-128-10: 10 epochs .* held-out accuracy [0-9.]*% (4000 train / 1000 test images)" \
    "$tmp/log" || bad "no training line in the log"

# the weights file: safetensors with the four tensors, read back by the family
[ -s "$tmp/mlp.safetensors" ] || bad "SDL_DIGITS_WEIGHTS: no weights file written"
for t in fc1.weight fc1.bias fc2.weight fc2.bias; do
    grep -aq "\"$t\"" "$tmp/mlp.safetensors" || bad "weights file lacks $t"
done
grep -q "read back identical" "$tmp/log" || bad "weights not read back"
size=$(wc -c <"$tmp/mlp.safetensors")
[ "$size" -ge $(( (400 * 128 + 128 + 128 * 10 + 10) * 4 )) ] || bad "weights file too small: $size"

# no digits.png: skipped with a note, exit 0; a sheet that does not cut into tiles: exit 1
mkdir "$tmp/empty" "$tmp/wrong"
"$bench" --quick --data "$tmp/empty" digits >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 0 ] || bad "missing digits.png exits $rc (want 0, skipped)"
grep -q "skipped: no digits.png" "$tmp/err" || bad "missing digits.png not reported: $(cat "$tmp/err")"
cp "$SDL_TESTDATA/camera.png" "$tmp/wrong/digits.png"
"$bench" --quick -q --data "$tmp/wrong" digits >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || bad "a 512x512 digits.png exits $rc (want 1)"
grep -q "digits.png: 512x512 pixels do not cut into 20x20 tiles" "$tmp/err" ||
    bad "bad sheet not explained: $(cat "$tmp/err")"

[ $fail -eq 0 ] && echo "sdl-bench digits: all checks passed"
exit $fail
