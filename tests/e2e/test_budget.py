"""test_budget.py — the overhead budget (--budget, CKMON_BUDGET) under real writes.

A Python program writes one large float32 tensor as a safetensors file in one write. The
tensor is made of copies, each shuffled, of one 64 KiB block of values (the sampling
block), with NaN and ±Inf in it. Whichever blocks a budget lets the statistics read,
min/max/mean/std over the read part must equal the one block's (numpy's), nan/inf must
be the block's counts times the blocks read, and `sampled` must be a whole number of
blocks. No timing is asserted: a tight budget must sample, an explicit --sample must win.
"""
import math

import numpy as np

from ckmon_helpers import Collector, check_record, python_script

BLOCK_FLOATS = 64 * 1024 // 4
BLOCKS = 512  # 32 MiB: far more than the 4 MiB floor and a 0.1% budget let through

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
    b = base.astype(np.float64)
    finite = b[np.isfinite(b)]
    return base, data, finite


def check_sampled_tensor(record):
    base, data, finite = expected()
    (t,) = record["tensors"]
    assert t["name"] == "w" and t["dtype"] == "float32" and t["shape"] == [data.size]
    blocks = t["sampled"] * BLOCKS
    assert math.isclose(blocks, round(blocks), abs_tol=1e-6), t["sampled"]
    blocks = round(blocks)
    assert 1 <= blocks <= BLOCKS
    assert t["nan"] == blocks * int(np.isnan(base).sum())
    assert t["inf"] == blocks * int(np.isinf(base).sum())
    assert t["min"] == float(finite.min()) and t["max"] == float(finite.max())
    assert math.isclose(t["mean"], float(finite.mean()), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(t["std"], float(finite.std()), rel_tol=1e-9)
    head = [None if math.isnan(x) else x for x in data[:8].astype(np.float64).tolist()]
    got = [None if x == "nan" else x for x in t["head"]]
    assert got == head, (t["head"], head)
    return blocks


def test_tight_budget_samples_and_stays_true(ckmon, work):
    path = work / "big.safetensors"
    run = ckmon.run(*python_script(work, WRITER), path, options=["--budget", "0.1"])
    assert run.returncode == 0, run.stderr
    record = run.only_record(path)
    check_record(record, run, path=path, fmt="safetensors", size=run.last_json()["size"])
    assert check_sampled_tensor(record) < BLOCKS // 2


def test_explicit_sample_wins_over_budget(ckmon, work):
    path = work / "big.safetensors"
    run = ckmon.run(*python_script(work, WRITER), path,
                    options=["--budget", "0.1", "--sample", "1"])
    assert run.returncode == 0, run.stderr
    assert check_sampled_tensor(run.only_record(path)) == BLOCKS


def test_budget_from_the_environment(work):
    collector = Collector(work)
    try:
        path = work / "big.safetensors"
        run = collector.run(python_script(work, WRITER) + [path], work, CKMON_BUDGET="0.1")
        assert run.returncode == 0, run.stderr
        (record,) = [r for r in collector.stop() if r["path"] == str(path)]
        assert check_sampled_tensor(record) < BLOCKS // 2
    finally:
        collector.kill()
