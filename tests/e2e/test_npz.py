"""test_npz.py — archives written by np.savez and np.savez_compressed under `ckmon run`.

zipfile writes each member's local header with zero sizes, the .npy data (deflated for
savez_compressed), then seeks back to fill the sizes in: the record must still be streamed
and complete. Ground truth is np.load of the finished file; `ckmon inspect` of the same
file must give the same findings.
"""
import numpy as np
import pytest

from ckmon_helpers import check_record, python_script
from test_torch import assert_parity, inspect

ARRAYS = """
import numpy as np
rng = np.random.default_rng(11)
arrays = {
    "weights": rng.standard_normal((64, 33)).astype(np.float32),
    "big": rng.standard_normal(150_000),  # over a megabyte: many writes, many inflate rounds
    "half": (rng.standard_normal(40) * 10).astype(np.float16),
    "ids": rng.integers(-10**15, 10**15, size=25, dtype=np.int64),
    "mask": rng.random(17) > 0.3,
    "bad": np.array([1.0, np.nan, np.inf, -7.5, -np.inf]),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "step": np.array(12.5),
    "nothing": np.zeros((0, 4)),
}
"""


def as_tensor(x):
    """expected.flatten's hook: bool arrays are reported as 0/1 numbers."""
    if not isinstance(x, np.ndarray):
        return None
    return (x.astype(np.uint8) if x.dtype == np.bool_ else x), str(x.dtype), list(x.shape)


@pytest.mark.parametrize("writer", ["savez", "savez_compressed"])
def test_savez(ckmon, work, writer):
    script = ARRAYS + f"""
path = os.path.abspath("arrays.npz")
np.{writer}(path, *[np.arange(9.0)], **arrays)
report(path=path, size=os.path.getsize(path))
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="npz", size=out["size"], pid=out["pid"])
    with np.load(out["path"]) as archive:
        loaded = {key: archive[key] for key in archive.files}
    assert "arr_0" in loaded  # the positional array's name
    assert_parity(record, out["path"], loaded, as_tensor)


def test_truncated_npz_is_incomplete(work):
    path = work / "whole.npz"
    np.savez_compressed(path, a=np.arange(5000.0), b=np.ones(3))
    cut = work / "cut.npz"
    cut.write_bytes(path.read_bytes()[:3000])
    record = inspect(cut)
    assert record["format"] == "npz" and record["complete"] is False and record["errors"]
