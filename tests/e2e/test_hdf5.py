"""test_hdf5.py — HDF5 files written by h5py and PyTables, read by the collector after close.

Ground truth is what h5py reads back from the finished file, flattened here by the rules of
docs/formats.md ("HDF5"), written from the document and not from the reader's code:
datasets are tensors named by their path with '/' as '.', attributes values named
`<object>.<attribute>`. The live record (parsed "file": the collector reads the file after
its last close) must equal `ckmon inspect`'s; damaged files must give an honest record and
no crash, and libhdf5 must print nothing.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ckmon_helpers import (CKMON, Collector, check_record, clean_env, parse_records,
                           python_script)
from expected import SHORT_SEQUENCE, SKIP, assert_tensors, assert_values, join, scalar, tensor
from test_tensor_formats import CIRCUMSTANCE

STRING_ITEMS = 8  # an array of strings: its first items as values


def text(x):
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def as_number(x):
    x = x.item() if isinstance(x, np.generic) else x
    return scalar(x)


def numeric(array):
    return array.dtype.kind in "biuf"


def put(values, name, value):
    if value is not SKIP:  # strings over 256 bytes are not values
        values[name] = value


def flatten_item(name, x, values, tensors, attribute, stored):
    """One attribute or dataset value read by h5py; stored: its HDF5 type."""
    if isinstance(x, h5py.Empty):
        return
    if stored.get_class() == h5py.h5t.BITFIELD and stored.get_size() == 1:
        x = np.asarray(x).astype(np.bool_)  # PyTables' bool, which h5py reads as uint8
    if isinstance(x, (str, bytes)):
        put(values, name, scalar(text(x)))
        return
    array = np.asarray(x)
    if array.dtype.kind in "SUO":  # strings
        if array.ndim == 0:
            put(values, name, scalar(text(array.item())))
        elif array.size <= STRING_ITEMS or attribute:
            for i, item in enumerate(array.reshape(-1)[:STRING_ITEMS]):
                put(values, join(name, str(i)), scalar(text(item)))
        return
    if not numeric(array):
        return
    if attribute and array.ndim == 0:
        values[name] = as_number(array.item())
    elif attribute and array.size <= SHORT_SEQUENCE:
        for i, item in enumerate(array.reshape(-1)):
            values[join(name, str(i))] = as_number(item)
    else:
        shown = array.astype(np.uint8) if array.dtype == np.bool_ else array
        tensors[name] = tensor(name, shown, str(array.dtype), list(array.shape))
        if array.ndim == 0:
            values[name] = as_number(array.item())


def hdf5_findings(path):
    """(values, tensors) of an HDF5 file as docs/formats.md says they are named."""
    values, tensors = {}, {}
    with h5py.File(path, "r") as f:
        objects = [("", f)]
        f.visititems(lambda name, obj: objects.append((name.replace("/", "."), obj)))
        for name, obj in objects:
            for key, attr in obj.attrs.items():
                stored = obj.attrs.get_id(key).get_type()
                flatten_item(join(name, key), attr, values, tensors, True, stored)
            if isinstance(obj, h5py.Dataset):
                flatten_item(name, obj[()], values, tensors, False, obj.id.get_type())
    return values, tensors


def inspect(path, *options):
    p = subprocess.run([str(CKMON), "inspect", *options, str(path)], env=clean_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "HDF5" not in p.stderr, p.stderr  # libhdf5's error stack is silenced
    (record,) = parse_records(p.stdout)
    return record


def assert_hdf5(record, path):
    values, tensors = hdf5_findings(path)
    assert_values(record["values"], values)
    assert_tensors(record["tensors"], tensors)
    inspected = inspect(path, "--sample", "1")
    strip = lambda r: {k: v for k, v in r.items() if k not in CIRCUMSTANCE + ("written_as",)}
    assert strip(inspected) == strip(record)


KERAS_LIKE = """
import h5py, numpy as np
rng = np.random.default_rng(3)
# the layout of Keras 2's model.save("x.h5") / save_weights: model_weights/<layer>/<layer>/<weight>
path = os.path.abspath("model.h5")
with h5py.File(path, "w") as f:
    f.attrs["keras_version"] = np.bytes_("2.11.0")
    f.attrs["backend"] = "tensorflow"
    f.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": []}}' * 10
    w = f.create_group("model_weights")
    w.attrs["layer_names"] = [b"dense", b"dense_1"]
    for layer, (n_in, n_out) in {"dense": (64, 128), "dense_1": (128, 10)}.items():
        g = w.create_group(layer)
        g.attrs["weight_names"] = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
        g[f"{layer}/kernel:0"] = rng.standard_normal((n_in, n_out)).astype(np.float32)
        g[f"{layer}/bias:0"] = rng.standard_normal(n_out).astype(np.float32) * 0.1
    o = f.create_group("optimizer_weights/Adam")
    o["iter:0"] = np.int64(1200)
    o["m:0"] = np.array([1e-3, np.nan, np.inf, -2.5])
    f.attrs["epoch"] = 7
    f.attrs["lr"] = 0.0003
    f.attrs["best"] = np.float32(0.25)
    f.attrs["early_stopped"] = np.bool_(True)
    f.attrs["betas"] = [0.9, 0.999]
    f.attrs["schedule"] = np.arange(12, dtype=np.int32)
    f["half"] = np.linspace(-2, 2, 77).astype(np.float16)
    f["mask"] = rng.random(13) > 0.5
    f["steps"] = np.arange(2**40, 2**40 + 9, dtype=np.uint64)
    f["note"] = "trained on shard 3"
    f["names"] = np.array([b"a", b"bc"])
    f["scalar"] = 2.5
    f["empty"] = np.zeros((0, 3), np.float32)
    f.create_dataset("chunked", data=rng.standard_normal((50, 40, 3)), chunks=(7, 11, 3),
                     compression="gzip")
    f.create_dataset("fortran_like", data=np.arange(24, dtype=np.int16).reshape(2, 3, 4))
