"""test_sinks.py — records pushed to real Pushgateway, VictoriaMetrics and InfluxDB servers,
and nothing lost when the sink or the collector fails (docs/sinks.md).

A Python writer saves pickled checkpoints whose values and tensor statistics the test
computes independently with numpy from the same generator; each server is then queried as
a user would, and every sample compared. Fault tests stop or break the sink, or SIGKILL the
collector, and check that every record written to the log arrives in the end.
"""
import base64
import json
import math
import os
import signal
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ckmon_helpers import (
    AGENT, ckmon_args, clean_env, namespace, parse_time, python_script, read_log,
)
from sink_servers import FaultySink, Influx, Pushgateway, VictoriaMetrics, free_port, wait_for

STATE = """
def state(i):
    w = [i + 0.25 * k for k in range(20)]
    if i == 2:
        w[3] = float("nan")
        w[7] = float("inf")
    return {"epoch": i, "lr": 0.1 * 0.5 ** i, "opt": "adam",
            "loss": float("nan") if i == 1 else 1 / (i + 1), "weights": w}
"""

# Epochs 1 (NaN loss) and 2 (NaN and Inf weights) each also get a nonfinite alert record,
# which the log and the sinks carry after the checkpoint's record.
ALERTED = (1, 2)


def lines_for(epochs):
    """Log lines (records and their alerts) that checkpoints of these epochs make."""
    return sum(1 + (i in ALERTED) for i in epochs)


WRITER = STATE + """
first, count = int(sys.argv[1]), int(sys.argv[2])
for i in range(first, first + count):
    path = os.path.abspath(f"epoch_{i}.pkl")
    with open(path, "wb") as f:
        pickle.dump(state(i), f)
    report(path=path, size=os.path.getsize(path), i=i)
"""

NS = namespace(STATE)


def expected_samples(i, size):
    """{(metric, label, stat-or-None): value} that record i must produce."""
    s = NS["state"](i)
    out = {("ckmon_value", key, None): float(s[key]) for key in ("epoch", "lr", "loss")}
    w = np.array(s["weights"], dtype=np.float64)
    finite = w[np.isfinite(w)]
    stats = {"min": finite.min(), "max": finite.max(), "mean": finite.mean(),
             "std": finite.std(), "nan": np.isnan(w).sum(), "inf": np.isinf(w).sum()}
    out.update({("ckmon_tensor", "weights", k): float(v) for k, v in stats.items()})
    out[("ckmon_checkpoint_bytes", None, None)] = float(size)
    out[("ckmon_checkpoint_complete", None, None)] = 1.0
    return out


def sample_key(name, labels):
    if name == "ckmon_value":
        return (name, labels["key"], None)
    if name == "ckmon_tensor":
        return (name, labels["tensor"], labels["stat"])
    return (name, None, None)


def same(a, b, rel=0.0):
    if math.isnan(b):
        return math.isnan(a)
    return a == b if rel == 0 else math.isclose(a, b, rel_tol=rel)


