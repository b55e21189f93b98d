"""test_python_writers.py — CPython's pickle and json writers under `ckmon run`.

Each test writes a script that builds an object, saves it the way training code does and
prints its pid and the file's size; the test builds the same object itself, flattens it by
the contract's rules (expected.py) and compares the record field by field.
"""
import os

import pytest

from ckmon_helpers import check_record, is_python_name, namespace, python_script, strict_json
from expected import assert_findings, assert_values

ISSUE_STATE = """
class TrainingState:
    def __init__(self):
        self.epoch = 10
        self.learning_rate = 0.01
        self.weights = [0.1, 0.2, 0.3, 0.4, 0.5] + [0] * 95
state = TrainingState()
"""

# Everything the pickle walker must name: nesting, tuples, object state, OrderedDict,
# short and long numeric sequences, non-finite floats, None, bools, short and long (in
# bytes, not characters) strings, big ints, non-string keys, bytes, a memoised object.
RICH_STATE = r"""
import collections
class Box:
    def __init__(self):
        self.alpha = 1
        self.label = "box"
        self.inner = {"k": 2.5, "deep": [1, "two", None]}
shared = {"x": 1}
state = {
    "epoch": 3,
    "nested": {"a": {"b": {"c": 1.5}}, "flag": True, "off": False, "none": None},
    "pair": (1, 2.5),
    "mixed": ("x", 2, None, True),
    "obj": Box(),
    "ordered": collections.OrderedDict([("z", 1), ("a", 2.0)]),
    "short": [0.5, 1.5, 2.5],
    "eight": list(range(8)),
    "nine": list(range(9)),
    "floats": tuple(i * 0.25 - 1 for i in range(12)),
    "with_nonfinite": [1.0, 2.0, 3.5, -4.0, 0.0, 6.0, 7.0, 8.0,
                       float("nan"), float("inf"), float("-inf"), 2.0],
    "all_nonfinite": [float("nan")] * 9,
    "long_list": [((i * 7919) % 1000) / 7.0 for i in range(3000)],
    "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"),
    "negative_zero": -0.0, "tiny": 5e-324, "huge": 1.7976931348623157e308,
    "s256": "x" * 256, "s257": "y" * 257, "utf8_256": "\u00e9" * 128, "utf8_258": "\u00e9" * 129,
    "unicode": "h\u00e9llo w\u00f6rld \u2713", "quote": 'say "hi"\n\ttab\\',
    "blob": b"bytes are left out",
    "big": 2**100 + 1, "neg_big": -(2**70), "i64_min": -(2**63), "i64_max": 2**63 - 1,
    "large": 2**40 + 1, "negative": -7, "zero": 0,
    3: "int key", 1.5: "float key", None: "none key", True: "bool key",
    "empty_list": [], "empty_dict": {}, "empty_tuple": (),
    "list_of_dicts": [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.01}],
    "shared": [shared, shared],
}
"""

NUMPY_STATE = """
import numpy as np
state = {
    "w": np.arange(12, dtype=np.float32).reshape(3, 4) / np.float32(7),
    "idx": np.arange(-5, 20, dtype=np.int64),
    "b": np.array([0.5, np.nan, np.inf, -1.0]),
    "step": 12,
}
"""

JSON_STATE = """
state = {
    "epoch": 2,
    "model": {"layers": [{"w": [i / 3 for i in range(12)], "b": 0.5},
                         {"w": [1, 2, 3], "b": -0.25}]},
    "lr": float("nan"), "peak": float("inf"), "trough": float("-inf"),
    "flags": [True, False, None], "name": "run-7", "notes": "n" * 300,
    "counts": list(range(10)), "big": 2**70, "empty": {}, "nothing": [],
}
"""


def save_script(state_source, save, path):
    """A script that defines state, saves it to path with the statement save, and reports."""
    return state_source + f"""
path = os.path.abspath({str(path)!r})
os.makedirs(os.path.dirname(path), exist_ok=True)
{save}
report(path=path, size=os.path.getsize(path))
"""


