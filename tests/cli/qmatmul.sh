#!/bin/sh
# sdl-qmatmul: int32 output exactly equal to NumPy's integer matmul of the codes (zero
# points applied), f32 output within tolerance of the dequantized float matmul, for every
# encoding pair and both routes; the route and its reason reported; on-the-fly
# quantization; --device (auto default; cpu, gpu and auto the same int32, or gpu one clear
# error without a GPU); bad inputs (exit code, one message naming the file, no output).
set -u
TOOL="$SDL_BUILD_DIR/tools/sdl-qmatmul"
QUANT="$SDL_BUILD_DIR/tools/sdl-quantize"
INFO="$SDL_BUILD_DIR/tools/sdl-info"
. "$SDL_SOURCE_DIR/tests/cli/lib.sh"

# A hand-made f32 .npy [ROWS, 32] of 1, -2, 0.5, 3 repeated (needs no NumPy).
make_npy() { # ROWS
    {
        printf '\223NUMPY\001\000\166\000'
        printf '%-117s\n' "{'descr': '<f4', 'fortran_order': False, 'shape': ($1, 32), }"
        i=0
        while [ $i -lt $((8 * $1)) ]; do
            printf '\000\000\200\077\000\000\000\300\000\000\000\077\000\000\100\100'
            i=$((i + 1))
        done
    }
}
make_npy 3 >"$WORK/a.npy"
make_npy 5 >"$WORK/w.npy"

# ---- checks that need no NumPy -----------------------------------------------------------
# 4-bit symmetric codes 2, -5, 1, 7: every dot product is 8 * (4 + 25 + 1 + 49) = 632.
"$QUANT" -b 4 -o "$WORK/a.st" "$WORK/a.npy" && "$QUANT" -b 4 -o "$WORK/w.st" "$WORK/w.npy" ||
    fail "quantizing the operands failed"
for route in auto bitserial int8; do
    "$TOOL" --out int32 --route "$route" -o "$WORK/y.npy" "$WORK/a.st" "$WORK/w.st" 2>"$WORK/route" ||
        fail "route $route failed: $(cat "$WORK/route")"
    "$INFO" --json "$WORK/y.npy" | grep -q '"dtype":"i32","shape":\[3,5\],"bytes":60,"min":632.0,"max":632.0' ||
        fail "route $route: $("$INFO" --json "$WORK/y.npy")"
done
grep -q "^sdl-qmatmul: int8 route (.* kernels): int8 route requested" "$WORK/route" ||
    fail "forced route not reported: $(cat "$WORK/route")"
"$TOOL" --out int32 -o "$WORK/y.npy" "$WORK/a.st" "$WORK/w.st" 2>"$WORK/route"
grep -q "^sdl-qmatmul: .* route (.* kernels): .*w4a4" "$WORK/route" ||
    fail "auto route not explained: $(cat "$WORK/route")"
"$TOOL" --json -o "$WORK/y.npy" "$WORK/a.st" "$WORK/w.st" >"$WORK/run.json" 2>"$WORK/route"
grep -q '"m":3,"n":5,"k":32,"out":"f32","route":"[a-z0-9]*","isa":"[a-z0-9]*","reason":"' "$WORK/run.json" ||
    fail "--json: $(cat "$WORK/run.json")"
[ -s "$WORK/route" ] && fail "--json also printed on stderr: $(cat "$WORK/route")"
# f32: 632 * (3/7)^2
"$INFO" --json "$WORK/y.npy" | grep -q '"dtype":"f32","shape":\[3,5\],"bytes":60,"min":116.0816' ||
    fail "f32 output: $("$INFO" --json "$WORK/y.npy")"
# on the fly through a pipe: 2-bit asymmetric A, binary B, result to stdout
"$TOOL" --abits 2 --wbits 1 -q -o - - "$WORK/w.npy" <"$WORK/a.npy" | "$INFO" --json - |
    grep -q '"name":"y","dtype":"f32","shape":\[3,5\]' || fail "on-the-fly quantization in a pipe"

