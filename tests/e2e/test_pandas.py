"""test_pandas.py — pandas DataFrames and Series in pickles (Debian's python3-pandas).

DataFrame.to_pickle, and a training history DataFrame inside a torch.save checkpoint:
each numeric column is a 1-D tensor named <frame>.<column>, whatever block pandas keeps
it in; a numeric index is <frame>.index; the shape is <frame>.shape.0/.1. Ground truth is
the frame pandas reads back, its columns' statistics computed by expected.py (NumPy).
"""
import numpy as np
import pandas as pd
import pytest

from ckmon_helpers import check_record, python_script
from expected import assert_tensors, tensor
from test_torch import assert_parity, inspect

FRAME = """
import numpy as np, pandas as pd
rng = np.random.default_rng(3)
history = pd.DataFrame({
    "loss": rng.random(500), "step": np.arange(500, dtype=np.int64) * 10,
    "name": ["run"] * 500, "acc": rng.random(500).astype(np.float32),
    "lr": np.full(500, 1e-3), 7: rng.integers(0, 9, 500).astype(np.int32),
})
history["late"] = history["loss"] * 2          # a column added later: a block of its own
series = pd.Series(rng.standard_normal(40), name="grad_norm", index=np.arange(40) * 3)
"""


def expected_frame(frame, prefix):
    """The values and tensors a record must hold for a DataFrame or Series at prefix."""
    join = (lambda s: f"{prefix}.{s}") if prefix else str
    tensors, values = {}, {}
    columns = {frame.name if frame.name is not None else "values": frame} \
        if isinstance(frame, pd.Series) else {label: frame[label] for label in frame.columns}
    for label, column in columns.items():
        if column.dtype.kind in "biuf":
            tensors[join(label)] = tensor(join(label), column.to_numpy())
    if frame.index.dtype.kind in "iu":
        tensors[join("index")] = tensor(join("index"), frame.index.to_numpy().astype(np.int64))
    values[join("shape.0")] = frame.shape[0]
    if isinstance(frame, pd.DataFrame):
        values[join("shape.1")] = frame.shape[1]
    return values, tensors


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_to_pickle(ckmon, work, protocol):
    script = FRAME + f"""
path = os.path.abspath("history.pkl")
history.to_pickle(path, protocol={protocol})
spath = os.path.abspath("series.pkl")
series.to_pickle(spath, protocol={protocol})
report(path=path, size=os.path.getsize(path), spath=spath, ssize=os.path.getsize(spath))
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    for path, size in ((out["path"], out["size"]), (out["spath"], out["ssize"])):
        record = run.only_record(path)
        check_record(record, run, path=path, fmt="pickle", size=size, pid=out["pid"])
        values, tensors = expected_frame(pd.read_pickle(path), "")
        assert_tensors(record["tensors"], tensors)
        for key, value in values.items():
            assert record["values"][key] == value, (key, record["values"])
        inspected = inspect(path, "--sample", "1")
        assert inspected["tensors"] == record["tensors"] and inspected["values"] == record["values"]


def test_history_inside_torch_save(ckmon, work):
    script = FRAME + """
import torch
path = os.path.abspath("train.pt")
torch.save({"epoch": 3, "history": history, "weights": torch.ones(4)}, path)
report(path=path, size=os.path.getsize(path))
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="torch", size=out["size"], pid=out["pid"])
    import torch
    loaded = torch.load(out["path"])
    values, tensors = expected_frame(loaded["history"], "history")
    tensors["weights"] = tensor("weights", np.ones(4, dtype=np.float32))
    assert_tensors(record["tensors"], tensors)
    for key, value in values.items():
        assert record["values"][key] == value, (key, record["values"])
    assert record["values"]["epoch"] == 3


@pytest.mark.parametrize("compress", [0, 3])
def test_frame_in_joblib_equals_to_pickle(ckmon, work, compress):
    """joblib streams the blocks' data: a C-order block's rows are its columns."""
    script = FRAME + f"""
import joblib
path = os.path.abspath("history.joblib")
joblib.dump({{"history": history, "series": series}}, path, compress={compress})
plain = os.path.abspath("history.pkl")
pd.to_pickle({{"history": history, "series": series}}, plain)
report(path=path, plain=plain)
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    assert record["format"] == "joblib" and record["complete"] is True, record
    import joblib
    loaded = joblib.load(out["path"])
    values, tensors = expected_frame(loaded["history"], "history")
    more_values, more_tensors = expected_frame(loaded["series"], "series")
    assert_tensors(record["tensors"], {**tensors, **more_tensors})
    assert {k: record["values"][k] for k in {**values, **more_values}} == {**values, **more_values}
    plain = run.only_record(out["plain"])
    assert plain["tensors"] == record["tensors"] and plain["values"] == record["values"]
