"""test_tail.py — `ckmon tail` (the log as a table, -f following it) and `inspect` of directories.

The table is checked against ground truth computed by torch from the files themselves; `tail -f`
runs under a pseudo-terminal (Python's pty) while a job under `ckmon run` writes checkpoints one
at a time, and the log is then truncated and rotated under it. Alert, set and load records are
written by hand from the contract's schema.
"""
import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from ckmon_helpers import PYTHON, ckmon_args, clean_env, parse_records

ESC = "\x1b["

WRITER = r"""
import os, sys, time, torch
torch.manual_seed(0)
for epoch in (1, 2, 3):
    while not os.path.exists(f"go{epoch}"):
        time.sleep(0.02)
    w = torch.randn(8, 8)
    if epoch == 3:
        w[0, 0] = float("nan")
    torch.save({"epoch": epoch, "loss": 1.0 / epoch, "model": {"w": w}}, f"epoch_{epoch}.pt")
"""

ALERT = {"schema": 1, "event": "alert", "time": "2026-11-23T21:42:00.000000Z", "host": "h",
         "pid": 1, "program": "python3", "job": "train", "path": "/x/epoch_9.pt",
         "rule": "nonfinite", "severity": "critical", "subject": "model.w", "count": 1,
         "message": "model.w: 1 NaN in 64 elements read"}
SET = {"schema": 1, "event": "set", "time": "2026-11-23T21:42:00.000000Z", "host": "h",
       "job": "train", "path": "/x/step_500", "kind": "dcp", "files": 5, "bytes": 4096,
       "ranks": [0, 1], "seconds": 1.5, "complete": False,
       "missing": ["__1_0.distcp: 10 of 20 bytes"], "values": {"step": 500}}
LOAD = {"schema": 1, "event": "load", "time": "2026-11-23T21:42:00.000000Z", "host": "h",
        "pid": 2, "program": "python3", "job": "eval", "path": "/x/epoch_5.pt", "bytes": 823,
        "written": None, "unchanged": None}


def g(x):
    return f"{x:.6g}"


