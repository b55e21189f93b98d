"""test_pickle_names.py — dict keys are named as Python's str() names them (issue 12 item 9).

Pickles written by CPython's pickle module (every protocol); the expected names are str()
of each key, computed here by Python itself. Names cannot hold a NUL, so a NUL in a key is
the four characters \\x00; keys still never collide. Then the log writes a backslash that
reads as a \\xHH escape as \\x5c (docs/records.md, "Names that are not UTF-8").
"""
import pickle
import re

import pytest

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
    expected = {as_logged(str(key).replace("\x00", "\\x00")): index
                for index, key in enumerate(KEYS)}
    assert record["values"] == expected


def test_int_wider_than_the_limit_is_an_error(work):
    path = work / "big.pkl"
    path.write_bytes(pickle.dumps({"small": 1, "big": 1 << 2000}))
    record = inspect(path)
    assert record["complete"] is False
    assert any("wider than the 128-byte limit" in e for e in record["errors"]), record
    assert record["values"] == {"small": 1}  # what came before the break is kept
