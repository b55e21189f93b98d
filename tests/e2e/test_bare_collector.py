"""test_bare_collector.py — the direct way: `ckmon collect` plus LD_PRELOAD, no `ckmon run`.

CONTRACT.md: `ckmon collect --socket S --log L &` then `LD_PRELOAD=... CKMON_SOCKET=S
CKMON_PATHS=... prog`. One collector serves many programs, one after another and at the same
time; SIGTERM makes it drain and write everything before it exits.
"""
import subprocess

from ckmon_helpers import (
    AGENT, PYTHON, check_record, clean_env, is_python_name, program, python_script, run_plain,
    strict_json,
)
from expected import assert_values

SAVE = """
path = os.path.abspath(sys.argv[1])
with open(path, "wb") as f:
    pickle.dump({"epoch": int(sys.argv[2]), "loss": 1 / int(sys.argv[2])}, f)
report(path=path, size=os.path.getsize(path))
"""


def test_python_and_c_programs_one_collector(collector, work):
    save = python_script(work, SAVE)
    python_run = collector.run(save + ["state.dat", "4"], work, paths=["*.dat"])
    (work / "checkpoint").mkdir()
    c_path = work / "checkpoint" / "state.json"
    c_run = collector.run([program("json_writer"), "writev", c_path], work)
    records = collector.stop()
    assert python_run.returncode == 0 and c_run.returncode == 0, python_run.stderr + c_run.stderr

    out = python_run.last_json()
    [py_record] = [r for r in records if r["path"] == out["path"]]
    check_record(py_record, python_run, path=out["path"], fmt="pickle", size=out["size"],
                 pid=out["pid"])
    assert is_python_name(py_record["program"]) and py_record["job"] == py_record["program"]
    assert_values(py_record["values"], {"epoch": 4, "loss": 0.25})

    [c_record] = [r for r in records if r["path"] == str(c_path)]
    check_record(c_record, c_run, path=c_path, fmt="json", size=c_path.stat().st_size,
                 program="json_writer", job="json_writer")
    assert len(records) == 2


def test_concurrent_programs(collector, work):
    save = python_script(work, SAVE)
    env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=collector.socket, CKMON_JOB="sweep")
    writers = [subprocess.Popen([*save, f"run{i}.pkl", str(i + 1)], cwd=work, env=env,
                                stdout=subprocess.PIPE, text=True) for i in range(6)]
    reports = [strict_json(w.communicate(timeout=60)[0].splitlines()[-1]) for w in writers]
    assert all(w.returncode == 0 for w in writers)
    records = collector.stop()
    assert sorted(r["path"] for r in records) == sorted(out["path"] for out in reports)
    for i, out in enumerate(reports):
        [record] = [r for r in records if r["path"] == out["path"]]
        assert record["pid"] == out["pid"] and record["job"] == "sweep"
        assert record["bytes"] == out["size"] and record["complete"] is True
        assert_values(record["values"], {"epoch": i + 1, "loss": 1 / (i + 1)})


def test_agent_prints_nothing(collector, work):
    script = python_script(work, SAVE)
    plain = run_plain(script + ["plain.pkl", "2"], work)
    preloaded = collector.run(script + ["agent.pkl", "2"], work)
    assert preloaded.returncode == plain.returncode == 0
    assert preloaded.stderr == plain.stderr == ""
    assert len(preloaded.stdout.splitlines()) == len(plain.stdout.splitlines()) == 1
    assert [r["path"] for r in collector.stop()] == [str(work / "agent.pkl")]


def test_collector_outlives_its_programs(collector, work):
    """A program that exits (or dies) does not stop the collector serving the next one."""
    kill = [PYTHON, "-c", "import os, pickle, signal\n"
            "f = open('torn.pkl', 'wb'); f.write(b'\\x80\\x04'); f.flush()\n"
            "os.kill(os.getpid(), signal.SIGKILL)"]
    died = collector.run(kill, work)
    assert died.returncode == -9
    after = collector.run(python_script(work, SAVE) + ["after.pkl", "1"], work)
    assert after.returncode == 0, after.stderr
    assert collector.process.poll() is None
    records = {r["path"]: r for r in collector.stop()}
    assert records[str(work / "torn.pkl")]["complete"] is False
    assert records[str(work / "after.pkl")]["complete"] is True
