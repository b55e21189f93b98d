"""test_alerts.py — verdicts on checkpoints (docs/alerts.md): alert records, the alert lines
and summary of `ckmon run`, --fail-on, --on-alert, user rules and `ckmon last-good`.

The writers are real training loops (torch, numpy, pickle). What each rule must find is
known independently: the test puts the NaN into one named tensor, freezes one layer, kills
the writer in the middle of a save, or changes the arrays between two runs.
"""
import json
import os
import signal
import subprocess

import pytest

from ckmon_helpers import (
    ckmon_args, clean_env, parse_alerts, parse_lines, parse_records, python_script, read_alerts,
    read_log,
)

TRAIN = """
import torch
log, steps, nan_at, sync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
if os.environ.get("FREEZE") == "1":
    model[0].requires_grad_(False)
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)


def recorded(path):
    try:
        with open(log) as f:
            return any(json.loads(line).get("path") == path for line in f if line.strip())
    except FileNotFoundError:
        return False


for step in range(1, steps + 1):
    x, y = torch.randn(32, 64), torch.randn(32, 4)
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step == nan_at:
        with torch.no_grad():
            model[2].weight[0, :3] = float("nan")
    path = os.path.abspath(f"step_{step}.pt")
    torch.save({"model": model.state_dict(), "step": step}, path)
    report(step=step, path=path)
    # The collector writes a record a second after its file closed (the rename window);
    # waiting for it makes each step start after the previous checkpoint was judged.
    deadline = time.monotonic() + 60
    while sync and not recorded(path) and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def ckmon(work, *args, env=None, timeout=120):
    return subprocess.run(ckmon_args(*args), cwd=work, env=clean_env(**(env or {})),
                          capture_output=True, text=True, timeout=timeout)


def train(work, *options, steps=5, nan_at=0, sync=False, env=None):
    script = python_script(work, TRAIN, "train.py")
    log = work / "ckmon.jsonl"
    p = ckmon(work, "run", "-o", log, *options, "--", *script, log, steps, nan_at,
              int(sync), env=env)
    steps_done = [json.loads(l)["step"] for l in p.stdout.splitlines() if l.startswith("{")]
    return p, steps_done


def alert_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("ckmon: alert ")]


def summary_line(stderr):
    lines = [l for l in stderr.splitlines()
             if " checkpoint" in l and l.startswith("ckmon: ") and not l.startswith("ckmon: alert")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_nan_weights_alert_once_and_fail_the_run(work):
    p, steps = train(work, "--fail-on", "nonfinite", nan_at=3)
    assert steps == [1, 2, 3, 4, 5]
    assert p.returncode == 3, p.stderr
    records = {r["path"]: r for r in read_log(work / "ckmon.jsonl")}
    alerts = read_alerts(work / "ckmon.jsonl")
    step = {n: str(work / f"step_{n}.pt") for n in range(1, 6)}
    assert [n for n in range(1, 6) if "alerts" in records[step[n]]] == [3, 4, 5]
    for n in (1, 2):
        assert all(t["nan"] == 0 for t in records[step[n]]["tensors"])
    [at3] = [a for a in alerts if a["path"] == step[3]]
    # Only the tensor the loop wrote NaN into, and only its 3 elements, are non-finite
    # at step 3: the NaN reaches the other tensors through the gradients of step 4.
    assert at3["rule"] == "nonfinite" and at3["severity"] == "critical"
    assert at3["subject"] == "model.2.weight" and at3["count"] == 1
    assert at3["message"] == "model.2.weight: 3 NaN in 256 elements read"
    assert records[step[3]]["alerts"] == ["nonfinite"]
    assert {k: at3[k] for k in ("job", "host", "pid", "program")} == {
        k: records[step[3]][k] for k in ("job", "host", "pid", "program")}
    assert [a["rule"] for a in alerts] == ["nonfinite"] * 3
    # Each alert comes right after its checkpoint's record in the log.
    lines = [json.loads(l) for l in (work / "ckmon.jsonl").read_text().splitlines()]
    for i, line in enumerate(lines):
        if line["event"] == "alert":
            assert lines[i - 1]["event"] == "checkpoint" and lines[i - 1]["path"] == line["path"]
    told = alert_lines(p.stderr)
    assert told[0] == (f"ckmon: alert nonfinite (critical) {step[3]}: "
                       "model.2.weight: 3 NaN in 256 elements read")
    assert len(told) == 3
    summary = summary_line(p.stderr)
    assert summary.startswith("ckmon: 5 checkpoints, ") and "0 incomplete" in summary
    assert summary.endswith("; alerts: nonfinite 3")

    good = ckmon(work, "last-good", "--log", work / "ckmon.jsonl")
    assert good.returncode == 0 and good.stdout == step[2] + "\n", good.stderr
    # the same from the glob of the step files, and nothing for another job
    assert ckmon(work, "last-good", "step_*.pt").stdout == step[2] + "\n"
    other = ckmon(work, "last-good", "--job", "other")
    assert other.returncode == 1 and other.stdout == ""
    # a good file that changed on disk since it was recorded is not intact any more
    with open(step[2], "ab") as f:
        f.write(b"\0")
    assert ckmon(work, "last-good").stdout == step[1] + "\n"


def test_on_alert_stops_the_job_before_step_5(work):
    p, steps = train(work, "--on-alert", "kill -TERM $CKMON_ALERT_PID", nan_at=3, sync=True)
    assert p.returncode == 128 + signal.SIGTERM, p.stderr
    assert 3 in steps and 5 not in steps
    assert not (work / "step_5.pt").exists()
    alerts = read_alerts(work / "ckmon.jsonl")
    assert alerts[0]["path"] == str(work / "step_3.pt") and alerts[0]["rule"] == "nonfinite"


@pytest.mark.parametrize("freeze", [True, False])
def test_a_layer_frozen_by_requires_grad(work, freeze):
    p, steps = train(work, steps=3, env={"FREEZE": "1" if freeze else "0"})
    assert p.returncode == 0, p.stderr
    alerts = read_alerts(work / "ckmon.jsonl")
    if not freeze:
        assert alerts == [] and alert_lines(p.stderr) == []
        return
    # The frozen layer's weight (64 x 64) is the only frozen tensor of 1,024 elements or
    # more (its bias has 64); every other tensor changed, so steps 2 and 3 are frozen.
    assert [(a["rule"], a["path"], a["subject"], a["count"]) for a in alerts] == [
        ("frozen", str(work / f"step_{n}.pt"), "model.0.weight", 1) for n in (2, 3)]
    assert alerts[0]["severity"] == "warning"
    assert summary_line(p.stderr).endswith("; alerts: frozen 2")


KILLED_MID_SAVE = """
import torch
model = torch.nn.Linear(256, 256)
torch.save({"model": model.state_dict()}, "model_1.pt")