# ---- bad input ------------------------------------------------------------------------------
out="$WORK/out.npy"
make_npy 2 | sed 's/(2, 32)/(1, 64)/' >"$WORK/k64.npy"
"$QUANT" -b 4 -o "$WORK/k64.st" "$WORK/k64.npy" || fail "quantizing k64 failed"
expect_exit 1 "$out" "mismatched K" -- "$TOOL" -o "$out" "$WORK/a.st" "$WORK/k64.st"
grep -q "mismatched K: A ($WORK/a.st: a) has rows of 32, B ($WORK/k64.st: k64) rows of 64" \
    "$WORK/stderr" || fail "mismatched K: $(cat "$WORK/stderr")"
expect_exit 1 "$out" "float A without --abits" -- "$TOOL" -o "$out" "$WORK/a.npy" "$WORK/w.st"
grep -q "a.npy holds no quantized tensors" "$WORK/stderr" || fail "float A: $(cat "$WORK/stderr")"
expect_exit 1 "$out" "--abits on a quantized A" -- "$TOOL" --abits 2 -o "$out" "$WORK/a.st" "$WORK/w.st"
expect_exit 1 "$out" "missing B" -- "$TOOL" -o "$out" "$WORK/a.st" "$WORK/nonexistent.st"
grep -q "nonexistent.st" "$WORK/stderr" || fail "missing file not named"
expect_exit 1 "$out" "no such tensor" -- "$TOOL" --b-name nope -o "$out" "$WORK/a.st" "$WORK/w.st"
"$QUANT" -b 4 --group 8 -o "$WORK/g.st" "$WORK/a.npy" || fail "per-group quantization failed"
expect_exit 1 "$out" "per-group scales along K with f32 output" -- "$TOOL" -o "$out" "$WORK/g.st" "$WORK/w.st"
grep -q "vary along K" "$WORK/stderr" || fail "per-group: $(cat "$WORK/stderr")"
"$TOOL" --out int32 -o "$out" "$WORK/g.st" "$WORK/w.st" 2>/dev/null || fail "symmetric per-group codes, int32 output"
rm -f "$out"
LC_ALL=C sed 's/\\"k_words\\":4/\\"k_words\\":8/' "$WORK/w.st" >"$WORK/bad.st"
expect_exit 1 "$out" "corrupted metadata" -- "$TOOL" -o "$out" "$WORK/a.st" "$WORK/bad.st"
grep -q "bad.st: w: .*k_words" "$WORK/stderr" || fail "corrupted metadata: $(cat "$WORK/stderr")"
"$QUANT" --format q8_0 -o "$WORK/q8.st" "$WORK/w.npy" || fail "q8_0 quantization failed"
expect_exit 1 "$out" "ggml blocks as an operand" -- "$TOOL" -o "$out" "$WORK/a.st" "$WORK/q8.st"
expect_exit 2 "$out" "--abits 9" -- "$TOOL" --abits 9 -o "$out" "$WORK/a.npy" "$WORK/w.st"
expect_exit 2 "$out" "--out int64" -- "$TOOL" --out int64 -o "$out" "$WORK/a.st" "$WORK/w.st"
expect_exit 2 "$out" "--route fast" -- "$TOOL" --route fast -o "$out" "$WORK/a.st" "$WORK/w.st"
expect_exit 2 "$out" "one operand" -- "$TOOL" -o "$out" "$WORK/a.st"
expect_exit 2 "$out" "both on stdin" -- "$TOOL" -o "$out" - -
expect_exit 2 "$out" "--wscheme without --wbits" -- "$TOOL" --wscheme binary -o "$out" "$WORK/a.st" "$WORK/w.st"
expect_exit 2 "$out" "--device tpu" -- "$TOOL" --device tpu -o "$out" "$WORK/a.st" "$WORK/w.st"

# ---- --device ---------------------------------------------------------------------------------
# auto is the default (the GPU where one is usable); cpu says so in --json; gpu is the same
# int32 where there is a GPU, else one clear error (exit 1, no output); scripts/gpu-check
# cli runs this on a GPU machine, where the default and auto take the GPU
"$TOOL" --out int32 -o "$WORK/cpu.npy" "$WORK/a.st" "$WORK/w.st" 2>/dev/null || fail "default device failed"
"$TOOL" --out int32 --device cpu --json -o "$WORK/cpu2.npy" "$WORK/a.st" "$WORK/w.st" >"$WORK/dev.json" ||
    fail "--device cpu failed"
