"""test_pickle_names.py — dict keys are named as Python's str() names them (issue 12 item 9).

Pickles written by CPython's pickle module (every protocol); the expected names are str()
of each key, computed here by Python itself, a NUL in a key included (\\u0000 in the log),
so keys never collide. Then the log writes a backslash that reads as a \\xHH escape as
\\x5c (docs/records.md, "Names that are not UTF-8"). Strings keep their NULs, in keys and
values, from pickle and from JSON, live and in `ckmon inspect` (issue 13).
"""
import json
import pickle
import re

import pytest

from ckmon_helpers import PYTHON
from test_torch import inspect

KEYS = [10.0, 100.0, 1e15, 1e16, 1.5e-5, 0.0001, 0.1, -2.5, 123456789012345678.0,
        b"\n", b"'", ("it's",), ("a\tb", b"\x00\xff"), (), frozenset(), (frozenset(),),
        "a\x00b", "a\x00c", True, None, -7, 2**70]


def as_logged(name):
    """docs/records.md: a backslash followed by x and hex naming 00-1f, 5c or 80-ff."""
    return re.sub(r"\\(?=x(5c|[01][0-9a-f]|[89a-f][0-9a-f]))", r"\\x5c", name)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_keys_named_as_python_str(work, protocol):
    obj = {key: index for index, key in enumerate(KEYS)}
    path = work / "keys.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    record = inspect(path)
    assert record["complete"] is True, record
    expected = {as_logged(str(key)): index for index, key in enumerate(KEYS)}
    assert record["values"] == expected


def test_int_wider_than_the_limit_is_an_error(work):
    path = work / "big.pkl"
    path.write_bytes(pickle.dumps({"small": 1, "big": 1 << 2000}))
    record = inspect(path)
    assert record["complete"] is False
    assert any("wider than the 128-byte limit" in e for e in record["errors"]), record
    assert record["values"] == {"small": 1}  # what came before the break is kept


NUL_OBJECT = {"a\x00b": "v\x00w", "a\x00c": "\x00", "plain": "x\x00\x00y",
              "nested": {"k\x00": ["\x00z", 3]}, "text": "\\u0000 stays text",
              "w\x00a": [0.5] * 10, "w\x00b": [1.5] * 10}  # two tensors
NUL_WRITER = """
import json, pickle, sys
obj = json.loads(sys.argv[1])
with open("nul.pkl", "wb") as f:
    pickle.dump(obj, f, protocol=int(sys.argv[2]))
with open("nul.json", "w") as f:
    json.dump(obj, f)
"""


def flat(obj, prefix=""):
    """The record's names for obj: nested keys joined with '.', list items by index."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    out = {}
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, list) and len(value) > 8:
            continue  # a tensor
        out.update(flat(value, name + ".") if isinstance(value, (dict, list)) else {name: value})
    return out


@pytest.mark.parametrize("protocol", [0, 4])
def test_nul_in_strings_is_kept(ckmon, work, protocol):
    """A NUL inside a key or a string value comes out as \\u0000: the same str Python
    wrote, for pickle and json, written live under ckmon run and read by ckmon inspect."""
    (work / "writer.py").write_text(NUL_WRITER)
    run = ckmon.run(PYTHON, "writer.py", json.dumps(NUL_OBJECT), str(protocol),
                    paths=["*.pkl", "*.json"])
    assert run.returncode == 0, run.stderr
    expected = flat(NUL_OBJECT)
    assert len(expected) == 6  # "a\0b" and "a\0c" are two keys
    live = {r["path"].rsplit("/", 1)[1]: r for r in run.records}
    for name in ("nul.pkl", "nul.json"):
        assert live[name]["complete"] is True, live[name]
        assert live[name]["values"] == expected, (name, live[name]["values"])
        tensors = {t["name"]: t["mean"] for t in live[name]["tensors"]}
        assert tensors == {"w\x00a": 0.5, "w\x00b": 1.5}, (name, tensors)
        inspected = inspect(work / name)
        assert inspected["values"] == expected
        assert {t["name"]: t["mean"] for t in inspected["tensors"]} == tensors
    with open(work / "nul.pkl", "rb") as f:  # what Python itself reads back
        assert flat(pickle.load(f)) == expected
    raw = (work / "ckmon.jsonl").read_text()
    assert "\\u0000" in raw and "\\x5c" not in raw and "\ufffd" not in raw
