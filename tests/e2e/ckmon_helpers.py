"""ckmon_helpers.py — running programs under ckmon and checking the records they leave.

Every end-to-end test runs a real program three possible ways: plainly, under `ckmon run`,
or with LD_PRELOAD against a collector started with `ckmon collect`. The helpers here do
each of those from a clean environment (no CKMON_* or launcher rank variables leak in from
the caller) inside the test's own directory, and read the JSONL log strictly: a record that
is not valid JSON (NaN, Infinity) fails the test.
"""
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / os.environ.get("CKMON_TEST_BUILD", "build")  # make's BUILD (SANITIZE=1)
CKMON = BUILD / "ckmon"
AGENT = BUILD / "libckmon.so"
PROGRAMS = BUILD / "programs"
PYTHON = "/usr/bin/python3"

RANK_VARIABLES = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
TIME_FORMAT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
REQUIRED_FIELDS = (
    "schema", "event", "time", "host", "pid", "program", "job", "path", "format",
    "bytes", "writes", "seconds", "complete", "values", "tensors",
)
TIMEOUT = 120


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CKMON_") and k not in RANK_VARIABLES and k != "LD_PRELOAD"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def strict_json(line):
    def refuse(name):
        raise ValueError(f"not JSON: {name} in {line!r}")

    return json.loads(line, parse_constant=refuse)


def parse_lines(text):
    return [strict_json(line) for line in text.splitlines() if line.strip()]


def parse_records(text):
    """Every record but alerts, which follow the checkpoints they are about (parse_alerts),
    sets, which follow the files they consist of (parse_sets), and loads (parse_loads)."""
    return [r for r in parse_lines(text) if r.get("event") not in ("alert", "set", "load")]


def parse_loads(text):
    return [r for r in parse_lines(text) if r.get("event") == "load"]


def parse_sets(text):
    return [r for r in parse_lines(text) if r.get("event") == "set"]


def parse_alerts(text):
    return [r for r in parse_lines(text) if r.get("event") == "alert"]


def read_log(path):
    path = Path(path)
    return parse_records(path.read_text()) if path.exists() else []


def read_alerts(path):
    path = Path(path)
    return parse_alerts(path.read_text()) if path.exists() else []


def read_loads(path):
    path = Path(path)
    return parse_loads(path.read_text()) if path.exists() else []


def read_sets(path):
    path = Path(path)
    return parse_sets(path.read_text()) if path.exists() else []


def now():
    return dt.datetime.now(dt.timezone.utc)


def program(name):
    path = PROGRAMS / name
    assert path.exists(), f"{path} is missing: run `make e2e` (it builds tests/programs)"
    return str(path)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    records: list
    started: dt.datetime
    finished: dt.datetime

    def last_json(self):
        """The report a writer script prints as its last stdout line."""
        lines = [l for l in self.stdout.splitlines() if l.startswith("{")]
        assert lines, f"the program printed no report; stderr:\n{self.stderr}"
        return json.loads(lines[-1])

    def records_for(self, path):
        return [r for r in self.records if r.get("path") == str(path)]

    def only_record(self, path):
        found = self.records_for(path)
        assert len(found) == 1, (
            f"expected one record for {path}, got {len(found)}; all records: "
            f"{json.dumps(self.records, indent=1)}\nstderr:\n{self.stderr}")
        return found[0]


