"""test_digest.py — `--digest`: each record's xxh3-128 of the file (docs/integrity.md).

Ground truth: python3-xxhash's xxh3_128 over the bytes the test reads back from disk,
an implementation independent of ckmon's reading, chunking and printing. The files are
written by the real writers (torch.save, np.save, pickle) under the agent.
"""
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import xxhash

from ckmon_helpers import CKMON, PYTHON, Collector, clean_env, python_script, read_log
from sink_servers import free_port, request, wait_for


def xxh3(path):
    return "xxh3-128:" + xxhash.xxh3_128_hexdigest(path.read_bytes())


SAVES = """
import os, pickle
import numpy as np, torch
torch.save({"w": torch.randn(256, 256), "epoch": 3}, "model.pt")
np.save("a.npy", np.arange(100000, dtype=np.float64))
torch.save({"w": torch.randn(64)}, "atomic.pt.tmp")   # an atomic save: renamed at once
os.replace("atomic.pt.tmp", "atomic.pt")
with open("empty.pkl", "wb"):
    pass
"""


def test_digest_of_each_save_is_the_files_xxh3(ckmon, work):
    run = ckmon.run(*python_script(work, SAVES), options=["--digest"])
    assert run.returncode == 0, run.stderr
    names = ("model.pt", "a.npy", "atomic.pt", "empty.pkl")
    assert {r["path"] for r in run.records} == {str(work / n) for n in names}
    for name in names:
        record = run.only_record(work / name)
        assert record["digest"] == xxh3(work / name), record
        assert name == "empty.pkl" or "errors" not in record, record  # an empty pickle is one
    assert run.only_record(work / "atomic.pt")["written_as"] == str(work / "atomic.pt.tmp")
    # the empty file's digest is xxh3-128 of no bytes
    assert run.only_record(work / "empty.pkl")["digest"] == "xxh3-128:" + xxhash.xxh3_128_hexdigest(b"")


def test_no_digest_unless_asked(ckmon, work):
    run = ckmon.run(*python_script(work, SAVES))
    assert run.returncode == 0, run.stderr
    assert run.records and not any("digest" in r for r in run.records)


def test_the_variable_turns_it_on_and_a_bad_value_is_refused(ckmon, work):
    run = ckmon.run(*python_script(work, SAVES), env={"CKMON_DIGEST": "1"})
    assert run.returncode == 0, run.stderr
    assert all(r["digest"] == xxh3(work / os.path.basename(r["path"])) for r in run.records)
    bad = ckmon.run(PYTHON, "-c", "pass", env={"CKMON_DIGEST": "yes"})
    assert bad.returncode != 0 and "CKMON_DIGEST: 'yes' is not 1 or 0" in bad.stderr


