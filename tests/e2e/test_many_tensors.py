"""test_many_tensors.py — checkpoints of 100,000 tensors under `ckmon run` lose none.

Real models have 10^4 to 10^5 tensors (mixture-of-experts layers, optimizer states). A
torch.save of that many tensors must fit the pickle walker's memory cap, and the findings
of a file written faster than the collector reads them must not be dropped silently:
every tensor is in the record, or its errors say how many are not. The ground truth is
computed from the arrays the writer saved: tensor i holds i + k/8 for k = 0..15.
"""
import json

import numpy as np

from ckmon_helpers import Ckmon, python_script

COUNT = 100_000
ELEMENTS = 16

# Tensor i: i + [0, 1/8, ..., 15/8] in float32 (exact), so min, max, mean and the head of
# each are known without reading the file back.
TORCH_SAVE = f"""
import torch
base = torch.arange({ELEMENTS}, dtype=torch.float32) / 8
state = {{f"experts.{{i}}.w": base + i for i in range({COUNT})}}
torch.save(state, "many.pt")
"""

# The safetensors layout (an 8-byte header length, the JSON header, then the data),
# written array by array as a streaming writer does.
SAFETENSORS = f"""
import json, struct
import numpy as np
base = np.arange({ELEMENTS}, dtype=np.float32) / 8
header, offset = {{}}, 0
for i in range({COUNT}):
    header[f"experts.{{i}}.w"] = {{"dtype": "F32", "shape": [{ELEMENTS}],
                                 "data_offsets": [offset, offset + base.nbytes]}}
    offset += base.nbytes
text = json.dumps(header)
text += " " * (-len(text) % 8)
with open("many.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text.encode())
    for i in range({COUNT}):
        f.write((base + np.float32(i)).data)
"""


def missing_said(record):
    """How many tensors the record's errors say are not in it (0 when none says so)."""
    said = 0
    for error in record.get("errors", []):
        words = error.split()
        if "tensors" in words or "findings" in words:
            said += int(next((w for w in words if w.isdigit()), "0"))
    return said


def assert_all_tensors(record):
    tensors = {t["name"]: t for t in record["tensors"]}
    assert len(tensors) == len(record["tensors"]), "a tensor is in the record twice"
    expected = {f"experts.{i}.w" for i in range(COUNT)}
    missing = expected - set(tensors)
    assert not (set(tensors) - expected), sorted(set(tensors) - expected)[:5]
    if missing:
        # Only allowed when the record says so, with the right count.
        assert missing_said(record) == len(missing), (
            f"{len(missing)} tensors missing, errors: {record.get('errors')}")
        return
    base = np.arange(ELEMENTS, dtype=np.float32) / 8
    for i in range(COUNT):
        t = tensors[f"experts.{i}.w"]
        data = base + np.float32(i)
        assert t["dtype"] == "float32" and t["shape"] == [ELEMENTS], t
        assert t["min"] == float(data.min()) and t["max"] == float(data.max()), t
        assert t["head"] == [float(x) for x in data[:8]], t
        assert abs(t["mean"] - float(data.astype(np.float64).mean())) <= 1e-9 * (i + 1), t
        assert t["nan"] == 0 and t["inf"] == 0 and t["sampled"] == 1.0, t


def run_writer(tmp_path, body, path):
    run = Ckmon(tmp_path).run(*python_script(tmp_path, body), timeout=600)
    assert run.returncode == 0, run.stderr
    return run.only_record(tmp_path / path)


def test_torch_save_of_100k_tensors(tmp_path):
    record = run_writer(tmp_path, TORCH_SAVE, "many.pt")
    assert record["format"] == "torch"
    assert record["complete"] is True, record.get("errors")
    assert not record.get("errors"), record["errors"]
    assert len(record["tensors"]) == COUNT
    assert_all_tensors(record)


def test_safetensors_of_100k_tensors_written_array_by_array(tmp_path):
    record = run_writer(tmp_path, SAFETENSORS, "many.safetensors")
    assert record["format"] == "safetensors"
    assert record["complete"] is True, record.get("errors")
    assert_all_tensors(record)


