"""test_budget.py — the safety net (--budget, CKMON_BUDGET) and the sampling plan under real writes.

A Python program writes one large float32 tensor as a safetensors file in one write. The
tensor is made of copies, each shuffled, of one 64 KiB block of values, with NaN and ±Inf
in it. Under normal load the default budget never decides: the record holds exactly the
plan's share of lines (docs/formats.md) and no error. A budget so tight that no machine
meets it (0.1% of the time since the open, beyond the 4 MiB read for free) cuts the
reading short, and the record says so; an explicit --sample turns the budget off. No
timing is asserted.
"""
import math

import numpy as np

from ckmon_helpers import Collector, check_record, python_script

BLOCK_FLOATS = 64 * 1024 // 4
BLOCKS = 2048  # 128 MiB: the plan reads 8 MiB of it, twice the budget's free 4 MiB
LINE_FLOATS = 64 // 4
PLAN_LINES = BLOCKS * BLOCK_FLOATS // LINE_FLOATS // 16  # the default plan, 1/16

DATA = f"""
import numpy as np
def tensor_data():
    rng = np.random.default_rng(11)
    base = rng.standard_normal({BLOCK_FLOATS}).astype(np.float32)
    base[3::1000] = np.nan
    base[5::1500] = np.inf
    base[6::1500] = -np.inf
    base[9::700] = np.float32(1e-40)
    return base, np.concatenate([rng.permutation(base) for _ in range({BLOCKS})])
"""

WRITER = DATA + """
import json, struct
base, data = tensor_data()
raw = data.tobytes()
header = json.dumps({"w": {"dtype": "F32", "shape": [data.size], "data_offsets": [0, len(raw)]}})
header += " " * (-len(header) % 8)
blob = struct.pack("<Q", len(header)) + header.encode() + raw
with open(sys.argv[1], "wb") as f:
    f.write(blob)
report(size=len(blob))
"""


def expected():
    ns = {}
    exec(DATA, ns)
    base, data = ns["tensor_data"]()
    finite = base[np.isfinite(base)].astype(np.float64)
    return base, data, finite


def check_tensor(record):
    """What holds whichever lines were read; returns how many lines that was."""
    base, data, finite = expected()
    (t,) = record["tensors"]
    assert t["name"] == "w" and t["dtype"] == "float32" and t["shape"] == [data.size]
    lines = t["sampled"] * data.size / LINE_FLOATS
    assert math.isclose(lines, round(lines), abs_tol=1e-6), t["sampled"]
    assert finite.min() <= t["min"] <= t["max"] <= finite.max()
    assert abs(t["mean"] - finite.mean()) < 0.1 and abs(t["std"] - finite.std()) < 0.1
    head = [None if math.isnan(x) else x for x in data[:8].astype(np.float64).tolist()]
    got = [None if x == "nan" else x for x in t["head"]]
    assert got == head, (t["head"], head)
    return round(lines)


def cut_errors(record):
    return [e for e in record.get("errors", []) if "cut short by the overhead budget" in e]


def test_default_budget_does_not_decide(ckmon, work):
    path = work / "big.safetensors"
    run = ckmon.run(*python_script(work, WRITER), path)
    assert run.returncode == 0, run.stderr
    record = run.only_record(path)
    check_record(record, run, path=path, fmt="safetensors", size=run.last_json()["size"])
    assert check_tensor(record) == PLAN_LINES
    assert "ci95" in record["tensors"][0]


def test_tight_budget_cuts_and_says_so(ckmon, work):
    path = work / "big.safetensors"
    run = ckmon.run(*python_script(work, WRITER), path, options=["--budget", "0.1"])
    assert run.returncode == 0, run.stderr
    record = run.only_record(path)
    check_record({k: v for k, v in record.items() if k != "errors"}, run, path=path,
                 fmt="safetensors", size=run.last_json()["size"])
    assert check_tensor(record) < PLAN_LINES
    assert len(cut_errors(record)) == 1, record.get("errors")


def test_explicit_sample_wins_over_budget(ckmon, work):
    path = work / "big.safetensors"
    run = ckmon.run(*python_script(work, WRITER), path,
                    options=["--budget", "0.1", "--sample", "1"])
    assert run.returncode == 0, run.stderr
    record = run.only_record(path)
    (t,) = record["tensors"]
    base, data, finite = expected()
    assert t["sampled"] == 1 and "ci95" not in t and not cut_errors(record)
    assert t["nan"] == BLOCKS * int(np.isnan(base).sum())
    assert t["inf"] == BLOCKS * int(np.isinf(base).sum())
    assert t["min"] == float(finite.min()) and t["max"] == float(finite.max())
    assert math.isclose(t["mean"], float(finite.mean()), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(t["std"], float(finite.std()), rel_tol=1e-9)


def test_budget_from_the_environment(work):
    collector = Collector(work)
    try:
        path = work / "big.safetensors"
        run = collector.run(python_script(work, WRITER) + [path], work, CKMON_BUDGET="0.1")
        assert run.returncode == 0, run.stderr
        (record,) = [r for r in collector.stop() if r["path"] == str(path)]
        assert check_tensor(record) < PLAN_LINES and cut_errors(record)
    finally:
        collector.kill()
