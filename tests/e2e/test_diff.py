"""test_diff.py — `ckmon diff A B` against ground truth computed by torch and numpy.

Pairs of real files: two epochs of a training loop (torch.save of model and optimizer), a
file and its copy, the same tensors written by torch.save, np.savez, np.savez_compressed and
as safetensors (built by tensor_files.py from the published layout), dtype and shape changes,
NaN, sampling, and files ckmon cannot read. Ground truth per common tensor, in float64:
max |a-b| over the pairs without NaN, ‖a−b‖/‖a‖ over finite pairs, the count of elements
that are neither equal nor both NaN.
"""
import json
import shutil
import subprocess

import numpy as np
import pytest

from ckmon_helpers import ckmon_args, clean_env
from tensor_files import numpy_entry, safetensors_bytes

TRAIN = r"""
import sys, torch
torch.manual_seed(3)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x, y = torch.randn(256, 32), torch.randn(256, 1)
for epoch in (1, 2):
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    torch.save({"epoch": epoch, "loss": loss.item(), "model": model.state_dict(),
                "optimizer": opt.state_dict()}, f"epoch_{epoch}.pt")
"""


def diff(work, *args):
    p = subprocess.run(ckmon_args("diff", *args), cwd=work, env=clean_env(),
                       capture_output=True, text=True, timeout=120)
    return p


def diff_json(work, a, b, *options, status=None):
    p = diff(work, "--json", *options, a, b)
    if status is not None:
        assert p.returncode == status, p.stdout + p.stderr
    return p.returncode, json.loads(p.stdout)


def truth(a, b):
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    no_nan = ~np.isnan(a) & ~np.isnan(b)
    finite = np.isfinite(a) & np.isfinite(b)
    d = a[finite] - b[finite]
    norm_a = np.sqrt(np.sum(a[np.isfinite(a)] ** 2))
    d2 = np.sqrt(np.sum(d ** 2))
    return {"differ": int((~same).sum()),
            "max_abs_diff": float(np.abs(a[no_nan] - b[no_nan]).max()) if no_nan.any() else 0.0,
            "rel_l2": 0.0 if d2 == 0 else float(d2 / norm_a)}


def check_tensor(entry, a, b):
    expected = truth(a, b)
    assert entry["compared_by"] == "elements"
    assert entry["elements"] == entry["compared"] == np.asarray(a).size
    assert entry["differ"] == expected["differ"], entry["name"]
    assert float(entry["max_abs_diff"]) == pytest.approx(expected["max_abs_diff"], rel=1e-12, abs=0)
    assert float(entry["rel_l2"]) == pytest.approx(expected["rel_l2"], rel=1e-9, abs=0)
    assert entry["status"] == ("same" if expected["differ"] == 0 else "different")


def flat(state, prefix=""):
    """A torch.save'd object's tensors by the record's names."""
    import torch

    out = {}
    if isinstance(state, torch.Tensor):
        out[prefix] = state.detach().double().numpy()
    elif isinstance(state, dict):
        for k, v in state.items():
            out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            out.update(flat(v, f"{prefix}.{i}" if prefix else str(i)))
    return out


def test_two_epochs_of_a_training_loop(work):
    import torch

    (work / "train.py").write_text(TRAIN)
    subprocess.run(["/usr/bin/python3", "train.py"], cwd=work, check=True, timeout=120)
    a, b = torch.load(work / "epoch_1.pt"), torch.load(work / "epoch_2.pt")
    ta, tb = flat(a), flat(b)
    status, r = diff_json(work, "epoch_1.pt", "epoch_2.pt", status=1)
    assert r["identical"] is False and r["a"]["format"] == r["b"]["format"] == "torch"
    by_name = {t["name"]: t for t in r["tensors"]}
    # every tensor with more than one element is in both files (0-d ones are values too)
    assert set(by_name) == {n for n, v in ta.items()}
    for name in ta:
        check_tensor(by_name[name], ta[name], tb[name])
    assert any(t["differ"] > 0 for t in r["tensors"])
    assert r["values"]["changed"]["epoch"] == [1, 2]
    assert r["values"]["changed"]["loss"] == [a["loss"], b["loss"]]
    # the table says the same on stdout
    p = diff(work, "epoch_1.pt", "epoch_2.pt")
    assert p.returncode == 1
    assert "~ epoch: 1 -> 2" in p.stdout
    [line] = [l for l in p.stdout.splitlines() if l.startswith("~ model.0.weight ")]
    assert line.split()[-3:] == [str(by_name["model.0.weight"]["differ"]), "of",
                                 str(ta["model.0.weight"].size)]


def test_a_file_and_its_copy_are_identical(work):
    import torch

    torch.save({"w": torch.randn(100, 100), "step": 5}, work / "a.pt")
    shutil.copy(work / "a.pt", work / "b.pt")
    status, r = diff_json(work, "a.pt", "b.pt", status=0)
    assert r["identical"] is True
    assert [(t["name"], t["status"], t["differ"], t["compared"]) for t in r["tensors"]] == \
        [("w", "same", 0, 10000)]
    assert r["values"] == {"changed": {}, "added": {}, "removed": {}}
    p = diff(work, "a.pt", "b.pt")
    assert p.returncode == 0 and "identical" in p.stdout


