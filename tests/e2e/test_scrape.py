"""test_scrape.py — `--listen`: /metrics scraped by a real Prometheus, /healthz, and
libmicrohttpd loaded only when asked (docs/sinks.md, "Prometheus and Grafana").

Checkpoints are pickles whose values the test knows; the series come back through
Prometheus' query API and are compared with them. The exposition text itself is checked
with Debian's `promtool check metrics`.
"""
import math
import signal
import subprocess

from ckmon_helpers import AGENT, ckmon_args, clean_env, python_script, read_log
from sink_servers import Prometheus, VictoriaMetrics, free_port, request, wait_for

WRITER = """
first, count = int(sys.argv[1]), int(sys.argv[2])
for i in range(first, first + count):
    with open(f"epoch_{i}.pkl", "wb") as f:
        pickle.dump({"epoch": i, "loss": float("nan") if i == 2 else 1 / (i + 1),
                     "lr": 0.1 * 0.5 ** i, "w": [float(i)] * 9}, f)
"""


class Collect:
    """`ckmon collect --listen` in the background."""

    def __init__(self, work, *options):
        self.work, self.socket, self.port = work, work / "c.sock", free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            ckmon_args("collect", "--socket", self.socket, "--log", work / "ckmon.jsonl",
                       "--listen", f"127.0.0.1:{self.port}", "--job", "unused", *options),
            cwd=work, env=clean_env(), stderr=subprocess.PIPE, text=True)
        wait_for("the collector", lambda: self.socket.exists() or self.process.poll() is not None)
        assert self.process.poll() is None, self.process.stderr.read()

    def write(self, first, count, **env):
        script = python_script(self.work, WRITER)
        p = subprocess.run(script + [str(first), str(count)], cwd=self.work, timeout=60,
                           env=clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=self.socket,
                                         CKMON_JOB="train", CKMON_RUN_ID="r1", **env))
        assert p.returncode == 0
        wait_for(f"{first + count} records", lambda: len(read_log(self.work / "ckmon.jsonl"))
                 >= first + count)

    def metrics(self):
        status, text = request("GET", self.url + "/metrics")
        assert status == 200
        return text

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err


def test_prometheus_scrapes_the_latest_checkpoint(work, servers):
    vm = servers(VictoriaMetrics)
    c = Collect(work, "-s", f"victoriametrics={vm.url}")
    try:
        c.write(0, 3)
        prom = servers(Prometheus, targets=[f"127.0.0.1:{c.port}"])

        def value(promql):
            return wait_for(promql, lambda: prom.query(promql))

        # The newest checkpoint of the file epoch_N.pkl: epoch 2, its NaN loss as NaN.
        [(labels, epoch)] = value('ckmon_value{key="epoch"}')
        assert epoch == 2
        assert (labels["job"], labels["run"], labels["file"]) == ("train", "r1", "epoch_N.pkl")
        [(_, loss)] = value('ckmon_value{key="loss"}')
        assert math.isnan(loss)
        assert value('ckmon_value_nonfinite{key="loss"}')[0][1] == 1
        assert value("ckmon_checkpoint_nonfinite")[0][1] == 1
        assert value('ckmon_tensor{tensor="w",stat="mean"}')[0][1] == 2
        assert value('ckmon_records_total{event="checkpoint"}')[0][1] == 3
        # Every line of the log: the checkpoints, and the alert of the NaN.
        wait_for("the sink's counter", lambda: prom.query(
            f'ckmon_sink_delivered_total == {len((work / "ckmon.jsonl").read_text().splitlines())}'))
        [(labels, _)] = prom.query("ckmon_sink_delivered_total")
        assert labels["sink"] == f"victoriametrics={vm.url}"

        # A finite loss again: its NaN flag is gone with the checkpoint that had it.
        c.write(3, 1)
        wait_for("epoch 3", lambda: prom.query('ckmon_value{key="epoch"} == 3'))
        assert prom.query('ckmon_value{key="loss"}')[0][1] == 0.25
        wait_for("no NaN flag", lambda: not prom.query('ckmon_value_nonfinite{key="loss"}'))
        assert prom.query("ckmon_checkpoint_nonfinite")[0][1] == 0

        text = c.metrics()
        check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        for family in ("ckmon_value", "ckmon_records_total", "ckmon_sink_retried_total",
                       "ckmon_sink_dead_lettered_total", "ckmon_agent_messages_dropped_total"):
            assert f"# HELP {family} " in text and f"# TYPE {family} " in text, family
        assert request("GET", c.url + "/healthz") == (200, "ok\n")
        assert request("GET", c.url + "/nothing")[0] == 404
    finally:
        rc, err = c.stop()
    assert rc == 0, err


def maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_libmicrohttpd_is_loaded_only_with_listen(work):
    plain = subprocess.Popen(ckmon_args("collect", "--socket", work / "p.sock", "--log",
                                        work / "p.jsonl"), cwd=work, env=clean_env(),
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the collector", lambda: (work / "p.sock").exists())
        assert "libmicrohttpd" not in maps(plain.pid)
    finally:
        plain.send_signal(signal.SIGTERM)
        plain.communicate(timeout=30)
    c = Collect(work)
    try:
        assert "libmicrohttpd" in maps(c.process.pid)
    finally:
        c.stop()


def test_busy_port_stops_run_before_the_command(work):
    busy = Collect(work)
    try:
        marker = work / "ran"
        p = subprocess.run(ckmon_args("run", "-o", work / "r.jsonl", "--listen",
                                      f"127.0.0.1:{busy.port}", "--", "touch", marker),
                           cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "--listen" in p.stderr and not marker.exists(), p.stderr
        p = subprocess.run(ckmon_args("run", "--listen", "nonsense", "--", "true"), cwd=work,
                           env=clean_env(), capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "ADDR:PORT" in p.stderr, p.stderr
    finally:
        busy.stop()


SCRAPER = """
import urllib.request
with open("epoch_7.pkl", "wb") as f:
    pickle.dump({"epoch": 7}, f)
port = sys.argv[1]
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    if 'key="epoch"} 7' in text:
        break
    time.sleep(0.1)
print(text)
"""


def test_run_serves_metrics_while_the_command_runs(work):
    port = free_port()
    script = python_script(work, SCRAPER)
    p = subprocess.run(ckmon_args("run", "-o", work / "r.jsonl", "--job", "own", "--listen",
                                  str(port), "--", *script, str(port)),
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert 'ckmon_value{job="own",' in p.stdout and 'key="epoch"} 7' in p.stdout, p.stdout
