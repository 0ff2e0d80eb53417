"""The sdl tensor stream read by the few lines of Python documented in sdl-formats(5),
from a file and from a pipe; a stream written by Python read by sdl; a reader that
closes the pipe early; a truncated stream.
Usage: tstream_numpy.py TENSOR_CONVERT   (run through tests/python/run.sh)
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

# ---- the reader loop exactly as printed in man/sdl-formats.5 (NumPy only) ----
DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16,
          "I16": np.int16, "U32": np.uint32, "I32": np.int32, "U64": np.uint64,
          "I64": np.int64, "F16": np.float16, "BF16": np.uint16,  # raw bf16 bits
          "F32": np.float32, "F64": np.float64}


def records(f):
    while head := f.read(8):
        header = json.loads(f.read(struct.unpack("<Q", head)[0]))
        meta = header.pop("__metadata__", None) or {}
        data = f.read(max((t["data_offsets"][1] for t in header.values()), default=0))
        yield meta, {name: np.frombuffer(data[t["data_offsets"][0]:t["data_offsets"][1]],
                                         DTYPES[t["dtype"]]).reshape(t["shape"])
                     for name, t in header.items()}
# ---- end of the documented loop ----


def records_with_package(f):
    """The loop with the safetensors package (as documented)."""
    from safetensors.numpy import load
    while head := f.read(8):
        header = f.read(struct.unpack("<Q", head)[0])
        size = max((t["data_offsets"][1] for k, t in json.loads(header).items()
                    if k != "__metadata__"), default=0)
        yield load(head + header + f.read(size))


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def same(expect, got, what):
    want = expect.astype(expect.dtype.newbyteorder("<"), order="C")
    check(got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes(),
          f"{what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}")


def py_record(tensors, meta):
    header, chunks, offset = {"__metadata__": meta}, [], 0
    for name, a in tensors.items():
        raw = a.tobytes()
        header[name] = {"dtype": {v: k for k, v in DTYPES.items() if k != "BF16"}[a.dtype.type],
                        "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def main():
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        expect = []
        for i in range(5):
            a = rng.standard_normal((i + 1, 3)).astype(np.float32)
            path = os.path.join(tmp, f"frame{i}.npy")
            np.save(path, a)
            inputs.append(path)
            expect.append({f"frame{i}": a})
        npz = os.path.join(tmp, "pair.npz")
        pair = {"x": np.arange(6, dtype=">i4").reshape(2, 3), "e": np.zeros((0,), np.uint8),
                "s": np.array(True)}
        np.savez_compressed(npz, **pair)
        inputs.append(npz)
        expect.append(pair)

        stream = os.path.join(tmp, "all.st")
        r = subprocess.run([CONVERT, "--stream", stream, *inputs], capture_output=True, text=True)
        check(r.returncode == 0, f"--stream: {r.stderr}")
        with open(stream, "rb") as f:
            got = list(records(f))
        check(len(got) == len(inputs), f"{len(got)} records")
        for i, (meta, tensors) in enumerate(got):
            check(meta == {"sdl.index": str(i), "sdl.source": inputs[i]}, f"record {i} meta {meta}")
            check(sorted(tensors) == sorted(expect[i]), f"record {i} names {list(tensors)}")
            for name, a in expect[i].items():
                same(a, tensors[name], f"record {i} {name}")

        # the same through a pipe, read as it comes
        proc = subprocess.Popen([CONVERT, "--stream", "-", *inputs], stdout=subprocess.PIPE)
        piped = list(records(proc.stdout))
        check(proc.wait() == 0, "stream to a pipe failed")
        check(len(piped) == len(inputs), "pipe: record count")
        for (m1, t1), (m2, t2) in zip(got, piped):
            check(m1 == m2 and all(t1[k].tobytes() == t2[k].tobytes() for k in t1), "pipe: record differs")

        try:
            import safetensors.numpy  # noqa: F401
        except ImportError:
            print("note: the safetensors package is not importable; that part is skipped")
        else:
            with open(stream, "rb") as f:
                for i, tensors in enumerate(records_with_package(f)):
                    for name, a in expect[i].items():
                        same(a, tensors[name], f"package: record {i} {name}")

        # a stream written by Python, split by sdl into one file per record
        py_stream = os.path.join(tmp, "py.st")
        recs = [({"t": rng.integers(0, 9, (2, i), dtype=np.int64), "u": np.array(i, np.uint16)},
                 {"sdl.index": str(i)}) for i in range(4)]
        with open(py_stream, "wb") as f:
            for tensors, meta in recs:
                f.write(py_record(tensors, meta))
        prefix = os.path.join(tmp, "rec")
        r = subprocess.run([CONVERT, "--split", py_stream, prefix], capture_output=True, text=True)
        check(r.returncode == 0 and r.stdout.strip() == "4 records", f"--split: {r.stdout} {r.stderr}")
        for i, (tensors, meta) in enumerate(recs):
            with open(f"{prefix}{i}.safetensors", "rb") as f:
                (m, t), = list(records(f))
            check(m == meta, f"split {i}: meta {m}")
            for name, a in tensors.items():
                same(a, t[name], f"split {i} {name}")

        # truncated stream: exit 1, one line naming the stream and the record
        data = open(py_stream, "rb").read()
        cut = os.path.join(tmp, "cut.st")
        open(cut, "wb").write(data[:-7])
        r = subprocess.run([CONVERT, "--split", cut, os.path.join(tmp, "c")], capture_output=True,
                           text=True)
        check(r.returncode == 1 and "cut.st: record 4" in r.stderr and "truncated" in r.stderr
              and r.stderr.count("\n") == 1, f"truncated stream: {r.stderr!r}")

        # the reader goes away after one record: a reported write error, not a signal death
        big = os.path.join(tmp, "big.npy")
        np.save(big, np.zeros((1024, 1024), np.float32))
        proc = subprocess.Popen([CONVERT, "--stream", "-"] + [big] * 20, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        first = next(records(proc.stdout))
        proc.stdout.close()
        err = proc.stderr.read().decode()
        rc = proc.wait()
        check(first[1]["big"].shape == (1024, 1024), "first record before closing")
        check(rc == 1 and "Broken pipe" in err and err.count("\n") == 1,
              f"closed pipe: status {rc}, stderr {err!r}")

    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("tstream: all cross-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
