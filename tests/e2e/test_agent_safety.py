"""test_agent_safety.py — the agent never changes what a monitored program sees.

With no collector, with hostile or malformed checkpoints, and on failing calls, a program
under the agent must produce the same output, exit status, errno values and bytes on disk
as without it (CONTRACT.md "Errors"). The library must export only the names it
interposes and must never reach those names through the PLT (FIELD-NOTES.md, Darshan).
"""
import re
import subprocess
import time

import pytest

from ckmon_helpers import (
    AGENT, PYTHON, REPO, ckmon_args, clean_env, parse_records, program, run_plain,
    run_preloaded,
)

EXPORTS_MAP = REPO / "agent" / "exports.map"

# Writes a checkpoint and prints only what does not depend on the run (no pid).
PYTHON_SAVER = """
import hashlib, pickle, sys
state = {"epoch": 10, "lr": 0.01, "weights": [i / 7 for i in range(1000)]}
with open(sys.argv[1], "wb") as f:
    pickle.dump(state, f)
with open(sys.argv[1], "rb") as f:
    data = f.read()
print(hashlib.sha256(data).hexdigest(), pickle.loads(data)["epoch"])
sys.exit(5)
"""


def python_saver(work):
    script = work / "saver.py"
    script.write_text(PYTHON_SAVER)
    return [PYTHON, str(script)]


def writers(work):
    """(name, command before the output path, file name) for each kind of writer."""
    return [
        ("python pickle", python_saver(work), "state.pkl"),
        ("C stdio", [program("json_writer"), "stdio"], "checkpoint/state.json"),
        ("C threads", [program("json_writer"), "threads_write"], "checkpoint/state.json"),
        ("C pwrite", [program("json_writer"), "pwrite_backwards"], "checkpoint/state.json"),
    ]


def prepare(work, name, relative):
    path = work / name / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def assert_same_behaviour(plain, plain_path, other, other_path):
    assert other.returncode == plain.returncode, other.stderr
    assert other.stdout.replace(str(other_path), "PATH") == \
        plain.stdout.replace(str(plain_path), "PATH")
    assert other_path.read_bytes() == plain_path.read_bytes()


@pytest.mark.parametrize("socket_kind", ["absent", "regular file", "directory"])
def test_without_a_collector_programs_run_unchanged(work, socket_kind):
    sock = work / "nowhere.sock"
    if socket_kind == "regular file":
        sock.write_text("not a socket")
    elif socket_kind == "directory":
        sock.mkdir()
    for n, (label, command, relative) in enumerate(writers(work)):
        plain_path = prepare(work, f"plain-{n}", relative)
        path = prepare(work, f"agent-{n}", relative)
        plain = run_plain(command + [plain_path], cwd=work)
        started = time.monotonic()
        preloaded = run_preloaded(command + [path], work, sock)
        elapsed = time.monotonic() - started
        assert_same_behaviour(plain, plain_path, preloaded, path)
        assert elapsed < 10, f"{label}: took {elapsed:.1f} s with no collector"


def test_failing_calls_keep_their_results_and_errno(ckmon, work):
    writer = program("json_writer")
    (work / "plain" / "checkpoint").mkdir(parents=True)
    (work / "agent" / "checkpoint").mkdir(parents=True)
    plain = run_plain([writer, "errors", work / "plain" / "checkpoint"], cwd=work)
    run = ckmon.run(writer, "errors", work / "agent" / "checkpoint")
    assert plain.returncode == 0 and "errno=ENOENT" in plain.stdout, plain.stdout
    assert run.returncode == plain.returncode, run.stderr
    assert run.stdout == plain.stdout


# ---- the library's symbols ---------------------------------------------------------

def interposed_names():
    text = re.sub(r"/\*.*?\*/", "", EXPORTS_MAP.read_text(), flags=re.S)
    global_part = text.split("global:")[1].split("local:")[0]
    names = {n.strip() for n in global_part.split(";") if n.strip()}
    assert "write" in names and "close" in names, names
    return names