def run_saved(ckmon, work, state_source, save, path, fmt, **run_options):
    """Runs a save script under ckmon run; returns (run, record) after the common checks."""
    run = ckmon.run(*python_script(work, save_script(state_source, save, path)), **run_options)
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt=fmt, size=out["size"], pid=out["pid"],
                 job=run_options.get("job"))
    assert record["writes"] >= 1
    return run, record


def test_issue_example_pickle_deleted_after_reading(ckmon, work):
    script = ISSUE_STATE + """
path = os.path.abspath("checkpoint.pkl")
with open(path, "wb") as f:
    pickle.dump(state, f)
size = os.path.getsize(path)
with open(path, "rb") as f:
    back = pickle.load(f)
os.remove(path)
report(path=path, size=size, epoch=back.epoch)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    assert out["epoch"] == 10 and not os.path.exists(out["path"])
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="pickle", size=out["size"], pid=out["pid"])
    assert is_python_name(record["program"]), record["program"]
    assert record["job"] == record["program"]
    assert record["writes"] >= 1
    assert record["values"]["epoch"] == 10 and record["values"]["learning_rate"] == 0.01
    weights = [t for t in record["tensors"] if t["name"] == "weights"]
    assert len(weights) == 1
    assert weights[0]["dtype"] == "float64" and weights[0]["shape"] == [100]
    assert weights[0]["min"] == 0 and weights[0]["max"] == 0.5
    assert weights[0]["head"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0, 0, 0]
    assert_findings(record, namespace(ISSUE_STATE)["state"])


@pytest.mark.parametrize("where, paths", [
    ("run/checkpoint-10/checkpoint.json", ()),  # the default *checkpoint*/*.json glob
    ("run/state/checkpoint.json", ("*/state/*.json",)),
])
def test_issue_example_json(ckmon, work, where, paths):
    save = "with open(path, 'w') as f:\n    json.dump(state.__dict__, f)"
    _, record = run_saved(ckmon, work, ISSUE_STATE, save, work / where, "json", paths=paths)
    assert_findings(record, vars(namespace(ISSUE_STATE)["state"]))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_pickle_protocols(ckmon, work, protocol):
    save = f"with open(path, 'wb') as f:\n    pickle.dump(state, f, protocol={protocol})"
    _, record = run_saved(ckmon, work, RICH_STATE, save, work / "rich.pkl", "pickle")
    assert_findings(record, namespace(RICH_STATE)["state"])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_in_pickle(ckmon, work, protocol):
    save = f"with open(path, 'wb') as f:\n    pickle.dump(state, f, protocol={protocol})"
    _, record = run_saved(ckmon, work, NUMPY_STATE, save, work / "arrays.pkl", "pickle")
    assert_findings(record, namespace(NUMPY_STATE)["state"])


def test_json_dump_nested_and_nonfinite(ckmon, work):
    save = "with open(path, 'w') as f:\n    json.dump(state, f, indent=1)"
    _, record = run_saved(ckmon, work, JSON_STATE, save, work / "checkpoint-2" / "state.json",
                          "json")
    assert_findings(record, namespace(JSON_STATE)["state"])


def test_top_level_scalar_is_named_value(ckmon, work):
    save = "with open(path, 'wb') as f:\n    pickle.dump(0.5, f)"
    _, record = run_saved(ckmon, work, "", save, work / "scalar.pkl", "pickle")
    assert_findings(record, 0.5)


def test_many_saves_one_record_each(ckmon, work):
    script = """
sizes = {}
for epoch in range(5):
    path = os.path.abspath(f"epoch_{epoch}.pkl")
    with open(path, "wb") as f:
        pickle.dump({"epoch": epoch, "loss": 1.0 / (epoch + 1)}, f)
    sizes[path] = os.path.getsize(path)
report(sizes=sizes)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    assert len(run.records) == 5
    for epoch, (path, size) in enumerate(out["sizes"].items()):
        record = run.only_record(path)
        check_record(record, run, path=path, fmt="pickle", size=size, pid=out["pid"])
        assert_values(record["values"], {"epoch": epoch, "loss": 1.0 / (epoch + 1)})


# ---- renames ------------------------------------------------------------------------

