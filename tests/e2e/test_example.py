"""test_example.py — `make demo`'s script and its training example.

examples/demo.sh runs examples/train.py under `ckmon run` in a directory it is given. The
checkpoints it leaves on disk are the ground truth: each record must match what Python's own
pickle and json modules, and torch.load, read back from the file it names.
"""
import json
import os
import pickle
import subprocess

from ckmon_helpers import CKMON, REPO, Run, check_record, clean_env, now, read_log
from expected import assert_findings

DEMO = REPO / "examples" / "demo.sh"
EPOCHS = 5


def run_demo(directory, **env):
    started = now()
    p = subprocess.run([str(DEMO), str(directory)], env=clean_env(CKMON=str(CKMON), **env),
                       capture_output=True, text=True, timeout=300)
    return p, Run(p.returncode, p.stdout, p.stderr, [], started, now())


FORMATS = {".pkl": "pickle", ".json": "json", ".pt": "torch"}


def as_numpy(obj):
    """torch.load's objects with every tensor as the NumPy array of its elements."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: as_numpy(v) for k, v in obj.items()}
    return obj


def load(path):
    if path.endswith(".pkl"):
        with open(path, "rb") as f:
            return pickle.load(f)
    if path.endswith(".pt"):
        import torch

        return as_numpy(torch.load(path))
    with open(path) as f:
        return json.load(f)


def test_demo_records_every_checkpoint(work):
    demo = work / "demo"
    p, run = run_demo(demo)
    assert p.returncode == 0, p.stderr
    records = read_log(demo / "ckmon.jsonl")
    checkpoints = demo / "checkpoints"
    files = sorted(str(f) for f in checkpoints.rglob("*") if f.is_file())
    assert len(files) == len(FORMATS) * EPOCHS
    assert sorted(r["path"] for r in records) == files

    for record in records:
        path = record["path"]
        pickled = path.endswith(".pkl")
        if pickled:  # written to a temporary file beside it, then os.replace'd
            tmp = record.get("written_as", "")
            assert os.path.dirname(tmp) == str(checkpoints) and tmp.endswith(".pkl"), record
            assert tmp != path and not os.path.exists(tmp)
        check_record(record, run, path=path, fmt=FORMATS[os.path.splitext(path)[1]],
                     size=os.path.getsize(path), written_as=record.get("written_as"))
        assert record["writes"] >= 1
        assert_findings(record, load(path))
        assert os.path.relpath(path, demo) in p.stdout
    assert str(demo / "ckmon.jsonl") in p.stdout


def test_demo_fails_without_records(work):
    p, _ = run_demo(work / "demo", CKMON_PATHS="*.nothing-matches-this")
    assert p.returncode != 0
    assert "no records" in p.stderr