def dynamic_symbols(*flags):
    out = subprocess.run(["nm", "-D", *flags, str(AGENT)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def test_exports_only_the_interposed_names():
    assert dynamic_symbols("--defined-only") == interposed_names()


def test_never_calls_an_interposed_name_through_the_plt():
    called = dynamic_symbols("--undefined-only") & interposed_names()
    assert not called, f"libckmon.so imports names it interposes: {sorted(called)}"


# ---- hostile and malformed checkpoints ------------------------------------------------

MALFORMED_PICKLES = {
    "truncated": "pickle.dumps({'epoch': 1, 'w': list(range(100))})[:-7]",
    "frame_claims_2_62_bytes": "b'\\x80\\x04\\x95' + (2**62).to_bytes(8, 'little') + b'junk'",
    "str_claims_2_60_bytes": "b'\\x80\\x04\\x8d' + (2**60).to_bytes(8, 'little') + b'abc.'",
    "bytes_claims_4_gib": "b'\\x80\\x03B' + (2**32 - 1).to_bytes(4, 'little') + b'x' * 10",
    "random_after_proto": "b'\\x80\\x04' + random.Random(7).randbytes(50000)",
    "append_on_empty_stack": "b'\\x80\\x02a.'",
    "unknown_opcode": "b'\\x80\\x02\\xff.'",
    "memo_get_missing": "b'\\x80\\x02h\\x05.'",
    "marks_without_end": "b'\\x80\\x02' + b'(' * 200000",
    "no_stop": "pickle.dumps({'epoch': 1})[:-1]",
}

MALFORMED_JSON = {
    "truncated": "b'{\"epoch\": 1, \"lr\": '",
    "trailing_comma": "b'{\"a\": [1, 2,]}'",
    "bad_token": "b'{\"a\": nope}'",
    "unclosed_nesting": "b'[' * 100000",
    "unterminated_string": "b'{\"a\": \"' + b'x' * 100000",
}

# Well-formed but built to hurt a careless walker: depth, width, repetition.
HOSTILE_BUT_VALID = {
    "deep.pkl": "b'\\x80\\x02' + b']' * 100000 + b'a' * 99999 + b'.'",
    "deep_dicts.pkl": "pickle.dumps(functools.reduce(lambda d, _: {'k': d}, range(400), 1))",
    "wide.pkl": "pickle.dumps({f'key{i}': i for i in range(100000)})",
    "checkpoint/deep.json": "b'[' * 100000 + b']' * 100000",
    "checkpoint/wide.json": "json.dumps({f'key{i}': i for i in range(100000)}).encode()",
}

RAW_WRITER = """
import functools, hashlib, json, pickle, random, sys
data = {expression}
with open(sys.argv[1], "wb") as f:
    f.write(data)
print(len(data), hashlib.sha256(data).hexdigest())
"""


def run_raw_writer(ckmon, work, expression, relative):
    """Writes the bytes of expression to relative, plainly and under ckmon run; checks
    the program saw no difference; returns (run, path)."""
    script = work / "raw.py"
    script.write_text(RAW_WRITER.format(expression=expression))
    plain_path, path = prepare(work, "plain", relative), prepare(work, "agent", relative)
    plain = run_plain([PYTHON, script, plain_path], cwd=work)
    assert plain.returncode == 0, plain.stderr
    run = ckmon.run(PYTHON, script, path)
    assert_same_behaviour(plain, plain_path, run, path)
    return run, path


def assert_flagged(run, path, fmt):
    record = run.only_record(path)
    assert record["format"] == fmt
    assert record["bytes"] == path.stat().st_size
    assert record["complete"] is False or record.get("errors"), record
    if "errors" in record:
        assert record["errors"] and all(isinstance(e, str) and e for e in record["errors"])


@pytest.mark.parametrize("name", sorted(MALFORMED_PICKLES))
def test_malformed_pickle(ckmon, work, name):
    run, path = run_raw_writer(ckmon, work, MALFORMED_PICKLES[name], "bad.pkl")
    assert_flagged(run, path, "pickle")


@pytest.mark.parametrize("name", sorted(MALFORMED_JSON))
def test_malformed_json(ckmon, work, name):
    run, path = run_raw_writer(ckmon, work, MALFORMED_JSON[name], "checkpoint/bad.json")
    assert_flagged(run, path, "json")


@pytest.mark.parametrize("relative", sorted(HOSTILE_BUT_VALID))
def test_hostile_but_valid(ckmon, work, relative):
    run, path = run_raw_writer(ckmon, work, HOSTILE_BUT_VALID[relative], relative)
    record = run.only_record(path)
    assert record["bytes"] == path.stat().st_size


EVIL = """
import os, pickle, sys
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
with open(sys.argv[1], "wb") as f:
    pickle.dump({"epoch": 1, "payload": Evil()}, f)
"""


def test_pickled_call_is_described_never_made(ckmon, work):
    script, path, marker = work / "evil.py", work / "evil.pkl", work / "PWNED"
    script.write_text(EVIL)
    run = ckmon.run(PYTHON, script, path, marker)
    assert run.returncode == 0, run.stderr
    inspected = subprocess.run(ckmon_args("inspect", path), cwd=work, env=clean_env(),
                               capture_output=True, text=True, timeout=60)
    assert not marker.exists(), "a pickled call was executed"
    [from_inspect] = parse_records(inspected.stdout)
    for record in (run.only_record(path), from_inspect):
        assert record["values"] == {"epoch": 1, "payload": "posix.system(...)"}, record