class DiesWhileWriting:
    def __init__(self, f):
        self.f, self.written = f, 0

    def write(self, b):
        if self.written > 100000:
            self.f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        self.written += len(b)
        return self.f.write(b)

    def flush(self):
        self.f.flush()


with open("model_2.pt", "wb") as f:
    torch.save({"model": model.state_dict()}, DiesWhileWriting(f))
"""


def test_process_killed_mid_save_is_incomplete(work):
    script = python_script(work, KILLED_MID_SAVE)
    p = ckmon(work, "run", "--fail-on", "incomplete", "--", *script)
    assert p.returncode == 128 + signal.SIGKILL, p.stderr  # the program's status comes first
    records = {r["path"]: r for r in read_log(work / "ckmon.jsonl")}
    torn = records[str(work / "model_2.pt")]
    assert torn["complete"] is False and torn["alerts"] == ["incomplete"]
    [alert] = read_alerts(work / "ckmon.jsonl")
    assert alert["rule"] == "incomplete" and alert["severity"] == "critical"
    assert alert["path"] == str(work / "model_2.pt") and "subject" not in alert
    assert alert["message"].startswith(f"incomplete at {torn['bytes']} bytes")
    assert "1 incomplete; alerts: incomplete 1" in summary_line(p.stderr)
    good = ckmon(work, "last-good")
    assert good.stdout == str(work / "model_1.pt") + "\n"


SAVE_NPZ = """
import numpy as np
step, scale, with_b = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
rng = np.random.default_rng(7)
arrays = {"a": rng.standard_normal(1000) * scale}
if with_b:
    arrays["b"] = np.random.default_rng(8).standard_normal(5000)
