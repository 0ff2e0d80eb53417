#!/bin/sh
# sdl-wmembed / sdl-wmdetect: embed then detect through files, directories and a list on
# stdin; JSON lines; --device and --batch (minibatches give the same report; the GPU
# refused with a reason where there is none); the messages for a too-small image and a
# corrupt file in a directory run (reported on their lines, the run goes on, exit 1);
# refusal to overwrite the input; usage errors (exit 2).
set -u
EMBED="$SDL_BUILD_DIR/tools/sdl-wmembed"
DETECT="$SDL_BUILD_DIR/tools/sdl-wmdetect"
TILE="$SDL_BUILD_DIR/tools/sdl-tile"
DATA="$SDL_TESTDATA"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
PY=""
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

mkdir -p "$WORK/in" "$WORK/out"
cp "$DATA/camera.png" "$DATA/chelsea.png" "$DATA/coins.png" "$WORK/in/"

# ---- embed: files to a directory, JSON lines with quality figures -----------------------
"$EMBED" -k "open sesame" -m 0123456789ab --out-dir "$WORK/out" --json "$WORK/in"/*.png \
    >"$WORK/embed.json" 2>"$WORK/embed.err" || fail "embed into --out-dir exited $?: $(cat "$WORK/embed.err")"
[ "$(wc -l <"$WORK/embed.json")" -eq 3 ] || fail "embed --json: want 3 lines: $(cat "$WORK/embed.json")"
for name in camera chelsea coins; do
    [ -f "$WORK/out/$name.png" ] || fail "no output $WORK/out/$name.png"
done
if [ -n "$PY" ]; then
    "$PY" - "$WORK/embed.json" <<'PYEOF' || fail "embed JSON lines invalid or quality below target"
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert o["ok"] and o["psnr_db"] >= 38 and o["ssim"] >= 0.98, o
PYEOF
fi
ls "$WORK/out" | grep -q '\.tmp$' && fail "embed left a temporary file"

# a JPEG input stays a JPEG (quality 90), beside its input with the default suffix
"$TILE" split -s 65535 -o - "$DATA/astronaut.png" | "$TILE" merge -o "$WORK/in/astro.jpg" ||
    fail "could not make a JPEG input"
"$EMBED" -k "open sesame" -m 0123456789ab --quality 90 -q "$WORK/in/astro.jpg" ||
    fail "embed of a JPEG failed"
[ -f "$WORK/in/astro-wm.jpg" ] || fail "no astro-wm.jpg beside the input"
head -c 3 "$WORK/in/astro-wm.jpg" | od -An -tx1 | grep -q "ff d8 ff" || fail "astro-wm.jpg is not a JPEG"

# ---- detect: the directory of marked images, the originals, a list on stdin --------------
"$DETECT" -k "open sesame" -q "$WORK/out" >"$WORK/det.txt" 2>"$WORK/det.err" ||
    fail "detect on the marked directory exited $?: $(cat "$WORK/det.err")"
[ "$(grep -c ': detected  message 0123456789ab' "$WORK/det.txt")" -eq 3 ] ||
    fail "not all 3 marked images detected with their message: $(cat "$WORK/det.txt")"
"$DETECT" -k "open sesame" -q "$WORK/in/astro-wm.jpg" | grep -q ': detected  message 0123456789ab' ||
    fail "marked JPEG not detected"
"$DETECT" -k "open sesame" -q "$WORK/in"/*.png >"$WORK/orig.txt" || fail "detect on originals exited $?"
[ "$(grep -c ': not detected' "$WORK/orig.txt")" -eq 3 ] || fail "an original was detected: $(cat "$WORK/orig.txt")"
"$DETECT" -k "wrong key" -q "$WORK/out/camera.png" | grep -q ': not detected' ||
    fail "wrong key detected a watermark"
printf '%s\n' "$WORK/out/coins.png" "$WORK/out/chelsea.png" | "$DETECT" -k "open sesame" -q - \
    >"$WORK/list.txt" || fail "detect on a stdin list exited $?"
[ "$(grep -c ': detected' "$WORK/list.txt")" -eq 2 ] || fail "stdin list: $(cat "$WORK/list.txt")"
head -1 "$WORK/list.txt" | grep -q "coins.png" || fail "stdin list: order not kept"
# the key from a file equals the same key given with -k (one trailing newline dropped)
echo "open sesame" >"$WORK/key.txt"
"$DETECT" --key-file "$WORK/key.txt" -q "$WORK/out/camera.png" | grep -q ': detected  message 0123456789ab' ||
    fail "--key-file does not give the same key"

# JSON lines, and the report through -o (atomic)
"$DETECT" -k "open sesame" --json -q -o "$WORK/report.json" "$WORK/out" "$WORK/in/camera.png" ||
    fail "detect --json -o exited $?"
[ "$(wc -l <"$WORK/report.json")" -eq 4 ] || fail "--json: want 4 lines: $(cat "$WORK/report.json")"
if [ -n "$PY" ]; then
    "$PY" - "$WORK/report.json" <<'PYEOF' || fail "detect JSON lines invalid or wrong"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
marked, orig = lines[:3], lines[3]
for o in marked:
    assert o["ok"] and o["detected"] and o["message"] == "0123456789ab" and o["p_value"] <= 1e-6, o
    assert o["decoys"] == 0 and o["p_value"] == o["p_bound"], o  # detected: the bound
assert orig["ok"] and not orig["detected"] and orig["message"] is None and orig["p_value"] > 1e-6, orig
assert orig["decoys"] == 99 and 1e-6 < orig["p_value"] <= 1 and 0 < orig["p_bound"] <= 1, orig
PYEOF
    # --decoys 0: the bound for every image, the same decisions
    "$DETECT" -k "open sesame" --json -q --decoys 0 "$WORK/out" "$WORK/in/camera.png" >"$WORK/bound.json" ||
        fail "detect --decoys 0 exited $?"
    "$PY" - "$WORK/report.json" "$WORK/bound.json" <<'PYEOF' || fail "--decoys 0 changed a decision or kept decoys"
import json, sys
calibrated = [json.loads(l) for l in open(sys.argv[1])]
bound = [json.loads(l) for l in open(sys.argv[2])]
for c, b in zip(calibrated, bound):
    assert b["decoys"] == 0 and b["p_value"] == b["p_bound"] == c["p_bound"], (c, b)
    assert b["detected"] == c["detected"] and b["message"] == c["message"], (c, b)
PYEOF
    "$PY" -m json.tool --json-lines "$WORK/report.json" >/dev/null 2>&1 ||
        "$PY" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$WORK/report.json" ||
        fail "json.tool rejects the report"
fi

# ---- devices: minibatches on the CPU give the same lines; the GPU is never a silent CPU ----
strip_time() { sed 's/  [0-9.]* ms$//'; }
"$DETECT" -k "open sesame" -q "$WORK/out" "$WORK/in/camera.png" | strip_time >"$WORK/dev-default.txt"
"$DETECT" -k "open sesame" -q --device cpu --batch 3 --threads 2 "$WORK/out" "$WORK/in/camera.png" |
    strip_time >"$WORK/dev-batch.txt" || fail "--device cpu --batch 3 exited $?"
cmp -s "$WORK/dev-default.txt" "$WORK/dev-batch.txt" ||
    fail "--batch 3 changed the report: $(diff "$WORK/dev-default.txt" "$WORK/dev-batch.txt")"
"$DETECT" -k "open sesame" -q --device gpu "$WORK/out/camera.png" >"$WORK/dev-gpu.txt" 2>"$WORK/dev-gpu.err"
rc=$?
if [ $rc -eq 0 ]; then # a usable GPU: the same decision and message as the CPU
    grep -q ': detected  message 0123456789ab' "$WORK/dev-gpu.txt" || fail "--device gpu: $(cat "$WORK/dev-gpu.txt")"
else
    [ $rc -eq 1 ] || fail "--device gpu without a GPU exited $rc (want 1)"
    grep -q "GPU requested but none is usable" "$WORK/dev-gpu.err" ||
        fail "--device gpu without a GPU: $(cat "$WORK/dev-gpu.err")"
    [ ! -s "$WORK/dev-gpu.txt" ] || fail "--device gpu without a GPU still wrote a report"
fi
"$DETECT" -k "open sesame" -q --device auto "$WORK/out/camera.png" | grep -q ': detected  message 0123456789ab' ||
    fail "--device auto did not detect"

# ---- --read-side: only the top-left square of a larger image is read and detected --------
# (astro-wm.jpg is 512x512: its top-left 256 square holds 16 whole tiles; camera is PNG)
"$DETECT" -k "open sesame" -q --read-side 256 "$WORK/in/astro-wm.jpg" "$WORK/out/camera.png" \
    >"$WORK/side.txt" || fail "--read-side 256 exited $?"
[ "$(grep -c ': detected  message 0123456789ab' "$WORK/side.txt")" -eq 2 ] ||
    fail "--read-side 256: $(cat "$WORK/side.txt")"
grep -q "tiles 16.0" "$WORK/side.txt" || fail "--read-side 256 did not read 256x256: $(cat "$WORK/side.txt")"
"$DETECT" -k "open sesame" -q --read-side 256 "$WORK/in/camera.png" | grep -q ': not detected' ||
    fail "--read-side 256 detected an original"

# ---- bad inputs: too small, corrupt, missing, in a directory run that goes on ------------
mkdir -p "$WORK/mixed"
cp "$WORK/out/camera.png" "$WORK/mixed/a.png"
printf 'this is not a PNG' >"$WORK/mixed/b.png"
python_small_ok=0
if [ -n "$PY" ]; then
    "$PY" - "$WORK/mixed/small.png" <<'PYEOF' && python_small_ok=1
import sys, zlib, struct
w = h = 40
raw = b"".join(b"\x00" + bytes((x * 5 + y) % 256 for x in range(w)) for y in range(h))
def chunk(t, d):
    c = struct.pack(">I", len(d)) + t + d
    return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PYEOF
fi
"$DETECT" -k "open sesame" -q "$WORK/mixed" "$WORK/missing.png" >"$WORK/mixed.txt" 2>"$WORK/mixed.err"
rc=$?
[ $rc -eq 1 ] || fail "directory run with bad files exited $rc (want 1)"
grep -q "a.png: detected" "$WORK/mixed.txt" || fail "good file in the mixed run not detected: $(cat "$WORK/mixed.txt")"
grep -q "b.png: error: " "$WORK/mixed.txt" || fail "corrupt file not reported on its line: $(cat "$WORK/mixed.txt")"
grep -q "missing.png: error: " "$WORK/mixed.txt" || fail "missing file not reported on its line"
if [ $python_small_ok -eq 1 ]; then
    grep "small.png: error: " "$WORK/mixed.txt" | grep -q "too small: at least 64x64 pixels" ||
        fail "too-small image message: $(grep small "$WORK/mixed.txt")"
    "$EMBED" -k k -m 0123456789ab -q -o "$WORK/small-wm.png" "$WORK/mixed/small.png" 2>"$WORK/small.err"
    rc=$?
    [ $rc -eq 1 ] || fail "embed into a too-small image exited $rc"
    grep -q "too small" "$WORK/small.err" || fail "embed too-small message: $(cat "$WORK/small.err")"
    [ ! -e "$WORK/small-wm.png" ] || fail "embed left an output for a too-small image"
fi
[ "$(grep -c '^sdl-wmdetect: ' "$WORK/mixed.err")" -ge 2 ] || fail "errors not on stderr: $(cat "$WORK/mixed.err")"

# ---- never overwrite the input unless --force --------------------------------------------
cp "$WORK/in/coins.png" "$WORK/self.png"
before=$(cksum <"$WORK/self.png")
"$EMBED" -k k -m 0123456789ab -q -o "$WORK/self.png" "$WORK/self.png" 2>"$WORK/self.err"
rc=$?
[ $rc -eq 1 ] || fail "overwriting the input exited $rc (want 1)"
grep -q "refusing to overwrite" "$WORK/self.err" || fail "no refusal message: $(cat "$WORK/self.err")"
[ "$(cksum <"$WORK/self.png")" = "$before" ] || fail "the input was changed"
"$EMBED" -k k -m 0123456789ab -q --force -o "$WORK/self.png" "$WORK/self.png" ||
    fail "--force did not allow overwriting"
[ "$(cksum <"$WORK/self.png")" != "$before" ] || fail "--force did not write"
"$DETECT" -k k -q "$WORK/self.png" | grep -q ": detected" || fail "--force output not detected"

# ---- usage errors: exit 2 with the --help hint -------------------------------------------
usage_case() {
    what=$1
    shift
    "$@" >/dev/null 2>"$WORK/usage.err" </dev/null
    rc=$?
    [ $rc -eq 2 ] || fail "$what: exit $rc (want 2)"
    grep -q -- "--help" "$WORK/usage.err" || fail "$what: no --help hint"
}
usage_case "embed without key" "$EMBED" -m 0123456789ab "$WORK/in/coins.png"
usage_case "embed with two keys" "$EMBED" -k a --key-file "$WORK/key.txt" -m 0123456789ab "$WORK/in/coins.png"
usage_case "embed without message" "$EMBED" -k a "$WORK/in/coins.png"
usage_case "embed bad message" "$EMBED" -k a -m 0123 "$WORK/in/coins.png"
usage_case "embed bad strength" "$EMBED" -k a -m 0123456789ab -s 0 "$WORK/in/coins.png"
usage_case "embed bad tile" "$EMBED" -k a -m 0123456789ab --tile 60 "$WORK/in/coins.png"
usage_case "embed -o with two inputs" "$EMBED" -k a -m 0123456789ab -o "$WORK/x.png" "$WORK/in/coins.png" "$WORK/in/camera.png"
usage_case "embed without input" "$EMBED" -k a -m 0123456789ab
usage_case "detect without key" "$DETECT" "$WORK/in/coins.png"
usage_case "detect bad fpr" "$DETECT" -k a --fpr 2 "$WORK/in/coins.png"
usage_case "detect bad decoys" "$DETECT" -k a --decoys -1 "$WORK/in/coins.png"
usage_case "detect too many decoys" "$DETECT" -k a --decoys 10000 "$WORK/in/coins.png"
usage_case "detect bad scales" "$DETECT" -k a --scales 1,x "$WORK/in/coins.png"
usage_case "detect bad pipeline" "$DETECT" -k a --pipeline warp "$WORK/in/coins.png"
usage_case "detect without input" "$DETECT" -k a
usage_case "detect bad device" "$DETECT" -k a --device warp "$WORK/in/coins.png"
usage_case "detect bad batch" "$DETECT" -k a --batch 0 "$WORK/in/coins.png"
usage_case "detect bad read side" "$DETECT" -k a --read-side 8 "$WORK/in/coins.png"
usage_case "detect read side below the tile" "$DETECT" -k a --read-side 48 "$WORK/in/coins.png"

[ $failures -eq 0 ] && echo "sdl-wmembed/sdl-wmdetect: all checks passed"
exit $failures