grep -q '"device":"cpu"' "$WORK/dev.json" || fail "--json has no device: $(cat "$WORK/dev.json")"
cmp -s "$WORK/cpu.npy" "$WORK/cpu2.npy" || fail "--device cpu differs from the default"
if "$TOOL" --out int32 --device gpu -o "$WORK/gpu.npy" "$WORK/a.st" "$WORK/w.st" 2>"$WORK/stderr"; then
    grep -q "^sdl-qmatmul: bitserial route (cuda kernels): GPU: " "$WORK/stderr" ||
        fail "--device gpu: route line: $(cat "$WORK/stderr")"
    cmp -s "$WORK/cpu.npy" "$WORK/gpu.npy" || fail "--device gpu: int32 differs from the CPU's"
else
    [ ! -e "$WORK/gpu.npy" ] || fail "--device gpu failed but left its output"
    grep -q "^sdl-qmatmul: GPU requested but none is usable: " "$WORK/stderr" ||
        fail "--device gpu without a GPU: $(cat "$WORK/stderr")"
fi
"$TOOL" --out int32 --device auto -o "$WORK/auto.npy" "$WORK/a.st" "$WORK/w.st" 2>/dev/null ||
    fail "--device auto failed"
cmp -s "$WORK/cpu.npy" "$WORK/auto.npy" || fail "--device auto: int32 differs from the CPU's"

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

qmatmul, quantize, work = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []
def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)

ST = {"F32": np.float32, "I8": np.int8, "U8": np.uint8, "U64": np.uint64, "I32": np.int32}
def load_st(path):
    b = open(path, "rb").read()
    n = int.from_bytes(b[:8], "little")
    h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
    data = b[8 + n:]
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]],
                             dtype=ST[v["dtype"]]).reshape(v["shape"]) for k, v in h.items()}