REPLACE = """
final, tmp = os.path.abspath({final!r}), os.path.abspath({tmp!r})
with open(tmp, "wb") as f:
    pickle.dump({{"epoch": 4, "loss": 0.25}}, f)
time.sleep({delay})
os.replace(tmp, final)
report(final=final, tmp=tmp, size=os.path.getsize(final))
"""


@pytest.mark.parametrize("tmp", [
    "state.pkl.tmp",  # not a checkpoint name until the rename
    "tmp-state.pkl",  # a checkpoint name from the start
])
def test_replace_after_close_reports_final_path(ckmon, work, tmp):
    script = REPLACE.format(final="state.pkl", tmp=tmp, delay=0)
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["final"])
    check_record(record, run, path=out["final"], written_as=out["tmp"], fmt="pickle",
                 size=out["size"], pid=out["pid"])
    assert_values(record["values"], {"epoch": 4, "loss": 0.25})
    assert len(run.records) == 1
    assert record["parsed"] == "stream"  # followed for its bytes (docs/agent.md)


def test_rename_later_than_one_second_keeps_written_path(ckmon, work):
    script = REPLACE.format(final="late.pkl", tmp="early.pkl", delay=1.5)
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["tmp"])
    check_record(record, run, path=out["tmp"], fmt="pickle", size=out["size"], pid=out["pid"])


def test_rename_while_open(ckmon, work):
    script = """
final, tmp = os.path.abspath("open.pkl"), os.path.abspath("open.pkl.part")
with open(tmp, "wb") as f:
    pickle.dump({"epoch": 9}, f)
    f.flush()
    os.rename(tmp, final)
report(final=final, tmp=tmp, size=os.path.getsize(final))
"""
    run = ckmon.run(*python_script(work, script), paths=["*.pkl", "*.part"])
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["final"])
    check_record(record, run, path=out["final"], written_as=out["tmp"], fmt="pickle",
                 size=out["size"], pid=out["pid"])
    assert_values(record["values"], {"epoch": 9})


def test_only_files_written_under_a_checkpoint_name_are_reported(ckmon, work):
    script = """
for name, final in [("notes.txt", "notes.dat"), ("config.json", "settings.json")]:
    with open(name, "w") as f:
        json.dump({"epoch": 1}, f)
    os.replace(name, final)
with open("data.csv", "w") as f:
    f.write("a,b\\n1,2\\n")
with open("kept.pkl", "wb") as f:
    pickle.dump(1, f)
with open("kept.pkl", "rb") as f:
    pickle.load(f)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    assert [r["path"] for r in run.records] == [str(work / "kept.pkl")]


# ---- exits ----------------------------------------------------------------------------

SAVE_THEN = """
path = os.path.abspath("state.pkl")
with open(path, "wb") as f:
    pickle.dump({{"epoch": 1}}, f)
report(path=path, size=os.path.getsize(path))
{then}
"""


@pytest.mark.parametrize("then, status", [
    ("sys.exit(3)", 3),
    ("os._exit(4)", 4),
    ("os.kill(os.getpid(), signal.SIGKILL)", 137),
    ("os.kill(os.getpid(), signal.SIGTERM)", 143),
])
def test_exit_status_passes_through(ckmon, work, then, status):
    run = ckmon.run(*python_script(work, SAVE_THEN.format(then=then)))
    assert run.returncode == status, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="pickle", size=out["size"], pid=out["pid"])


TORN = """
path = os.path.abspath({name!r})
os.makedirs(os.path.dirname(path), exist_ok=True)
data = {data}
f = open(path, "wb")
f.write(data[: len(data) // 2])
f.flush()
report(path=path, size=os.path.getsize(path))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_while_writing_pickle_is_incomplete(ckmon, work):
    data = "pickle.dumps({'epoch': 1, 'weights': list(range(5000))})"
    run = ckmon.run(*python_script(work, TORN.format(name="torn.pkl", data=data)))
    assert run.returncode == 137
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="pickle", size=out["size"], pid=out["pid"],
                 complete=False)
    assert record["parsed"] == "file"  # nothing found before the kill: parsed from disk


def test_killed_while_writing_json_keeps_what_was_parsed(ckmon, work):
    data = "json.dumps({'epoch': 5, 'lr': 0.1, 'weights': list(range(5000))}).encode()"
    run = ckmon.run(*python_script(work, TORN.format(name="checkpoint-5/torn.json", data=data)))
    assert run.returncode == 137
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="json", size=out["size"], pid=out["pid"],
                 complete=False)
    assert record["values"].get("epoch") == 5 and record["values"].get("lr") == 0.1
    assert record["parsed"] == "file"  # JSON is parsed at its end: the collector read the disk


