#!/bin/sh
# sdl-info on real files: values are checked, not just exit codes.
#   chelsea.png is 451x300 RGB 8-bit; camera.png 512x512 gray; a hand-made .npy of known
#   int32 contents; a NumPy-written .npy/.npz when numpy is installed; tree.avi has 444
#   frames at 15 fps (the AVI says 14.9999...); --json is valid JSON lines; bad files
#   exit 1 naming the file while the other files are still described; usage errors exit 2.
set -u
info="$SDL_BUILD_DIR/tools/sdl-info"
data="$SDL_TESTDATA"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# jget FILE KEY...: the value at the path KEY... of the one JSON object in FILE
# (numbers as Python prints them, true/false as True/False in python, true/false in jq).
if command -v jq >/dev/null 2>&1; then
    jget() { f=$1; shift; path=""; for k; do case $k in [0-9]*) path="$path[$k]";; *) path="$path.\"$k\"";; esac; done; jq -r "$path" "$f"; }
    jvalid() { jq -e . "$1" >/dev/null 2>&1; }
elif [ -x /usr/bin/python3 ]; then
    jget() { /usr/bin/python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: v=v[int(k)] if isinstance(v,list) else v[k]
print(str(v).lower() if isinstance(v,bool) else v)' "$@"; }
    jvalid() { /usr/bin/python3 -m json.tool "$1" >/dev/null 2>&1; }
else
    jget() { echo "no-json-tool"; }
    jvalid() { head -c1 "$1" | grep -q '{'; }
fi
# same NUMBER NUMBER: numerically equal (jq prints 451, python 451 or 451.0)
same() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0) }'; }
# jsonl_valid FILE: every line of FILE is one valid JSON object
jsonl_valid() {
    n=0
    while IFS= read -r line; do
        n=$((n + 1))
        printf '%s\n' "$line" >"$tmp/line.json"
        jvalid "$tmp/line.json" || { echo "line $n is not JSON: $line"; return 1; }
    done <"$1"
    [ $n -gt 0 ]
}

# ---- images ----------------------------------------------------------------------
out=$("$info" "$data/chelsea.png" 2>&1); rc=$?
[ $rc -eq 0 ] || bad "chelsea.png exits $rc: $out"
echo "$out" | grep -q "png image" || bad "chelsea.png not reported as PNG: $out"
echo "$out" | grep -Eq "width +451" || bad "chelsea.png width: $out"
echo "$out" | grep -Eq "height +300" || bad "chelsea.png height: $out"
echo "$out" | grep -Eq "channels +3 \(RGB\)" || bad "chelsea.png channels: $out"
echo "$out" | grep -Eq "bit depth +8" || bad "chelsea.png bit depth: $out"

"$info" --json "$data/chelsea.png" >"$tmp/chelsea.json" || bad "--json chelsea.png failed"
jsonl_valid "$tmp/chelsea.json" || bad "--json chelsea.png is not JSON"
same "$(jget "$tmp/chelsea.json" width)" 451 || bad "json width $(jget "$tmp/chelsea.json" width)"
same "$(jget "$tmp/chelsea.json" height)" 300 || bad "json height"
same "$(jget "$tmp/chelsea.json" channels)" 3 || bad "json channels"
same "$(jget "$tmp/chelsea.json" bit_depth)" 8 || bad "json bit_depth"
[ "$(jget "$tmp/chelsea.json" kind)" = image ] || bad "json kind"
[ "$(jget "$tmp/chelsea.json" palette)" = false ] || bad "json palette"
max=$(jget "$tmp/chelsea.json" max)
awk -v m="$max" 'BEGIN { exit !(m > 100 && m <= 255) }' || bad "chelsea max pixel $max"

"$info" --json "$data/camera.png" >"$tmp/camera.json" || bad "camera.png failed"
same "$(jget "$tmp/camera.json" channels)" 1 || bad "camera.png is not gray"
same "$(jget "$tmp/camera.json" width)" 512 || bad "camera.png width"

# Content, not name, decides: a PNG called .npy is a PNG; stdin works.
cp "$data/coins.png" "$tmp/really-a-png.npy"
"$info" "$tmp/really-a-png.npy" 2>&1 | grep -q "png image" || bad "PNG named .npy not detected as PNG"
"$info" - <"$data/coins.png" | grep -Eq "width +384" || bad "PNG from stdin"

