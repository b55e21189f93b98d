"""test_prometheus.py — ckmon at home in the Prometheus ecosystem (docs/sinks.md,
"Prometheus and Grafana"): bounded series, non-finite values, the run label.

A real training loop (torch, AdamW, a Hugging Face style checkpoint-N/trainer_state.json
with a growing log_history) runs under `ckmon run` against a real VictoriaMetrics, and
the series it made are counted there as a user would (/api/v1/series).
"""
import json
import math
import re
import signal
import subprocess
import urllib.parse

from ckmon_helpers import ckmon_args, clean_env, python_script, read_log, run_preloaded
from sink_servers import VictoriaMetrics, request, wait_for

TRAIN = """
import torch

steps, groups = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
model = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(groups)])
opt = torch.optim.AdamW([{"params": m.parameters(), "lr": 0.01 * (k + 1)}
                         for k, m in enumerate(model)])
x, y = torch.randn(32, 4), torch.randn(32, 4)
history = []
for step in range(1, steps + 1):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
    torch.save({"step": step, "loss": loss.item(), "model": model.state_dict(),
                "optimizer": opt.state_dict()}, f"step_{step}.pt")
    history.append({"loss": round(loss.item(), 6), "learning_rate": 0.01, "step": step,
                    "epoch": step / 10})
    os.makedirs(f"checkpoint-{step}", exist_ok=True)
    with open(f"checkpoint-{step}/trainer_state.json", "w") as f:
        json.dump({"global_step": step, "epoch": step / 10, "log_history": history,
                   "best_metric": None}, f)
report(loss=loss.item(), lr=opt.param_groups[-1]["lr"], history=history)
"""


def train(work, vm, job, steps, groups, options=(), env=None):
    """Runs the loop under `ckmon run` pushing to vm; returns the loop's report."""
    script = python_script(work, TRAIN, name=f"train_{job}.py")
    (work / job).mkdir()
    args = ["run", "-o", work / f"{job}.jsonl", "--job", job,
            "-s", f"victoriametrics={vm.url}", *options, "--", *script, str(steps), str(groups)]
    p = subprocess.run(ckmon_args(*args), cwd=work / job, env=clean_env(**(env or {})),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[-1])


def series(vm, selector):
    """The label sets of every series matching selector."""
    request("GET", vm.url + "/internal/force_flush")
    query = urllib.parse.urlencode({"match[]": selector})
    status, text = request("GET", f"{vm.url}/api/v1/series?{query}")
    assert status == 200, text
    return json.loads(text)["data"]


def latest(vm, selector):
    """{frozenset(labels): the newest value} of the series matching selector."""
    request("GET", vm.url + "/internal/force_flush")
    query = urllib.parse.urlencode({"match[]": selector})
    status, text = request("GET", f"{vm.url}/api/v1/export?{query}")
    assert status == 200, text
    out = {}
    for line in text.splitlines():
        item = json.loads(line)
        newest = max(zip(item["timestamps"], item["values"]))
        out[frozenset(item["metric"].items())] = newest[1]
    return out


def wait_for_step(vm, job, step):
    """Waits until VictoriaMetrics has the checkpoint of step (the last one written)."""
    def arrived():
        values = latest(vm, f'ckmon_value{{job="{job}",key="global_step"}}')
        return values and max(values.values()) == step
    wait_for(f"step {step} of {job} in VictoriaMetrics", arrived)


def test_series_do_not_grow_with_checkpoints_or_param_groups(work, servers):
    vm = servers(VictoriaMetrics)
    long = train(work, vm, "long", steps=50, groups=2)
    short = train(work, vm, "short", steps=3, groups=4)
    wait_for_step(vm, "long", 50)
    wait_for_step(vm, "short", 3)
    long_series = series(vm, '{job="long"}')
    short_series = series(vm, '{job="short"}')

    def shape(found):
        return sorted(tuple(sorted((k, v) for k, v in s.items() if k not in ("job", "run")))
                      for s in found)
    # The same series whatever the number of checkpoints and of parameter groups.
    assert shape(long_series) == shape(short_series)
    print(f"series after 50 checkpoints: {len(long_series)}")
    assert len(long_series) < 100  # 209 for a smaller model before labels were bounded
    for s in long_series:
        for label in ("key", "tensor", "file"):
            assert not re.search(r"\d", s.get(label, "")), s
        assert ".params" not in s.get("key", "") and "state.N" not in s.get("tensor", "")

    # The latest sample of a collapsed label is the last one in the file: the last
    # logged loss, and the last parameter group's learning rate.
    values = {dict(k)["key"]: v for k, v in latest(vm, '{job="long",__name__="ckmon_value"}').items()
              if dict(k)["file"] in ("trainer_state.json", "step_N.pt")
              and dict(k)["key"] in ("log_history.N.loss", "optimizer.param_groups.N.lr")}
    assert values["log_history.N.loss"] == long["history"][-1]["loss"]
    assert math.isclose(values["optimizer.param_groups.N.lr"], long["lr"], rel_tol=1e-12)

    # The log keeps everything.
    last = [r for r in read_log(work / "long.jsonl")
            if r["path"].endswith("checkpoint-50/trainer_state.json")][-1]
    assert sum(k.startswith("log_history.") and k.endswith(".loss") for k in last["values"]) == 50
    assert "optimizer.param_groups.1.params.0" in [
        r for r in read_log(work / "long.jsonl") if r["path"].endswith("step_50.pt")][0]["values"]


