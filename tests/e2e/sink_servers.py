"""sink_servers.py — the metric servers of tests/e2e/test_sinks.py, started for real.

Debian's prometheus-pushgateway, victoria-metrics and influxdb (1.x) run on ephemeral
loopback ports with their data in the test's directory, and are queried the way a user
would: Pushgateway's /metrics, VictoriaMetrics' /api/v1/export, InfluxDB's SELECT. A
small HTTP server in a thread plays a sink that fails on purpose (503, 429, 400).
"""
import gzip
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

WAIT = 30  # seconds a server gets to come up, or data to become visible


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, data=None, headers=None):
    """(status, body text); status 0 when nothing answered."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def wait_for(what, check):
    """Polls check() until it returns something true; returns that. Not a timing
    assertion: only gives up after WAIT seconds of nothing."""
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


class Server:
    def __init__(self, work, name, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = work / name
        self.data.mkdir(exist_ok=True)
        self.log = open(work / f"{name}.log", "ab")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(self.command(), env=self.env(), stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=self.data)
        wait_for(f"{type(self).__name__} on port {self.port}", self.ready)
        return self

    def env(self):
        return dict(os.environ)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Pushgateway(Server):
    def command(self):
        return ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{self.port}",
                "--persistence.file="]

    def ready(self):
        return request("GET", self.url + "/-/ready")[0] == 200

    def samples(self, name_prefix="ckmon_"):
        """[(name, labels, value)] of /metrics."""
        status, text = request("GET", self.url + "/metrics")
        assert status == 200
        return [s for s in parse_exposition(text) if s[0].startswith(name_prefix)]


class VictoriaMetrics(Server):
    def command(self):
        return ["victoria-metrics", f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.data}", "-retentionPeriod=1d"]

    def ready(self):
        return request("GET", self.url + "/health")[0] == 200

    def export(self, selector):
        """{(name, frozenset(labels)): [(timestamp_ms, value), ...]}"""
        request("GET", self.url + "/internal/force_flush")
        query = urllib.parse.urlencode({"match[]": selector})
        status, text = request("GET", f"{self.url}/api/v1/export?{query}")
        assert status == 200, text
        series = {}
        for line in text.splitlines():
            item = json.loads(line)
            metric = dict(item["metric"])
            name = metric.pop("__name__")
            key = (name, frozenset(metric.items()))
            series.setdefault(key, []).extend(zip(item["timestamps"], item["values"]))
        return {k: sorted(v) for k, v in series.items()}


class Prometheus(Server):
    """Debian's prometheus, scraping targets every second (honor_labels, as docs/sinks.md
    advises) and, with remote_write=True, taking remote write at /api/v1/write."""

    def __init__(self, work, name, port=None, targets=(), remote_write=False):
        super().__init__(work, name, port)
        self.targets, self.remote_write = list(targets), remote_write

    def command(self):
        config = self.data / "prometheus.yml"
        jobs = "".join(f"""
  - job_name: ckmon-{i}
    honor_labels: true
    scrape_interval: 1s
    static_configs: [{{targets: ["{target}"]}}]""" for i, target in enumerate(self.targets))
        config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                          + ("scrape_configs:" + jobs + "\n" if jobs else ""))
        return ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.data}/tsdb",
                f"--web.listen-address=127.0.0.1:{self.port}"] + (
                    ["--web.enable-remote-write-receiver"] if self.remote_write else [])

    def ready(self):
        return request("GET", self.url + "/-/ready")[0] == 200

    def query(self, promql):
        """[(labels, value)] of an instant query; value is a float (NaN as NaN)."""
        status, text = request("GET", f"{self.url}/api/v1/query?"
                               + urllib.parse.urlencode({"query": promql}))
        assert status == 200, text
        return [(r["metric"], float(r["value"][1])) for r in json.loads(text)["data"]["result"]]


class Influx(Server):
    def command(self):
        return ["influxd", "run", "-config", "/dev/null"]

    def env(self):
        return dict(os.environ, INFLUXDB_META_DIR=str(self.data / "meta"),
                    INFLUXDB_DATA_DIR=str(self.data / "data"),
                    INFLUXDB_DATA_WAL_DIR=str(self.data / "wal"),
                    INFLUXDB_HTTP_BIND_ADDRESS=f"127.0.0.1:{self.port}",
                    INFLUXDB_BIND_ADDRESS=f"127.0.0.1:{free_port()}",
                    INFLUXDB_REPORTING_DISABLED="true")

    def ready(self):
        return request("GET", self.url + "/ping")[0] == 204

    def query(self, db, q):
        data = urllib.parse.urlencode({"db": db, "q": q}).encode()
        status, text = request("POST", self.url + "/query", data,
                            {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, text
        return json.loads(text)

    def create_database(self, db):
        self.query(db, f'CREATE DATABASE "{db}"')

    def select(self, db, q):
        """Rows of a SELECT as dicts."""
        result = self.query(db, q)["results"][0]
        rows = []
        for series in result.get("series", []):
            rows += [dict(zip(series["columns"], values)) for values in series["values"]]
        return rows


LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape_label(text):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse_exposition(text):
    """[(name, {label: value}, float)] of the Prometheus text format."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?", line)
        assert m, line
        labels = {k: unescape_label(v) for k, v in LABEL.findall(m.group(2) or "")}
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


class FaultySink:
    """An NDJSON endpoint that answers each request with the next of `answers`
    ((status, headers)), then with the last one forever; it keeps every request."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []  # (status answered, headers, body bytes after gunzip)
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                index = min(len(sink.requests), len(sink.answers) - 1)
                status, headers = sink.answers[index]
                sink.requests.append((status, dict(self.headers), body))
                reply = json.dumps({"status": status}).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ingest"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered_lines(self):
        """Every record in the bodies the sink acknowledged (2xx), alerts too."""
        return [json.loads(line) for status, _, body in self.requests if 200 <= status < 300
                for line in body.decode().splitlines()]

    def delivered(self):
        """The records the sink acknowledged, without alerts (as read_log reads the log)."""
        return [r for r in self.delivered_lines() if r.get("event") != "alert"]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
