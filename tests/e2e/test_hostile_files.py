"""test_hostile_files.py — tensor formats whose headers lie, written under the agent.

Each file claims sizes the agent must not believe: header lengths near 2^63, shapes whose
product overflows, 2^62 metadata entries, multi-GB strings, 10^6-deep nesting. Written by
a real program under `ckmon run`, each must leave the program's output, exit status and
bytes on disk as they are without the agent, and give a record that says it is not whole
(docs/security.md lists the limits). The pickle and JSON cases live in
test_agent_safety.py; this file adds the binary tensor formats and the pickle opcodes
that would call a function.
"""
import subprocess

import pytest

from ckmon_helpers import PYTHON, clean_env, ckmon_args, parse_records
from test_agent_safety import assert_flagged, run_raw_writer

U64 = "(({}) % 2**64).to_bytes(8, 'little')"


def st(header_length, header):
    return f"{U64.format(header_length)} + {header}"


def st_whole(header, data):
    """A safetensors file with a truthful header length."""
    return f"(lambda h: len(h).to_bytes(8, 'little') + h)({header}.ljust(96)) + {data}"


HOSTILE_SAFETENSORS = {
    "header_length_2_63": st("2**63 - 1", "b'{\"a\":' + b' ' * 100"),
    "header_length_past_end": st("100000", "b'{\"w\": {\"dtype\": \"F32\"'"),
    "shape_product_overflows": st_whole(
        "b'{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
        "\"data_offsets\":[0,4]}}'", "b'\\0' * 4"),
    "offsets_beyond_file": st_whole(
        "b'{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8000000000]}}'",
        "b'\\0' * 8"),
    "deep_header": st("2000000", "b'{\"a\":' + b'[' * 999994 + b']' * 999994 + b'}'"),
}

NPY_MAGIC = "b'\\x93NUMPY'"
HOSTILE_NPY = {
    "shape_product_overflows": f"{NPY_MAGIC} + b'\\x01\\x00' + (118).to_bytes(2, 'little') + "
                               "b\"{'descr': '<f8', 'fortran_order': False, "
                               "'shape': (4294967296, 4294967296, 4294967296), }\".ljust(117) + b'\\n'"
                               " + b'\\0' * 64",
    "header_length_4_gib": f"{NPY_MAGIC} + b'\\x02\\x00' + (2**32 - 1).to_bytes(4, 'little') + b\"{{'descr'\"",
    "huge_dimension_count": f"{NPY_MAGIC} + b'\\x01\\x00' + (4086).to_bytes(2, 'little') + "
                            "(b\"{'descr': '<f4', 'fortran_order': False, 'shape': (\" + b'1, ' * 1300"
                            " + b'), }').ljust(4085) + b'\\n'",
    "descr_garbage": f"{NPY_MAGIC} + b'\\x01\\x00' + (54).to_bytes(2, 'little') + "
                     "b\"{'descr': '<q\\x00\\xff', 'fortran_order': 7, 'shape': -1, }\".ljust(53) + b'\\n'",
}

GGUF_HEAD = "b'GGUF' + (3).to_bytes(4, 'little')"


def gguf(tensors, kvs, rest):
    return f"{GGUF_HEAD} + {U64.format(tensors)} + {U64.format(kvs)} + {rest}"