def same_tensors_in_four_formats(work, tensors):
    import torch

    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, work / "t.pt")
    np.savez(work / "t.npz", **tensors)
    np.savez_compressed(work / "tc.npz", **tensors)  # members not in place: A's spool
    (work / "t.safetensors").write_bytes(
        safetensors_bytes([numpy_entry(k, {"float32": "F32", "float64": "F64", "int64": "I64"}
                                       [str(v.dtype)], v) for k, v in tensors.items()],
                          metadata=None))
    return ["t.pt", "t.npz", "tc.npz", "t.safetensors"]


def test_different_formats_holding_the_same_tensors(work):
    rng = np.random.default_rng(5)
    tensors = {"layer.weight": rng.normal(size=(64, 300)).astype(np.float32),
               "layer.bias": rng.normal(size=300),
               "ids": np.arange(50, dtype=np.int64)}
    files = same_tensors_in_four_formats(work, tensors)
    for a in files:
        for b in files:
            status, r = diff_json(work, a, b, status=0)
            assert sorted((t["name"], t["status"], t["compared_by"]) for t in r["tensors"]) == \
                sorted((n, "same", "elements") for n in tensors), (a, b)


def test_changed_tensors_across_formats(work):
    import torch

    rng = np.random.default_rng(6)
    w = rng.normal(size=(40, 50)).astype(np.float32)
    w2 = w.copy()
    w2[3, :7] += 0.25
    w2[5, 5] = np.nan
    w2[6, 6] = np.inf
    np.savez_compressed(work / "a.npz", w=w, gone=np.ones(20), shaped=np.ones((4, 5)),
                        wide=w.astype(np.float64))
    torch.save({"w": torch.from_numpy(w2), "new": torch.zeros(12), "shaped": torch.ones(20),
                "wide": torch.from_numpy(w.astype(np.float16))}, work / "b.pt")
    status, r = diff_json(work, "a.npz", "b.pt", status=1)
    t = {e["name"]: e for e in r["tensors"]}
    check_tensor(t["w"], w, w2)
    assert t["w"]["differ"] == 9
    assert t["gone"]["status"] == "removed" and t["new"]["status"] == "added"
    assert t["shaped"]["status"] == "changed" and t["shaped"]["shape"] == [[4, 5], [20]]
    assert t["shaped"]["differ"] == 0  # same 20 elements, another shape
    # float64 against float16: compared by value
    assert t["wide"]["status"] == "changed" and t["wide"]["dtype"] == ["float64", "float16"]
    expected = truth(w.astype(np.float64), w.astype(np.float16))
    assert t["wide"]["differ"] == expected["differ"] > 0
    assert t["wide"]["max_abs_diff"] == pytest.approx(expected["max_abs_diff"], rel=1e-12)


def test_sample_compares_what_the_statistics_read(work):
    """--sample s compares the elements the statistics read with --sample s: as many as the
    record's `sampled` fraction says (every element differs here, so all compared differ)."""
    import torch

    n = 1 << 20
    torch.save({"x": torch.zeros(n)}, work / "a.pt")
    torch.save({"x": torch.ones(n)}, work / "b.pt")
    s = "0.25"
    p = subprocess.run(ckmon_args("inspect", "--sample", s, "b.pt"), cwd=work, env=clean_env(),
                       capture_output=True, text=True, check=True)
    [record] = [json.loads(l) for l in p.stdout.splitlines()
                if json.loads(l).get("event") == "checkpoint"]
    sampled = record["tensors"][0]["sampled"]
    assert 0.25 <= sampled < 0.3
    status, r = diff_json(work, "a.pt", "b.pt", "--sample", s, status=1)
    [x] = r["tensors"]
    assert x["elements"] == n and x["compared"] == round(sampled * n)
    assert x["differ"] == x["compared"] and r["sample"] == 0.25
    status, r = diff_json(work, "a.pt", "b.pt", status=1)
    assert r["tensors"][0]["compared"] == r["tensors"][0]["differ"] == n


def test_keys_limit_what_is_compared(work):
    import torch

    torch.save({"model": {"w": torch.ones(10)}, "opt": {"m": torch.ones(10)}, "epoch": 1},
               work / "a.pt")
    torch.save({"model": {"w": torch.ones(10)}, "opt": {"m": torch.zeros(10)}, "epoch": 2},
               work / "b.pt")
    status, r = diff_json(work, "a.pt", "b.pt", "--keys", "model.*", status=0)
    assert [t["name"] for t in r["tensors"]] == ["model.w"]


