#!/bin/sh
# sdl-quantize: codes, scales, zero points and bit planes against a NumPy re-implementation
# of each scheme; --dequantize error bounds; --stats recomputed in NumPy; ggml Q4_0/Q8_0
# bytes against a NumPy transcription of ggml's reference quantizer; multi-tensor files
# with include/exclude; every bad input (exit code, one message naming the file, no output).
# Checks that need no NumPy run on a hand-made .npy; the NumPy part is skipped cleanly
# when no python3 with NumPy is found.
set -u
TOOL="$SDL_BUILD_DIR/tools/sdl-quantize"
INFO="$SDL_BUILD_DIR/tools/sdl-info"
. "$SDL_SOURCE_DIR/tests/cli/lib.sh"

# A hand-made f32 .npy [4, 32]: 1, -2, 0.5, 3 repeated; with nan=1 the value at flat
# index 5 is a NaN.
make_npy() {
    {
        printf '\223NUMPY\001\000\166\000'
        printf '%-117s\n' "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 32), }"
        i=0
        while [ $i -lt 32 ]; do
            if [ "$1" = nan ] && [ $i -eq 1 ]; then
                printf '\000\000\200\077\000\000\300\177\000\000\000\077\000\000\100\100'
            else
                printf '\000\000\200\077\000\000\000\300\000\000\000\077\000\000\100\100'
            fi
            i=$((i + 1))
        done
    }
}
make_npy ok >"$WORK/x.npy"
make_npy nan >"$WORK/nan.npy"

# ---- checks that need no NumPy ------------------------------------------------------------
# 4-bit symmetric per tensor: scale 3/7, codes round(x * 7/3) = 2, -5, 1, 7.
"$TOOL" -b 4 -o "$WORK/x.st" "$WORK/x.npy" || fail "4-bit quantization failed"
"$INFO" --json "$WORK/x.st" >"$WORK/info.json" || fail "sdl-info cannot read the output"
grep -q '"name":"x.codes","dtype":"i8","shape":\[4,32\],"bytes":128,"min":-5.0,"max":7.0,"mean":1.25,' \
    "$WORK/info.json" || fail "codes of 1,-2,0.5,3 are not 2,-5,1,7: $(cat "$WORK/info.json")"
grep -q '"name":"x.planes","dtype":"u64","shape":\[4,4,4\]' "$WORK/info.json" ||
    fail "planes are not [rows 4, bits 4, words 4]"
grep -q '"sdl.quant.x":"{\\"layout\\":1,\\"format\\":\\"sdl\\",\\"bits\\":4,\\"scheme\\":\\"symmetric\\"' \
    "$WORK/info.json" || fail "metadata: $(cat "$WORK/info.json")"
# dequantized: 2*3/7, -5*3/7, 3/7, 3 -> min -15/7, max 3
"$TOOL" --dequantize -o "$WORK/back.npy" "$WORK/x.st" || fail "--dequantize failed"
"$INFO" --json "$WORK/back.npy" | grep -q '"dtype":"f32","shape":\[4,32\],"bytes":512,"min":-2.14285\(707\|71\)' ||
    fail "dequantized values: $("$INFO" --json "$WORK/back.npy")"
# a pipe in, a pipe out; -b 1 defaults to the binary scheme
"$TOOL" -b 1 -o - - <"$WORK/x.npy" | "$INFO" --json - | grep -q '"dtype":"i8","shape":\[4,32\],"bytes":128,"min":-1.0,"max":1.0,' ||
    fail "binary codes through a pipe"
# NaN at flat index 5: --nan zero quantizes it as 0
"$TOOL" -b 4 --nan zero -o "$WORK/nanz.st" "$WORK/nan.npy" || fail "--nan zero failed"
"$INFO" --json "$WORK/nanz.st" | grep -q '"name":"nan.codes","dtype":"i8","shape":\[4,32\],"bytes":128,"min":-5.0,"max":7.0,"mean":1.2890625,' ||
    fail "--nan zero: the NaN did not become code 0"

