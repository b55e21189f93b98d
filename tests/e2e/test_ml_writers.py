"""test_ml_writers.py — the files people save with scikit-learn/joblib and legacy torch.

Every file is written by the real library (Debian's python3-sklearn, python3-joblib,
python3-torch) under `ckmon run`; ground truth is what that library loads back, flattened by
expected.py, and the same object written by pickle.dump must give the same findings.
`ckmon inspect` of each finished file must agree with the streamed record.
"""
import hashlib
import pickle

import joblib
import numpy as np
import pytest

from ckmon_helpers import check_record, namespace, python_script, run_plain
from expected import assert_findings
from test_npz import as_tensor as numpy_tensor
from test_tensor_formats import CIRCUMSTANCE
from test_torch import TRAINING, assert_parity, inspect, save_and_check

ARRAYS = """
import numpy as np, joblib
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(5)
X = rng.standard_normal((60, 4))
model = LogisticRegression(C=0.25, max_iter=91).fit(X, (X[:, 0] > 0).astype(int))
state = {
    "model": model,
    "big": rng.standard_normal(300_000),          # 2.4 MB: many writes, many inflate rounds
    "f32": rng.standard_normal((33, 7)).astype(np.float32),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "mask": rng.random(11) > 0.5,
    "bad": np.array([1.0, np.nan, np.inf, -7.5, -np.inf]),
    "step": np.array(12.5),
    "nothing": np.zeros((0, 4)),
    "u16": np.arange(70, dtype=np.uint16),
    "epoch": 3, "name": "run-a",
}
"""

COMPRESSIONS = {"plain": "0", "zlib": "3", "gzip": "('gzip', 3)"}


def estimator_state(x):
    """What pickle records of a fitted estimator: its __getstate__ (with _sklearn_version)."""
    return x.__getstate__() if hasattr(x, "_get_param_names") else x


def loaded_state(obj):
    return {k: estimator_state(v) for k, v in obj.items()}


def findings(record):
    return {k: record[k] for k in ("values", "tensors")}


