"""Cross-check lib/io/safetensors against an independent reader/writer in Python (json +
numpy, following the format description) and, when importable, the `safetensors`
package itself.
Usage: safetensors_numpy.py TENSOR_CONVERT   (run through tests/python/run.sh)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

CONVERT = sys.argv[1]
failures = []
DTYPES = {"BOOL": "bool", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4",
          "I32": "<i4", "U64": "<u8", "I64": "<i8", "F16": "<f2", "BF16": "<u2", "F32": "<f4",
          "F64": "<f8"}


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def convert(src, dst, *extra):
    return subprocess.run([CONVERT, src, dst, *extra], capture_output=True, text=True)


def py_write(path, tensors, metadata=None, header_override=None, tail=b""):
    """tensors: name -> (dtype string, np array); written in the given order."""
    header, chunks, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, a) in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = header_override if header_override is not None else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks) + tail)


def py_read(path):
    """Independent reader: returns (header length, metadata, name -> (dtype, array))."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    out = {}
    spans = []
    for name, info in header.items():
        b, e = info["data_offsets"]
        spans.append((b, e))
        a = np.frombuffer(data[b:e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = (info["dtype"], a)
    spans.sort()
    pos = 0
    for b, e in spans:
        check(b == pos, f"{path}: offsets not contiguous at {b}")
        pos = e
    check(pos == len(data), f"{path}: data buffer {len(data)} bytes, tensors cover {pos}")
    return n, meta, out, list(header)


def sample():
    rng = np.random.default_rng(5)
    bf16 = (rng.standard_normal(6).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return {
        "embed.weight": ("F32", rng.standard_normal((4, 3)).astype(np.float32)),
        "half": ("F16", rng.standard_normal((2, 2)).astype(np.float16)),
        "brain": ("BF16", bf16.reshape(2, 3)),
        "f64": ("F64", np.array([np.pi, -0.0, np.inf])),
        "i64": ("I64", np.array([-2**63, 2**63 - 1], dtype=np.int64)),
        "u64": ("U64", np.array([2**64 - 1], dtype=np.uint64)),
        "i32": ("I32", np.arange(-3, 3, dtype=np.int32)),
        "u32": ("U32", np.array([7], dtype=np.uint32)),
        "i16": ("I16", np.array([-1, 1], dtype=np.int16)),
        "u16": ("U16", np.array([65535], dtype=np.uint16)),
        "i8": ("I8", np.array([-128, 127], dtype=np.int8)),
        "u8": ("U8", np.arange(5, dtype=np.uint8).reshape(5, 1)),
        "mask": ("BOOL", np.array([True, False, True])),
        "scalar": ("F32", np.array(1.25, dtype=np.float32)),
        "empty": ("F32", np.zeros((0, 7), dtype=np.float32)),
    }


def main():
    tensors = sample()
    meta = {"format": "pt", "note": "caf\u00e9 \"q\"", "sdl.kind": "test"}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        py_write(src, tensors, meta)
        r = convert(src, dst)
        check(r.returncode == 0, f"convert: {r.stderr}")
        n, got_meta, got, order = py_read(dst)
        check((8 + n) % 8 == 0, "header not padded to a multiple of 8")
        check(got_meta == meta, f"metadata {got_meta}")
        check(order == list(tensors), f"tensor order {order}")
        for name, (dtype, a) in tensors.items():
            gd, ga = got[name]
            check(gd == dtype and ga.shape == a.shape and ga.tobytes() == a.tobytes(),
                  f"{name}: {gd}{ga.shape} differs")

        # via .npz and back (no bf16 there; metadata dropped as documented)
        no_bf16 = {k: v for k, v in tensors.items() if v[0] != "BF16"}
        src2 = os.path.join(tmp, "plain.safetensors")
        py_write(src2, no_bf16)
        npz = os.path.join(tmp, "plain.npz")
        check(convert(src2, npz).returncode == 0, "safetensors -> npz")
        with np.load(npz) as z:
            for name, (dtype, a) in no_bf16.items():
                check(z[name].dtype == np.dtype(DTYPES[dtype]) and z[name].tobytes() == a.tobytes(),
                      f"npz {name}")
        r = convert(src, os.path.join(tmp, "bf.npz"))
        check(r.returncode == 1 and "bf16" in r.stderr, f"bf16 to npz should fail: {r.stderr!r}")

        try:
            from safetensors.numpy import load_file, save_file
        except ImportError:
            print("note: the safetensors package is not importable; that part is skipped")
        else:
            ref = load_file(dst)
            for name, (dtype, a) in no_bf16.items():
                check(ref[name].tobytes() == a.tobytes(), f"safetensors package: {name}")
            ref_path = os.path.join(tmp, "ref.safetensors")
            save_file({k: v[1] for k, v in no_bf16.items()}, ref_path, metadata={"a": "b"})
            back = os.path.join(tmp, "ref_back.safetensors")
            check(convert(ref_path, back).returncode == 0, "read the package's file")
            for name, arr in load_file(back).items():
                check(arr.tobytes() == no_bf16[name][1].tobytes(), f"package round trip {name}")

        # files that break a rule: exit 1, one line naming the file, nothing written
        ok = {"a": ("F32", np.zeros(2, np.float32)), "b": ("U8", np.zeros(3, np.uint8))}
        hdr = lambda d: json.dumps(d).encode()
        good_a = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        good_b = {"dtype": "U8", "shape": [3], "data_offsets": [8, 11]}
        cases = {
            "dup.safetensors": b'{"a":' + hdr(good_a) + b',"a":' + hdr(good_a) + b"}",
            "gap.safetensors": hdr({"a": good_a, "b": dict(good_b, data_offsets=[9, 12])}),
            "overlap.safetensors": hdr({"a": good_a, "b": dict(good_b, data_offsets=[7, 10])}),
            "size.safetensors": hdr({"a": dict(good_a, shape=[3]), "b": good_b}),
            "dtype.safetensors": hdr({"a": dict(good_a, dtype="F8_E5M2"), "b": good_b}),
            "overflow.safetensors": hdr({"a": dict(good_a, shape=[2**32, 2**32, 2**32]), "b": good_b}),
            "meta.safetensors": hdr({"__metadata__": {"k": 5}, "a": good_a, "b": good_b}),
            "notjson.safetensors": b"{" * 20,
        }
        for fname, header in cases.items():
            path = os.path.join(tmp, fname)
            py_write(path, ok, header_override=header)
            out = os.path.join(tmp, "never.safetensors")
            r = convert(path, out)
            check(r.returncode == 1, f"{fname}: exit status {r.returncode}: {r.stderr}")
            check(fname in r.stderr and r.stderr.count("\n") == 1,
                  f"{fname}: message should be one line naming the file: {r.stderr!r}")
            check(not os.path.exists(out), f"{fname}: output left behind")
        # trailing bytes and truncation
        for fname, tail, cut in [("tail.safetensors", b"xx", 0), ("cut.safetensors", b"", 5)]:
            path = os.path.join(tmp, fname)
            py_write(path, ok, tail=tail)
            if cut:
                data = open(path, "rb").read()
                open(path, "wb").write(data[:-cut])
            r = convert(path, os.path.join(tmp, "never.safetensors"))
            check(r.returncode == 1 and fname in r.stderr, f"{fname}: {r.stderr!r}")

    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("safetensors: all cross-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