def spawn(args, cwd, **env):
    """args with a pseudo-terminal as stdin, stdout and stderr; returns (process, master fd)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                         env=clean_env(**env), close_fds=True)
    os.close(slave)
    return p, master


class Screen:
    def __init__(self, fd):
        self.fd, self.text = fd, ""

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never showed; the screen:\n{self.text}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.text += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:  # the process ended
                    pass
        return re.search(pattern, self.text)


def tail_text(work, *args, **env):
    p = subprocess.run(ckmon_args("tail", *args), cwd=work, env=clean_env(**env),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_tail_prints_records_with_their_statistics(work):
    import torch

    w = torch.linspace(-1, 2, 12).reshape(3, 4)
    b = torch.tensor([1.0, float("nan"), float("inf")] + [0.5] * 7)
    torch.save({"epoch": 7, "step": 700, "optim": {"param_groups": [{"lr": 0.003}]},
                "model": {"w": w, "b": b}}, work / "epoch_7.pt")
    inspected = subprocess.run(ckmon_args("inspect", work / "epoch_7.pt"), cwd=work,
                               env=clean_env(), capture_output=True, text=True, check=True)
    log = work / "ckmon.jsonl"
    log.write_text(inspected.stdout + "".join(json.dumps(r) + "\n" for r in (ALERT, SET, LOAD)))

    out = tail_text(work, "--log", log)
    assert ESC not in out  # not a terminal: no colour
    lines = out.splitlines()
    head = lines[0].split()
    assert head[:3] == ["epoch_7.pt", "torch", "ok"]  # relative to the working directory
    assert "step=700" in head and "epoch=7" in head and "lr=0.003" in head
    finite_b = b[torch.isfinite(b)].double()
    [w_line] = [l for l in lines if l.split()[0] == "model.w"]
    assert w_line.split() == ["model.w", "float32", "[3x4]",
                              "min", g(w.min().item()), "max", g(w.max().item()),
                              "mean", g(w.double().mean().item()),
                              "std", g(w.double().std(unbiased=False).item())]
    [b_line] = [l for l in lines if l.split()[0] == "model.b"]
    assert b_line.split()[3:] == ["min", g(finite_b.min().item()), "max", g(finite_b.max().item()),
                                  "mean", g(finite_b.mean().item()),
                                  "std", g(finite_b.std(unbiased=False).item()),
                                  "nan", "1", "inf", "1"]
    # the tensor with non-finite elements comes first
    assert lines.index(b_line) < lines.index(w_line)
    assert "! alert critical nonfinite: /x/epoch_9.pt — model.w: 1 NaN in 64 elements read" in lines
    [set_line] = [l for l in lines if l.startswith("/x/step_500")]
    assert set_line.split()[1:3] == ["set:dcp", "NO"] and "5 files, 2 ranks" in set_line
    assert "step=500" in set_line
    assert "    missing: __1_0.distcp: 10 of 20 bytes" in lines
    [load_line] = [l for l in lines if l.startswith("/x/epoch_5.pt")]
    assert load_line.split()[1] == "load" and "writer unknown" in load_line


def test_tail_colours_a_terminal_unless_no_color(work):
    log = work / "ckmon.jsonl"
    log.write_text(json.dumps(ALERT) + "\n")
    for env, coloured in (({}, True), ({"NO_COLOR": "1"}, False)):
        p, fd = spawn(ckmon_args("tail", "--log", log), work, **env)
        screen = Screen(fd)
        screen.wait_for("nonfinite.*\n")
        p.wait(timeout=30)
        os.close(fd)
        assert p.returncode == 0
        assert (ESC + "31") in screen.text if coloured else ESC not in screen.text


def test_tail_follows_a_job_and_a_truncated_and_rotated_log(work):
    log = work / "ckmon.jsonl"
    (work / "writer.py").write_text(WRITER)
    tail, fd = spawn(ckmon_args("tail", "-f", "--log", log), work)
    job = subprocess.Popen(ckmon_args("run", "-o", log, "--", PYTHON, "writer.py"),
                           cwd=work, env=clean_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    screen = Screen(fd)
    try:
        (work / "go1").touch()
        screen.wait_for(r"epoch_1\.pt +torch +ok .*epoch=1 +loss=1\b")
        assert "epoch_2.pt" not in screen.text
        (work / "go2").touch()
        screen.wait_for(r"epoch_2\.pt +torch +ok .*epoch=2 +loss=0\.5\b")
        # `> log` while the job runs: the next record is read from the new start
        time.sleep(0.5)
        log.write_text("")
        (work / "go3").touch()
        screen.wait_for(r"truncated")
        m = screen.wait_for(r"epoch_3\.pt +torch +ok .*\n.*model\.w.*nan 1 inf 0")
        assert ESC + "31" in m.group(0)  # the NaN count in red on a terminal
        # the collector's own alert record for it, one line
        screen.wait_for(r"! alert critical nonfinite: epoch_3\.pt")
        assert job.wait(timeout=60) == 0, job.stderr.read()
        # rotation: the log moves away and a new one starts
        os.rename(log, str(log) + ".1")
        log.write_text(json.dumps(ALERT) + "\n")
        screen.wait_for(r"replaced")
        screen.wait_for(r"alert critical nonfinite: /x/epoch_9\.pt")
        for name in ("epoch_1.pt", "epoch_2.pt", "epoch_3.pt"):  # each record shown once
            assert len(re.findall(rf"^{name} +torch", screen.text, re.M)) == 1
    finally:
        tail.kill()
        tail.wait()
        job.kill()
        job.wait()
        os.close(fd)


def make_tree(work):
    import numpy as np
    import torch

    (work / "out" / "sub" / "checkpoint-5").mkdir(parents=True)
    torch.save({"epoch": 1, "w": torch.ones(3)}, work / "out" / "a.pt")
    np.save(work / "out" / "sub" / "x.npy", np.arange(20.0))
    (work / "out" / "sub" / "notes.txt").write_text("not a checkpoint")
    (work / "out" / "sub" / "checkpoint-5" / "config.json").write_text('{"lr": 0.1}')
    os.symlink("..", work / "out" / "sub" / "loop")  # a link to a directory is not followed
    os.symlink("x.npy", work / "out" / "sub" / "y.npy")  # a link to a file is


def test_inspect_takes_directories(work):
    make_tree(work)
    out = work / "out"

    def paths(*args):
        p = subprocess.run(ckmon_args("inspect", *args), cwd=work, env=clean_env(),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return [os.path.relpath(r["path"], out) for r in parse_records(p.stdout)]

    assert paths(out) == ["a.pt", "sub/checkpoint-5/config.json", "sub/x.npy", "sub/y.npy"]
    assert paths("--all", out) == ["a.pt", "sub/checkpoint-5/config.json", "sub/notes.txt",
                                   "sub/x.npy", "sub/y.npy"]
    # a file named on the command line is inspected whatever its name
    assert paths(out / "sub" / "notes.txt") == ["sub/notes.txt"]


def test_inspect_pretty_prints_the_tail_table(work):
    import numpy as np

    make_tree(work)
    p = subprocess.run(ckmon_args("inspect", "--pretty", "out"), cwd=work, env=clean_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["out/a.pt", "torch", "ok"]
    x_line = lines[lines.index(next(l for l in lines if l.startswith("out/sub/x.npy "))) + 1]
    assert x_line.split()[:9] == ["x", "float64", "[20]", "min", "0", "max", "19", "mean", "9.5"]
    assert x_line.split()[10] == g(np.arange(20.0).std())


def test_tail_and_report_take_any_json_line(work):
    """A log line is not to be trusted: members of the wrong type, lines that are no record,
    a record cut short. tail and report show what they can and carry on."""
    log = work / "odd.jsonl"
    good = {"schema": 1, "event": "checkpoint", "time": "2026-11-23T21:42:00.000000Z",
            "path": "/x/good.pt", "format": "torch", "bytes": 10, "complete": True,
            "values": {"loss": 0.5}, "tensors": []}
    odd = [{"event": "checkpoint", "values": [1, 2], "tensors": {"name": 3}, "path": 7},
           {"event": "checkpoint", "values": {"loss": [1]}, "tensors": [{"shape": ["a", None],
            "name": None, "nan": "x"}], "alerts": {"a": 1}, "time": "2026-99-99T99:99:99Z"},
           {"event": 3, "path": None}, {"event": "alert", "rule": 5, "message": None},
           {"event": "set", "ranks": "x", "missing": [1, None]}, {"event": "load", "written": 1}]
    lines = [json.dumps(r) for r in odd] + ["not json", "[1, 2]", '{"event": "checkp']
    log.write_text("\n".join(lines + [json.dumps(good)]) + "\n")
    out = tail_text(work, "--log", log)
    assert out.splitlines()[-1].split()[:3] == ["/x/good.pt", "torch", "ok"]
    p = subprocess.run(ckmon_args("report", "--log", log, "-o", "odd.html"), cwd=work,
                       env=clean_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "3 lines that are not JSON records skipped" in p.stderr
    assert 'data-key="loss"' in (work / "odd.html").read_text()