def test_metric_keys_choose_the_metrics(work, servers):
    vm = servers(VictoriaMetrics)
    train(work, vm, "keys", steps=2, groups=1,
          options=["--metric-keys", "global_step", "--metric-keys", "log_history.N.loss"])
    wait_for_step(vm, "keys", 2)
    found = series(vm, '{job="keys",__name__=~"ckmon_value|ckmon_tensor"}')
    assert sorted(s["key"] for s in found) == ["global_step", "log_history.N.loss"]


NAN_WRITER = """
import pickle
for i, loss in enumerate([0.5, float("nan")]):
    with open(f"epoch_{i}.pkl", "wb") as f:
        pickle.dump({"epoch": i, "loss": loss, "w": [1.0] * 8 + [float(loss)] * 3}, f)
"""


def test_nonfinite_is_visible_in_victoriametrics(work, servers):
    vm = servers(VictoriaMetrics)
    script = python_script(work, NAN_WRITER)
    p = subprocess.run(ckmon_args("run", "-o", work / "l.jsonl", "--job", "nan",
                                  "-s", f"victoriametrics={vm.url}", "--", *script),
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr

    def points():
        got = latest(vm, '{job="nan",__name__=~"ckmon_checkpoint_nonfinite|ckmon_value_nonfinite"}')
        return len(got) == 2 and got
    got = {(dict(k)["__name__"], dict(k).get("key")): v for k, v in
           wait_for("non-finite samples", points).items()}
    # The NaN loss (1) plus the three NaN elements of w; the loss itself is flagged.
    assert got == {("ckmon_checkpoint_nonfinite", None): 4, ("ckmon_value_nonfinite", "loss"): 1}


PICKLES = """
for i in range(2):
    with open(f"epoch_{i}.pkl", "wb") as f:
        pickle.dump({"epoch": i}, f)
"""


def runs_of(records):
    return [r.get("run") for r in records]


def test_run_id_from_the_flag_the_launcher_or_made_up(work, ckmon):
    script = python_script(work, PICKLES)
    given = ckmon.run(*script, options=["--run-id", "r42"], log=work / "a.jsonl")
    assert given.returncode == 0, given.stderr
    assert runs_of(given.records) == ["r42", "r42"]
    slurm = ckmon.run(*script, log=work / "b.jsonl", env={"SLURM_JOB_ID": "777",
                                                            "TORCHELASTIC_RUN_ID": "te"})
    assert runs_of(slurm.records) == ["777", "777"]
    elastic = ckmon.run(*script, log=work / "c.jsonl", env={"TORCHELASTIC_RUN_ID": "te"})
    assert runs_of(elastic.records) == ["te", "te"]
    made = [ckmon.run(*script, log=work / f"d{i}.jsonl") for i in range(2)]
    first, second = (set(runs_of(m.records)) for m in made)
    assert len(first) == 1 and len(second) == 1 and first != second and None not in first


def test_run_label_on_every_metric(work, servers):
    vm = servers(VictoriaMetrics)
    script = python_script(work, PICKLES)
    p = subprocess.run(ckmon_args("run", "-o", work / "l.jsonl", "--job", "lab", "--run-id",
                                  "exp-1", "-s", f"victoriametrics={vm.url}", "--", *script),
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    found = wait_for("the checkpoint metrics", lambda: (
        lambda s: len(s) >= 6 and s)(series(vm, '{job="lab"}')))
    assert {s.get("run") for s in found} == {"exp-1"}


def test_collect_run_id_is_for_agents_that_name_none(work):
    socket_path = work / "r.sock"
    proc = subprocess.Popen(ckmon_args("collect", "--socket", socket_path, "--log",
                                       work / "r.jsonl", "--run-id", "node-run"),
                            cwd=work, env=clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the socket", lambda: socket_path.exists())
        script = python_script(work, PICKLES)
        (work / "x").mkdir()
        (work / "y").mkdir()
        assert run_preloaded(script, work / "x", socket_path).returncode == 0
        assert run_preloaded(script, work / "y", socket_path, CKMON_RUN_ID="own").returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    runs = {r["path"].split("/")[-2]: r["run"] for r in read_log(work / "r.jsonl")}
    assert runs == {"x": "node-run", "y": "own"}