def write_checkpoints(work, first, count, env):
    script = python_script(work, WRITER)
    p = subprocess.run(script + [str(first), str(count)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def ckmon_run(work, sinks, first=0, count=3, job="train", options=(), env=None):
    """`ckmon run` of the writer with these sinks; returns (process, reports)."""
    script = python_script(work, WRITER)
    args = ["run", "-o", work / "ckmon.jsonl", "--job", job]
    for sink in sinks:
        args += ["-s", sink]
    args += list(options) + ["--", *script, str(first), str(count)]
    p = subprocess.run(ckmon_args(*args), cwd=work, env=clean_env(**(env or {})),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p, [json.loads(line) for line in p.stdout.splitlines()]


def state_dir(work, log="ckmon.jsonl"):
    return work / f"{log}.state"


def stats(work, log="ckmon.jsonl"):
    return json.loads((state_dir(work, log) / "stats.json").read_text())["sinks"]


class Collect:
    """`ckmon collect` with sinks, and programs run against it with LD_PRELOAD."""

    def __init__(self, work, sinks, options=()):
        self.work, self.socket, self.log = work, work / "c.sock", work / "ckmon.jsonl"
        args = ["collect", "--socket", self.socket, "--log", self.log, *options]
        for sink in sinks:
            args += ["-s", sink]
        self.process = subprocess.Popen(ckmon_args(*args), cwd=work, env=clean_env(),
                                        stderr=subprocess.PIPE, text=True)
        wait_for("the collector's socket", lambda: self.socket.exists()
                 or self.process.poll() is not None)
        assert self.process.poll() is None, self.process.stderr.read()

    def write(self, first, count):
        env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=self.socket, CKMON_JOB="train")
        return write_checkpoints(self.work, first, count, env)

    def records(self, count):
        """Waits until the log holds count records (the collector writes them at close)."""
        return wait_for(f"{count} records in the log",
                        lambda: len(read_log(self.log)) >= count and read_log(self.log))

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def test_pushgateway_keeps_each_files_latest_checkpoint(work, servers):
    pg = servers(Pushgateway)
    job = "run 1/a"  # a space and a slash: the grouping key needs base64
    p, reports = ckmon_run(work, [f"pushgateway={pg.url}"], count=3, job=job)
    host = socket.gethostname()
    got, alerts = {}, {}
    for name, labels, value in pg.samples():
        assert labels["job"] == job and labels["host"] == host and labels["instance"] == host
        if name == "ckmon_alerts_total":
            alerts[(labels["rule"], labels["severity"])] = value
            continue
        assert labels["file"] == "epoch_N.pkl"
        got[sample_key(name, labels)] = value
    assert alerts == {("nonfinite", "critical"): len(ALERTED)}
    last = reports[-1]
    # the last checkpoint (epoch 2) has NaN and Inf weights: not healthy
    assert got[("ckmon_checkpoint_healthy", None, None)] == (0.0 if last["i"] in ALERTED else 1.0)
    expected = expected_samples(last["i"], last["size"])
    for key, value in expected.items():
        assert key in got, (key, sorted(got))
        assert same(got[key], value), (key, got[key], value)
    records = read_log(work / "ckmon.jsonl")
    assert got[("ckmon_checkpoint_time_seconds", None, None)] == pytest.approx(
        parse_time(records[-1]["time"]).timestamp(), abs=1e-6)
    [counts] = stats(work)
    lines = lines_for(range(3))
    assert (counts["received"], counts["sent"], counts["dead_lettered"]) == (lines, lines, 0)
    assert f"{lines} received, {lines} sent" in p.stderr


def test_pushgateway_groups_ranks_apart(work, servers):
    """Two ranks writing the same file name on one host are two groups, not one."""
    pg = servers(Pushgateway)
    for rank, first in ((0, 0), (1, 5)):
        ckmon_run(work, [f"pushgateway={pg.url}"], first=first, count=1, env={"RANK": rank})
    epochs = {labels["rank"]: value for name, labels, value in pg.samples()
              if name == "ckmon_value" and labels["key"] == "epoch"}
    assert epochs == {"0": 0.0, "1": 5.0}


def test_victoriametrics_keeps_every_checkpoint(work, servers):
    vm = servers(VictoriaMetrics)
    _, reports = ckmon_run(work, [f"victoriametrics={vm.url}"], count=4)
    records = {r["path"]: r for r in read_log(work / "ckmon.jsonl")}
    times = {r["i"]: int(parse_time(records[r["path"]]["time"]).timestamp() * 1000)
             for r in reports}
    want = {}
    for r in reports:
        for key, value in expected_samples(r["i"], r["size"]).items():
            if not math.isnan(value):  # VictoriaMetrics drops NaN; ckmon skips and counts it
                want.setdefault(key, []).append((times[r["i"]], value))
    series = wait_for("every sample in VictoriaMetrics", lambda: (
        lambda s: s if sum(len(v) for v in s.values()) >= sum(map(len, want.values()))
        else None)(vm.export('{job="train",__name__=~"ckmon_(value|tensor|checkpoint_bytes|'
                             'checkpoint_complete)"}')))
    got = {sample_key(name, dict(labels)): points for (name, labels), points in series.items()}
    assert set(got) == set(want)
    for key, points in want.items():
        assert [t for t, _ in got[key]] == sorted(t for t, _ in points), key
        for (t, value), (t2, expected) in zip(got[key], sorted(points)):
            assert same(value, expected, rel=1e-11), (key, t, value, expected)
    [counts] = stats(work)
    assert counts["sent"] == lines_for(range(4)) and counts["skipped_samples"] == 1  # epoch 1 loss


def test_influx_select(work, servers):
    db = "ckmon_test"
    influx = servers(Influx)
    influx.create_database(db)
    _, reports = ckmon_run(work, [f"influx={influx.url}/write?db={db}"], count=3)
    records = {r["path"]: r for r in read_log(work / "ckmon.jsonl")}
    skipped = 0
    for r in reports:
        when = records[r["path"]]["time"]
        got = {}
        for measurement in ("ckmon_value", "ckmon_tensor", "ckmon_checkpoint_bytes",
                            "ckmon_checkpoint_complete"):
            for row in influx.select(db, f"SELECT * FROM {measurement} WHERE time = '{when}'"):
                got[sample_key(measurement, row)] = row["value"]
                assert row["job"] == "train" and row["host"] == socket.gethostname()
        expected = expected_samples(r["i"], r["size"])
        skipped += sum(math.isnan(v) for v in expected.values())
        assert got == {k: v for k, v in expected.items() if not math.isnan(v)}
    [counts] = stats(work)
    assert counts["sent"] == lines_for(range(3)) and counts["skipped_samples"] == skipped == 1


def test_sink_down_while_writing_then_started(work, servers):
    """The sink is down for the whole run: the log rotates (segments kept for the sink), and
    a collector started again later delivers every record."""
    port = free_port()
    sink = f"victoriametrics=http://127.0.0.1:{port}"
    options = ["--log-max-bytes", "1500", "--log-keep", "0"]
    collect = Collect(work, [sink], options + ["--flush-timeout", "1"])
    try:
        collect.write(0, 6)
    finally:
        rc, err = collect.stop() if collect.process.poll() is None else (None, "")
    segments = sorted(work.glob("ckmon.jsonl.*[0-9]"))
    assert segments, "the log did not rotate"
    records = [r for path in segments + [work / "ckmon.jsonl"] for r in read_log(path)]
    assert sorted(r["values"]["epoch"] for r in records) == list(range(6))
    lines = lines_for(range(6))
    assert rc == 1 and f"{lines} record(s) not delivered" in err, err
    [counts] = stats(work)
    assert counts["retried"] >= 1 and counts["sent"] == 0 and counts["undelivered"] == lines

    vm = servers(VictoriaMetrics, port)
    collect = Collect(work, [sink], options)
    try:
        collect.write(6, 1)
        wait_for("7 learning rates", lambda: len(
            vm.export('{__name__="ckmon_value",key="lr"}').get(("ckmon_value", frozenset(
                {"job": "train", "host": socket.gethostname(), "file": "epoch_N.pkl",
                 "key": "lr"}.items())), [])) == 7)
    finally:
        rc, err = collect.stop()
    assert rc == 0, err
    [counts] = stats(work)
    assert counts["sent"] == 1 + lines and counts["undelivered"] == 0


def test_collector_killed_before_pushing(work, servers):
    """SIGKILL after the records reached the log but before any was acknowledged: a
    collector started again with the same log and state sends them all."""
    port = free_port()
    sink = f"victoriametrics=http://127.0.0.1:{port}"
    collect = Collect(work, [sink])
    try:
        collect.write(0, 3)
        collect.records(3)
    finally:
        collect.kill()
    vm = servers(VictoriaMetrics, port)
    collect = Collect(work, [sink])
    try:
        lr = ("ckmon_value", frozenset({"job": "train", "host": socket.gethostname(),
                                         "file": "epoch_N.pkl", "key": "lr"}.items()))
        points = wait_for("3 learning rates", lambda: (
            lambda p: p if len(p) == 3 else None)(vm.export('{key="lr"}').get(lr, [])))
    finally:
        rc, err = collect.stop()
    assert rc == 0, err
    assert sorted(v for _, v in points) == pytest.approx(
        sorted(NS["state"](i)["lr"] for i in range(3)), rel=1e-11)


@pytest.mark.parametrize("answers", [
    [(503, {"Retry-After": "1"}), (503, {"Retry-After": "1"}), (200, {})],
    [(429, {}), (200, {})],
])
def test_busy_sink_is_retried(work, answers):
    sink = FaultySink(answers)
    try:
        p, reports = ckmon_run(work, [f"ndjson={sink.url}"], count=3)
    finally:
        sink.stop()
    log = read_log(work / "ckmon.jsonl")
    assert sink.delivered() == log and len(log) == 3
    # the records may come in more than one batch: the ones after the answers are all 200
    statuses = [status for status, _, _ in sink.requests]
    assert statuses[:len(answers)] == [s for s, _ in answers]
    assert set(statuses[len(answers):]) <= {200}
    assert all(h.get("Content-Encoding") == "gzip" for _, h, _ in sink.requests)
    [counts] = stats(work)
    assert counts["retried"] == len(answers) - 1 and counts["sent"] == lines_for(range(3))


def test_refused_batch_is_dead_lettered(work):
    sink = FaultySink([(400, {})])
    try:
        p, _ = ckmon_run(work, [f"ndjson={sink.url}"], count=2)
    finally:
        sink.stop()
    log = read_log(work / "ckmon.jsonl")
    [dead_file] = state_dir(work).glob("ndjson-*.dead.jsonl")
    letters = [json.loads(line) for line in dead_file.read_text().splitlines()]
    assert [r for letter in letters for r in letter["records"]
            if r["event"] != "alert"] == log
    assert all(l["status"] == 400 and l["response"] == '{"status": 400}' for l in letters)
    assert len(sink.requests) == len(letters)  # refused for good: never sent again
    [counts] = stats(work)
    assert counts["dead_lettered"] == lines_for(range(2)) and counts["sent"] == 0
    assert counts["undelivered"] == 0
    assert "dead-letter" in p.stderr


def test_flush_timeout_says_what_was_not_delivered(work):
    sink = f"ndjson=http://127.0.0.1:{free_port()}/"
    p, _ = ckmon_run(work, [sink], count=2, options=["--flush-timeout", "0.5"])
    assert f"{lines_for(range(2))} record(s) not delivered" in p.stderr
    [counts] = stats(work)
    assert counts["undelivered"] == lines_for(range(2)) and counts["sent"] == 0


def test_stdout_log_is_spooled(work):
    sink = FaultySink([(200, {})])
    try:
        script = python_script(work, WRITER)
        p = subprocess.run(ckmon_args("run", "-o", "-", "-s", f"ndjson={sink.url}", "--",
                                      *script, "0", "2"),
                           cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60)
    finally:
        sink.stop()
    assert p.returncode == 0, p.stderr
    printed = [json.loads(l) for l in p.stdout.splitlines() if l.startswith('{"schema"')]
    assert len(printed) == lines_for(range(2)) and sink.delivered_lines() == printed
    spooled = (work / "ckmon-stdout.state" / "spool.jsonl").read_text().splitlines()
    assert [json.loads(l) for l in spooled] == printed


def test_sighup_reopens_the_log_and_sinks_follow(work):
    """logrotate's way: the log is moved away and SIGHUP makes the collector start a new
    one; the sink finishes the old file, goes on with the new, and --stats says so."""
    sink = FaultySink([(200, {})])
    collect = Collect(work, [f"ndjson={sink.url}"])
    try:
        collect.write(0, 2)
        collect.records(2)
        os.rename(collect.log, work / "ckmon.jsonl.old")
        collect.process.send_signal(signal.SIGHUP)
        wait_for("a new log", collect.log.exists)
        collect.write(2, 2)
        collect.records(2)
    finally:
        rc, err = collect.stop()
        sink.stop()
    assert rc == 0, err
    assert [r["values"]["epoch"] for r in read_log(work / "ckmon.jsonl.old")] == [0, 1]
    assert [r["values"]["epoch"] for r in read_log(collect.log)] == [2, 3]
    assert sorted(r["values"]["epoch"] for r in sink.delivered()) == [0, 1, 2, 3]
    p = subprocess.run(ckmon_args("collect", "--stats", "--log", collect.log), cwd=work,
                       env=clean_env(), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    [counts] = json.loads(p.stdout)["sinks"]
    assert counts["sink"] == f"ndjson={sink.url}" and counts["sent"] == lines_for(range(4))


def test_log_rotation_keeps_the_newest_segments(work):
    """Without sinks, --log-keep bounds the rotated segments; the newest records survive."""
    script = python_script(work, WRITER)
    log = work / "ckmon.jsonl"
    p = subprocess.run(ckmon_args("run", "-o", log, "--log-max-bytes", "100", "--log-keep", "2",
                                  "--", *script, "0", "5"),
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    # every line takes the log past 100 bytes: a rotation per record and per alert (the
    # state dir beside them is not a segment), the last two kept
    last = lines_for(range(5))
    assert sorted(x.name for x in work.glob("ckmon.jsonl*") if x.is_file()) == [
        "ckmon.jsonl", f"ckmon.jsonl.{last - 1}", f"ckmon.jsonl.{last}"]
    assert read_log(log) == []
    assert [r["values"]["epoch"] for n in (last - 1, last)
            for r in read_log(f"{log}.{n}")] == [3, 4]


def test_truncated_log_is_delivered_from_its_start(work):
    sink = FaultySink([(200, {})])
    collect = Collect(work, [f"ndjson={sink.url}"])
    try:
        collect.write(0, 2)
        wait_for("2 delivered records", lambda: len(sink.delivered()) == 2)
        collect.log.write_bytes(b"")
        collect.write(2, 1)
        wait_for("3 delivered records", lambda: len(sink.delivered()) == 3)
    finally:
        rc, err = collect.stop()
        sink.stop()
    assert rc == 0 and "was truncated" in err, err
    assert [r["values"]["epoch"] for r in sink.delivered()] == [0, 1, 2]


def test_two_collectors_cannot_share_a_state_dir(work):
    sink = f"ndjson=http://127.0.0.1:{free_port()}/"
    first = Collect(work, [sink])
    try:
        p = subprocess.run(ckmon_args("collect", "--socket", work / "other.sock", "--log",
                                      first.log, "-s", sink),
                           cwd=work, env=clean_env(), capture_output=True, text=True, timeout=30)
    finally:
        first.stop()
    assert p.returncode == 1
    assert p.stderr == f"ckmon: state dir {first.log}.state is in use by another collector " \
                       "(--state)\n"


def test_one_sink_given_twice_is_refused(work):
    """Two copies of one sink would move one cursor file from two threads."""
    sink = f"ndjson=http://127.0.0.1:{free_port()}/"
    p = subprocess.run(ckmon_args("collect", "--socket", work / "c.sock", "--log",
                                  work / "ckmon.jsonl", "-s", sink, "-s", sink),
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr == f"ckmon: sink {sink} given twice\n"


def test_url_password_is_sent_but_never_shown(work):
    sink = FaultySink([(200, {})])
    url = sink.url.replace("http://", "http://trainer:s3cret@")
    try:
        p, _ = ckmon_run(work, [f"ndjson={url}"], count=1)
    finally:
        sink.stop()
    [(_, headers, _)] = sink.requests
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"trainer:s3cret").decode()
    shown = sink.url.replace("http://", "http://trainer:***@")
    assert f"ndjson={shown}" in p.stderr and "s3cret" not in p.stderr
    [counts] = stats(work)
    assert counts["sink"] == f"ndjson={shown}"


def test_refusal_names_the_url_without_its_password(work):
    sink = FaultySink([(401, {})])
    try:
        p, _ = ckmon_run(work, [f"ndjson={sink.url.replace('http://', 'http://u:pw@')}"], count=1)
    finally:
        sink.stop()
    [letter_file] = state_dir(work).glob("ndjson-*.dead.jsonl")
    [letter] = [json.loads(line) for line in letter_file.read_text().splitlines()]
    assert letter["url"] == sink.url.replace("http://", "http://u:***@")
    assert letter["status"] == 401 and ":pw@" not in p.stderr


def maps_libcurl(pid):
    """Whether libcurl.so.4 (the file it links to, libcurl.so.4.8.0) is mapped in pid."""
    return any(Path(line.split()[-1]).name.startswith("libcurl.so.4")
               for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if ".so" in line)


def test_libcurl_is_loaded_only_when_a_sink_is_given(work):
    """libcurl (and the thirty libraries it needs) costs every command's start-up, so it
    is loaded only when sinks are given, and a sink still delivers through it."""
    (work / "bare").mkdir()
    bare = Collect(work / "bare", [])
    try:
        bare.write(0, 1)
        bare.records(1)  # serving: whatever it loads at start is loaded by now
        assert not maps_libcurl(bare.process.pid)
    finally:
        assert bare.stop()[0] == 0
    sink = FaultySink([(200, {})])
    try:
        collect = Collect(work, [f"ndjson={sink.url}"])
        try:
            assert maps_libcurl(collect.process.pid)  # loaded before the socket appeared
            collect.write(0, 1)
            [record] = collect.records(1)
            wait_for("the record at the sink", lambda: sink.delivered() == [record])
        finally:
            assert collect.stop()[0] == 0
    finally:
        sink.stop()


def test_sinks_without_libcurl_stop_before_the_command(work):
    """Sinks that could not deliver must not let a run go on unwatched: without a
    loadable libcurl, `run` and `collect` refuse at start and `run` never starts the
    command."""
    libs = work / "libs"
    libs.mkdir()
    (libs / "libcurl.so.4").write_bytes(b"")  # found first, and not a library
    env = clean_env(LD_LIBRARY_PATH=libs)
    marker = work / "started"
    sink = f"ndjson=http://127.0.0.1:{free_port()}/"
    run = subprocess.run(ckmon_args("run", "-o", work / "run.jsonl", "-s", sink, "--", "touch",
                                    marker), cwd=work, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode != 0 and not marker.exists()
    assert "sinks: cannot load libcurl.so.4" in run.stderr, run.stderr
    collect = subprocess.run(ckmon_args("collect", "--socket", work / "c.sock", "--log",
                                        work / "c.jsonl", "-s", sink), cwd=work, env=env,
                             capture_output=True, text=True, timeout=60)
    assert collect.returncode == 1 and "sinks: cannot load libcurl.so.4" in collect.stderr
    assert not (work / "c.sock").exists()