np.savez(f"state_{step}.npz", **arrays)
"""


def test_series_survive_a_collector_restart(work):
    """Two `ckmon run`s, so two collectors: the second compares its checkpoint with the
    first one's, from the state dir."""
    script = python_script(work, SAVE_NPZ)
    first = ckmon(work, "run", "--", *script, 1, 1, 1)
    assert first.returncode == 0 and alert_lines(first.stderr) == [], first.stderr
    assert list((work / "ckmon.jsonl.state" / "series").glob("*.json"))
    second = ckmon(work, "run", "--", *script, 2, 100, 0)
    assert second.returncode == 0, second.stderr
    alerts = {a["rule"]: a for a in read_alerts(work / "ckmon.jsonl")}
    assert set(alerts) == {"shrunk", "exploding"}
    assert alerts["shrunk"]["subject"] == "b" and alerts["shrunk"]["count"] == 1
    assert alerts["exploding"]["subject"] == "a" and alerts["exploding"]["count"] == 1
    assert "100 times" in alerts["exploding"]["message"]
    assert all(a["path"] == str(work / "state_2.npz") for a in alerts.values())
    # the counter of each rule goes on across restarts too
    third = ckmon(work, "run", "--", *script, 3, 1, 1)
    assert third.returncode == 0, third.stderr
    fourth = ckmon(work, "run", "--", *script, 4, 100, 0)
    assert sorted((a["rule"], a["total"]) for a in read_alerts(work / "ckmon.jsonl")) == [
        ("exploding", 1), ("exploding", 2), ("shrunk", 1), ("shrunk", 2)], fourth.stderr
    # the statistics come back from the state dir exactly: b unchanged is frozen
    ckmon(work, "run", "--", *script, 5, 1, 1)
    sixth = ckmon(work, "run", "--", *script, 6, 2, 1)
    frozen = [(a["subject"], a["path"]) for a in read_alerts(work / "ckmon.jsonl")
              if a["rule"] == "frozen"]
    assert frozen == [("b", str(work / "state_6.npz"))], sixth.stderr


LOSSES = """
for step, loss in enumerate([1.0, 5.0, 20.0, 50.0], 1):
    with open(f"ckpt_{step}.pkl", "wb") as f:
        pickle.dump({"step": step, "loss": loss, "w": [loss * 0.1 * k for k in range(16)]}, f)
"""


@pytest.mark.parametrize("through", ["flag", "env"])
def test_user_rules(work, through):
    script = python_script(work, LOSSES)
    rules = ["diverged=loss>10", "w:max>=7.5"]
    if through == "flag":
        p = ckmon(work, "run", "--alert", rules[0], "--alert", rules[1], "--fail-on",
                  "diverged", "--", *script)
    else:
        p = ckmon(work, "run", "--fail-on", "diverged", "--", *script,
                  env={"CKMON_ALERTS": ";".join(rules)})
    assert p.returncode == 3, p.stderr
    got = [(a["rule"], a["path"].rsplit("/", 1)[1], a["subject"], a["message"])
           for a in read_alerts(work / "ckmon.jsonl")]
    # w's max is 1.5 * loss: 7.5 at loss 5, 30 and 75 later
    assert got == [
        ("w:max>=7.5", "ckpt_2.pkl", "w", "w:max = 7.5 (>= 7.5)"),
        ("diverged", "ckpt_3.pkl", "loss", "loss = 20 (> 10)"),
        ("w:max>=7.5", "ckpt_3.pkl", "w", "w:max = 30 (>= 7.5)"),
        ("diverged", "ckpt_4.pkl", "loss", "loss = 50 (> 10)"),
        ("w:max>=7.5", "ckpt_4.pkl", "w", "w:max = 75 (>= 7.5)"),
    ]
    assert all(a["severity"] == "warning" for a in read_alerts(work / "ckmon.jsonl"))


