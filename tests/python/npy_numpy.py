"""Cross-check lib/io/npy against NumPy: NumPy writes, sdl converts, NumPy reads back.

Usage: npy_numpy.py TENSOR_CONVERT   (run through tests/python/run.sh)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

CONVERT = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def convert(src, dst, *extra):
    return subprocess.run([CONVERT, src, dst, *extra], capture_output=True, text=True)


def same(expect, got, what):
    """Exact equality: same shape, little-endian version of the dtype, same bytes."""
    # (copy(order="C"), not ascontiguousarray, which turns 0-d arrays into 1-d ones)
    want = expect.astype(expect.dtype.newbyteorder("<"), order="C")
    check(got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}")
    check(got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}")
    check(got.tobytes(order="C") == want.tobytes(), f"{what}: bytes differ")


def arrays():
    rng = np.random.default_rng(1234)
    out = {}
    for dt in ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64",
               "int64", "float16", "float32", "float64"]:
        if dt == "bool":
            a = rng.integers(0, 2, size=(3, 5)).astype(bool)
        elif dt.startswith("float"):
            a = rng.standard_normal((3, 5)).astype(dt)
            a[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
        else:
            info = np.iinfo(dt)
            a = rng.integers(info.min, info.max, size=(3, 5), dtype=dt, endpoint=True)
            a[0, 0], a[0, 1] = info.min, info.max
        out[dt] = a
    for be in [">f4", ">i8", ">u2", ">f2", ">f8", ">i4"]:
        out["big" + be[1:]] = out[np.dtype(be).newbyteorder("=").name].astype(be)
    out["fortran_f32"] = np.asfortranarray(rng.standard_normal((4, 3, 2)).astype(np.float32))
    out["fortran_be_i2"] = np.asfortranarray(out["int16"].astype(">i2"))
    out["scalar_f64"] = np.array(3.25)
    out["scalar_bool"] = np.array(True)
    out["empty_1d"] = np.zeros((0,), np.float32)
    out["empty_3d"] = np.zeros((3, 0, 2), np.int64)
    out["empty_fortran"] = np.asfortranarray(np.zeros((0, 4), np.uint8))
    out["dims8"] = rng.standard_normal((1, 2, 1, 2, 1, 2, 1, 3)).astype(np.float32)
    out["big_1d"] = np.arange(100_003, dtype=np.int32)
    return out


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for name, a in arrays().items():
            src, dst = os.path.join(tmp, name + ".npy"), os.path.join(tmp, name + "_out.npy")
            np.save(src, a)
            r = convert(src, dst)
            check(r.returncode == 0, f"{name}: convert failed: {r.stderr}")
            if r.returncode:
                continue
            with open(dst, "rb") as f:
                raw = f.read()
            check(raw[:8] == b"\x93NUMPY\x01\x00", f"{name}: not written as npy 1.0")
            header_len = int.from_bytes(raw[8:10], "little")
            check((10 + header_len) % 64 == 0, f"{name}: data not 64-byte aligned")
            same(a, np.load(dst), name)
            # through safetensors and back, all in sdl
            st, back = os.path.join(tmp, name + ".safetensors"), os.path.join(tmp, name + "_2.npy")
            check(convert(src, st).returncode == 0 and convert(st, back).returncode == 0,
                  f"{name}: npy -> safetensors -> npy failed")
            same(a, np.load(back), name + " via safetensors")

        # format versions 2.0 and 3.0 written by NumPy itself
        a = np.arange(12, dtype="<u2").reshape(3, 4)
        for version in [(2, 0), (3, 0)]:
            src = os.path.join(tmp, f"v{version[0]}.npy")
            with open(src, "wb") as f:
                np.lib.format.write_array(f, a, version=version)
            dst = os.path.join(tmp, f"v{version[0]}_out.npy")
            r = convert(src, dst)
            check(r.returncode == 0, f"version {version}: {r.stderr}")
            if r.returncode == 0:
                same(a, np.load(dst), f"version {version}")

        # bad input: one clear message naming the file, exit status 1, no output left
        good = os.path.join(tmp, "float32.npy")
        data = open(good, "rb").read()
        complex_path = os.path.join(tmp, "c.npy")
        np.save(complex_path, np.zeros(2, np.complex64))
        cases = {
            "truncated.npy": data[:-3],
            "short_header.npy": data[:40],
            "bad_magic.npy": b"\x93NUMPZ" + data[6:],
            "complex.npy": open(complex_path, "rb").read(),
        }
        for fname, content in cases.items():
            path = os.path.join(tmp, fname)
            with open(path, "wb") as f:
                f.write(content)
            out = os.path.join(tmp, "never.npy")
            r = convert(path, out)
            check(r.returncode == 1, f"{fname}: exit status {r.returncode}")
            check(fname in r.stderr and r.stderr.count("\n") == 1,
                  f"{fname}: message should be one line naming the file: {r.stderr!r}")
            check(not os.path.exists(out), f"{fname}: output left behind")

    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("npy: all NumPy cross-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