report(path=path, size=os.path.getsize(path))
"""


def written_under_ckmon(ckmon, work, script):
    """Runs a writer script that reports path and size (under a default glob); the record of
    that file, checked, and the report."""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="hdf5", size=out["size"], pid=out["pid"])
    assert record["parsed"] == "file" and record["writes"] > 0
    return record, out


def test_h5py_file_live_and_inspect(ckmon, work):
    record, out = written_under_ckmon(ckmon, work, KERAS_LIKE)
    assert record["values"]["model_weights.layer_names.1"] == "dense_1"
    assert "model_config" not in record["values"]  # over 256 bytes
    assert_hdf5(record, out["path"])


PYTABLES = """
import numpy as np, tables
rng = np.random.default_rng(9)
path = os.path.abspath("run.hdf5")
with tables.open_file(path, "w", title="a run") as f:
    g = f.create_group("/", "layers", "the layers")
    f.create_array(g, "w0", rng.standard_normal((40, 30)))
    c = f.create_carray(g, "w1", tables.Float32Atom(), (300, 200),
                        filters=tables.Filters(complevel=5, complib="zlib"))
    c[:] = rng.standard_normal((300, 200)).astype(np.float32)
    f.create_array("/", "counts", np.arange(100, dtype=np.int64))
    f.root._v_attrs.epoch = 12
    f.root._v_attrs.loss = 0.125
    g._v_attrs.frozen = False
report(path=path, size=os.path.getsize(path))
"""


def test_pytables_file(ckmon, work):
    record, out = written_under_ckmon(ckmon, work, PYTABLES)
    assert record["values"]["epoch"] == 12 and record["values"]["layers.frozen"] is False
    assert_hdf5(record, out["path"])


def test_sampled_statistics_equal_npy(work):
    """The same array as an HDF5 dataset and as a .npy file: the same bytes in the same
    order through the same sampling plan, so identical statistics at the default sample."""
    array = np.random.default_rng(1).standard_normal((700, 900)).astype(np.float32)
    np.save(work / "w.npy", array)
    with h5py.File(work / "w.h5", "w") as f:
        f["w"] = array
        f.create_dataset("c", data=array, chunks=(64, 100), compression="gzip")
    (npy,) = inspect(work / "w.npy")["tensors"]
    tensors = inspect(work / "w.h5")["tensors"]
    assert npy["sampled"] < 1
    for t in tensors:
        assert {**t, "name": "w"} == npy


def test_user_block_and_renamed_temp(ckmon, work):
    script = """