TORN = """
import os, signal, sys
import numpy as np
data = np.arange(1 << 20, dtype=np.float64)
with open("torn.npy", "wb") as f:
    np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                             "shape": data.shape})
    f.write(data[: 1 << 18].tobytes())
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""

TORN_PICKLE = """
import os, pickle, signal
blob = pickle.dumps({"lr": 0.5, "history": list(range(5000))}, protocol=4)
with open("torn.pkl", "wb") as f:
    f.write(blob[: len(blob) // 2])
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("body,name", [(TORN, "torn.npy"), (TORN_PICKLE, "torn.pkl")],
                         ids=["streamed", "reparsed"])
def test_a_torn_file_gets_the_digest_of_what_is_on_disk(ckmon, work, body, name):
    """torn.npy: the agent had findings, the collector hashes the file; torn.pkl: the
    agent had none yet, so the collector parses the file and hashes it in that pass."""
    run = ckmon.run(*python_script(work, body), options=["--digest"])
    assert run.returncode == 128 + 9, run.stderr
    record = run.only_record(work / name)
    assert record["complete"] is False
    assert record["digest"] == xxh3(work / name), record


CHANGED_AFTER_CLOSE = """
import os, torch
torch.save({"w": torch.randn(1000)}, "grown.pt")
os.truncate("grown.pt", os.path.getsize("grown.pt") + 10)    # size differs
torch.save({"w": torch.randn(1000)}, "touched.pt")
st = os.stat("touched.pt")
os.utime("touched.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
torch.save({"w": torch.randn(1000)}, "linked.pt")
os.symlink("/etc/hostname", "link.tmp")                     # a symlink put in its place
os.rename("link.tmp", "linked.pt")
"""


def test_a_file_changed_or_replaced_after_its_close_gets_no_digest(ckmon, work):
    run = ckmon.run(*python_script(work, CHANGED_AFTER_CLOSE), options=["--digest"])
    assert run.returncode == 0, run.stderr
    why = {name: run.only_record(work / name) for name in ("grown.pt", "touched.pt", "linked.pt")}
    for name, record in why.items():
        assert "digest" not in record, (name, record)
    assert why["grown.pt"]["errors"] == [
        "digest: none: the file was replaced or changed after its close (its size differs)"]
    assert why["touched.pt"]["errors"] == [
        "digest: none: the file was replaced or changed after its close (its modification "
        "time differs)"]
    (error,) = why["linked.pt"]["errors"]
    assert error.startswith("digest: none: cannot open the file: "), error


def test_a_bare_collector_with_digest(work):
    """`ckmon collect` takes the flag too: digests are the collector's, not the agent's."""
    collector = Collector(work, options=["--digest"])
    try:
        done = collector.run(python_script(work, SAVES), work)
        assert done.returncode == 0, done.stderr
        records = collector.stop()
    finally:
        collector.kill()
    assert len(records) == 4
    for r in records:
        assert r["digest"] == xxh3(work / os.path.basename(r["path"])), r


# ---- verify with digests ---------------------------------------------------------------

TRAINING = """
import pickle
import numpy as np, torch
for epoch in range(3):
    torch.save({"w": torch.arange(4096, dtype=torch.float32), "epoch": epoch}, f"ep{epoch}.pt")
np.save("arr.npy", np.linspace(0, 1, 5000))
with open("state.pkl", "wb") as f:
    pickle.dump({"lr": 0.1, "history": [float(i) for i in range(2000)]}, f)
"""


def verify(log, *paths, socket=None):
    p = subprocess.run([str(CKMON), "verify", "--log", str(log), "--socket",
                        str(socket or log.parent / "nobody.sock"), *map(str, paths)],
                       capture_output=True, text=True, timeout=120, env=clean_env())
    return p.returncode, dict(line.split(": ", 1) for line in p.stdout.splitlines())


def flip_keeping_size_and_time(path, offset):
    """One bit flipped in place; size and modification time as they were (as storage that
    returns other bytes, or a copy with `cp -p` of another file, would leave them)."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def verify_records(log):
    return [r for r in read_log(log) if r["event"] == "verify"]


def test_verify_recomputes_the_digest(ckmon, work):
    run = ckmon.run(*python_script(work, TRAINING), options=["--digest"], job="train")
    assert run.returncode == 0, run.stderr
    log = work / "ckmon.jsonl"
    written = {r["path"]: r for r in run.records}
    assert all(r["digest"] == xxh3(Path(p)) for p, r in written.items())

    code, lines = verify(log, work)
    assert code == 0 and lines == {p: "ok" for p in written}, lines
    assert verify_records(log) == []

    state, arr = work / "state.pkl", work / "arr.npy"
    # no checksum in a pickle: a bit of the float 1234.0 (a BINFLOAT's 8 big-endian bytes)
    flip_keeping_size_and_time(state, state.read_bytes().index(struct.pack(">d", 1234.0)) + 3)
    with open(arr, "r+b") as f:
        f.truncate(1000)
    copies = work / "copies"
    copies.mkdir()
    shutil.copy(work / "ep2.pt", copies / "ep2.pt")                  # another directory
    shutil.copy(work / "ep1.pt", copies / "other.pt")                # another name too

    code, lines = verify(log, work)
    assert code == 1
    assert lines[str(state)] == (f"corrupt: digest mismatch (written {written[str(state)]['digest']}, "
                                 f"now {xxh3(state)})")
    assert lines[str(arr)] == f"truncated (1000 of {written[str(arr)]['bytes']} bytes)"
    ep2, ep1 = written[str(work / "ep2.pt")], written[str(work / "ep1.pt")]
    assert lines[str(copies / "ep2.pt")] == f"ok, a copy of {work / 'ep2.pt'} written at {ep2['time']} by train"
    assert lines[str(copies / "other.pt")] == f"ok, a copy of {work / 'ep1.pt'} written at {ep1['time']} by train"
    assert [lines[str(work / f"ep{i}.pt")] for i in range(3)] == ["ok"] * 3
    assert len(lines) == 7

    # each failure is a verify record in the log, counted per job and host
    failures = verify_records(log)
    assert [(r["path"], r["result"], r["total"]) for r in failures] == [
        (str(arr), "truncated", 1), (str(state), "corrupt", 2)]
    assert all(r["job"] == "train" and r["run"] == ep1["run"] and r["message"] == lines[r["path"]]
               for r in failures)
    verify(log, state)
    assert [r["total"] for r in verify_records(log)] == [1, 2, 3]


def test_a_copy_with_other_bytes_is_not_taken_for_one(ckmon, work):
    run = ckmon.run(*python_script(work, TRAINING), options=["--digest"])
    assert run.returncode == 0, run.stderr
    copies = work / "copies"
    copies.mkdir()
    shutil.copy(work / "state.pkl", copies / "state.pkl")
    flip_keeping_size_and_time(copies / "state.pkl", 100)
    code, lines = verify(work / "ckmon.jsonl", copies)
    assert (code, lines) == (0, {str(copies / "state.pkl"): "no record, ok by its checksums"})


def test_verify_failures_reach_the_collectors_metrics(work):
    """verify hands its failures to the collector on --socket, which writes them to its log
    and counts them in ckmon_verify_failures_total on /metrics."""
    port = free_port()
    collector = Collector(work, options=["--digest", "--listen", f"127.0.0.1:{port}"])
    try:
        done = collector.run(python_script(work, TRAINING), work, CKMON_JOB="train")
        assert done.returncode == 0, done.stderr
        wait_for("5 records", lambda: len(read_log(collector.log)) >= 5)
        flip_keeping_size_and_time(work / "ep0.pt", 2000)
        with open(work / "ep1.pt", "r+b") as f:
            f.truncate(100)
        code, lines = verify(collector.log, work / "ep0.pt", work / "ep1.pt", work / "ep2.pt",
                             socket=collector.socket)
        assert code == 1 and lines[str(work / "ep2.pt")] == "ok", lines
        wait_for("2 verify records", lambda: len(verify_records(collector.log)) == 2)
        status, text = request("GET", f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        host = verify_records(collector.log)[0]["host"]
        (line,) = [l for l in text.splitlines() if l.startswith("ckmon_verify_failures_total{")]
        assert line == f'ckmon_verify_failures_total{{job="train",host="{host}"}} 2', text
        assert "# TYPE ckmon_verify_failures_total counter" in text
    finally:
        collector.stop()


def test_a_file_loaded_right_after_its_save_keeps_the_writer_first(ckmon, work):
    """With --digest the held record waits for its digest; a load of its file waits for
    it too, so that the log still has the writer (with its digest) before the reader."""
    body = ("import torch\ntorch.save({'w': torch.ones(300000)}, 'now.pt')\n"
            "torch.load('now.pt')\n")
    run = ckmon.run(*python_script(work, body), options=["--digest"])
    assert run.returncode == 0, run.stderr
    lines = [json.loads(l) for l in (work / "ckmon.jsonl").read_text().splitlines()]
    assert [l["event"] for l in lines] == ["checkpoint", "load"]
    checkpoint, load = lines
    assert checkpoint["digest"] == xxh3(work / "now.pt")
    assert load["written"]["time"] == checkpoint["time"] and load["unchanged"] is True
