"""test_cluster.py — ckmon across machines (docs/deploy.md, "Across machines").

Four network namespaces of the test's own, joined by veth pairs with private addresses
(10.231.N.0/24): one runs a real VictoriaMetrics and a real Prometheus (remote-write
receiver), three are nodes with a host name of their own (a UTS namespace), each running
a job under `ckmon run` that pushes to both. Half way through, both servers are stopped;
the jobs go on writing, the servers come back on the same data, and every checkpoint of
every node must be there in the end, queried over all hosts with PromQL.

Needs root (network namespaces); skipped otherwise.
"""
import json
import os
import re
import subprocess
import time
import urllib.parse

import pytest

from ckmon_helpers import CKMON, PYTHON, clean_env, python_script, read_log
from sink_servers import wait_for

NODES = 3
STEPS = 10  # per node: 5 before the servers stop, 5 while they are down
SUBNET = "10.231"

WRITER = """
def save(step):
    time.sleep(0.02)  # checkpoints of one file a few ms apart: distinct samples
    with open(f"ckpt_{step}.pkl", "wb") as f:
        pickle.dump({"step": step, "loss": 1 / step}, f)

for step in range(1, 6):
    save(step)
while not os.path.exists(sys.argv[1]):  # the test stops the servers meanwhile
    time.sleep(0.05)
for step in range(6, 11):
    save(step)
"""


def sh(*args, check=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    assert not check or p.returncode == 0, (args, p.stderr)
    return p


class Cluster:
    def __init__(self, work):
        tag = f"ck{os.getpid() % 10000}"
        self.work, self.server = work, f"{tag}s"
        self.nodes = [f"{tag}n{i}" for i in range(1, NODES + 1)]
        self.processes = []
        try:
            self.build()
        except BaseException:
            self.close()  # what was made so far
            raise

    def build(self):
        sh("ip", "netns", "add", self.server)
        sh("ip", "netns", "exec", self.server, "ip", "link", "set", "lo", "up")
        for i, node in enumerate(self.nodes, 1):
            sh("ip", "netns", "add", node)
            sh("ip", "link", "add", f"{node}a", "type", "veth", "peer", "name", f"{node}b")
            sh("ip", "link", "set", f"{node}a", "netns", node)
            sh("ip", "link", "set", f"{node}b", "netns", self.server)
            for ns, dev, host in ((node, f"{node}a", 2), (self.server, f"{node}b", 1)):
                sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{SUBNET}.{i}.{host}/24",
                   "dev", dev)
                sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
                sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def start(self, name, command):
        log = open(self.work / f"{name}.log", "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.server, *command], stdout=log,
                             stderr=subprocess.STDOUT, cwd=self.work)
        self.processes.append(p)
        return p

    def get(self, url):
        """GET from inside the server's namespace: (status, body)."""
        p = sh("ip", "netns", "exec", self.server, "curl", "-s", "-o", "/dev/stdout", "-w",
               "\n%{http_code}", url, check=False)
        body, _, status = p.stdout.rpartition("\n")
        return int(status or 0), body

    def close(self):
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in [*self.nodes, self.server]:
            sh("ip", "netns", "del", ns, check=False)


class Servers:
    """VictoriaMetrics and Prometheus in the server namespace, on all its addresses."""

    def __init__(self, cluster):
        self.cluster = cluster
        (cluster.work / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")

    def start(self):
        c, work = self.cluster, self.cluster.work
        self.vm = c.start("vm", ["victoria-metrics", "-httpListenAddr=:8428",
                                 f"-storageDataPath={work / 'vm'}", "-retentionPeriod=1d"])
        self.prom = c.start("prometheus", [
            "prometheus", f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}", "--web.listen-address=:9090",
            "--web.enable-remote-write-receiver"])
        wait_for("VictoriaMetrics", lambda: c.get("http://127.0.0.1:8428/health")[0] == 200)
        wait_for("Prometheus", lambda: c.get("http://127.0.0.1:9090/-/ready")[0] == 200)

    def stop(self):
        for p in (self.vm, self.prom):
            p.terminate()
            p.wait(timeout=30)

    def promql(self, query):
        status, body = self.cluster.get("http://127.0.0.1:9090/api/v1/query?"
                                        + urllib.parse.urlencode({"query": query}))
        assert status == 200, body
        return json.loads(body)["data"]["result"]

    def vm_export(self, selector):
        self.cluster.get("http://127.0.0.1:8428/internal/force_flush")
        status, body = self.cluster.get("http://127.0.0.1:8428/api/v1/export?"
                                        + urllib.parse.urlencode({"match[]": selector}))
        assert status == 200, body
        return [json.loads(line) for line in body.splitlines()]