def freeze(process):
    """SIGSTOP, returning once the process is stopped: the signal takes effect
    asynchronously, and a busy machine can let a collector accept one more connection
    after kill() returned, freeing a place in a backlog a test has just filled."""
    process.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 10
    stat = Path(f"/proc/{process.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
        assert time.monotonic() < deadline, "the process did not stop within 10 s of SIGSTOP"
        time.sleep(0.01)


def run_plain(command, cwd, env=None, timeout=TIMEOUT):
    started = now()
    p = subprocess.run([str(c) for c in command], cwd=cwd, env=env or clean_env(),
                       capture_output=True, text=True, timeout=timeout)
    return Run(p.returncode, p.stdout, p.stderr, [], started, now())


def run_preloaded(command, cwd, socket_path, paths=(), timeout=TIMEOUT, **env):
    extra = {"LD_PRELOAD": AGENT, "CKMON_SOCKET": socket_path, **env}
    if paths:
        extra["CKMON_PATHS"] = ":".join(paths)
    return run_plain(command, cwd, clean_env(**extra), timeout)


def ckmon_args(*args):
    assert CKMON.exists() and AGENT.exists(), "build/ckmon or build/libckmon.so missing: run make"
    return [str(CKMON)] + [str(a) for a in args]


class Ckmon:
    """`ckmon run` inside one test directory."""

    def __init__(self, work):
        self.work = work

    def run(self, *command, paths=(), keys=(), job=None, log=None, options=(), env=None,
            cwd=None, timeout=TIMEOUT):
        log = self.work / "ckmon.jsonl" if log is None else log
        args = ["run", "-o", log]
        for glob in paths:
            args += ["-p", glob]
        for key in keys:
            args += ["--keys", key]
        if job is not None:
            args += ["--job", job]
        args += list(options) + ["--"] + list(command)
        started = now()
        p = subprocess.run(ckmon_args(*args), cwd=cwd or self.work,
                           env=clean_env(**(env or {})), capture_output=True, text=True,
                           timeout=timeout)
        records = [] if str(log) == "-" else read_log(log)  # "-": the caller parses stdout
        return Run(p.returncode, p.stdout, p.stderr, records, started, now())


class Collector:
    """A `ckmon collect` in the background, for programs run with a bare LD_PRELOAD."""

    def __init__(self, work, options=()):
        self.socket = work / "c.sock"
        self.log = work / "collected.jsonl"
        self.process = subprocess.Popen(
            ckmon_args("collect", "--socket", self.socket, "--log", self.log, *options),
            cwd=work, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert self.process.poll() is None, (
                f"ckmon collect exited {self.process.returncode}: {self.process.stderr.read()}")
            assert time.monotonic() < deadline, "ckmon collect did not create its socket in 10 s"
            time.sleep(0.02)

    def run(self, command, cwd, paths=(), **env):
        return run_preloaded(command, cwd, self.socket, paths, **env)

    def stop(self):
        """SIGTERM (the collector drains and writes everything); returns the records
        (and keeps what it said on stderr in self.stderr)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("ckmon collect did not exit within 30 s of SIGTERM")
        assert self.process.returncode == 0, f"collect exited {self.process.returncode}: {err}"
        self.stderr = err
        return read_log(self.log)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def parse_time(text):
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def check_record(record, run, *, path, fmt, size, pid=None, program=None, job=None,
                 written_as=None, complete=True, rank=None):
    """The fields every record must have, against what the test knows independently.
    Findings (values, tensors) are the caller's to check."""
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    assert not missing, f"record lacks {missing}: {record}"
    assert record["schema"] == 1 and record["event"] == "checkpoint"
    assert TIME_FORMAT.fullmatch(record["time"]), record["time"]
    closed = parse_time(record["time"])
    slack = dt.timedelta(seconds=1)
    assert run.started - slack <= closed <= run.finished + slack, (record["time"], run.started)
    assert record["host"] == socket.gethostname()
    assert type(record["pid"]) is int and record["pid"] > 0
    if pid is not None:
        assert record["pid"] == pid
    if program is not None:
        assert record["program"] == program
    if job is not None:
        assert record["job"] == job
    assert record["path"] == str(path)
    if written_as is None:
        assert "written_as" not in record, record
    else:
        assert record.get("written_as") == str(written_as), record
    assert record["format"] == fmt, record
    assert type(record["bytes"]) is int and record["bytes"] == size, (record["bytes"], size)
    assert type(record["writes"]) is int and record["writes"] >= 0
    assert isinstance(record["seconds"], (int, float)) and record["seconds"] >= 0
    assert record["complete"] is complete, record
    if complete:
        assert "errors" not in record, record["errors"]
    assert isinstance(record["values"], dict) and isinstance(record["tensors"], list)
    if rank is None:
        assert "rank" not in record, record
    else:
        assert record.get("rank") == rank


def is_python_name(name):
    """The interpreter's base name: python3 or python3.11."""
    return re.fullmatch(r"python3(\.\d+)?", name) is not None


WRITER_PREAMBLE = """\
import collections, json, math, os, pickle, signal, sys, time
def report(**fields):
    print(json.dumps(dict(pid=os.getpid(), **fields)), flush=True)
"""


def python_script(work, body, name="writer.py"):
    """A writer script in the test directory, run with /usr/bin/python3."""
    script = work / name
    script.write_text(WRITER_PREAMBLE + body)
    return [PYTHON, str(script)]


def namespace(source):
    """Executes source (class and object definitions shared with a writer script) and
    returns its globals, so the test has the same objects the script writes."""
    ns = {"__name__": "expected_state"}
    exec(compile(source, "<state>", "exec"), ns)
    return ns