def test_fsync_tells_the_collector_before_a_kill(ckmon, work):
    # The first write decides the format (one progress message, writes 1); without the
    # fsync wrapper the second write would wait for the next progress interval.
    script = """
path = os.path.abspath("synced.pkl")
data = pickle.dumps({'epoch': 1, 'weights': list(range(5000))})
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, data[:100])
os.write(fd, data[100:200])
os.fsync(fd)
report(path=path, size=os.path.getsize(path))
os.kill(os.getpid(), signal.SIGKILL)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 137
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="pickle", size=out["size"], pid=out["pid"],
                 complete=False)
    assert record["parsed"] == "file"  # nothing found before the kill: parsed from disk
    assert record["writes"] == 2


# ---- options --------------------------------------------------------------------------

@pytest.mark.parametrize("keys, values, tensors", [
    (["epoch"], {"epoch": 10}, []),
    (["weights", "learning_*"], {"learning_rate": 0.01}, ["weights"]),
    (["nothing*"], {}, []),
])
def test_keys_filter(ckmon, work, keys, values, tensors):
    save = "with open(path, 'wb') as f:\n    pickle.dump(state, f)"
    _, record = run_saved(ckmon, work, ISSUE_STATE, save, work / "state.pkl", "pickle",
                          keys=keys)
    assert_values(record["values"], values)
    assert [t["name"] for t in record["tensors"]] == tensors


def test_job_label(ckmon, work):
    save = "with open(path, 'wb') as f:\n    pickle.dump(state, f)"
    _, record = run_saved(ckmon, work, ISSUE_STATE, save, work / "state.pkl", "pickle",
                          job="nightly-7")
    assert record["job"] == "nightly-7"


@pytest.mark.parametrize("env, rank", [
    ({"RANK": "3"}, 3),
    ({"SLURM_PROCID": "5"}, 5),
    ({"OMPI_COMM_WORLD_RANK": "2"}, 2),
    ({"PMI_RANK": "9"}, 9),
])
def test_rank_from_launcher(ckmon, work, env, rank):
    save = "with open(path, 'wb') as f:\n    pickle.dump({'epoch': 1}, f)"
    script = python_script(work, save_script("", save, work / "r.pkl"))
    run = ckmon.run(*script, env=env)
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="pickle", size=out["size"], rank=rank)


def test_log_to_stdout(ckmon, work):
    script = """
with open("out.pkl", "wb") as f:
    pickle.dump({"epoch": 2}, f)
print("the program's own line", flush=True)
"""
    run = ckmon.run(*python_script(work, script), log="-")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "the program's own line" in lines
    records = [strict_json(line) for line in lines if line != "the program's own line"]
    assert [r["path"] for r in records] == [str(work / "out.pkl")]
    assert_values(records[0]["values"], {"epoch": 2})
    assert not (work / "-").exists()


def test_forked_child_reports_its_own_file(ckmon, work):
    script = """
child = os.fork()
name = "child.pkl" if child == 0 else "parent.pkl"
with open(name, "wb") as f:
    pickle.dump({"who": name}, f)
if child == 0:
    report(path=os.path.abspath(name), size=os.path.getsize(name))
    os._exit(0)
os.waitpid(child, 0)
report(path=os.path.abspath(name), size=os.path.getsize(name))
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    reports = [strict_json(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert len(reports) == 2 and len(run.records) == 2
    for out in reports:
        record = run.only_record(out["path"])
        check_record(record, run, path=out["path"], fmt="pickle", size=out["size"],
                     pid=out["pid"])
        assert_values(record["values"], {"who": os.path.basename(out["path"])})