import h5py, numpy as np
final = os.path.abspath("blocked.h5")
tmp = os.path.abspath("blocked.h5.part")   # no glob matches the temporary name
with h5py.File(tmp, "w", userblock_size=1024) as f:
    f["x"] = np.arange(30.0)
os.replace(tmp, final)
report(path=final, tmp=tmp, size=os.path.getsize(final))
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="hdf5", size=out["size"], pid=out["pid"],
                 written_as=out["tmp"])
    assert_hdf5(record, out["path"])


def damaged_files(work):
    rng = np.random.default_rng(4)
    good = work / "good.h5"
    with h5py.File(good, "w") as f:
        for i in range(5):
            f.create_dataset(f"g{i}/w", data=rng.standard_normal((200, 50)), chunks=(20, 50),
                             compression="gzip")
        f.attrs["epoch"] = 3
    data = good.read_bytes()
    files = {"truncated_half": data[: len(data) // 2], "truncated_superblock": data[:40],
             "signature_only": data[:8]}
    for seed in range(6):  # bytes overwritten with noise at random places past the superblock
        broken = bytearray(data)
        noise = np.random.default_rng(seed)
        for at in noise.integers(96, len(data) - 64, size=8):
            broken[at : at + 64] = noise.bytes(64)
        files[f"noise_{seed}"] = bytes(broken)
    for name, content in files.items():
        (work / f"{name}.h5").write_bytes(content)
    return [work / f"{name}.h5" for name in files]


def test_damaged_files_are_reported_not_fatal(work):
    for path in damaged_files(work):
        record = inspect(path)
        assert record["format"] == "hdf5", (path, record)
        if not record["complete"]:
            assert record["errors"], record
            assert all(e.startswith("hdf5: ") for e in record["errors"]), record["errors"]
    truncated = inspect(work / "truncated_half.h5")
    assert truncated["complete"] is False
    assert "not a readable HDF5 file" in truncated["errors"][0]


def test_torn_write_under_the_agent(ckmon, work):
    """A writer killed inside an HDF5 save: a torn record, the program's own death intact."""
    script = """
import h5py, numpy as np, signal
path = os.path.abspath("torn.h5")
f = h5py.File(path, "w")
f["w"] = np.arange(100000.0)
f.flush()
report(path=path)
os.kill(os.getpid(), signal.SIGKILL)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 128 + 9, run.stderr
    record = run.only_record(run.last_json()["path"])
    assert record["format"] == "hdf5" and record["complete"] is False, record
    assert record["errors"], record


def test_diff_says_it_does_not_compare(work):
    """ckmon diff reads bytes as they pass; HDF5's are read by libhdf5 in another process,
    so two different files must not be called identical."""
    for name, value in (("a.h5", 1.0), ("b.h5", 2.0)):
        with h5py.File(work / name, "w") as f:
            f["w"] = np.full(10, value)
    p = subprocess.run([str(CKMON), "diff", str(work / "a.h5"), str(work / "b.h5")],
                       env=clean_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "hdf5 files are not compared tensor by tensor" in p.stderr


@pytest.mark.skipif("ASAN_OPTIONS" in os.environ, reason="no memory ceiling under ASan")
def test_decompression_bomb_is_bounded(work):
    """A 14 MB file whose one compressed chunk inflates to 3 GiB: the reader's memory
    ceiling refuses it, the dataset is an error, the rest of the file is still read."""
    import zlib
    n = 3 * 2**28  # float32 elements in the chunk
    zero = bytes(64 << 20)
    c = zlib.compressobj(1)
    first = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)  # the same bytes every time now
    stream = first + again * (n * 4 // len(zero) - 1) + c.flush(zlib.Z_FINISH)
    path = work / "bomb.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("w", (n,), dtype="f4", chunks=(n,), compression="gzip")
        d.id.write_direct_chunk((0,), stream)
        f["ok"] = np.arange(5.0)
    p = subprocess.Popen([str(CKMON), "inspect", str(path)], env=clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    # reaped here, not by Popen: wait4 gives the largest of ckmon and what it waited for
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    assert p.returncode == 0
    (record,) = parse_records(out)
    assert record["format"] == "hdf5" and record["complete"] is False
    assert [t["name"] for t in record["tensors"]] == ["ok"]
    assert any(e.startswith("hdf5: w: ") for e in record["errors"]), record["errors"]
    max_rss_kib = usage.ru_maxrss
    assert max_rss_kib < 1.5 * 2**20, max_rss_kib


# Two hostile files, made with h5py and then bytes of their own: libhdf5 1.10.8 trusts both.
# crash.h5: the global heap index of a variable-length string attribute of dataset z points
# 2^31 objects past the heap's end, where libhdf5 reads without a bounds check (signal 11).
# spin.h5: a 2 KiB file whose chunked dataset w of 2^40 float32 has no chunk written, so
# reading it means 4 TiB of fill values, for hours: only the deadline stops it. In both,
# the dataset read before the trouble (objects go in name order) is kept.
HOSTILE = """
import h5py, numpy as np, struct
def crash_file(path):
    with h5py.File(path, "w") as f:
        f["w"] = np.arange(10.0)
        f["z"] = np.ones(3)
        f["z"].attrs["note"] = "trained on shard 3"
    data = bytearray(open(path, "rb").read())
    ref = struct.pack("<IQI", len("trained on shard 3"), data.index(b"GCOL"), 1)
    assert data.count(ref) == 1
    at = data.index(ref) + 12
    data[at : at + 4] = struct.pack("<I", 0x7FFFFFFF)
    return bytes(data)
def spin_file(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("w", (2**40,), dtype="f4", chunks=(2**18,))
        f["ok"] = np.arange(5.0)
"""

CRASHED = "hdf5: the HDF5 library crashed on this file (signal 11)"


def crash_expected(record):
    """The crash's record; under ASan the reader's own SEGV handler exits 1 instead."""
    assert record["format"] == "hdf5" and record["complete"] is False, record
    assert record["values"] == {}, record
    assert_tensors(record["tensors"], {"w": tensor("w", np.arange(10.0))})
    if "ASAN_OPTIONS" in os.environ:
        assert record["errors"] == ["hdf5: the reader failed (exit status 1)"], record
    else:
        assert record["errors"] == [CRASHED], record


def test_crash_and_deadline_under_the_collector(work):
    """A crashing and a never-ending file under a standing collector: each an honest
    record, and the collector goes on reading HDF5 files and serving programs."""
    script = HOSTILE + """
scratch = os.path.abspath("scratch.tmp")   # no glob matches it
crash = crash_file(scratch)
os.unlink(scratch)
with open("crash.h5", "wb") as f:
    f.write(crash)
spin_file("spin.h5")
with h5py.File("good.h5", "w") as f:
    f["w"] = np.linspace(-1, 1, 300).reshape(30, 10)
    f.attrs["epoch"] = 4
np.save("after.npy", np.arange(1000, dtype=np.float32))
report(crash=os.path.abspath("crash.h5"), spin=os.path.abspath("spin.h5"),
       good=os.path.abspath("good.h5"), npy=os.path.abspath("after.npy"),
       crash_size=len(crash), spin_size=os.path.getsize("spin.h5"))
"""
    collector = Collector(work, options=["--hdf5-timeout", "2", "--sample", "1"])
    try:
        first = collector.run(python_script(work, script), work)
        second = collector.run(python_script(work, """
import numpy as np
np.save("second.npy", np.full(50, 7.0))
report(path=os.path.abspath("second.npy"))
""", "second.py"), work)
        records = collector.stop()
    finally:
        collector.kill()
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    out = first.last_json()
    first.records = records
    crash = first.only_record(out["crash"])
    check_record(crash, first, path=out["crash"], fmt="hdf5", size=out["crash_size"],
                 complete=False)
    crash_expected(crash)
    spin = first.only_record(out["spin"])
    check_record(spin, first, path=out["spin"], fmt="hdf5", size=out["spin_size"],
                 complete=False)
    assert spin["errors"] == ["hdf5: the HDF5 library took over 2 s on this file: stopped "
                              "(--hdf5-timeout)"], spin
    assert_tensors(spin["tensors"], {"ok": tensor("ok", np.arange(5.0))})
    good = first.only_record(out["good"])
    assert good["format"] == "hdf5" and good["complete"] is True, good
    values, tensors = hdf5_findings(out["good"])
    assert_values(good["values"], values)
    assert_tensors(good["tensors"], tensors)
    npy = first.only_record(out["npy"])
    assert npy["complete"] is True, npy
    assert_tensors(npy["tensors"], {"after": tensor("after", np.arange(1000, dtype=np.float32))})
    later = second.last_json()["path"]
    second.records = records
    check_record(second.only_record(later), second, path=later, fmt="npy",
                 size=os.path.getsize(later))


def test_crash_and_deadline_in_inspect(work):
    """`ckmon inspect` of the same files: the same errors, and the file after them read."""
    namespace = {}
    exec(HOSTILE, namespace)
    (work / "crash.h5").write_bytes(namespace["crash_file"](str(work / "crash.h5")))
    namespace["spin_file"](str(work / "spin.h5"))
    with h5py.File(work / "z.h5", "w") as f:
        f["z"] = np.arange(12.0)
    p = subprocess.run([str(CKMON), "inspect", "--hdf5-timeout", "1.5", str(work / "crash.h5"),
                        str(work / "spin.h5"), str(work / "z.h5")], env=clean_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    crash, spin, z = parse_records(p.stdout)
    crash_expected(crash)
    assert spin["complete"] is False and spin["errors"] == [
        "hdf5: the HDF5 library took over 1.5 s on this file: stopped (--hdf5-timeout)"], spin
    assert [t["name"] for t in spin["tensors"]] == ["ok"], spin
    assert z["complete"] is True and [t["name"] for t in z["tensors"]] == ["z"], z
    p = subprocess.run([str(CKMON), "inspect", "--hdf5-timeout", "1e300", str(work / "z.h5")],
                       env=clean_env(), capture_output=True, text=True, timeout=120)
    (z,) = parse_records(p.stdout)  # a deadline past what the clock counts: none at all
    assert z["complete"] is True and [t["name"] for t in z["tensors"]] == ["z"], z


def test_reader_dies_with_its_collector(work):
    """A collector killed while its reader is stuck in a hostile file: the reader goes too,
    instead of spinning for hours with nobody waiting for it."""
    namespace = {}
    exec(HOSTILE, namespace)
    namespace["spin_file"](str(work / "spin.h5"))
    p = subprocess.Popen([str(CKMON), "inspect", str(work / "spin.h5")], env=clean_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = Path(f"/proc/{p.pid}/task/{p.pid}/children")
    deadline = time.monotonic() + 30
    reader = ""
    while not reader and time.monotonic() < deadline and p.poll() is None:
        reader = children.read_text().strip()
        time.sleep(0.05)
    assert reader, "ckmon inspect started no reader"
    p.kill()
    p.wait()
    stat = Path(f"/proc/{reader}/stat")
    deadline = time.monotonic() + 30
    alive = lambda: stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    outlived = alive()
    if outlived:
        os.kill(int(reader), signal.SIGKILL)  # not left spinning after the test
    assert not outlived, f"the reader {reader} outlived its collector"


def test_deadline_from_the_environment_under_run(ckmon, work):
    """CKMON_HDF5_TIMEOUT reaches the private collector of `ckmon run`."""
    script = HOSTILE + """
spin_file("spin.h5")
report(path=os.path.abspath("spin.h5"))
"""
    run = ckmon.run(*python_script(work, script), env={"CKMON_HDF5_TIMEOUT": "1"})
    assert run.returncode == 0, run.stderr
    record = run.only_record(run.last_json()["path"])
    assert record["complete"] is False and record["errors"] == [
        "hdf5: the HDF5 library took over 1 s on this file: stopped (--hdf5-timeout)"], record
    assert [t["name"] for t in record["tensors"]] == ["ok"], record
