"""test_tensor_formats.py — safetensors, NumPy .npy and GGUF, written in every order of writes.

Each file is built independently of ckmon (tensor_files.py for safetensors and GGUF,
numpy.save for .npy), copied to a checkpoint path by tests/programs/order_writer in one
of its write patterns under `ckmon run`, and the record is compared with NumPy's ground
truth. The record must also say how it was obtained ("parsed"), and `ckmon inspect` over
the same bytes must give the same record, exact and sampled.
"""
import io
import json
import os
import subprocess

import numpy as np
import pytest

import tensor_files as tf
from ckmon_helpers import (CKMON, check_record, clean_env, parse_records, program,
                           python_script)
from expected import assert_tensors, assert_values, tensor

PATTERNS = {"sequential": "stream", "bytes": "stream", "stdio": "stream",
            "backwards": "reread", "seekback": "reread"}
# The tests that compare with exact statistics ask for them: by default tensors over
# 64 KiB are sampled (docs/formats.md, "Statistics and sampling").
EXACT = ("--sample", "1")
# Differ between a streamed and an inspected record by nature, not by parsing.
CIRCUMSTANCE = ("time", "pid", "program", "job", "run", "writes", "seconds", "parsed")


def inspect(*files, options=()):
    p = subprocess.run([str(CKMON), "inspect", *options, *map(str, files)], env=clean_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return parse_records(p.stdout)


def copy_under_ckmon(ckmon, work, pattern, data, dest_name, options=()):
    source = work / "source.dat"  # a name no checkpoint glob matches
    source.write_bytes(data)
    dest = work / dest_name
    run = ckmon.run(program("order_writer"), pattern, source, dest, options=options)
    assert run.returncode == 0, run.stderr
    assert dest.read_bytes() == data
    return run, dest, run.only_record(dest)


def split_expected(expected):
    """Tensors with statistics (for assert_tensors) and names of those without."""
    with_stats = {k: v for k, v in expected.items() if v is not None}
    return with_stats, sorted(k for k, v in expected.items() if v is None)


def assert_opaque(record, names, dtypes, shapes):
    """Tensors whose dtype has no statistics: dtype and shape, nothing made up."""
    by_name = {t["name"]: t for t in record["tensors"]}
    for name in names:
        t = by_name[name]
        assert (t["dtype"], t["shape"]) == (dtypes[name], shapes[name]), t
        assert [t[s] for s in ("min", "max", "mean", "std")] == [None] * 4, t
        assert (t["nan"], t["inf"], t["sampled"], t["head"]) == (0, 0, 0, []), t
    assert record.get("errors", []) == [f"{n}: statistics not computed for {dtypes[n]}"
                                        for n in names]


def assert_tensor_findings(record, expected):
    with_stats, opaque = split_expected(expected)
    found = [t for t in record["tensors"] if t["name"] in with_stats]
    assert len(found) == len(record["tensors"]) - len(opaque), record["tensors"]
    assert_tensors(found, with_stats)


def same_record(inspected, streamed):
    strip = lambda r: {k: v for k, v in r.items() if k not in CIRCUMSTANCE}
    assert strip(inspected) == strip(streamed)
    assert inspected["parsed"] == "file"


# ---- safetensors ------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", PATTERNS)
def test_safetensors_in_every_write_order(ckmon, work, pattern):
    entries = tf.safetensors_entries()
    data = tf.safetensors_bytes(entries)
    run, dest, record = copy_under_ckmon(ckmon, work, pattern, data, "model.safetensors", EXACT)
    check_record(record, run, path=dest, fmt="safetensors", size=len(data))
    assert record["parsed"] == PATTERNS[pattern]
    values, tensors = tf.safetensors_expected(entries)
    assert_values(record["values"], values)
    assert_tensor_findings(record, tensors)
    if pattern == "bytes":
        assert record["writes"] == len(data)


def test_safetensors_without_metadata_or_tensors(ckmon, work):
    data = tf.safetensors_bytes([], metadata=None)
    run, dest, record = copy_under_ckmon(ckmon, work, "sequential", data, "empty.safetensors")
    check_record(record, run, path=dest, fmt="safetensors", size=len(data))
    assert (record["values"], record["tensors"]) == ({}, [])


def test_truncated_safetensors_is_incomplete(ckmon, work):
    entries = tf.safetensors_entries()
    data = tf.safetensors_bytes(entries)[:-1000]
    run, dest, record = copy_under_ckmon(ckmon, work, "sequential", data, "cut.safetensors")
    check_record(record, run, path=dest, fmt="safetensors", size=len(data), complete=False)
    assert any("data ended" in e for e in record["errors"]), record["errors"]


# ---- GGUF -------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("alignment", [None, 64])
def test_gguf_in_every_write_order(ckmon, work, pattern, alignment):
    if alignment and pattern not in ("sequential", "backwards"):
        pytest.skip("one streamed and one re-read run cover the alignment")
    data, values, tensors, described = tf.gguf_expected(alignment)
    run, dest, record = copy_under_ckmon(ckmon, work, pattern, data, "model.gguf", EXACT)
    # errors name the quantized tensors (assert_opaque); the rest is as for any record
    check_record({k: v for k, v in record.items() if k != "errors"}, run, path=dest, fmt="gguf",
                 size=len(data))
    assert record["parsed"] == PATTERNS[pattern]
    assert_values(record["values"], values)
    assert_tensor_findings(record, tensors)
    opaque = [t for t in described if t.values is None]
    assert_opaque(record, [t.name for t in opaque], {t.name: t.dtype for t in opaque},
                  {t.name: t.shape for t in opaque})


# ---- NumPy .npy -------------------------------------------------------------------------

NPY_ARRAYS = """
import numpy as np
rng = np.random.default_rng(5)
arrays = {
    "f16": rng.normal(0, 3, (7, 5)).astype(np.float16),
    "f32": rng.normal(1, 2, (40, 30)).astype(np.float32),
    "f64": rng.normal(-1, 1e3, 77),
    "i8": rng.integers(-128, 127, 50, dtype=np.int8),
    "i16": rng.integers(-2**15, 2**15 - 1, 50, dtype=np.int16),
    "i32": rng.integers(-2**31, 2**31 - 1, 50, dtype=np.int32),
    "i64": rng.integers(-2**50, 2**50, 50),
    "u8": rng.integers(0, 255, 50, dtype=np.uint8),
    "flags": rng.random(21) > 0.3,
    "fortran": np.asfortranarray(rng.normal(0, 1, (6, 9))),
    "fortran3": np.asfortranarray(rng.integers(-99, 99, (3, 2, 5), dtype=np.int16)),
    "fortran_short": np.asfortranarray(rng.normal(0, 1, (2, 3)).astype(np.float32)),
    "scalar": np.array(2.75),
    "count": np.array(12, dtype=np.int64),
    "empty": np.zeros((0, 4), dtype=np.float32),
    "bad": np.array([1.0, np.nan, np.inf, -np.inf, 2.0, 3.0, np.nan, 4.0, 5.0], dtype=np.float32),
    "big": rng.normal(3, 2, 100_000).astype(np.float32),
}
"""


def npy_expected(name, a):
    flat = a.astype(np.uint8) if a.dtype == np.bool_ else a
    return tensor(name, np.asarray(flat), str(a.dtype))  # head: a.flat[:8], whatever the order


def npy_arrays():
    ns = {}
    exec(NPY_ARRAYS, ns)
    return ns["arrays"]


def test_np_save_every_dtype(ckmon, work):
    script = NPY_ARRAYS + """
for name, a in arrays.items():
    np.save(name + ".npy", a)
    if name == "f32":
        with open("v2.npy", "wb") as f:
            np.lib.format.write_array(f, a, version=(2, 0))
        with open("v3.npy", "wb") as f:
            np.lib.format.write_array(f, a, version=(3, 0))
"""
    run = ckmon.run(*python_script(work, script), options=EXACT)
    assert run.returncode == 0, run.stderr
    arrays = npy_arrays()
    arrays["v2"] = arrays["v3"] = arrays["f32"]
    for name, a in arrays.items():
        path = work / f"{name}.npy"
        record = run.only_record(path)
        check_record(record, run, path=path, fmt="npy", size=os.path.getsize(path))
        assert record["parsed"] == "stream", record
        assert_tensors(record["tensors"], {name: npy_expected(name, a)})
        assert record["values"] == ({name: a.item()} if a.ndim == 0 else {}), record["values"]
    assert open(work / "v3.npy", "rb").read(8)[6] == 3


@pytest.mark.parametrize("pattern", PATTERNS)
def test_npy_in_every_write_order(ckmon, work, pattern):
    a = npy_arrays()["big"]
    data = npy_bytes(a)
    run, dest, record = copy_under_ckmon(ckmon, work, pattern, data, "weights.npy", EXACT)
    check_record(record, run, path=dest, fmt="npy", size=len(data))
    assert record["parsed"] == PATTERNS[pattern]
    assert_tensors(record["tensors"], {"weights": npy_expected("weights", a)})


# ---- inspect and streaming agree ----------------------------------------------------------

def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def parity_files():
    return {"model.safetensors": tf.safetensors_bytes(tf.safetensors_entries()),
            "model.gguf": tf.gguf_expected(None)[0],
            "weights.npy": npy_bytes(npy_arrays()["big"])}


@pytest.mark.parametrize("sample", [None, "1", "0.3", "0.01"])
@pytest.mark.parametrize("pattern", ["stdio", "seekback"])  # 3000-byte pieces; re-read
def test_inspect_equals_streaming(ckmon, work, sample, pattern):
    options = ("--sample", sample) if sample else ()
    for name, data in parity_files().items():
        _, dest, streamed = copy_under_ckmon(ckmon, work, pattern, data, name, options)
        assert streamed["parsed"] == PATTERNS[pattern]
        [inspected] = inspect(dest, options=options)
        same_record(inspected, streamed)
        if sample and float(sample) < 1:
            big = [t for t in streamed["tensors"] if t["name"] in ("big", "output.weight", "weights")]
            assert big and all(0 < t["sampled"] < 1 for t in big), big


def test_every_bit_pattern_of_the_small_floats(work):
    """float16, bfloat16 and both float8 types: all values, subnormals, NaN and Inf decoded
    as NumPy (or the bit layout, for the types NumPy lacks) decodes them."""
    patterns = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore"):
        bf16 = (patterns.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    entries = [
        tf.Entry("half", "F16", [65536], patterns.tobytes(),
                 patterns.view(np.float16).astype(np.float64), "float16"),
        tf.Entry("brain", "BF16", [65536], patterns.tobytes(), bf16, "bfloat16"),
        tf.Entry("e5m2", "F8_E5M2", [256], bytes(range(256)),
                 np.array([tf.e5m2_value(b) for b in range(256)]), "float8_e5m2"),
        tf.Entry("e4m3", "F8_E4M3", [256], bytes(range(256)),
                 np.array([tf.e4m3fn_value(b) for b in range(256)]), "float8_e4m3fn"),
    ]
    path = work / "all.safetensors"
    path.write_bytes(tf.safetensors_bytes(entries, metadata=None))
    [record] = inspect(path, options=EXACT)
    assert record["complete"] and "errors" not in record, record.get("errors")
    assert_tensors(record["tensors"], {e.name: e.expected() for e in entries})


def test_killed_while_writing_safetensors_keeps_the_finished_tensors(ckmon, work):
    """A torn file: the metadata and every tensor whose bytes were all written before the
    kill are in the record, streamed; the tensor the data stopped in and those after are not."""
    entries = tf.safetensors_entries()
    data = tf.safetensors_bytes(entries)
    source, dest = work / "source.dat", work / "torn.safetensors"
    source.write_bytes(data)
    run = ckmon.run(program("order_writer"), "killed", source, dest, options=EXACT)
    assert run.returncode == 137, run.stderr
    written = len(data) - 100  # order_writer's KILLED_SHORT
    record = run.only_record(dest)
    check_record({k: v for k, v in record.items() if k != "errors"}, run, path=dest,
                 fmt="safetensors", size=written, complete=False)
    assert record["parsed"] == "stream"
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    finished = {name for name, e in header.items()
                if name != "__metadata__" and 8 + header_len + e["data_offsets"][1] <= written}
    assert 0 < len(finished) < len(entries)
    values, tensors = tf.safetensors_expected(entries)
    assert_values(record["values"], {k: v for k, v in values.items()
                                     if k.startswith("__metadata__") or k in finished})
    assert_tensor_findings(record, {k: v for k, v in tensors.items() if k in finished})
    assert any("ended while the file was open" in e for e in record["errors"]), record["errors"]
