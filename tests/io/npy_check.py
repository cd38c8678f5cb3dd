#!/usr/bin/env python3
"""Cross-checks fusegrad's .npy reader and writer against NumPy (one ctest entry: npy_numpy).

Usage: npy_check.py <fusegrad_tests executable> <work directory>

1. NumPy writes arrays into <work>/from_numpy: every dtype fusegrad supports, a rank-0 array, a
   uint8 array, an empty array, a version-2.0 file, a big-endian file and a Fortran-ordered one.
2. The hidden Catch2 test "[npy_numpy]" (tests/test_io.cpp) runs with FG_NPY_DIR=<work>: it loads
   those files, checks them, and saves the same arrays into <work>/from_fusegrad.
3. NumPy loads fusegrad's files and checks dtype, shape, values and NumPy's header layout.

Element i of every array is the same formula on both sides (npy_value in tests/test_io.cpp).
"""
import os
import shutil
import subprocess
import sys

import numpy as np

# name: (dtype, shape); the name is the file name on both sides.
ARRAYS = {
    "f4_2x3": ("<f4", (2, 3)),
    "f8_3x1x2": ("<f8", (3, 1, 2)),
    "i4_5": ("<i4", (5,)),
    "i8_2x2x2x2": ("<i8", (2, 2, 2, 2)),
    "u1_4x4": ("|u1", (4, 4)),
    "b1_7": ("|b1", (7,)),
    "f8_scalar": ("<f8", ()),
    "f4_v2_3x4": ("<f4", (3, 4)),
    "f8_big_2x3": ("<f8", (2, 3)),
    "i4_empty_0x3": ("<i4", (0, 3)),
}


def values(dtype, shape):
    k = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    kind = np.dtype(dtype)
    if kind == np.bool_:
        v = k % 3 == 0
    elif kind == np.uint8:
        v = k * 37 % 256
    elif kind == np.int32:
        v = k * 7919 % 20011 - 10000
    elif kind == np.int64:
        v = (k * 7919 % 20011 - 10000) * 3000000000
    else:
        v = (k * 37 % 101 - 50) * 0.125
    return v.astype(kind).reshape(shape)


def write_numpy_files(directory):
    os.makedirs(directory)
    for name, (dtype, shape) in ARRAYS.items():
        a = values(dtype, shape)
        path = os.path.join(directory, name + ".npy")
        if name.startswith("f4_v2"):
            with open(path, "wb") as f:
                np.lib.format.write_array(f, a, version=(2, 0))
        elif name.startswith("f8_big"):
            np.save(path, a.astype(">f8"))
        else:
            np.save(path, a)
    np.save(os.path.join(directory, "f4_fortran_2x3.npy"),
            np.asfortranarray(values("<f4", (2, 3))))


def check_fusegrad_files(directory):
    failures = []
    for name, (dtype, shape) in ARRAYS.items():
        path = os.path.join(directory, name + ".npy")
        if not os.path.exists(path):
            failures.append(f"{path}: missing (did the [npy_numpy] test run?)")
            continue
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                np.lib.format.read_array_header_1_0(f)
            header_end = f.tell()
        a = np.load(path)
        expected = values(dtype, shape)
        problems = []
        if version != (1, 0):
            problems.append(f"version {version}, expected (1, 0)")
        if header_end % 64 != 0:
            problems.append(f"data starts at {header_end}, not a multiple of 64")
        if a.dtype != np.dtype(dtype):
            problems.append(f"dtype {a.dtype.str}, expected {np.dtype(dtype).str}")
        if a.shape != shape:
            problems.append(f"shape {a.shape}, expected {shape}")
        elif not np.array_equal(a, expected):
            problems.append(f"values {a.ravel()[:8]}..., expected {expected.ravel()[:8]}...")
        if not a.flags.c_contiguous:
            problems.append("not C-contiguous")
        failures += [f"{path}: {p}" for p in problems]
    return failures


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    executable, work = sys.argv[1], os.path.abspath(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    write_numpy_files(os.path.join(work, "from_numpy"))
    env = dict(os.environ, FG_NPY_DIR=work)
    run = subprocess.run([executable, "[npy_numpy]"], env=env)
    if run.returncode != 0:
        sys.exit(f"npy_check: {executable} [npy_numpy] failed with exit code {run.returncode}")
    failures = check_fusegrad_files(os.path.join(work, "from_fusegrad"))
    for f in failures:
        print("npy_check:", f, file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"npy_check: NumPy {np.__version__} read {len(ARRAYS)} files fusegrad wrote, "
          f"fusegrad read {len(ARRAYS) + 1} files NumPy wrote")


if __name__ == "__main__":
    main()