def test_inspect_agrees_on_100k_tensors(tmp_path):
    """The collector's own parse (ckmon inspect) of the same torch file: all tensors."""
    import subprocess
    from ckmon_helpers import ckmon_args, clean_env, run_plain
    assert run_plain(python_script(tmp_path, TORCH_SAVE), tmp_path).returncode == 0
    out = subprocess.run(ckmon_args("inspect", tmp_path / "many.pt"), env=clean_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert not record.get("errors"), record["errors"]
    assert len(record["tensors"]) == COUNT
    assert_all_tensors(record)


def test_numbers_print_as_pythons_repr(tmp_path):
    """Records print each double with the shortest digits that read back (core/dtoa.c, no
    printf): against CPython's float repr (the shortest, correctly rounded) for 20,000
    doubles of random bit patterns and 20,000 float32 values and statistics-like ratios."""
    import math
    import pickle
    import struct
    import subprocess
    from ckmon_helpers import ckmon_args, clean_env
    rng = np.random.default_rng(11)
    doubles = [struct.unpack("<d", struct.pack("<Q", int(b)))[0]
               for b in rng.integers(0, 2**64, 20_000, dtype=np.uint64)]
    floats = rng.standard_normal(10_000).astype(np.float32)
    numbers = [d for d in doubles if math.isfinite(d) and d != int(d)]
    numbers += [float(f) for f in floats] + [float(f) / 3 for f in floats]
    path = tmp_path / "numbers.pkl"
    path.write_bytes(pickle.dumps({f"n{i}": v for i, v in enumerate(numbers)}))
    out = subprocess.run(ckmon_args("inspect", path), env=clean_env(), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    texts = {}

    def keep_text(text):  # the number's own text, next to its value
        texts.setdefault(float(text), text)
        return float(text)
    record = json.loads(out.stdout, parse_float=keep_text)
    values = record["values"]
    for i, v in enumerate(numbers):
        assert values[f"n{i}"] == v, (i, v, values[f"n{i}"])
        mantissa = repr(v).split("e")[0].lstrip("-0.").replace(".", "").rstrip("0")
        printed = texts[v].split("e")[0].lstrip("-0.").replace(".", "").rstrip("0")
        assert printed == mantissa, (repr(v), texts[v])


# A tensor whose rebuild arguments are pickled again later (the same tuple object): the
# walker gave their memory back when the tensor was read, so the later use is left out,
# with an error; everything else is still read.
SHARED_ARGUMENTS = """
import collections, torch
base = torch.arange(6, dtype=torch.float32)
size = (2, 3)
storage = base.untyped_storage() if hasattr(base, "untyped_storage") else base.storage()
class SharesItsSize:
    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (storage, 0, size, (3, 1), False, collections.OrderedDict()))
state = {f"w{i}": torch.full((4,), float(i)) for i in range(50)}
state.update({"t": SharesItsSize(), "again": size, "after": 7})
torch.save(state, "shared.pt")
"""


def test_tensor_arguments_pickled_twice(tmp_path):
    import subprocess
    from ckmon_helpers import ckmon_args, clean_env, run_plain
    assert run_plain(python_script(tmp_path, SHARED_ARGUMENTS), tmp_path).returncode == 0
    out = subprocess.run(ckmon_args("inspect", tmp_path / "shared.pt"), env=clean_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    tensors = {t["name"]: t for t in record["tensors"]}
    assert set(tensors) == {f"w{i}" for i in range(50)} | {"t"}
    assert tensors["t"]["head"] == [0, 1, 2, 3, 4, 5] and tensors["w49"]["mean"] == 49
    assert record["values"]["after"] == 7
    said = [e for e in record.get("errors", []) if "not kept once read" in e]
    # Either the tuple was still held (then it is a value) or the record says it is not.
    assert said or record["values"].get("again.0") == 2, record