@pytest.mark.parametrize("rule, problem", [
    ("loss", "no operator"),
    ("loss>ten", "is not a number"),
    ("loss>1e999", "is not a number"),
    ("w:median>1", "unknown statistic"),
    (">1", "no SUBJECT"),
    ("nonfinite=loss>1", "built-in"),
    ("my rule=loss>1", "a NAME is"),
])
def test_bad_rules_are_usage_errors(work, rule, problem):
    p = ckmon(work, "run", "--alert", rule, "--", "true")
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"ckmon run: --alert: bad rule '{rule}'")
    assert problem in p.stderr
    p = ckmon(work, "run", "--", "true", env={"CKMON_ALERTS": f"ok=loss>1;{rule}"})
    assert p.returncode == 2 and p.stderr.startswith(f"ckmon run: CKMON_ALERTS: bad rule '{rule}'")


def test_unknown_fail_on_rule_is_a_usage_error(work):
    p = ckmon(work, "run", "--fail-on", "nonfinite,nosuch", "--", "true")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "'nosuch'" in p.stderr
    p = ckmon(work, "inspect", "--alert", "mine=x>1", "--fail-on", "mine", "/dev/null")
    assert p.returncode == 1  # known rule; /dev/null is not a regular file


NAN_LOSS = """
with open("ckpt_1.pkl", "wb") as f:
    pickle.dump({"loss": float("nan")}, f)
"""


def test_on_alert_gets_the_record_and_its_failure_is_logged(work):
    script = python_script(work, NAN_LOSS)
    command = ('cat > alert.json; echo "$CKMON_ALERT_RULE $CKMON_ALERT_SEVERITY '
               '$CKMON_ALERT_PATH $CKMON_ALERT_PID" > env.txt; exit 7')
    p = ckmon(work, "run", "--on-alert", command, "--", *script)
    assert p.returncode == 0, p.stderr
    [alert] = read_alerts(work / "ckmon.jsonl")
    assert json.loads((work / "alert.json").read_text()) == alert
    record = read_log(work / "ckmon.jsonl")[0]
    assert (work / "env.txt").read_text() == (
        f"nonfinite critical {work / 'ckpt_1.pkl'} {record['pid']}\n")
    assert f"ckmon: --on-alert for nonfinite on {work / 'ckpt_1.pkl'} exited 7" in p.stderr


THREE_NAN = """
for step in range(1, 4):
    with open(f"ckpt_{step}.pkl", "wb") as f:
        pickle.dump({"step": step, "loss": float("nan")}, f)
"""


def test_on_alert_commands_run_one_at_a_time_in_order(work):
    """The three records are written within a few milliseconds of each other (each waits
    out the same rename window), so commands started side by side would interleave."""
    script = python_script(work, THREE_NAN)
    command = ('echo "start $CKMON_ALERT_PATH" >> order.txt; sleep 0.3; '
               'echo "end $CKMON_ALERT_PATH" >> order.txt')
    p = ckmon(work, "run", "--on-alert", command, "--", *script)
    assert p.returncode == 0, p.stderr
    paths = [a["path"] for a in read_alerts(work / "ckmon.jsonl")]
    assert sorted(paths) == [str(work / f"ckpt_{n}.pkl") for n in (1, 2, 3)]
    assert (work / "order.txt").read_text().splitlines() == [
        f"{what} {path}" for path in paths for what in ("start", "end")]


