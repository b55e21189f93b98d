"""test_torch.py — checkpoints written by torch.save (Debian's python3-torch) under `ckmon run`.

The writer scripts build and save real PyTorch objects; the test reads each file back with
torch.load and computes every expected value and statistic from the loaded tensors with
NumPy (expected.py), then checks the streaming record (`ckmon run`) and the record of
`ckmon inspect` on the same file against it, and against each other.
"""
import os

import numpy as np
import torch

from ckmon_helpers import check_record, python_script
from expected import assert_findings
from test_tensor_formats import CIRCUMSTANCE
from test_tensor_formats import inspect as inspect_files

# A model with the usual layers, an AdamW optimizer after two steps, loose scalars, and
# tensors of every dtype the issue names: half, bfloat16, int64, NaN/Inf, views of one
# storage at an offset, a transposed (permuted) view, bool and small integer types.
TRAINING = """
import torch
torch.manual_seed(7)
model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
    torch.nn.Linear(4 * 6 * 6, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 2))
optim = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
for step in range(2):
    loss = model(torch.randn(5, 3, 8, 8)).pow(2).mean()
    optim.zero_grad()
    loss.backward()
    optim.step()
base = torch.randn(100)
grid = torch.arange(12, dtype=torch.float32).reshape(3, 4)
state = {
    "model": model.state_dict(),
    "optim": optim.state_dict(),
    "epoch": 7, "lr": 1e-3, "loss": loss.item(),
    "half": torch.randn(33).half(),
    "bf16": (torch.randn(4, 5) * 3).to(torch.bfloat16),
    "ids": torch.arange(-20, 40, dtype=torch.int64) * 1000003,
    "bad": torch.tensor([1.0, float("nan"), float("inf"), -2.5, float("-inf"), 4.0]),
    "all_bad": torch.tensor([float("nan")] * 3),
    "base": base,
    "window": base[10:30].view(4, 5),
    "tail": base[90:],
    "transposed": grid.t(),
    "mask": torch.tensor([True, False, True, True]),
    "small": {"i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
              "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
              "i16": torch.tensor([-300, 30000], dtype=torch.int16),
              "i32": torch.tensor([-70000, 5], dtype=torch.int32),
              "f64": torch.tensor([0.1, 0.2], dtype=torch.float64)},
    "scalar": torch.tensor(2.5),
    "count": torch.tensor(41),
    "empty": torch.zeros(0, 3),
}
"""


def as_tensor(x):
    """expected.flatten's hook: a torch tensor as (NumPy array, dtype name, shape)."""
    if not isinstance(x, torch.Tensor):
        return None
    t = x.detach()
    if t.dtype == torch.bfloat16:
        array = t.float().numpy()  # exact: bfloat16 is the top half of a float32
    elif t.dtype == torch.bool:
        array = t.to(torch.uint8).numpy()  # records give bools as 0/1
    else:
        array = t.numpy()
    return array, str(x.dtype).replace("torch.", ""), list(x.shape)


def inspect(path, *options):
    (record,) = inspect_files(path, options=options)
    return record


def assert_parity(streamed, path, obj, as_tensor_of):
    """The record was streamed (zip writers' header rewrites need no re-read), matches the
    ground truth, and `ckmon inspect` of the finished file gives the same record."""
    assert streamed["parsed"] == "stream", streamed["parsed"]
    assert_findings(streamed, obj, as_tensor_of)
    inspected = inspect(path, "--sample", "1")
    assert inspected["parsed"] == "file"
    strip = lambda r: {k: v for k, v in r.items() if k not in CIRCUMSTANCE}
    assert strip(inspected) == strip(streamed)