# ---- a .npy of known contents, written byte by byte ---------------------------------
# int32 [2, 3] = [[-7, 0, 3], [100, 42, 5]], little-endian, NPY 1.0.
header="{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }"
total=$((10 + ${#header} + 1))
pad=$(( (64 - total % 64) % 64 ))
hlen=$(( ${#header} + pad + 1 ))
{
    printf '\223NUMPY\001\000'
    printf "\\$(printf '%03o' $((hlen % 256)))\\$(printf '%03o' $((hlen / 256)))"
    printf '%s' "$header"
    printf "%${pad}s\n" ""
    printf '\371\377\377\377\000\000\000\000\003\000\000\000'
    printf '\144\000\000\000\052\000\000\000\005\000\000\000'
} >"$tmp/known.npy"
out=$("$info" "$tmp/known.npy" 2>&1); rc=$?
[ $rc -eq 0 ] || bad "known.npy exits $rc: $out"
echo "$out" | grep -Eq "known +i32 +\[2, 3\] +24 +-7 +100 +23\.8333" || bad "known.npy row: $out"
"$info" --json "$tmp/known.npy" >"$tmp/known.json" || bad "--json known.npy failed"
jsonl_valid "$tmp/known.json" || bad "known.json is not JSON"
[ "$(jget "$tmp/known.json" format)" = npy ] || bad "known.npy format"
[ "$(jget "$tmp/known.json" tensors 0 dtype)" = i32 ] || bad "known.npy dtype"
same "$(jget "$tmp/known.json" tensors 0 shape 0)" 2 || bad "known.npy shape[0]"
same "$(jget "$tmp/known.json" tensors 0 shape 1)" 3 || bad "known.npy shape[1]"
same "$(jget "$tmp/known.json" tensors 0 min)" -7 || bad "known.npy min"
same "$(jget "$tmp/known.json" tensors 0 max)" 100 || bad "known.npy max"
same "$(jget "$tmp/known.json" tensors 0 bytes)" 24 || bad "known.npy bytes"
"$info" --no-stats "$tmp/known.npy" | grep -q "statistics skipped" || bad "--no-stats still computes"

# ---- NumPy-written files (when NumPy is installed) --------------------------------
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    /usr/bin/python3 - "$tmp" <<'PY'
import sys, numpy as np
d = sys.argv[1]
np.save(d + "/f64.npy", np.asfortranarray(np.linspace(-2.5, 7.5, 24).reshape(4, 6)))
np.savez_compressed(d + "/pair.npz", weights=np.arange(12, dtype=np.float32).reshape(3, 4) - 4,
                    mask=np.array([True, False, True]))
PY
    "$info" --json "$tmp/f64.npy" >"$tmp/f64.json" || bad "f64.npy failed"
    [ "$(jget "$tmp/f64.json" tensors 0 dtype)" = f64 ] || bad "f64.npy dtype"
    same "$(jget "$tmp/f64.json" tensors 0 shape 1)" 6 || bad "f64.npy shape"
    same "$(jget "$tmp/f64.json" tensors 0 min)" -2.5 || bad "f64.npy min"
    same "$(jget "$tmp/f64.json" tensors 0 max)" 7.5 || bad "f64.npy max"
    same "$(jget "$tmp/f64.json" tensors 0 mean)" 2.5 || bad "f64.npy mean"
    out=$("$info" "$tmp/pair.npz" 2>&1) || bad "pair.npz failed: $out"
    echo "$out" | grep -Eq "weights +f32 +\[3, 4\] +48 +-4 +7 +1\.5" || bad "pair.npz weights: $out"
    echo "$out" | grep -Eq "mask +bool +\[3\]" || bad "pair.npz mask: $out"
else
    echo "note: numpy not available, NumPy-written files not checked"
fi

# ---- video ----------------------------------------------------------------------
out=$("$info" "$data/tree.avi" 2>&1); rc=$?
[ $rc -eq 0 ] || bad "tree.avi exits $rc: $out"
echo "$out" | grep -Eq "frames +444 " || bad "tree.avi frames: $out"
fps=$(echo "$out" | awk '$1 == "fps" { print $2 }')
near() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d < 0.01 && d > -0.01) }'; }
near "$fps" 15 || bad "tree.avi fps '$fps': $out"
echo "$out" | grep -Eq "width +320" || bad "tree.avi width: $out"
"$info" --json "$data/tree.avi" >"$tmp/tree.json" && jsonl_valid "$tmp/tree.json" || bad "tree.avi --json"
same "$(jget "$tmp/tree.json" frames)" 444 || bad "tree.avi json frames"
near "$(jget "$tmp/tree.json" fps)" 15 || bad "tree.avi json fps"
same "$(jget "$tmp/tree.json" height)" 240 || bad "tree.avi json height"

# ---- tensor streams: tile records (made by sdl-tile when it works) ----------------------
tile="$SDL_BUILD_DIR/tools/sdl-tile"
if "$tile" split -s 200 -o "$tmp/tiles.sdlt" "$data/chelsea.png" 2>/dev/null; then
    out=$("$info" "$tmp/tiles.sdlt" 2>&1) || bad "tile stream failed: $out"
    echo "$out" | grep -q "tensor stream.*6 records" || bad "tile stream records: $out"
    echo "$out" | grep -Eq "^ +2 +2/6 +\[0, 0, 251\] +tile +u8 +\[200, 200, 3\]" ||
        bad "tile record 2 geometry: $out"
    "$info" --json "$tmp/tiles.sdlt" >"$tmp/tiles.json" && jsonl_valid "$tmp/tiles.json" ||
        bad "tile stream --json"
    same "$(jget "$tmp/tiles.json" record_count)" 6 || bad "json record_count"
    same "$(jget "$tmp/tiles.json" records 5 tile origin 1)" 100 || bad "json tile 5 origin h"
    same "$(jget "$tmp/tiles.json" records 5 tile origin 2)" 251 || bad "json tile 5 origin w"
    # truncated: the good records are still listed, then exit 1 naming the record
    head -c 300000 "$tmp/tiles.sdlt" | "$info" - >"$tmp/out" 2>"$tmp/err"; rc=$?
    [ $rc -eq 1 ] || bad "truncated stream exits $rc"
    grep -q "record 2" "$tmp/err" || bad "truncated stream: $(cat "$tmp/err")"
    grep -Eq "^ +1 +1/6 " "$tmp/out" || bad "truncated stream lost its good records"
else
    echo "note: sdl-tile split failed; tile records not checked"
fi

# ---- several files, JSON lines, bad files -----------------------------------------
printf 'this is not a tensor, an image or a video\n' >"$tmp/notes.txt"
printf '\223NUMPY\001\000\377\000{' >"$tmp/truncated.npy"
"$info" --json "$data/chelsea.png" "$tmp/notes.txt" "$tmp/known.npy" "$tmp/truncated.npy" \
    >"$tmp/many.jsonl" 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || bad "bad files among good ones exit $rc (want 1)"
[ "$(wc -l <"$tmp/many.jsonl")" -eq 4 ] || bad "want 4 JSON lines, got: $(cat "$tmp/many.jsonl")"
jsonl_valid "$tmp/many.jsonl" || bad "--json output of several files is not JSON lines"
grep -q "notes.txt" "$tmp/err" || bad "no message naming notes.txt: $(cat "$tmp/err")"
grep -q "truncated.npy" "$tmp/err" || bad "no message naming truncated.npy: $(cat "$tmp/err")"
grep -q '"width":451' "$tmp/many.jsonl" || bad "good file before a bad one not described"
grep -q '"name":"known"' "$tmp/many.jsonl" || bad "good file after a bad one not described"
"$info" "$tmp/truncated.npy" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] || bad "truncated.npy exits $rc (want 1)"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || bad "truncated.npy: want one message line: $(cat "$tmp/err")"
: >"$tmp/empty.npy"
"$info" "$tmp/empty.npy" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && grep -q "empty.npy" "$tmp/err" || bad "empty file: exit $rc, $(cat "$tmp/err")"

# ---- usage errors -----------------------------------------------------------------
"$info" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || bad "no FILE exits $rc (want 2)"
"$info" --bogus "$data/chelsea.png" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || bad "unknown option exits $rc (want 2)"
"$info" - - </dev/null >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || bad "stdin twice exits $rc (want 2)"

[ $fail -eq 0 ] && echo "sdl-info: all checks passed"
exit $fail