@pytest.mark.parametrize("compress", list(COMPRESSIONS))
def test_joblib_dump_equals_pickle(ckmon, work, compress):
    script = ARRAYS + f"""
import pickle
sizes, digests = {{}}, {{}}
for name in ("state.joblib", "state.pkl"):
    path = os.path.abspath(name)
    joblib.dump(state, path, compress={COMPRESSIONS[compress]})
    sizes[path] = os.path.getsize(path)
plain = os.path.abspath("plain.pickle")
with open(plain, "wb") as f:
    pickle.dump(state, f)
report(sizes=sizes, plain=plain, plain_size=os.path.getsize(plain))
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    plain = run.only_record(out["plain"])
    check_record(plain, run, path=out["plain"], fmt="pickle", size=out["plain_size"],
                 pid=out["pid"])
    for path, size in out["sizes"].items():
        record = run.only_record(path)
        check_record(record, run, path=path, fmt="joblib", size=size, pid=out["pid"])
        loaded = loaded_state(joblib.load(path))
        assert_parity(record, path, loaded, numpy_tensor)
        assert findings(record) == findings(plain)
    values = plain["values"]
    assert values["model.C"] == 0.25 and values["model.max_iter"] == 91
    assert values["epoch"] == 3 and values["step"] == 12.5


@pytest.mark.parametrize("compress", ["xz", "lzma", "lz4"])
def test_joblib_xz_lzma_lz4_read_after_close(ckmon, work, compress):
    """Compressed with liblzma or liblz4: the collector decompresses the finished file
    (parsed "file", docs/formats.md), and the findings are pickle.dump's of the object."""
    script = ARRAYS + f"""
path = os.path.abspath("state.joblib")
joblib.dump(state, path, compress=({compress!r}, 3))
plain = os.path.abspath("plain.pickle")
with open(plain, "wb") as f:
    pickle.dump(state, f)
report(path=path, size=os.path.getsize(path), plain=plain)
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="joblib", size=out["size"], pid=out["pid"])
    assert record["parsed"] == "file" and record["writes"] > 0
    assert findings(record) == findings(run.only_record(out["plain"]))
    assert_findings(record, loaded_state(joblib.load(out["path"])), numpy_tensor)
    inspected = inspect(out["path"], "--sample", "1")
    strip = lambda r: {k: v for k, v in r.items() if k not in CIRCUMSTANCE}
    assert strip(inspected) == strip(record)
    cut = work / "cut.joblib"  # cut short: joblib, incomplete, the values before the cut
    cut.write_bytes(open(out["path"], "rb").read()[: out["size"] * 2 // 3])
    torn = inspect(cut)
    assert torn["format"] == "joblib" and torn["complete"] is False and torn["errors"], torn
    assert torn["values"]["model.C"] == 0.25


def test_other_xz_and_lz4_files_are_unknown(work):
    import lz4.frame
    import lzma
    for name, data in {"notes.joblib": lzma.compress(b"text, not a pickle" * 50),
                       "other.pkl": lz4.frame.compress(b"\x00" * 1000)}.items():
        (work / name).write_bytes(data)
        record = inspect(work / name)
        assert record["format"] == "unknown" and record["complete"] is True, record
        assert "errors" not in record


def write_model(path, **dump):
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(9)
    X = rng.standard_normal((40, 3))
    model = LogisticRegression(C=0.5, max_iter=77).fit(X, (X[:, 1] > 0).astype(int))
    joblib.dump(model, path, **dump)
    return model


@pytest.mark.parametrize("compress", [0, 3])
def test_values_before_a_break_are_kept(work, compress):
    """A model cut inside its first array: the hyperparameters pickled before it stay."""
    whole = work / "whole.joblib"
    write_model(whole, compress=compress)
    data = whole.read_bytes()
    at = data.index(b"NumpyArrayWrapper") + 200 if compress == 0 else len(data) * 2 // 3
    cut = work / "cut.joblib"
    cut.write_bytes(data[:at])
    record = inspect(cut)
    assert record["format"] == "joblib" and record["complete"] is False, record
    assert record["errors"], record
    assert record["values"]["C"] == 0.5 and record["values"]["max_iter"] == 77, record


def test_object_array_in_joblib(work):
    """joblib pickles an object array's data as a pickle of its own; what follows it is read."""
    path = work / "mixed.joblib"
    obj = {"labels": np.array(["a", None, 3], dtype=object), "after": np.arange(10.0)}
    joblib.dump(obj, path)
    record = inspect(path)
    assert record["format"] == "joblib", record
    names = {t["name"]: t for t in record["tensors"]}
    assert names["labels"]["dtype"] == "O8" and names["labels"]["shape"] == [3]
    assert names["after"]["mean"] == 4.5 and names["after"]["head"] == list(range(8))
    # the same as pickle.dump of the same object says
    other = work / "mixed.pkl"
    other.write_bytes(pickle.dumps(obj))
    assert findings(inspect(other)) == findings(record)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_legacy_torch_every_protocol(ckmon, work, protocol):
    save_and_check(ckmon, work, TRAINING, {
        f"legacy{protocol}.pt": "torch.save(state, path, _use_new_zipfile_serialization=False, "
                                f"pickle_protocol={protocol})",
    })


def test_program_sees_nothing(ckmon, work):
    """The bytes joblib writes and what the program prints are the same with the agent."""
    script = ARRAYS + """
import hashlib
path = os.path.abspath("m.joblib")
joblib.dump(state, path, compress=3)
report(digest=hashlib.sha256(open(path, "rb").read()).hexdigest())
"""
    plain_dir = work / "plain"
    plain_dir.mkdir()
    plain = run_plain(python_script(plain_dir, script), plain_dir)
    monitored = ckmon.run(*python_script(work, script))
    assert plain.returncode == monitored.returncode == 0, monitored.stderr
    strip = lambda run: {k: v for k, v in run.last_json().items() if k != "pid"}
    assert strip(monitored) == strip(plain)
    assert (work / "m.joblib").read_bytes() == (plain_dir / "m.joblib").read_bytes()
    assert monitored.only_record(str(work / "m.joblib"))["format"] == "joblib"


