"""test_remote_write.py — `-s prometheus=URL`: Prometheus remote write (protobuf +
snappy) into a real Prometheus (--web.enable-remote-write-receiver) and a real
VictoriaMetrics (/api/v1/write), every checkpoint read back at its close time.
"""
import datetime as dt
import json
import math
import subprocess
import urllib.parse

from ckmon_helpers import ckmon_args, clean_env, parse_time, python_script, read_log
from sink_servers import Prometheus, VictoriaMetrics, request, wait_for

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# Apart in time: two checkpoints of one file in the same millisecond are one sample.
WRITER = """
for i in range(4):
    time.sleep(0.01)
    with open(f"epoch_{i}.pkl", "wb") as f:
        pickle.dump({"epoch": i, "loss": float("nan") if i == 2 else 1 / (i + 1),
                     "groups": [{"lr": 0.1 * (k + 1) * 0.5 ** i} for k in range(3)]}, f)
"""


def expected(work):
    """{checkpoint close time in ms: (epoch, loss, last group's lr)} from the log."""
    out = {}
    for r in read_log(work / "ckmon.jsonl"):
        if r["event"] != "checkpoint":
            continue
        ms = (parse_time(r["time"]) - EPOCH) // dt.timedelta(microseconds=1) // 1000
        v = r["values"]
        loss = float("nan") if v["loss"] == "nan" else v["loss"]
        out[ms] = (v["epoch"], loss, v["groups.2.lr"])
    return out


def run(work, sinks):
    script = python_script(work, WRITER)
    args = ["run", "-o", work / "ckmon.jsonl", "--job", "rw", "--run-id", "r9"]
    for sink in sinks:
        args += ["-s", sink]
    p = subprocess.run(ckmon_args(*args, "--", *script), cwd=work, env=clean_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def prometheus_points(prom, selector):
    """[(ms, value)] of every sample of the one series matching selector."""
    status, text = request("GET", f"{prom.url}/api/v1/query?" + urllib.parse.urlencode(
        {"query": f"{selector}[1h]"}))
    assert status == 200, text
    result = json.loads(text)["data"]["result"]
    if len(result) != 1:
        return []
    return [(int(round(t * 1000)), float(v)) for t, v in result[0]["values"]]


def same(a, b):
    return math.isnan(a) if math.isnan(b) else a == b


def test_remote_write_into_prometheus_and_victoriametrics(work, servers):
    prom = servers(Prometheus, remote_write=True)
    vm = servers(VictoriaMetrics)
    p = run(work, [f"prometheus={prom.url}/api/v1/write", f"prometheus={vm.url}"])
    want = expected(work)
    assert len(want) == 4
    label = '{job="rw",run="r9",file="epoch_N.pkl",key="%s"}'
    for key, index in (("epoch", 0), ("loss", 1), ("groups.N.lr", 2)):
        got = wait_for(f"{key} in Prometheus", lambda: (
            lambda pts: len(pts) == 4 and pts)(prometheus_points(prom, "ckmon_value" + label % key)))
        assert [t for t, _ in got] == sorted(want), key
        for t, value in got:
            assert same(value, want[t][index]), (key, t, value, want[t])
    # The NaN loss is stored as NaN by Prometheus, and flagged beside it.
    flags = prometheus_points(prom, "ckmon_value_nonfinite" + label % "loss")
    assert [v for _, v in flags] == [1]

    # VictoriaMetrics drops NaN samples; the rest arrive at the same times.
    def vm_points(key):
        request("GET", vm.url + "/internal/force_flush")
        status, text = request("GET", f"{vm.url}/api/v1/export?" + urllib.parse.urlencode(
            {"match[]": "ckmon_value" + label % key}))
        assert status == 200, text
        lines = [json.loads(line) for line in text.splitlines()]
        return lines and sorted(zip(lines[0]["timestamps"], lines[0]["values"]))
    got = wait_for("epoch in VictoriaMetrics", lambda: (
        lambda pts: pts and len(pts) == 4 and pts)(vm_points("epoch")))
    assert got == [(t, want[t][0]) for t in sorted(want)]
    assert "0 dead-lettered" in p.stderr and "retried" in p.stderr


def test_refused_remote_write_is_dead_lettered(work, servers):
    prom = servers(Prometheus)  # no remote-write receiver: 404
    p = run(work, [f"prometheus={prom.url}"])
    assert "answered 404" in p.stderr, p.stderr
    [dead] = (work / "ckmon.jsonl.state").glob("prometheus-*.dead.jsonl")
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    lines = (work / "ckmon.jsonl").read_text().splitlines()  # checkpoints and the alert
    assert sum(len(d["records"]) for d in letters) == len(lines)