GGUF_STR = "(({n})).to_bytes(8, 'little') + {text}"
HOSTILE_GGUF = {
    "kv_count_2_62": gguf(0, "2**62", "b'\\x01' * 64"),
    "tensor_count_2_62": gguf("2**62", 0, "b'\\x02' * 64"),
    "key_length_2_63": gguf(0, 1, GGUF_STR.format(n="2**63", text="b'general.name'")),
    "string_value_5_gib": gguf(0, 1, GGUF_STR.format(n=4, text="b'name'") +
                               " + (8).to_bytes(4, 'little') + (5 << 30).to_bytes(8, 'little') + b'abc'"),
    "array_count_2_62": gguf(0, 1, GGUF_STR.format(n=1, text="b'a'") +
                             " + (9).to_bytes(4, 'little') + (5).to_bytes(4, 'little') + "
                             "(2**62).to_bytes(8, 'little') + b'\\0' * 100"),
    "nested_arrays": gguf(0, 1, GGUF_STR.format(n=1, text="b'a'") + " + ((9).to_bytes(4, 'little')"
                          " + (9).to_bytes(4, 'little') + (1).to_bytes(8, 'little')) * 100000"),
    "tensor_dims_overflow": gguf(1, 0, GGUF_STR.format(n=1, text="b't'") +
                                 " + (4).to_bytes(4, 'little') + (2**40).to_bytes(8, 'little') * 4"
                                 " + (0).to_bytes(4, 'little') + (0).to_bytes(8, 'little') + b'\\0' * 64"),
    "tensor_ndim_huge": gguf(1, 0, GGUF_STR.format(n=1, text="b't'") +
                             " + (2**31).to_bytes(4, 'little') + b'\\1' * 64"),
}


HOSTILE = [("safetensors", name, expr) for name, expr in HOSTILE_SAFETENSORS.items()] + \
    [("npy", name, expr) for name, expr in HOSTILE_NPY.items()] + \
    [("gguf", name, expr) for name, expr in HOSTILE_GGUF.items()]


@pytest.mark.parametrize("fmt,name,expression", HOSTILE, ids=[f"{f}-{n}" for f, n, _ in HOSTILE])
def test_hostile_tensor_files(ckmon, work, fmt, name, expression):
    run, path = run_raw_writer(ckmon, work, expression, f"bad.{fmt}")
    # beyond the specification's 100 MB header too: the name says safetensors (issue 13)
    assert_flagged(run, path, fmt)


# Every way a pickle can ask for a call: REDUCE on GLOBAL (protocols 0-2) and on
# STACK_GLOBAL (4, 5), INST and OBJ (protocol 0/1 class instantiation), NEWOBJ.
CALLING_PICKLES = {
    "reduce_p0": "pickle.dumps(Call(), protocol=0)",
    "reduce_p2": "pickle.dumps(Call(), protocol=2)",
    "reduce_p5": "pickle.dumps([1, Call()], protocol=5)",
    "inst": "b'(S' + repr(cmd).encode() + b'\\nios\\nsystem\\n.'",
    "obj": "b'(cos\\nsystem\\nS' + repr(cmd).encode() + b'\\no.'",
    "newobj": "b'\\x80\\x02cos\\nsystem\\nX' + len(cmd).to_bytes(4, 'little') + cmd.encode() "
              "+ b'\\x85\\x81.'",
    "build_setstate": "b'\\x80\\x02cos\\nsystem\\n)\\x81X' + len(cmd).to_bytes(4, 'little') "
                      "+ cmd.encode() + b'b.'",
}

CALL_WRITER = """
import os, pickle, sys
cmd = "touch " + sys.argv[2]
class Call:
    def __reduce__(self):
        return (os.system, (cmd,))
data = {expression}
with open(sys.argv[1], "wb") as f:
    f.write(data)
"""


@pytest.mark.parametrize("name", sorted(CALLING_PICKLES))
def test_pickled_calls_are_never_made(ckmon, work, name):
    script, path, marker = work / "call.py", work / "call.pkl", work / "CALLED"
    script.write_text(CALL_WRITER.format(expression=CALLING_PICKLES[name]))
    run = ckmon.run(PYTHON, script, path, marker)
    assert run.returncode == 0, run.stderr
    assert path.stat().st_size > 0
    inspected = subprocess_inspect(work, path)
    assert not marker.exists(), "a pickled call was executed"
    for record in (run.only_record(path), inspected):
        assert record["format"] == "pickle"
        # described as data: the callable's name, or the arguments it would have had
        described = [v for v in record["values"].values() if isinstance(v, str)]
        assert any("system" in v or v.startswith("touch ") for v in described), record


def subprocess_inspect(work, path):
    p = subprocess.run(ckmon_args("inspect", path), cwd=work, env=clean_env(),
                       capture_output=True, text=True, timeout=60)
    [record] = parse_records(p.stdout)
    return record