def save_and_check(ckmon, work, source, saves):
    """Runs one writer under ckmon run: source builds the objects, saves maps each file
    name to the statement that writes it to `path`. Checks every file's record, and
    inspect's, against torch.load; returns {file name: (record, loaded object)}."""
    body = "import os, json\n" + source + "sizes = {}\n"
    for filename, save in saves.items():
        body += f"path = os.path.abspath({filename!r})\n{save}\nsizes[path] = os.path.getsize(path)\n"
    run = ckmon.run(*python_script(work, body + "report(sizes=sizes)\n"),
                    options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    checked = {}
    for path, size in out["sizes"].items():
        record = run.only_record(path)
        check_record(record, run, path=path, fmt="torch", size=size, pid=out["pid"])
        loaded = torch.load(path)
        assert_parity(record, path, loaded, as_tensor)
        checked[os.path.basename(path)] = record, loaded
    return checked


def test_model_optimizer_and_scalars(ckmon, work):
    checked = save_and_check(ckmon, work, TRAINING, {
        "train_state.pt": "torch.save(state, path)",
        # torch < 1.6's format, still written on request: pickles, then raw storages
        "legacy.pt": "torch.save(state, path, _use_new_zipfile_serialization=False)",
        "handle.pt": "with open(path, 'wb') as f:\n    torch.save(state, f)",
    })
    record, loaded = checked["train_state.pt"]
    names = {t["name"] for t in record["tensors"]}
    # the names the issue gives as examples, and no state-dict bookkeeping
    assert {"model.0.weight", "model.1.running_mean", "optim.state.0.exp_avg"} <= names
    assert not any("_metadata" in k for k in list(record["values"]) + list(names))
    assert record["values"]["optim.state.0.step"] == 2.0  # AdamW's step: a 0-d tensor
    assert record["values"]["model.1.num_batches_tracked"] == 2
    assert record["values"]["epoch"] == 7 and record["values"]["count"] == 41
    # the view and the tensor it views share one storage record in the file
    window, base = loaded["window"], loaded["base"]
    assert window.storage().data_ptr() == base.storage().data_ptr()
    assert window.storage_offset() == 10


OTHER_OBJECTS = """
import torch
import tensor_subclass
torch.manual_seed(3)
layer = torch.nn.Linear(5, 3)
params = {"weight": layer.weight, "bias": layer.bias, "plain": [torch.ones(2), 3],
          "_metadata": {"run": "kept: not a state dict's"}}
bare = torch.linspace(-1, 1, 50).reshape(5, 10)
# 12 storages: torch 1.13 writes data/0, data/1, data/10, data/11, data/2, ...
many = [torch.full((3,), float(i)) for i in range(12)]
# a tensor subclass is pickled as torch._tensor._rebuild_from_type_v2 around the tensor
params["scaled"] = torch.arange(4.0).as_subclass(tensor_subclass.Scaled)
params["scaled"].scale = 2.0  # torch 1.13 cannot load a subclass without state
"""


def test_parameters_a_bare_tensor_and_many_storages(ckmon, work, monkeypatch):
    (work / "tensor_subclass.py").write_text(
        "import torch\nclass Scaled(torch.Tensor):\n    pass\n")
    monkeypatch.syspath_prepend(str(work))  # for torch.load of the subclass
    checked = save_and_check(ckmon, work, OTHER_OBJECTS, {
        "params.pt": "torch.save(params, path)",
        "bare.pt": "torch.save(bare, path)",
        "many.pt": "torch.save(many, path)",
    })
    assert [t["name"] for t in checked["bare.pt"][0]["tensors"]] == ["value"]
    assert len(checked["many.pt"][0]["tensors"]) == 12


def test_sampled_statistics_say_so(work):
    path = work / "big.pt"
    torch.manual_seed(1)
    big = torch.randn(256, 1024)
    torch.save({"big": big}, path)
    record = inspect(path, "--sample", "0.25")
    (t,) = record["tensors"]
    assert 0 < t["sampled"] < 1
    assert t["head"] == [float(x) for x in big.reshape(-1)[:8].tolist()]
    assert t["min"] >= float(big.min()) and t["max"] <= float(big.max())


def test_truncated_archive_is_incomplete(work):
    path = work / "cut.pt"
    torch.save({"a": torch.arange(1000, dtype=torch.float64), "b": torch.ones(5)}, path)
    data = path.read_bytes()
    cut = work / "cut_short.pt"
    cut.write_bytes(data[: len(data) // 2])
    record = inspect(cut)
    assert record["format"] == "torch" and record["complete"] is False
    assert record["errors"]


# The layout torch 2.x writes, by torch's own archive writer (miniz, as torch.save uses it):
# a "byteorder" record before the storages, storages keyed in numeric order, a
# ".data/serialization_id" record, and tensors of dtypes new in 2.x pickled as
# _rebuild_tensor_v3 over an untyped storage sized in bytes, with the dtype as an argument.
# torch 1.13 has no _rebuild_tensor_v3: a stand-in under that name lets pickle refer to it.
TORCH2_WRITER = """
import collections, pickle, io
import numpy as np
import torch

def _rebuild_tensor_v3(*args):
    raise AssertionError("never called: ckmon does not unpickle")
_rebuild_tensor_v3.__module__ = "torch._utils"
torch._utils._rebuild_tensor_v3 = _rebuild_tensor_v3

class Storage:
    def __init__(self, key, kind, numel, data):
        self.key, self.kind, self.numel, self.data = key, kind, numel, data

class Tensor:
    def __init__(self, storage, offset, shape, stride, dtype=None):
        self.args = (storage, offset, tuple(shape), tuple(stride), False,
                     collections.OrderedDict())
        self.v3 = dtype is not None
        if self.v3:
            self.args += (dtype,)
    def __reduce_ex__(self, protocol):
        rebuild = torch._utils._rebuild_tensor_v3 if self.v3 else torch._utils._rebuild_tensor_v2
        return (rebuild, self.args)

class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None

rng = np.random.default_rng(5)
f32 = rng.standard_normal(30).astype(np.float32)
bf16 = (rng.standard_normal(12).astype(np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)
ids = np.arange(11, dtype=np.int64) * -3
storages = [
    Storage("0", torch.FloatStorage, f32.size, f32.tobytes()),
    Storage("1", torch.UntypedStorage, 2 * bf16.size,
            (bf16.view(np.uint32) >> 16).astype(np.uint16).tobytes()),
    Storage("2", torch.LongStorage, ids.size, ids.tobytes()),
]
state = {
    "weight": Tensor(storages[0], 0, (5, 6), (6, 1)),
    "row": Tensor(storages[0], 12, (6,), (1,)),
    "bf16": Tensor(storages[1], 0, (3, 4), (4, 1), torch.bfloat16),
    "ids": Tensor(storages[2], 0, (11,), (1,)),
    "step": Tensor(storages[2], 10, (), ()),
    "epoch": 2,
}
pickled = io.BytesIO()
Pickler(pickled, protocol=2).dump(state)
path = os.path.abspath("two.pt")
writer = torch._C.PyTorchFileWriter(path)
writer.write_record("data.pkl", pickled.getvalue(), len(pickled.getvalue()))
writer.write_record("byteorder", b"little", 6)
for s in storages:
    writer.write_record("data/" + s.key, s.data, len(s.data))
writer.write_record(".data/serialization_id", b"1234567890123456789012345678901234567890", 40)
writer.write_end_of_file()
del writer
np.savez(os.path.abspath("truth.npz"), f32=f32, bf16=bf16, ids=ids)
report(path=path, size=os.path.getsize(path))
"""


def test_torch2_layout_and_rebuild_v3(ckmon, work):
    run = ckmon.run(*python_script(work, TORCH2_WRITER), options=["--sample", "1"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="torch", size=out["size"], pid=out["pid"])
    with np.load(work / "truth.npz") as truth:
        f32, bf16, ids = truth["f32"], truth["bf16"], truth["ids"]
    expected = {
        "weight": torch.from_numpy(f32).reshape(5, 6),
        "row": torch.from_numpy(f32[12:18]),
        "bf16": torch.from_numpy(bf16).reshape(3, 4).to(torch.bfloat16),
        "ids": torch.from_numpy(ids),
        "step": torch.tensor(ids[10]),
        "epoch": 2,
    }
    assert_parity(record, out["path"], expected, as_tensor)


def test_views_with_gaps_and_complex_get_dtype_and_shape_only(work):
    path = work / "gaps.pt"
    x = torch.arange(10, dtype=torch.float32)
    torch.save({"every_other": x[::2], "expanded": torch.ones(3).expand(4, 3),
                "complex": torch.ones(2, dtype=torch.complex64), "whole": x}, path)
    record = inspect(path, "--sample", "1")
    assert record["complete"] is True
    tensors = {t["name"]: t for t in record["tensors"]}
    for name, dtype, shape in (("every_other", "float32", [5]), ("expanded", "float32", [4, 3]),
                               ("complex", "complex64", [2])):
        assert tensors[name]["dtype"] == dtype and tensors[name]["shape"] == shape
        assert tensors[name]["min"] is None and tensors[name]["sampled"] == 0
        assert any(name in e for e in record["errors"]), record["errors"]
    assert tensors["whole"]["mean"] == 4.5 and tensors["whole"]["sampled"] == 1
