"""Cross-check lib/io/npz against NumPy and Python's zipfile.

np.savez / np.savez_compressed write archives (with zip64 local headers, as NumPy
forces them); sdl converts them to stored and deflated .npz; NumPy reads ours back and
must see exactly the same arrays; zipfile verifies our CRCs independently.
Usage: npz_numpy.py TENSOR_CONVERT   (run through tests/python/run.sh)
"""
import os
import subprocess
import sys
import tempfile
import zipfile

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
    want = expect.astype(expect.dtype.newbyteorder("<"), order="C")
    check(got.dtype == want.dtype and got.shape == want.shape,
          f"{what}: {got.dtype}{got.shape} != {want.dtype}{want.shape}")
    check(got.tobytes(order="C") == want.tobytes(), f"{what}: bytes differ")


def arrays():
    rng = np.random.default_rng(7)
    out = {
        "f32": rng.standard_normal((5, 7)).astype(np.float32),
        "f16": rng.standard_normal((3, 3)).astype(np.float16),
        "f64_be": rng.standard_normal(6).astype(">f8"),
        "i64_be": np.arange(-5, 5, dtype=">i8"),
        "u8": rng.integers(0, 256, (4, 4, 3), dtype=np.uint8),
        "i8": np.arange(-128, 128, dtype=np.int8),
        "u16": np.arange(0, 65535, 257, dtype=np.uint16),
        "i32": np.arange(-1000, 1000, 7, dtype=np.int32),
        "u32": np.array([0, 1, 2**32 - 1], dtype=np.uint32),
        "u64": np.array([0, 2**64 - 1], dtype=np.uint64),
        "i16": np.array([-32768, 32767], dtype=np.int16),
        "bool": rng.integers(0, 2, (9,)).astype(bool),
        "fortran": np.asfortranarray(rng.standard_normal((3, 4, 5))),
        "scalar": np.array(-1.5, dtype=np.float32),
        "empty": np.zeros((2, 0, 3), dtype=np.float32),
        "zeros_compressible": np.zeros((300, 300), dtype=np.float32),
    }
    return out


def main():
    data = arrays()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"savez": os.path.join(tmp, "a.npz"), "savez_compressed": os.path.join(tmp, "c.npz")}
        np.savez(sources["savez"], **data)
        np.savez_compressed(sources["savez_compressed"], **data)
        for kind, src in sources.items():
            for compress in [False, True]:
                dst = os.path.join(tmp, f"{kind}_{int(compress)}.npz")
                r = convert(src, dst, *(["--compress"] if compress else []))
                check(r.returncode == 0, f"{kind} -> {dst}: {r.stderr}")
                if r.returncode:
                    continue
                with zipfile.ZipFile(dst) as z:
                    check(z.testzip() is None, f"{dst}: zipfile finds a bad CRC")
                    methods = {i.compress_type for i in z.infolist()}
                    want = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
                    check(methods == {want}, f"{dst}: methods {methods}")
                    check([i.filename for i in z.infolist()] == [k + ".npy" for k in data],
                          f"{dst}: member names/order {z.namelist()}")
                with np.load(dst) as back:
                    check(sorted(back.files) == sorted(data), f"{dst}: names {back.files}")
                    for name, a in data.items():
                        same(a, back[name], f"{kind} compress={compress} {name}")
            # npz -> safetensors -> npz, all in sdl
            st, back_path = os.path.join(tmp, kind + ".safetensors"), os.path.join(tmp, kind + "_st.npz")
            check(convert(src, st).returncode == 0 and convert(st, back_path).returncode == 0,
                  f"{kind}: via safetensors failed")
            with np.load(back_path) as back:
                for name, a in data.items():
                    same(a, back[name], f"{kind} via safetensors {name}")

        # compression actually compresses
        check(os.path.getsize(os.path.join(tmp, "savez_1.npz")) <
              os.path.getsize(os.path.join(tmp, "savez_0.npz")) / 2, "deflate did not shrink")

        # positional arrays are arr_0, arr_1 (NumPy's names); and an empty archive
        pos = os.path.join(tmp, "pos.npz")
        np.savez(pos, np.arange(3), np.ones((2, 2)))
        out = os.path.join(tmp, "pos_out.npz")
        check(convert(pos, out).returncode == 0, "positional archive")
        with np.load(out) as back:
            check(sorted(back.files) == ["arr_0", "arr_1"], f"positional names {back.files}")
        empty = os.path.join(tmp, "empty.npz")
        np.savez(empty)
        r = convert(empty, os.path.join(tmp, "empty_out.npz"))
        check(r.returncode == 0, f"empty archive: {r.stderr}")
        with np.load(os.path.join(tmp, "empty_out.npz")) as back:
            check(back.files == [], "empty archive has members")

        # more than 65535 members: Python writes zip64 end records, so do we
        many = {f"t{i}": np.array(i, dtype=np.int32) for i in range(65537)}
        big_src, big_dst = os.path.join(tmp, "many.npz"), os.path.join(tmp, "many_out.npz")
        np.savez(big_src, **many)
        r = convert(big_src, big_dst)
        check(r.returncode == 0, f"65537 members: {r.stderr}")
        if r.returncode == 0:
            with zipfile.ZipFile(big_dst) as z:
                check(len(z.infolist()) == 65537, "65537 members: count")
            with np.load(big_dst) as back:
                for i in [0, 65535, 65536]:
                    check(int(back[f"t{i}"]) == i, f"65537 members: t{i}")

        # damaged archives: exit 1, one line naming the file, nothing written
        raw = open(sources["savez_compressed"], "rb").read()
        stored = open(sources["savez"], "rb").read()
        pos_data = stored.find(b"\x93NUMPY")
        flipped = bytearray(stored)
        flipped[pos_data + 200] ^= 0xFF
        cases = {
            "truncated.npz": raw[: len(raw) // 2],
            "no_end.npz": raw[:-22],
            "bad_crc.npz": bytes(flipped),
            "not_zip.npz": b"PK\x03\x04" + b"\x00" * 100,
        }
        for fname, content in cases.items():
            path = os.path.join(tmp, fname)
            with open(path, "wb") as f:
                f.write(content)
            out = os.path.join(tmp, "never.npz")
            r = convert(path, out)
            check(r.returncode == 1, f"{fname}: exit status {r.returncode}")
            check(fname in r.stderr and r.stderr.count("\n") == 1,
                  f"{fname}: message should be one line naming the file: {r.stderr!r}")
            check(not os.path.exists(out), f"{fname}: output left behind")
        r = convert(os.path.join(tmp, "bad_crc.npz"), os.path.join(tmp, "x.npz"))
        check("CRC-32" in r.stderr, f"bad CRC not reported as such: {r.stderr!r}")

    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("npz: all NumPy cross-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
