"""test_cli.py — the ckmon command line: help, version, errors, environment, inspect.

Errors must be one line naming the problem (CONTRACT.md "Errors"); bad flags exit 2, as
usage errors do in Unix tools. `ckmon inspect` runs the agent's parsers over finished files
and must find what the streaming record found for the same bytes.
"""
import datetime as dt
import os
import re
import subprocess

import pytest

from ckmon_helpers import (
    PYTHON, Run, check_record, ckmon_args, clean_env, namespace, now, parse_records,
    python_script, read_log,
)
from expected import assert_findings, tensor_mismatches

STATE = """
state = {
    "epoch": 12,
    "optim": {"param_groups": [{"lr": 0.001, "betas": (0.9, 0.999)}], "step": 1200},
    "weights": [((i * 37) % 101) / 50.0 - 1 for i in range(64)],
    "loss": float("nan"),
    "tag": "inspect-me",
}
"""


def cli(*args, cwd=None, env=None, timeout=60):
    return subprocess.run(ckmon_args(*args), cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def one_line(text):
    text = text.strip()
    assert text and "\n" not in text, f"expected a one-line message, got {text!r}"
    return text


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["collect", "--help"],
                                  ["inspect", "--help"], ["doctor", "--help"]])
def test_help(args):
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    assert "usage" in p.stdout.lower()


def test_top_level_help_lists_every_command():
    out = cli("--help").stdout
    for command in ("run", "collect", "inspect", "doctor"):
        assert re.search(rf"\b{command}\b", out), command


def test_run_help_lists_the_contract_options():
    out = cli("run", "--help").stdout
    for option in ("--paths", "--log", "--sink", "--sample", "--keys", "--socket", "--job",
                   "--state", "--flush-timeout"):
        assert option in out, option


def test_version():
    p = cli("--version")
    assert p.returncode == 0, p.stderr
    assert re.search(r"\d+\.\d+\.\d+", p.stdout), p.stdout


@pytest.mark.parametrize("args, named", [
    (["run", "--no-such-flag", "--", "true"], "--no-such-flag"),
    (["--no-such-flag"], "--no-such-flag"),
    (["collect", "--bogus"], "--bogus"),
    (["run", "--sample", "abc", "--", "true"], "abc"),
    (["run", "--sink", "carrier-pigeon=http://127.0.0.1:9/", "--", "true"], "carrier-pigeon"),
    (["run", "-o"], "-o"),
])
def test_bad_flag_exits_2_with_one_line(work, args, named):
    p = cli(*args, cwd=work)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert named in one_line(p.stderr)


def test_run_without_a_command_is_a_usage_error(work):
    p = cli("run", "-o", work / "log.jsonl", cwd=work)
    assert p.returncode == 2
    one_line(p.stderr)


def test_unknown_subcommand(work):
    p = cli("frobnicate", cwd=work)
    assert p.returncode != 0
    assert "frobnicate" in one_line(p.stderr)


@pytest.mark.parametrize("command", ["/nonexistent/bin/trainer", "no-such-program-ckmon"])
def test_missing_program(work, command):
    p = cli("run", "-o", work / "log.jsonl", "--", command, cwd=work)
    assert p.returncode != 0
    assert command in one_line(p.stderr)


def test_unwritable_log(work):
    log = "/nonexistent/dir/x.jsonl"
    p = cli("run", "-o", log, "--", "true", cwd=work)
    assert p.returncode != 0
    assert log in one_line(p.stderr)


def test_collect_unwritable_log(work):
    log = "/nonexistent/dir/x.jsonl"
    p = cli("collect", "--socket", work / "c.sock", "--log", log, cwd=work, timeout=20)
    assert p.returncode != 0
    assert log in one_line(p.stderr)


def test_collect_unreachable_socket(work):
    sock = "/nonexistent/dir/c.sock"
    p = cli("collect", "--socket", sock, "--log", work / "log.jsonl", cwd=work, timeout=20)
    assert p.returncode != 0
    assert sock in one_line(p.stderr)


SAVE = STATE + """
with open("state.pkl", "wb") as f:
    pickle.dump(state, f)
report(path=os.path.abspath("state.pkl"), size=os.path.getsize("state.pkl"))
"""


def test_default_log_is_ckmon_jsonl_in_the_working_directory(work):
    p = cli("run", "--", *python_script(work, SAVE), cwd=work)
    assert p.returncode == 0, p.stderr
    records = read_log(work / "ckmon.jsonl")
    assert [r["path"] for r in records] == [str(work / "state.pkl")]


def test_environment_variables(work):
    script = """
with open("weights.dat", "wb") as f:
    pickle.dump({"epoch": 3, "lr": 0.5}, f)
"""
    log = work / "env.jsonl"
    env = clean_env(CKMON_LOG=log, CKMON_PATHS="*.nothing:*.dat", CKMON_KEYS="lr",
                    CKMON_JOB="from-env")
    p = cli("run", "--", *python_script(work, script), cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    records = read_log(log)
    assert [r["path"] for r in records] == [str(work / "weights.dat")]
    assert records[0]["job"] == "from-env"
    assert records[0]["values"] == {"lr": 0.5}


def test_flag_wins_over_environment(work):
    log = work / "flag.jsonl"
    env = clean_env(CKMON_JOB="from-env", CKMON_LOG=work / "env.jsonl")
    p = cli("run", "--job", "from-flag", "-o", log, "--", *python_script(work, SAVE),
            cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    assert not (work / "env.jsonl").exists()
    assert [r["job"] for r in read_log(log)] == ["from-flag"]


def assert_same_findings(inspected, streamed):
    assert inspected["values"] == streamed["values"]
    assert [t["name"] for t in inspected["tensors"]] == [t["name"] for t in streamed["tensors"]]
    for a, b in zip(inspected["tensors"], streamed["tensors"]):
        scale = max(abs(b["min"] or 0), abs(b["max"] or 0))
        assert not tensor_mismatches(a, dict(b, scale=scale)), (a, b)


def recent_window():
    """inspect's time is the file's modification time: any moment of the last minutes."""
    return Run(0, "", "", [], now() - dt.timedelta(minutes=10), now())


def test_inspect_matches_the_streaming_record(ckmon, work):
    script = STATE + """
os.makedirs("checkpoint-12", exist_ok=True)
with open("state.pkl", "wb") as f:
    pickle.dump(state, f)
with open("checkpoint-12/state.json", "w") as f:
    json.dump(state, f)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    files = [work / "state.pkl", work / "checkpoint-12" / "state.json"]
    p = cli("inspect", *files, cwd=work)
    assert p.returncode == 0, p.stderr
    inspected = parse_records(p.stdout)
    assert [r["path"] for r in inspected] == [str(f) for f in files]
    state = namespace(STATE)["state"]
    for record, path, fmt in zip(inspected, files, ["pickle", "json"]):
        check_record(record, recent_window(), path=path, fmt=fmt, size=os.path.getsize(path))
        assert_findings(record, state)
        assert_same_findings(record, run.only_record(path))


def test_inspect_runs_without_a_collector(work):
    path = work / "plain.pkl"
    write = "import pickle, sys; pickle.dump({'a': 1}, open(sys.argv[1], 'wb'))"
    subprocess.run([PYTHON, "-c", write, path], check=True, env=clean_env())
    p = cli("inspect", path, cwd=work)
    assert p.returncode == 0, p.stderr
    [record] = parse_records(p.stdout)
    check_record(record, recent_window(), path=path, fmt="pickle", size=os.path.getsize(path))
    assert record["values"] == {"a": 1}