def test_dill_arrays_are_tensors(work):
    """dill pickles an array as dill._dill._create_array(_reconstruct, args, state, dict)."""
    import dill
    obj = {"weights": np.arange(12.0).reshape(3, 4) - 5,
           "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
           "scalar": np.array(7), "mask": np.array([True, False, True]), "lr": 0.1}
    path = work / "state.pkl"
    path.write_bytes(dill.dumps(obj))
    record = inspect(path)
    assert record["format"] == "pickle" and record["complete"] is True, record
    assert_findings(record, dill.loads(path.read_bytes()), numpy_tensor)
    plain = work / "plain.pkl"
    plain.write_bytes(pickle.dumps(obj))
    assert findings(inspect(plain)) == findings(record)


def test_torchscript(ckmon, work):
    """torch.jit.save writes the storages first, then data.pkl, constants.pkl and code/."""
    script = """
import torch
torch.manual_seed(2)
model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(12, 5), torch.nn.BatchNorm1d(5))
path = os.path.abspath("model.pt")
torch.jit.save(torch.jit.script(model), path)
report(path=path, size=os.path.getsize(path))
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="torchscript", size=out["size"],
                 pid=out["pid"])
    import torch
    from expected import assert_tensors, tensor
    loaded = torch.jit.load(out["path"]).state_dict()
    expected = {k: tensor(k, v.numpy(), str(v.dtype).replace("torch.", ""), list(v.shape))
                for k, v in loaded.items()}
    assert_tensors(record["tensors"], expected)
    assert record["values"]["4.num_batches_tracked"] == 0 and record["values"]["training"] is True
    inspected = inspect(out["path"], "--sample", "1")
    assert findings(inspected) == findings(record) and inspected["format"] == "torchscript"


TRACED = """
import torch
K = torch.linspace(-1, 1, 12).reshape(3, 4)
B = torch.arange(6, dtype=torch.int64)
"""


def test_torchscript_constants(ckmon, work):
    """A traced module that captures tensors: torch.jit.save puts them in constants.pkl
    (its code calls them CONSTANTS.c0, c1), their storages in constants/ before it."""
    script = TRACED + """
torch.manual_seed(4)
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
    def forward(self, x):
        return self.lin(x * K[0]) + K[1, :3] + B[:3]
traced = torch.jit.trace(M(), torch.randn(2, 4))
path = os.path.abspath("traced.pt")
torch.jit.save(traced, path)
report(path=path, size=os.path.getsize(path), code=traced.code)
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    assert "CONSTANTS.c0" in out["code"] and "CONSTANTS.c1" in out["code"]
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="torchscript", size=out["size"],
                 pid=out["pid"])
    assert record["parsed"] == "stream"
    import torch
    from expected import assert_tensors, tensor
    constants = namespace(TRACED)
    expected = {k: v for k, v in torch.jit.load(out["path"]).state_dict().items()}
    expected.update({"constants.0": constants["K"], "constants.1": constants["B"]})
    assert_tensors(record["tensors"], {
        k: tensor(k, v.numpy(), str(v.dtype).replace("torch.", ""), list(v.shape))
        for k, v in expected.items()})
    inspected = inspect(out["path"], "--sample", "1")
    assert findings(inspected) == findings(record)


