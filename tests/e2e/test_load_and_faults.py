"""test_load_and_faults.py — many writers at once, a collector restarted under them, a full disk.

docs/security.md: one collector takes 16 processes writing 40 checkpoints each at the same
time without losing a record; agents whose collector restarts reconnect and deliver what
their bounded queue held; a log on a full file system is reported and written once space
returns, with nothing lost; the collector runs clean under valgrind.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from ckmon_helpers import AGENT, CKMON, Collector, ckmon_args, clean_env, python_script, read_log

# Writes COUNT pickles, pausing PAUSE seconds between them; prints each path.
WRITER = """
count, pause, tag = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
for i in range(count):
    path = os.path.abspath(f"{tag}_{i}.pkl")
    with open(path, "wb") as f:
        pickle.dump({"epoch": i, "tag": tag, "w": [float(i)] * 16}, f)
    time.sleep(pause)
report(tag=tag)
"""


def start_writers(work, sock, n, count, pause):
    writer = python_script(work, WRITER)
    env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=sock, CKMON_PATHS="*.pkl")
    return [subprocess.Popen([*writer, str(count), str(pause), f"p{k}"], cwd=work, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in range(n)]


def wait_all(procs):
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err


def assert_every_checkpoint(records, work, n, count):
    complete = {}
    for r in records:
        if r["complete"]:
            complete.setdefault(r["path"], r)
    for k in range(n):
        for i in range(count):
            path = str(work / f"p{k}_{i}.pkl")
            assert path in complete, f"no complete record for {path}"
            r = complete[path]
            assert r["values"]["epoch"] == i and r["values"]["tag"] == f"p{k}", r
            assert r["tensors"][0]["mean"] == float(i), r


def test_sixteen_processes_forty_checkpoints_each(collector, work):
    procs = start_writers(work, collector.socket, 16, 40, 0)
    wait_all(procs)
    records = collector.stop()
    assert len(records) == 16 * 40
    assert_every_checkpoint(records, work, 16, 40)


def test_collector_restarted_while_agents_write(work):
    first = Collector(work)
    procs = start_writers(work, first.socket, 4, 30, 0.05)
    time.sleep(0.5)
    first.stop()
    time.sleep(0.3)  # agents queue what they write meanwhile
    second = Collector(work)
    try:
        wait_all(procs)
        records = second.stop()
    finally:
        second.kill()
    assert_every_checkpoint(records, work, 4, 30)


def test_queue_overflow_is_reported(work):
    """With no collector for the whole run, the agent's bounded queue overflows; when a
    collector appears the agent says how many messages it lost."""
    sock = work / "c.sock"
    writer = python_script(work, """
import os, pickle, sys, time
big = {"k%d" % i: "v" * 200 for i in range(20000)}   # ~5 MB of values: over the 4 MiB queue
with open(sys.argv[1], "wb") as f:
    pickle.dump(big, f)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
time.sleep(1.2)   # past the agent's reconnect interval
with open(sys.argv[3], "wb") as f:
    pickle.dump({"epoch": 1}, f)
""", name="overflow.py")
    # The queue's bound for findings as it was when this test was written (default 64 MiB).
    env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=sock, CKMON_PATHS="*.pkl", CKMON_QUEUE_MB=4)
    p = subprocess.Popen([*writer, work / "big.pkl", sock, work / "after.pkl"], cwd=work,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    collector = Collector(work)
    try:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        records = collector.stop()
    finally:
        collector.kill()
    assert any(r["path"] == str(work / "after.pkl") and r["complete"] for r in records), records
    assert "lost" in collector.stderr and "could not reach the collector" in collector.stderr, \
        collector.stderr


@pytest.mark.skipif(not shutil.which("valgrind"), reason="valgrind is not installed")
@pytest.mark.skipif(b"__asan_init" in CKMON.read_bytes(), reason="an ASan build (SANITIZE=1)")
def test_collector_is_valgrind_clean(work):
    sock, log = work / "v.sock", work / "v.jsonl"
    p = subprocess.Popen(["valgrind", "--error-exitcode=99", "--leak-check=full",
                          "--errors-for-leak-kinds=definite,indirect", "-q",
                          *ckmon_args("collect", "--socket", sock, "--log", log)],
                         env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert p.poll() is None, p.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    procs = start_writers(work, sock, 3, 5, 0)
    wait_all(procs)
    p.terminate()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert len(read_log(log)) == 15


@pytest.fixture
def small_tmpfs(work):
    """A 1 MiB tmpfs of the test's own, to fill up."""
    mount = work / "small"
    mount.mkdir()
    if os.getuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", mount])


def fill(path):
    """Writes path until the file system is full (unbuffered: a buffered file's close
    would raise ENOSPC again for what it still holds)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)


def collect_filling(sock, mount, *options):
    """Starts `ckmon collect --socket sock OPTIONS`, waits for its socket, then fills
    mount (its file is mount/filler: unlink it to give the space back)."""
    p = subprocess.Popen(ckmon_args("collect", "--socket", sock, *options), env=clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            pytest.fail(f"the collector did not start: {p.communicate()[1]}")
        time.sleep(0.02)
    fill(mount / "filler")
    return p


def test_full_disk_under_the_log_loses_nothing(work, small_tmpfs):
    log, sock = small_tmpfs / "log.jsonl", work / "d.sock"
    p = collect_filling(sock, small_tmpfs, "--log", log)
    try:
        wait_all(start_writers(work, sock, 2, 10, 0))
        time.sleep(1.5)  # records written by now, or held
        assert read_log(log) == []
        (small_tmpfs / "filler").unlink()
        time.sleep(2.5)  # more than LOG_RETRY_US
        records = read_log(log)  # written while the collector still runs
    finally:
        p.terminate()
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert len(records) == 20
    assert_every_checkpoint(records, work, 2, 10)
    assert "holding records until there is space" in err, err
    assert "space again; 20 held record(s) written" in err, err


def test_full_disk_under_the_spool_loses_nothing(work, small_tmpfs):
    """With the log on stdout the sinks read a spool in the state dir; held spool lines
    are written when space returns, without waiting for another record."""
    from sink_servers import FaultySink, wait_for

    sink, sock = FaultySink([(200, {})]), work / "d.sock"
    p = collect_filling(sock, small_tmpfs, "-o", "-", "--state", small_tmpfs / "state", "-s",
                        f"ndjson={sink.url}")
    try:
        wait_all(start_writers(work, sock, 2, 5, 0))
        time.sleep(1.5)  # records printed by now, their spool lines held
        assert sink.delivered() == []
        (small_tmpfs / "filler").unlink()
        # while the collector still runs: no record, no signal to wake it, only the retry
        delivered = wait_for("the held records at the sink", lambda: (
            lambda d: d if len(d) >= 10 else None)(sink.delivered()))
    finally:
        p.terminate()
        out, err = p.communicate(timeout=30)
        sink.stop()
    printed = [json.loads(line) for line in out.splitlines()]
    assert p.returncode == 0, err
    assert len(printed) == 10 and sorted(map(json.dumps, delivered)) == sorted(
        map(json.dumps, printed)), err
    assert "holding records until there is space" in err, err