def test_trouble_exits_2(work):
    import torch

    torch.save({"w": torch.randn(1000)}, work / "a.pt")
    data = (work / "a.pt").read_bytes()
    (work / "cut.pt").write_bytes(data[: len(data) // 2])
    p = diff(work, "a.pt", "missing.pt")
    assert p.returncode == 2 and "missing.pt" in p.stderr
    p = diff(work, "a.pt", "cut.pt")
    assert p.returncode == 2 and "cut.pt" in p.stderr
    (work / "tiny.pt").write_bytes(data[:100])  # A with no tensor at all
    p = diff(work, "tiny.pt", "a.pt")
    assert p.returncode == 2 and "tiny.pt" in p.stderr
    p = diff(work, "a.pt")
    assert p.returncode == 2 and "two files" in p.stderr


def test_memory_stays_bounded(work):
    """Two 64 MiB files, one compressed (its tensors spooled to a file), one not: the peak
    resident size (GNU time's %M) stays far below either."""
    rng = np.random.default_rng(7)
    big = {f"t{i}": rng.normal(size=2 * 1024 * 1024).astype(np.float32) for i in range(8)}
    np.savez_compressed(work / "a.npz", **big)
    np.savez(work / "b.npz", **{k: v + 1 for k, v in big.items()})
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + ckmon_args("diff", "--json", "a.npz", "b.npz"),
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    r = json.loads(p.stdout)
    assert all(t["differ"] == t["elements"] == 2 * 1024 * 1024 for t in r["tensors"])
    peak_kib = int(p.stderr.split()[-1])
    assert peak_kib < 32 * 1024


JOBLIB_COMPRESSIONS = {"xz": ("xz", 3), "lzma": ("lzma", 3), "lz4": ("lz4", 3), "zlib": 3,
                       "raw": 0}


def test_compressed_joblib(work):
    """joblib.dump with xz, lzma and lz4 (decompressed as the collector does) against numpy's
    verdict on what joblib.load gives back: the arrays a change touched differ (by their
    statistics: joblib arrays are compared by the record's entries), the others are the same,
    the changed values are named; the same object in any two compressions is identical."""
    import joblib

    rng = np.random.default_rng(5)
    a = {"epoch": 3, "lr": 0.01, "w": rng.standard_normal((40, 30)).astype(np.float32),
         "b": np.arange(30.0), "steps": np.arange(500, dtype=np.int64),
         "mask": rng.random(64) > 0.5}
    b = dict(a, epoch=4, w=a["w"] + (rng.random((40, 30)) > 0.9).astype(np.float32) * 0.5,
             steps=np.arange(1, 501, dtype=np.int64))
    for kind, compress in JOBLIB_COMPRESSIONS.items():
        joblib.dump(a, work / f"a_{kind}.joblib", compress=compress)
        joblib.dump(b, work / f"b_{kind}.joblib", compress=compress)
    assert (work / "a_lz4.joblib").read_bytes()[:4] == b"\x04\x22\x4d\x18"
    loaded_a, loaded_b = joblib.load(work / "a_xz.joblib"), joblib.load(work / "b_xz.joblib")
    arrays = [k for k, v in loaded_a.items() if isinstance(v, np.ndarray)]
    expected = {k: {"name": k, "dtype": str(loaded_a[k].dtype), "shape": list(loaded_a[k].shape),
                    "compared_by": "statistics",
                    "status": "same" if np.array_equal(loaded_a[k], loaded_b[k]) else "different"}
                for k in arrays}
    assert {k for k, e in expected.items() if e["status"] == "different"} == {"w", "steps"}
    for kind in ("xz", "lzma", "lz4"):
        status, r = diff_json(work, f"a_{kind}.joblib", f"b_{kind}.joblib", status=1)
        for side in "ab":
            assert r[side]["format"] == "joblib" and r[side]["complete"] is True, r[side]
            assert "errors" not in r[side], r[side]
        assert {t["name"]: t for t in r["tensors"]} == expected, kind
        assert r["values"] == {"changed": {"epoch": [3, 4]}, "added": {}, "removed": {}}
        for other in JOBLIB_COMPRESSIONS:  # the same object, however it was compressed
            status, same = diff_json(work, f"a_{kind}.joblib", f"a_{other}.joblib", status=0)
            assert same["identical"] is True and len(same["tensors"]) == len(arrays)
            assert all(t["status"] == "same" for t in same["tensors"])


def test_compressed_joblib_cut_short(work):
    import joblib

    joblib.dump({"w": np.arange(20000.0)}, work / "a.joblib", compress=("xz", 3))
    data = (work / "a.joblib").read_bytes()
    (work / "cut.joblib").write_bytes(data[: len(data) // 2])
    p = diff(work, "--json", "a.joblib", "cut.joblib")
    assert p.returncode == 2 and "cut.joblib is incomplete" in p.stderr, p.stderr
    r = json.loads(p.stdout)
    assert r["b"]["format"] == "joblib" and r["b"]["complete"] is False
    assert r["b"]["errors"][0] == f"joblib: compressed data ended at byte {len(data) // 2}", r
    inspected = subprocess.run(ckmon_args("inspect", "cut.joblib"), cwd=work, env=clean_env(),
                               capture_output=True, text=True, timeout=120)
    record = json.loads(inspected.stdout.splitlines()[0])
    assert r["b"]["errors"] == record["errors"]  # what the collector says of the file