# ---- bad input ------------------------------------------------------------------------------
out="$WORK/out.st"
expect_exit 2 "$out" "bits 9" -- "$TOOL" -b 9 -o "$out" "$WORK/x.npy"
expect_exit 2 "$out" "bits 0" -- "$TOOL" -b 0 -o "$out" "$WORK/x.npy"
expect_exit 2 "$out" "symmetric 1 bit" -- "$TOOL" -b 1 --scheme symmetric -o "$out" "$WORK/x.npy"
expect_exit 2 "$out" "unknown scheme" -- "$TOOL" --scheme odd -o "$out" "$WORK/x.npy"
expect_exit 2 "$out" "two granularities" -- "$TOOL" --per-tensor --group 8 -o "$out" "$WORK/x.npy"
expect_exit 2 "$out" "--axis without --group" -- "$TOOL" --axis 0 -o "$out" "$WORK/x.npy"
expect_exit 2 "$WORK/out.npy" ".npy output" -- "$TOOL" -o "$WORK/out.npy" "$WORK/x.npy"
expect_exit 2 "$out" "--dequantize with -b" -- "$TOOL" --dequantize -b 4 -o "$out" "$WORK/x.st"
expect_exit 2 "$out" "q4_0 with -b" -- "$TOOL" --format q4_0 -b 4 -o "$out" "$WORK/x.npy"
expect_exit 2 - "no input" -- "$TOOL" -o "$out"
expect_exit 1 "$out" "missing input" -- "$TOOL" -o "$out" "$WORK/nonexistent.npy"
grep -q "nonexistent.npy" "$WORK/stderr" || fail "missing input not named"
expect_exit 1 "$out" "group 5 on 32" -- "$TOOL" --group 5 -o "$out" "$WORK/x.npy"
grep -q "x.npy: x: group size 5 does not divide axis 1 of length 32" "$WORK/stderr" ||
    fail "group: $(cat "$WORK/stderr")"
expect_exit 1 "$out" "axis 2 of a 2-d tensor" -- "$TOOL" --per-channel 2 -o "$out" "$WORK/x.npy"
expect_exit 1 "$out" "NaN" -- "$TOOL" -b 4 -o "$out" "$WORK/nan.npy"
grep -q "nan.npy: nan: value at flat index 5 is NaN" "$WORK/stderr" || fail "NaN: $(cat "$WORK/stderr")"
expect_exit 1 "$out" "NaN in q8_0" -- "$TOOL" --format q8_0 -o "$out" "$WORK/nan.npy"
grep -q "flat index 5" "$WORK/stderr" || fail "q8_0 NaN: $(cat "$WORK/stderr")"
expect_exit 1 "$out" "dequantize a float file" -- "$TOOL" --dequantize -o "$out" "$WORK/x.npy"
grep -q "x.npy: no quantized tensors" "$WORK/stderr" || fail "plain file: $(cat "$WORK/stderr")"
head -c 1000 /dev/urandom >"$WORK/garbage"
expect_exit 1 "$out" "garbage input" -- "$TOOL" -o "$out" "$WORK/garbage"

# Corrupted metadata (same length, so the safetensors file itself stays valid): each
# refused by --dequantize with one message naming the file and the fault.
corrupt() { # NAME FROM TO
    LC_ALL=C sed "s/$2/$3/" "$WORK/x.st" >"$WORK/$1.st"
    cmp -s "$WORK/x.st" "$WORK/$1.st" && fail "corrupt $1: nothing replaced"
    expect_exit 1 "$WORK/$1.out.npy" "corrupted metadata ($1)" -- \
        "$TOOL" --dequantize -o "$WORK/$1.out.npy" "$WORK/$1.st"
    grep -q "$1.st: x" "$WORK/stderr" || fail "corrupt $1: file not named: $(cat "$WORK/stderr")"
}
corrupt bits '\\"bits\\":4' '\\"bits\\":5'
corrupt bits9 '\\"bits\\":4' '\\"bits\\":9'
corrupt layout '\\"layout\\":1' '\\"layout\\":7'
corrupt scheme '\\"symmetric\\"' '\\"symmetriX\\"'
corrupt encoding '\\"signed\\"' '\\"binary\\"'
corrupt kwords '\\"k_words\\":4' '\\"k_words\\":8'
corrupt rows '\\"rows\\":4' '\\"rows\\":2'
corrupt shape '\\"shape\\":\[4,32\]' '\\"shape\\":[2,64]'
corrupt json '\\"bits\\":4,' '\\"bits\\":4 '
corrupt dtype '\\"dtype\\":\\"f32\\"' '\\"dtype\\":\\"i32\\"'

# ---- NumPy cross-checks ----------------------------------------------------------------------
PY=
for py in "${SDL_PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$py" ] || continue
    if "$py" -c 'import numpy' >/dev/null 2>&1; then
        PY=$py
        break
    fi
