"""test_influx_lines.py — InfluxDB line protocol against a real influxd (docs/sinks.md).

Keys, jobs and file names may hold every character line protocol treats specially, a
backslash at the end included (it would escape the separator after it): each must be
stored, and read back from InfluxDB as the record's own text. And when InfluxDB refuses
some lines of a write and stores the rest (400 "partial write"), only the records those
lines came from are dead letters.
"""
import json
import re
import signal
import subprocess

from ckmon_helpers import ckmon_args, clean_env, python_script, read_log
from sink_servers import Influx, wait_for

DB = "ckmon_lines"
ESCAPE = re.compile(r"\\x(5c|[01][0-9a-f]|[89a-f][0-9a-f])")  # docs/records.md


def unescape(text):
    return ESCAPE.sub(lambda m: chr(int(m[1], 16)), text)


KEYS = ["ends in a backslash\\", "a b,c=d", "two\\\\", "mid\\dle", "\\ x", "plain"]

WRITER = f"""
keys = {KEYS!r}
with open(os.path.abspath("odd ,=\\\\.pkl"), "wb") as f:
    pickle.dump({{k: float(i) for i, k in enumerate(keys)}}, f)
"""


def tag_values(influx, key):
    result = influx.query(DB, f'SHOW TAG VALUES FROM "ckmon_value" WITH KEY = "{key}"')
    return {v for series in result["results"][0].get("series", []) for _, v in series["values"]}


def test_special_characters_are_escaped(work, servers):
    influx = servers(Influx)
    influx.create_database(DB)
    script = python_script(work, WRITER)
    job = "job, with=all \\"
    p = subprocess.run(ckmon_args("run", "-o", work / "ckmon.jsonl", "--job", job, "-s",
                                  f"influx={influx.url}/write?db={DB}", "--", *script),
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    [record] = read_log(work / "ckmon.jsonl")
    assert set(record["values"]) == set(KEYS)
    stats = json.loads((work / "ckmon.jsonl.state" / "stats.json").read_text())
    [counts] = stats["sinks"]
    assert counts["sent"] == 1 and counts["dead_lettered"] == 0, p.stderr
    assert {unescape(k) for k in tag_values(influx, "key")} == set(KEYS)
    assert {unescape(j) for j in tag_values(influx, "job")} == {job}
    assert {unescape(f) for f in tag_values(influx, "file")} == {"odd ,=\\.pkl"}
    rows = influx.select(DB, 'SELECT "value", "key" FROM "ckmon_value"')
    assert sorted((unescape(r["key"]), r["value"]) for r in rows) == sorted(
        (k, float(i)) for i, k in enumerate(KEYS))


def crafted(n, values):
    """A record as another writer of the log (`ckmon inspect >> LOG`, an older collector)
    may have left it."""
    return {"schema": 1, "event": "checkpoint", "time": f"2026-01-01T00:00:0{n}.000000Z",
            "host": "h", "pid": n, "program": "p", "job": "crafted", "path": f"/x/r{n}.pkl",
            "format": "pickle", "bytes": 1, "writes": 1, "seconds": 0.1, "complete": True,
            "values": values, "tensors": []}


def test_a_partial_write_dead_letters_only_the_refused_records(work, servers):
    influx = servers(Influx)
    influx.create_database(DB)
    log, sock = work / "ckmon.jsonl", work / "c.sock"
    collect = subprocess.Popen(ckmon_args("collect", "--socket", sock, "--log", log, "-s",
                                          f"influx={influx.url}/write?db={DB}"),
                               cwd=work, env=clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the collector's socket", lambda: sock.exists() or collect.poll() is not None)
        assert collect.poll() is None, collect.stderr.read()
        # Three records in one write, so one batch: InfluxDB refuses the middle one's line
        # for its series key of more than 65535 bytes and stores the others.
        records = [crafted(1, {"epoch": 1}), crafted(2, {"k" * 70000: 2.0}),
                   crafted(3, {"epoch": 3})]
        with open(log, "a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
        wait_for("the records in InfluxDB", lambda: len(
            influx.select(DB, 'SELECT "value" FROM "ckmon_value" WHERE "key" = \'epoch\'')) == 2)
    finally:
        collect.send_signal(signal.SIGTERM)
        _, err = collect.communicate(timeout=60)
    assert collect.returncode == 0, err
    [dead_file] = (work / "ckmon.jsonl.state").glob("influx-*.dead.jsonl")
    [letter] = [json.loads(line) for line in dead_file.read_text().splitlines()]
    assert letter["status"] == 400 and "partial write" in letter["response"]
    assert letter["records"] == [records[1]]
    epochs = influx.select(DB, 'SELECT "value" FROM "ckmon_value" WHERE "key" = \'epoch\'')
    assert sorted(r["value"] for r in epochs) == [1, 3]
    stats = json.loads((work / "ckmon.jsonl.state" / "stats.json").read_text())
    [counts] = stats["sinks"]
    assert counts["sent"] == 2 and counts["dead_lettered"] == 1
    assert "1 record(s) it named written to the dead-letter file" in err