@pytest.fixture
def cluster(work):
    if os.geteuid() != 0 or sh("ip", "netns", "list", check=False).returncode != 0:
        pytest.skip("network namespaces need root")
    c = Cluster(work)
    yield c
    c.close()


def test_three_hosts_push_to_one_backend_through_a_restart(work, cluster):
    servers = Servers(cluster)
    servers.start()
    go = work / "go"
    script = python_script(work, WRITER)
    jobs = []
    for i, node in enumerate(cluster.nodes, 1):
        home = work / node
        home.mkdir()
        server = f"http://{SUBNET}.{i}.1"
        command = [CKMON, "run", "-o", home / "ckmon.jsonl", "--job", "train", "--run-id",
                   "cluster-1", "--flush-timeout", "60", "-s", f"victoriametrics={server}:8428",
                   "-s", f"prometheus={server}:9090/api/v1/write", "--", PYTHON, *script[1:],
                   go]
        jobs.append(subprocess.Popen(
            ["ip", "netns", "exec", node, "unshare", "--uts", "sh", "-c",
             f'hostname "$0" && exec "$@"', node, *map(str, command)],
            cwd=home, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))

    def records(node):
        return [r for r in read_log(work / node / "ckmon.jsonl") if r["event"] == "checkpoint"]

    wait_for("5 checkpoints on every node",
             lambda: all(len(records(n)) >= 5 for n in cluster.nodes))
    servers.stop()
    go.touch()
    wait_for(f"{STEPS} checkpoints on every node",
             lambda: all(len(records(n)) >= STEPS for n in cluster.nodes))
    time.sleep(1)  # the sinks meet the servers down
    servers.start()
    for job in jobs:
        _, err = job.communicate(timeout=120)
        assert job.returncode == 0, err
        assert "not delivered" not in err, err
        # Both sinks met the outage: their retries are counted at the end.
        retried = [int(m) for m in re.findall(r"sent, (\d+) retried", err)]
        assert len(retried) == 2 and all(retried), err

    hosts = {r["host"] for n in cluster.nodes for r in records(n)}
    assert hosts == set(cluster.nodes)
    # The newest step per host, over all hosts, from each back-end.
    newest = 'max by (host) (max_over_time(ckmon_value{job="train",run="cluster-1",key="step"}[1h]))'
    got = wait_for("every host's last step in Prometheus", lambda: (
        lambda r: len(r) == NODES and r)(servers.promql(newest)))
    assert {r["metric"]["host"]: float(r["value"][1]) for r in got} == {
        n: STEPS for n in cluster.nodes}
    # Every checkpoint of every host, in both: nothing lost across the restart.
    steps = 'count_over_time(ckmon_value{job="train",key="step"}[1h])'
    got = wait_for("every step in Prometheus", lambda: (
        lambda r: len(r) == NODES and all(float(x["value"][1]) == STEPS for x in r) and r)(
            servers.promql(steps)))
    exported = wait_for("every step in VictoriaMetrics", lambda: (
        lambda e: len(e) == NODES and all(len(x["values"]) == STEPS for x in e) and e)(
            servers.vm_export('ckmon_value{job="train",key="step"}')))
    for series in exported:
        assert sorted(series["values"]) == list(range(1, STEPS + 1)), series["metric"]