def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        fail("%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r

rng = np.random.default_rng(7)
M, N, K = 37, 29, 301  # K not a multiple of 64: padding must not count
np.save(os.path.join(work, "xa.npy"), rng.standard_normal((M, K)).astype(np.float32))
np.save(os.path.join(work, "xw.npy"), rng.standard_normal((N, K)).astype(np.float32))
np.save(os.path.join(work, "xa3.npy"), rng.standard_normal((2, 5, K)).astype(np.float32))

def quant(src, out, opts):
    return run([quantize, "-o", out, src] + opts).returncode == 0

def operand(path, stem):
    t = load_st(path)
    codes = t[stem + ".codes"].astype(np.int64)
    zp = t.get(stem + ".zero_point")
    scale = t[stem + ".scale"].astype(np.float64)
    rows = codes.reshape(-1, codes.shape[-1])
    z = np.zeros(rows.shape[0], np.int64) if zp is None else np.broadcast_to(zp.astype(np.int64).reshape(-1), (rows.shape[0],)) if zp.size in (1, rows.shape[0]) else None
    s = np.broadcast_to(scale.reshape(-1), (rows.shape[0],)) if scale.size in (1, rows.shape[0]) else None
    return rows, z, s

sides = {
    "a8s": ("xa", ["-b", "8"]), "a2u": ("xa", ["-b", "2", "--scheme", "asymmetric", "--per-channel", "0"]),
    "a1u": ("xa", ["-b", "1", "--scheme", "asymmetric"]), "a1b": ("xa", ["-b", "1"]),
    "a4u": ("xa", ["-b", "4", "--scheme", "asymmetric"]),
    "w1b": ("xw", ["-b", "1", "--per-channel", "0"]), "w2s": ("xw", ["-b", "2", "--per-channel", "0"]),
    "w3u": ("xw", ["-b", "3", "--scheme", "asymmetric", "--per-channel", "0"]),
    "w4s": ("xw", ["-b", "4"]), "w8s": ("xw", ["-b", "8", "--per-channel", "0"]),
}
for name, (src, opts) in sides.items():
    quant(os.path.join(work, src + ".npy"), os.path.join(work, name + ".st"), opts)

pairs = [("a1b", "w1b"), ("a1u", "w1b"), ("a2u", "w1b"), ("a2u", "w2s"), ("a1u", "w3u"),
         ("a4u", "w4s"), ("a8s", "w8s"), ("a2u", "w3u")]
for an, wn in pairs:
    A, B = os.path.join(work, an + ".st"), os.path.join(work, wn + ".st")
    qa, za, sa = operand(A, "xa")
    qb, zb, sb = operand(B, "xw")
    want = (qa - za[:, None]) @ (qb - zb[:, None]).T
    for route in ("auto", "bitserial", "int8"):
        y = os.path.join(work, "y.npy")
        r = run([qmatmul, "--out", "int32", "--route", route, "--json", "--threads", "2", "-o", y, A, B])
        if r.returncode:
            continue
        got = np.load(y)
        if got.dtype != np.int32 or not np.array_equal(got, want):
            fail("%s x %s (%s): int32 differs from NumPy's integer matmul of the codes" % (an, wn, route))
        rep = json.loads(r.stdout)
        if route != "auto" and rep["route"] != route:
            fail("%s x %s: asked %s, ran %s" % (an, wn, route, rep["route"]))
        if route == "auto":
            bits = rep["a"]["bits"] * rep["b"]["bits"]
            if rep["route"] != ("bitserial" if bits <= 8 else "int8") and rep["isa"] == "avx2":
                fail("%s x %s: auto chose %s: %s" % (an, wn, rep["route"], rep["reason"]))
    # f32 output: the dequantized float matmul
    y = os.path.join(work, "yf.npy")
    if run([qmatmul, "-q", "-o", y, A, B]).returncode == 0:
        deq = lambda q, z, s: (q - z[:, None]) * s[:, None]
        ref = deq(qa, za, sa) @ deq(qb, zb, sb).T
        got = np.load(y)
        if got.dtype != np.float32 or not np.allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max()):
            fail("%s x %s: f32 output differs from the dequantized matmul (max %g)" % (an, wn, np.abs(got - ref).max()))

# A of 3 dimensions: Y has A's shape with K -> N
A3, B = os.path.join(work, "a3.st"), os.path.join(work, "w2s.st")
if quant(os.path.join(work, "xa3.npy"), A3, ["-b", "3", "--scheme", "asymmetric"]):
    y = os.path.join(work, "y3.npy")
    if run([qmatmul, "--out", "int32", "-o", y, A3, B]).returncode == 0:
        qa, za, _ = operand(A3, "xa3")
        qb, zb, _ = operand(B, "xw")
        got = np.load(y)
        want = ((qa - za[:, None]) @ (qb - zb[:, None]).T).reshape(2, 5, N)
        if got.shape != (2, 5, N) or not np.array_equal(got, want):
            fail("3-d A: %s" % (got.shape,))

# on the fly = quantize first, then multiply
y1, y2 = os.path.join(work, "fly.npy"), os.path.join(work, "pre.npy")
run([qmatmul, "--abits", "2", "--wbits", "1", "-q", "-o", y1, os.path.join(work, "xa.npy"), os.path.join(work, "xw.npy")])
quant(os.path.join(work, "xa.npy"), os.path.join(work, "fa.st"), ["-b", "2", "--scheme", "asymmetric"])
quant(os.path.join(work, "xw.npy"), os.path.join(work, "fw.st"), ["-b", "1", "--per-channel", "0"])
run([qmatmul, "-q", "-o", y2, os.path.join(work, "fa.st"), os.path.join(work, "fw.st")])
if os.path.exists(y1) and os.path.exists(y2) and not np.array_equal(np.load(y1), np.load(y2)):
    fail("--abits 2 --wbits 1 differs from sdl-quantize then sdl-qmatmul")
sys.exit(1 if failures else 0)
EOF
    "$PY" "$WORK/check.py" "$TOOL" "$QUANT" "$WORK" || failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] && echo "sdl-qmatmul: all checks passed"
[ "$failures" -eq 0 ]
