"""expected.py — what a record should say about a Python object, computed independently.

The end-to-end tests build the object a program writes, flatten it here by the contract's
rules (CONTRACT.md "The record", docs/records.md), and compare the record key by key. This
is a second implementation of the naming rules, written from the documents and not from the
agent's code, so that the two can disagree.
"""
import math

import numpy as np

MAX_STRING_BYTES = 256
SHORT_SEQUENCE = 8  # numeric lists/tuples up to this long are flattened into values
HEAD = 8
INT64 = (-(2**63), 2**63 - 1)

SKIP = object()  # a scalar the record leaves out (long strings, bytes)


def nonfinite_name(x):
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def scalar(x):
    """The value a record holds for a Python scalar, or SKIP."""
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, int):
        return x if INT64[0] <= x <= INT64[1] else float(x)  # beyond int64: nearest double
    if isinstance(x, float):
        return x if math.isfinite(x) else nonfinite_name(x)
    if isinstance(x, str):
        return x if len(x.encode("utf-8")) <= MAX_STRING_BYTES else SKIP
    return SKIP


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def tensor(name, array, dtype=None, shape=None):
    """The expected tensor entry for a list/tuple of numbers or a NumPy array (head in C
    order; the dtype name and shape reported may be given when they differ from its own)."""
    if isinstance(array, np.ndarray):
        dtype = dtype or str(array.dtype)
        shape = list(array.shape) if shape is None else shape
        flat = array.reshape(-1)
        items = [x.item() for x in flat]
    else:
        dtype = dtype or ("float64" if any(isinstance(x, float) for x in array) else "int64")
        shape = [len(array)]
        items = list(array)
    as_float = np.array(items, dtype=np.float64)
    finite = as_float[np.isfinite(as_float)]
    has_finite = finite.size > 0
    return {
        "name": name,
        "dtype": dtype,
        "shape": shape,
        "min": min(x for x in items if math.isfinite(x)) if has_finite else None,
        "max": max(x for x in items if math.isfinite(x)) if has_finite else None,
        "mean": float(np.mean(finite)) if has_finite else None,
        "std": float(np.std(finite)) if has_finite else None,  # population
        "nan": int(np.isnan(as_float).sum()),
        "inf": int(np.isinf(as_float).sum()),
        "scale": float(np.max(np.abs(finite))) if has_finite else 0.0,
        "head": [scalar(float(x)) if isinstance(x, float) else x for x in items[:HEAD]],
    }


def flatten(obj, as_tensor=None):
    """(values, tensors) for an object written whole to a checkpoint: values by dotted
    name, tensors as a dict name -> expected tensor entry. as_tensor(x), when given, says
    whether x is a tensor of another library: None, or tensor()'s (array, dtype, shape)."""
    values, tensors = {}, {}

    def visit(name, x):
        found = as_tensor(x) if as_tensor else None
        if found is None and isinstance(x, np.ndarray):
            found = (x, None, None)
        if found is not None:
            tensors[name] = tensor(name, *found)
            if found[0].ndim == 0:  # a 0-dimensional tensor is also a value
                values[name] = scalar(found[0].item())
        elif isinstance(x, dict):
            for key, item in x.items():
                visit(join(name, str(key)), item)
        elif isinstance(x, (list, tuple)):
            if len(x) > SHORT_SEQUENCE and all(is_number(item) for item in x):
                tensors[name] = tensor(name, x)
            else:
                for index, item in enumerate(x):
                    visit(join(name, str(index)), item)
        elif hasattr(x, "__dict__") and not isinstance(x, type):
            visit(name, vars(x))  # an instance: its attributes, like dict keys
        else:
            v = scalar(x)
            if v is not SKIP:
                values[name] = v

    single = isinstance(obj, np.ndarray) or (as_tensor and as_tensor(obj) is not None)
    if not single and (isinstance(obj, (dict, list, tuple)) or hasattr(obj, "__dict__")):
        visit("", obj)
    else:
        visit("value", obj)  # a file whose top level is a scalar
    return values, tensors


def join(prefix, key):
    return f"{prefix}.{key}" if prefix else key


def same_value(actual, expected):
    """Equality that keeps JSON's kinds apart: bool is not a number, a number is exact."""
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return type(actual) is type(expected) and actual == expected
    if not is_number(actual):
        return False
    if isinstance(expected, int) and abs(expected) > 2**53:
        return float(actual) == float(expected)  # beyond 2^53 JSON readers see doubles
    return actual == expected


def value_mismatches(actual, expected):
    """Human-readable differences between a record's values and the expected dict."""
    problems = [f"missing {k!r} (expected {expected[k]!r})" for k in expected if k not in actual]
    problems += [f"unexpected {k!r} = {actual[k]!r}" for k in actual if k not in expected]
    problems += [
        f"{k!r}: got {actual[k]!r}, expected {expected[k]!r}"
        for k in expected
        if k in actual and not same_value(actual[k], expected[k])
    ]
    return problems


def assert_values(actual, expected):
    problems = value_mismatches(actual, expected)
    assert not problems, "values differ:\n  " + "\n  ".join(problems)


def close(actual, expected, scale):
    """Mean/std agreement: 1e-12 relative, or 1e-12 of the data's magnitude near zero."""
    if expected is None:
        return actual is None
    return is_number(actual) and math.isclose(
        actual, expected, rel_tol=1e-12, abs_tol=1e-12 * scale
    )


def tensor_mismatches(actual, expected):
    problems = []
    for field in ("name", "dtype", "shape", "nan", "inf"):
        if actual.get(field) != expected[field]:
            problems.append(f"{field}: got {actual.get(field)!r}, expected {expected[field]!r}")
    for field in ("min", "max"):
        if not same_value(actual.get(field), expected[field]):
            problems.append(f"{field}: got {actual.get(field)!r}, expected {expected[field]!r}")
    for field in ("mean", "std"):
        if not close(actual.get(field), expected[field], expected["scale"]):
            problems.append(f"{field}: got {actual.get(field)!r}, expected {expected[field]!r}")
    if actual.get("sampled") != 1:
        problems.append(f"sampled: got {actual.get('sampled')!r}, expected 1 (exact)")
    head = actual.get("head")
    if not isinstance(head, list) or len(head) != len(expected["head"]) or not all(
        same_value(a, e) for a, e in zip(head, expected["head"])
    ):
        problems.append(f"head: got {head!r}, expected {expected['head']!r}")
    return problems


def assert_tensors(actual_list, expected):
    """actual_list is the record's tensors array; expected maps name -> entry."""
    names = [t.get("name") for t in actual_list]
    assert sorted(names) == sorted(expected), f"tensor names {names} != {sorted(expected)}"
    problems = []
    for t in actual_list:
        problems += [f"{t['name']}: {p}" for p in tensor_mismatches(t, expected[t["name"]])]
    assert not problems, "tensors differ:\n  " + "\n  ".join(problems)


def assert_findings(record, obj, as_tensor=None):
    """The record's values and tensors are exactly those of obj."""
    values, tensors = flatten(obj, as_tensor)
    assert_values(record["values"], values)
    assert_tensors(record["tensors"], tensors)