def test_on_alert_time_limit(work):
    script = python_script(work, NAN_LOSS)
    p = ckmon(work, "run", "--on-alert", "sleep 600", "--on-alert-timeout", "0.5", "--",
              *script)
    assert p.returncode == 0, p.stderr
    assert "still running after 0.5 s: terminated" in p.stderr


def test_collect_tells_each_alert(work, collector):
    script = python_script(work, NAN_LOSS)
    p = collector.run(script, work, paths=["*.pkl"])
    assert p.returncode == 0, p.stderr
    collector.stop()
    assert alert_lines(collector.stderr) == [
        f"ckmon: alert nonfinite (critical) {work / 'ckpt_1.pkl'}: loss = nan"]
    [alert] = read_alerts(collector.log)
    assert alert["subject"] == "loss" and alert["total"] == 1


def test_quiet(work):
    script = python_script(work, NAN_LOSS)
    loud = ckmon(work, "run", "--", *script)
    assert len(alert_lines(loud.stderr)) == 1 and summary_line(loud.stderr)
    quiet = ckmon(work, "run", "-q", "--", *script)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert len(read_alerts(work / "ckmon.jsonl")) == 2  # the log still has both


def test_inspect_compares_consecutive_files(work):
    p, _ = train(work, steps=4, nan_at=3, env={"FREEZE": "1"})
    assert p.returncode == 0, p.stderr
    files = [work / f"step_{n}.pt" for n in range(1, 5)]
    clean = ckmon(work, "inspect", "--fail-on", "nonfinite", *files[:2])
    assert clean.returncode == 0, clean.stderr
    assert [a["rule"] for a in parse_alerts(clean.stdout)] == ["frozen"]
    assert len(parse_records(clean.stdout)) == 2
    bad = ckmon(work, "inspect", "--fail-on", "nonfinite", *files)
    assert bad.returncode == 3
    assert [(a["rule"], a["path"]) for a in parse_alerts(bad.stdout)
            if a["rule"] == "nonfinite"] == [("nonfinite", str(f)) for f in files[2:]]
    # one file alone has nothing to be compared with
    alone = ckmon(work, "inspect", "--fail-on", "frozen", files[1])
    assert alone.returncode == 0 and parse_alerts(alone.stdout) == []


WRONG_GLOB = """
import numpy as np
os.makedirs("out", exist_ok=True)
np.save("out/weights.data", np.ones(10))  # np.save adds .npy
with open("out/model.bin", "wb") as f:
    f.write(bytes(100))
with open("out/model.bin", "wb") as f:  # written twice, named once
    f.write(bytes(100))
with open("out/log.txt", "a") as f:  # appended to, not created anew: not named
    f.write("step 1")
"""


def test_globs_matching_nothing_name_the_files_written(work):
    script = python_script(work, WRONG_GLOB)
    p = ckmon(work, "run", "-p", "*.ckpt", "--", *script)
    assert p.returncode == 0, p.stderr
    assert read_log(work / "ckmon.jsonl") == []
    assert summary_line(p.stderr) == (
        "ckmon: 0 checkpoints; no file matched the checkpoint globs (--paths), but it wrote "
        f"{work}/out/weights.data.npy, {work}/out/model.bin")
    # with a glob that matches, the summary counts checkpoints and names nothing else
    p = ckmon(work, "run", "-p", "*.npy", "--", *script)
    assert summary_line(p.stderr).startswith("ckmon: 1 checkpoint, ")
    assert "no file matched" not in p.stderr


def test_a_log_that_is_no_file_keeps_series_in_memory(work):
    script = python_script(work, NAN_LOSS)
    p = ckmon(work, "run", "-o", "-", "--", *script)
    assert p.returncode == 0, p.stderr
    assert [r["event"] for r in parse_lines(p.stdout)] == ["checkpoint", "alert"]
    assert not (work / "ckmon-stdout.state").exists()