def test_onnx_external_data_one_record(ckmon, work):
    """onnx.save with external data creates the .data file empty, closes it, then reopens
    it to append each tensor: one record for it, of its final size, not a torn one first."""
    script = """
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(8)
weights = [numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w"),
           numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "b")]
graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
    "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], weights)
path = os.path.abspath("model.onnx")
onnx.save(helper.make_model(graph), path, save_as_external_data=True,
          all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
data = path + ".data"
report(path=path, data=data, size=os.path.getsize(path), data_size=os.path.getsize(data))
"""
    run = ckmon.run(*python_script(work, script), paths=["*.onnx", "*.onnx.data"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    assert out["data_size"] == (64 * 32 + 32) * 4
    data = run.only_record(out["data"])  # one record, not a 0-byte one before it
    check_record(data, run, path=out["data"], fmt="unknown", size=out["data_size"],
                 pid=out["pid"])
    check_record(run.only_record(out["path"]), run, path=out["path"], fmt="unknown",
                 size=out["size"], pid=out["pid"])


UBJSON = (b"{i\x07learner{i\x10gradient_booster{i\x04name" b"SU\x06gbtree}}"
          b"i\x07versionlU\x01U\x07U\x00}")


@pytest.mark.parametrize("name,data,fmt", [
    ("model.ubj", UBJSON, "unknown"),                       # xgboost's UBJSON: not JSON
    ("noise.pt", bytes(range(7, 250)) * 3, "unknown"),      # nothing identifies a format
    ("noise.safetensors", b"hello, world" * 9, "unknown"),
    ("notes.joblib", b"x" + bytes(100), "unknown"),         # 'x' is no zlib header here
])
def test_no_format_no_false_alarm(ckmon, work, name, data, fmt):
    script = f"""
path = os.path.abspath({name!r})
with open(path, "wb") as f:
    f.write({data!r})
report(path=path)
"""
    run = ckmon.run(*python_script(work, script), paths=["*.ubj", "*.pt", "*.safetensors",
                                                          "*.joblib"])
    assert run.returncode == 0, run.stderr
    record = run.only_record(run.last_json()["path"])
    assert record["format"] == fmt and record["complete"] is True, record
    assert "errors" not in record and record["values"] == {} and record["tensors"] == []
    assert inspect(record["path"])["format"] == fmt


def test_broken_compressed_joblib_is_joblib(work):
    """Bytes that begin as joblib (a zlib stream of a pickle) and then break: an error."""
    path = work / "broken.joblib"
    write_model(path, compress=3)
    data = bytearray(path.read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    path.write_bytes(bytes(data))
    record = inspect(path)
    assert record["format"] == "joblib" and record["complete"] is False and record["errors"]


def test_savez_with_an_object_member_live_as_inspect(ckmon, work):
    """np.save pickles an object array's items: the pickle's STOP ends the member, so the
    members after it are read live too, and the record is inspect's."""
    script = """
import numpy as np
path = os.path.abspath("mixed.npz")
np.savez(path, a=np.arange(5.0), obj=np.array([1, "x", None], dtype=object), b=np.ones(3))
report(path=path, size=os.path.getsize(path))
"""
    run = ckmon.run(*python_script(work, script), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    assert record["format"] == "npz" and record["parsed"] == "stream"
    assert [t["name"] for t in record["tensors"]] == ["a", "obj", "b"]
    inspected = inspect(out["path"], "--sample", "1")
    for key in ("values", "tensors", "errors", "complete"):
        assert record.get(key) == inspected.get(key), key


@pytest.mark.parametrize("protocol", [0, 1])
def test_old_pickles_still_claimed_by_name_text_is_not(work, protocol):
    """Protocols 0 and 1 have no header: a .pkl is read as a pickle when it opens as one."""
    obj = {"a": 1, "b": [1.5, "x"], "c": None, "d": (1, -2), "e": "str"}
    path = work / "old.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    record = inspect(path)
    assert record["format"] == "pickle" and record["complete"] is True
    assert_findings(record, obj)
    notes = work / "notes.pkl"
    notes.write_text("Some notes about the run\n")
    record = inspect(notes)
    assert record["format"] == "unknown" and "errors" not in record, record