done
if [ -z "$PY" ]; then
    echo "SKIP: NumPy cross-checks (no python3 with NumPy)"
else
    cat >"$WORK/check.py" <<'EOF'
import json, os, subprocess, sys
import numpy as np

tool, work = sys.argv[1], sys.argv[2]
failures = []
def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)

ST = {"F32": np.float32, "F16": np.float16, "I8": np.int8, "U8": np.uint8, "U64": np.uint64,
      "I64": np.int64, "I32": np.int32, "F64": np.float64}
def load_st(path):
    b = open(path, "rb").read()
    n = int.from_bytes(b[:8], "little")
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    data = b[8 + n:]
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]],
                             dtype=ST[v["dtype"]]).reshape(v["shape"]) for k, v in h.items()}, meta

def save_st(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    rev = {v: k for k, v in ST.items()}
    for k, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": rev[a.dtype.type], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw); off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(len(h).to_bytes(8, "little") + h + b"".join(blobs))

def run(*args):
    r = subprocess.run([tool] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        fail("sdl-quantize %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r

f32 = np.float32
def reference(x, bits, scheme, gran, axis, group):
    """quant.h's contract in NumPy, f32 arithmetic: codes, scales, zero points."""
    nd = x.ndim
    if gran == "tensor":
        g = x.reshape(1, -1); restore = lambda a: a.reshape(x.shape); sshape = (1,)
    elif gran == "channel":
        m = np.moveaxis(x, axis, 0); g = m.reshape(m.shape[0], -1)
        restore = lambda a: np.moveaxis(a.reshape(m.shape), 0, axis); sshape = (x.shape[axis],)
    else:
        m = np.moveaxis(x, axis, -1)
        lead = m.shape[:-1]
        g = m.reshape(-1, group)  # groups of consecutive values along axis
        restore = lambda a: np.moveaxis(a.reshape(m.shape), -1, axis)
        s = list(x.shape); s[axis] //= group; sshape = tuple(s)
        to_scale = lambda a: np.moveaxis(a.reshape(lead + (m.shape[-1] // group,)), -1, axis)
    if scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        amax = np.abs(g).max(axis=1)
        scale = (amax / f32(qmax)).astype(f32)
        scale[~(scale >= np.finfo(f32).tiny)] = 1
        inv = (f32(1) / scale).astype(f32)
        t = np.clip((g * inv[:, None]).astype(f32), -qmax - 1, qmax)
        codes = np.rint(t).astype(np.int8); zp = None
    elif scheme == "asymmetric":
        qmax = 2 ** bits - 1
        lo = np.minimum(g.min(axis=1), f32(0)); hi = np.maximum(g.max(axis=1), f32(0))
        scale = ((hi - lo) / f32(qmax)).astype(f32)
        scale[~(scale >= np.finfo(f32).tiny)] = 1
        zp = np.clip(np.rint((-lo / scale).astype(f32)), 0, qmax).astype(np.int64)
        inv = (f32(1) / scale).astype(f32)
        t = np.clip((g * inv[:, None]).astype(f32), -zp[:, None], (qmax - zp)[:, None]).astype(f32)
        codes = (np.rint(t).astype(np.int64) + zp[:, None]).astype(np.uint8)
        zp = zp.astype(np.uint8)
    else:
        scale = np.abs(g.astype(np.float64)).mean(axis=1).astype(f32)
        scale[~(scale >= np.finfo(f32).tiny)] = 1
        codes = np.where(g >= 0, 1, -1).astype(np.int8); zp = None
    if gran == "group":
        return restore(codes), to_scale(scale), None if zp is None else to_scale(zp)
    return restore(codes), scale.reshape(sshape), None if zp is None else zp.reshape(sshape)

def pack_planes(codes, bits, encoding):
    k = codes.shape[-1] if codes.ndim else 1
    c = codes.reshape(-1, k).astype(np.int64)
    u = (c == 1).astype(np.int64) if encoding == "binary" else c & ((1 << bits) - 1)
    kw = ((k + 63) // 64 + 3) // 4 * 4
    planes = (u[:, None, :] >> np.arange(bits)[None, :, None]) & 1
    padded = np.zeros(planes.shape[:2] + (kw * 64,), np.uint64)
    padded[:, :, :k] = planes
    w = padded.reshape(planes.shape[0], bits, kw, 64) << np.arange(64, dtype=np.uint64)
    return np.bitwise_or.reduce(w, axis=3)

rng = np.random.default_rng(20260)
x = (rng.standard_normal((24, 256)) * np.linspace(0.1, 3, 256)).astype(f32)
x[3, 7] = 0.0; x[5, :] = 0.0  # a row of zeros: scale 1 for per-row scales
np.save(os.path.join(work, "r.npy"), x)
x3 = rng.standard_normal((4, 6, 64)).astype(f32)
np.save(os.path.join(work, "r3.npy"), x3)

cases = [
    ("r", x, 8, "symmetric", "tensor", 0, 0, []),
    ("r", x, 4, "symmetric", "channel", 0, 0, ["--per-channel", "0"]),
    ("r", x, 3, "asymmetric", "channel", 1, 0, ["--per-channel", "-1"]),
    ("r", x, 2, "asymmetric", "group", 1, 64, ["--group", "64"]),
    ("r", x, 5, "symmetric", "group", 0, 8, ["--group", "8", "--axis", "0"]),
    ("r", x, 1, "binary", "group", 1, 32, ["--group", "32"]),
    ("r", x, 1, "asymmetric", "tensor", 0, 0, []),
    ("r3", x3, 6, "asymmetric", "group", 1, 3, ["--group", "3", "--axis", "1"]),
    ("r3", x3, 7, "symmetric", "channel", 2, 0, ["--per-channel", "2"]),
]
for stem, src, bits, scheme, gran, axis, group, opts in cases:
    what = "%s %d-bit %s %s" % (stem, bits, scheme, " ".join(opts))
    out = os.path.join(work, "q.st")
    r = run("-b", str(bits), "--scheme", scheme, "--stats", "--json", "-o", out,
            os.path.join(work, stem + ".npy"), *opts)
    if r.returncode:
        continue
    t, meta = load_st(out)
    codes, scale, zp = reference(src, bits, scheme, gran, axis, group)
    if t[stem + ".codes"].dtype != codes.dtype or not np.array_equal(t[stem + ".codes"], codes):
        bad = np.argwhere(t[stem + ".codes"] != codes)
        fail("%s: codes differ from NumPy at %d places, first %s" % (what, len(bad), bad[:1].tolist()))
    if t[stem + ".scale"].shape != scale.shape or not np.allclose(t[stem + ".scale"], scale, rtol=1e-6, atol=0):
        fail("%s: scales differ from NumPy" % what)
    if (zp is None) != (stem + ".zero_point" not in t) or (zp is not None and not np.array_equal(t[stem + ".zero_point"], zp)):
        fail("%s: zero points differ from NumPy" % what)
    info = json.loads(meta["sdl.quant." + stem])
    want = {"layout": 1, "format": "sdl", "bits": bits, "scheme": scheme, "granularity": gran,
            "axis": axis if gran != "tensor" else 0, "group": group, "dtype": "f32",
            "shape": list(src.shape), "k": src.shape[-1], "rows": src.size // src.shape[-1]}
    for k, v in want.items():
        if info.get(k) != v:
            fail("%s: metadata %s is %r, want %r" % (what, k, info.get(k), v))
    enc = {"symmetric": "signed", "asymmetric": "unsigned", "binary": "binary"}[scheme]
    if info.get("encoding") != enc:
        fail("%s: encoding %r" % (what, info.get("encoding")))
    if not np.array_equal(t[stem + ".planes"], pack_planes(codes, bits, enc)):
        fail("%s: bit planes differ from the NumPy packing of the codes" % what)
    # dequantize: the dtype comes back and, away from clipping, |x - x~| <= scale / 2
    back = os.path.join(work, "back.npy")
    if run("--dequantize", "-o", back, out).returncode:
        continue
    y = np.load(back)
    if y.dtype != f32 or y.shape != src.shape:
        fail("%s: dequantized %s %s" % (what, y.dtype, y.shape))
        continue
    _, full_scale, _ = reference(src, bits, scheme, gran, axis, group)
    if gran == "tensor":
        s_el = np.broadcast_to(full_scale.reshape(()), src.shape)
    elif gran == "channel":
        shp = [1] * src.ndim; shp[axis] = -1
        s_el = np.broadcast_to(full_scale.reshape(shp), src.shape)
    else:
        s_el = np.repeat(full_scale, group, axis=axis)
    err = np.abs(src.astype(np.float64) - y)
    if scheme != "binary" and bits > 1 and not np.all(err <= s_el * 0.5 * (1 + 1e-5) + 1e-7):
        i = np.unravel_index(np.argmax(err - s_el / 2), src.shape)
        fail("%s: round trip error %g > scale/2 = %g at %s" % (what, err[i], s_el[i] / 2, i))
    # --stats against NumPy
    st = json.loads(r.stdout)["tensors"][0]
    d = src.astype(np.float64) - y.astype(np.float64)
    ref = {"rmse": np.sqrt(np.mean(d * d)), "max_abs_error": np.abs(d).max(),
           "sqnr_db": 10 * np.log10(np.sum(src.astype(np.float64) ** 2) / np.sum(d * d)),
           "cosine": np.dot(src.ravel().astype(np.float64), y.ravel()) /
                     np.sqrt(np.sum(src.astype(np.float64) ** 2) * np.sum(y.astype(np.float64) ** 2))}
    for k, v in ref.items():
        if not np.isclose(st[k], v, rtol=1e-6, atol=1e-9):
            fail("%s: --stats %s is %r, NumPy says %r" % (what, k, st[k], v))

# ggml Q4_0 / Q8_0: a NumPy transcription of quantize_row_q{4,8}_0_ref
def ggml_q4_0(x):
    out = bytearray()
    for b in x.reshape(-1, 32):
        amax, mx = f32(0), f32(0)
        for v in b:
            if amax < abs(v):
                amax, mx = abs(v), v
        d = f32(mx / f32(-8))
        idv = f32(1) / d if d else f32(0)
        q = np.minimum(15, np.trunc((b * idv).astype(f32) + f32(8.5)).astype(np.int8))
        out += np.float16(d).tobytes() + bytes((q[:16] | (q[16:] << 4)).astype(np.uint8))
    return bytes(out)

def ggml_q8_0(x):
    out = bytearray()
    for b in x.reshape(-1, 32):
        amax = np.abs(b).max()
        d = f32(amax / f32(127))
        idv = f32(1) / d if d else f32(0)
        v = (b * idv).astype(f32).astype(np.float64)
        q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)
        out += np.float16(d).tobytes() + q.tobytes()
    return bytes(out)

xb = rng.standard_normal((6, 96)).astype(f32) * 2
xb[0, :32] = 0.0  # an all-zero block (d = 0)
xb[1, 5] = -7.0; xb[1, 9] = 7.0  # equal magnitudes: the first wins
xb[2, 40:72] = np.linspace(-1, 1, 32)
np.save(os.path.join(work, "b.npy"), xb)
for fmt, ref in (("q4_0", ggml_q4_0), ("q8_0", ggml_q8_0)):
    out = os.path.join(work, fmt + ".st")
    r = run("--format", fmt, "--stats", "--json", "-o", out, os.path.join(work, "b.npy"))
    if r.returncode:
        continue
    t, meta = load_st(out)
    got = t["b." + fmt]
    if got.shape != (6, 3 * (18 if fmt == "q4_0" else 34)) or got.tobytes() != ref(xb):
        fail("%s: block bytes differ from ggml's reference algorithm" % fmt)
    back = os.path.join(work, fmt + ".npy")
    if run("--dequantize", "-o", back, out).returncode == 0:
        y = np.load(back)
        blocks = np.frombuffer(ref(xb), np.uint8).reshape(-1, 18 if fmt == "q4_0" else 34)
        d = blocks[:, :2].copy().view(np.float16).astype(f32)
        if fmt == "q4_0":
            q = np.concatenate([blocks[:, 2:] & 15, blocks[:, 2:] >> 4], axis=1).astype(f32) - 8
        else:
            q = blocks[:, 2:].view(np.int8).astype(f32)
        if not np.array_equal(y, (q * d).reshape(xb.shape)):
            fail("%s: dequantized values differ from d * q" % fmt)
        st = json.loads(r.stdout)["tensors"][0]
        rm = np.sqrt(np.mean((xb.astype(np.float64) - y) ** 2))
        if not np.isclose(st["rmse"], rm, rtol=1e-6):
            fail("%s: --stats rmse %r, NumPy %r" % (fmt, st["rmse"], rm))

# A model's weights: f16 and bf16-free safetensors with metadata, an int tensor, include/exclude
w = {"layer0.weight": rng.standard_normal((8, 64)).astype(np.float16),
     "layer0.bias": rng.standard_normal((8,)).astype(f32),
     "layer1.weight": rng.standard_normal((4, 64)).astype(f32),
     "step": np.array([42], np.int64)}
save_st(os.path.join(work, "model.safetensors"), w, {"source": "test"})
out = os.path.join(work, "model.q.safetensors")
r = run("-b", "4", "--per-channel", "0", "--exclude", "*.bias", "--json", "-o", out,
        os.path.join(work, "model.safetensors"))
if r.returncode == 0:
    t, meta = load_st(out)
    rep = {e["name"]: e for e in json.loads(r.stdout)["tensors"]}
    if rep["layer0.bias"]["action"] != "copied" or "excluded" not in rep["layer0.bias"]["reason"]:
        fail("bias not reported as excluded: %r" % rep["layer0.bias"])
    if rep["step"]["action"] != "copied" or rep["layer1.weight"]["action"] != "quantized":
        fail("model report: %r" % rep)
    if not np.array_equal(t["step"], w["step"]) or not np.array_equal(t["layer0.bias"], w["layer0.bias"]):
        fail("copied tensors changed")
    if meta.get("source") != "test":
        fail("input metadata not kept")
    codes, _, _ = reference(w["layer0.weight"].astype(f32), 4, "symmetric", "channel", 0, 0)
    if not np.array_equal(t["layer0.weight.codes"], codes):
        fail("f16 tensor: codes differ from NumPy's on its f32 values")
    if json.loads(meta["sdl.quant.layer0.weight"])["dtype"] != "f16":
        fail("f16 source dtype not recorded")
    back = os.path.join(work, "model.back.safetensors")
    if run("--dequantize", "-o", back, out).returncode == 0:
        t2, meta2 = load_st(back)
        if sorted(t2) != sorted(w) or t2["layer0.weight"].dtype != np.float16:
            fail("restored model: %r" % {k: (v.dtype, v.shape) for k, v in t2.items()})
        if any(k.startswith("sdl.quant.") for k in meta2) or meta2.get("source") != "test":
            fail("restored metadata: %r" % meta2)
    r = subprocess.run([tool, "-b", "4", "--include", "layer1.*", "-o", out,
                        os.path.join(work, "model.safetensors")], capture_output=True, text=True)
    t, meta = load_st(out)
    if "layer1.weight.codes" not in t or "layer0.weight" not in t or r.stderr.count("copied unchanged") != 3:
        fail("--include: %s / %s" % (sorted(t), r.stderr))

# Damaged planes (codes intact): refused
src = os.path.join(work, "r.npy")
out = os.path.join(work, "p.st")
if run("-b", "3", "-o", out, src).returncode == 0:
    t, meta = load_st(out)
    t = dict(t); planes = t["r.planes"].copy(); planes[2, 1, 0] ^= np.uint64(1 << 9); t["r.planes"] = planes
    save_st(os.path.join(work, "damaged.st"), t, meta)
    t = dict(load_st(out)[0]); sc = t["r.scale"].copy(); sc[0] = -1; t["r.scale"] = sc
    save_st(os.path.join(work, "negscale.st"), t, meta)
    t = dict(load_st(out)[0]); del t["r.planes"]
    save_st(os.path.join(work, "noplanes.st"), t, meta)
    t = dict(load_st(out)[0]); c = t["r.codes"].copy(); c[0, 0] = -5; t["r.codes"] = c
    save_st(os.path.join(work, "range.st"), t, meta)
for name, words in (("damaged", "planes row 2 differs"), ("negscale", "scale[0] is -1"),
                    ("noplanes", "r.planes is missing"), ("range", "r.codes")):
    o = os.path.join(work, name + ".out.npy")
    r = subprocess.run([tool, "--dequantize", "-o", o, os.path.join(work, name + ".st")],
                       capture_output=True, text=True)
    if r.returncode != 1 or words not in r.stderr or name + ".st" not in r.stderr or os.path.exists(o) \
            or len(r.stderr.strip().splitlines()) != 1:
        fail("%s: exit %d, %r" % (name, r.returncode, r.stderr))
sys.exit(1 if failures else 0)
EOF
    "$PY" "$WORK/check.py" "$TOOL" "$WORK" || failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] && echo "sdl-quantize: all checks passed"
[ "$failures" -eq 0 ]
