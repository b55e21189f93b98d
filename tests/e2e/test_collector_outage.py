"""test_collector_outage.py — a collector that is stopped, gone or swamped never holds a
monitored program up, and what it could not take is spooled (docs/agent.md "Exit").

A process that wrote no checkpoint never connects; one that did waits at most
CHANNEL_EXIT_WAIT_MS (5 s without progress, agent/channel.h) for its collector at exit, then writes what is
left to the agent spool beside the socket (core/agent_spool.h). The collector here is a
real `ckmon collect` frozen with SIGSTOP, with its listen backlog filled by the test where
the case needs it (as 4,096 exiting processes would). The spool files are read here with
the format's own description, independently of ckmon's reader.
"""
import hashlib
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import time

import pytest

from ckmon_helpers import AGENT, PYTHON, Collector, clean_env, freeze, python_script

EXIT_WAIT_S = 5.0  # CHANNEL_EXIT_WAIT_MS
PROCESSES = 5000  # more than the 4,097 connections a backlog of SOMAXCONN takes

FIVE_FILES = """
for i in range(5):
    with open(f"state{i}.pkl", "wb") as f:
        pickle.dump({"epoch": i, "weights": [j / 7 for j in range(2000)]}, f)
report(done=5)
"""


@pytest.fixture
def stopped_collector(work):
    c = Collector(work)
    freeze(c.process)
    yield c
    c.process.send_signal(signal.SIGCONT)
    c.kill()


def fill_backlog(path):
    """Connects until the stopped collector's backlog refuses more (EAGAIN); returns the
    sockets, which must stay open for the backlog to stay full."""
    held = []
    for _ in range(10000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.setblocking(False)
        try:
            s.connect(str(path))
        except BlockingIOError:
            s.close()
            return held
        held.append(s)
    raise AssertionError("the backlog never filled")


def preloaded_env(sock):
    return clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=sock)


def test_processes_without_checkpoints_never_connect(stopped_collector, work):
    # The loop is one shell so that 5000 processes start fast; each /bin/true is preloaded.
    # Before the fix every process connected at exit and number 4,098 hung for good.
    loop = f"""i=0; while [ $i -lt {PROCESSES} ]; do
                   /bin/true || {{ echo "true $i failed: $?"; exit 1; }}; i=$((i+1)); done
               echo done $i"""
    p = subprocess.run(["/bin/sh", "-c", loop], cwd=work, env=preloaded_env(stopped_collector.socket),
                       capture_output=True, text=True, timeout=PROCESSES * 0.1)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == f"done {PROCESSES}"
    # Not one connection is waiting in the frozen collector's backlog: it still takes
    # as many as listen() allows (SOMAXCONN capped by the sysctl; Linux admits one more).
    somaxconn = min(4096, int(open("/proc/sys/net/core/somaxconn").read()))
    held = fill_backlog(stopped_collector.socket)
    for s in held:
        s.close()
    assert len(held) == somaxconn + 1, "processes left connections behind"


def digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.pkl"))}


@pytest.mark.parametrize("backlog", ["room", "full"])
def test_a_writer_exits_within_the_bound(stopped_collector, work, backlog):
    plain_dir, agent_dir = work / "plain", work / "agent"
    plain_dir.mkdir()
    agent_dir.mkdir()
    command = python_script(work, FIVE_FILES)
    plain = subprocess.run(command, cwd=plain_dir, env=clean_env(), capture_output=True,
                           text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    held = fill_backlog(stopped_collector.socket) if backlog == "full" else []
    try:
        # Python's start-up plus five files, plus at most the exit bound: the timeout is
        # the bound with a generous factor, never a speed assertion.
        run = subprocess.run(command, cwd=agent_dir, env=preloaded_env(stopped_collector.socket),
                             capture_output=True, text=True, timeout=30 + 10 * EXIT_WAIT_S)
    finally:
        for s in held:
            s.close()
    assert run.returncode == 0, run.stderr
    assert '"done": 5' in run.stdout
    assert digests(agent_dir) == digests(plain_dir) and len(digests(agent_dir)) == 5
    if backlog == "full":  # never connected: everything is in the spool
        [(hello, messages)] = spooled(stopped_collector.socket)
        assert_five_files(hello, messages, agent_dir, run)


# ---- the agent spool --------------------------------------------------------------------

def spool_dir(sock):
    return sock.parent / f"ckmon-agent-spool-{os.geteuid()}"


def read_spool_file(path, sock):
    data = path.read_bytes()
    assert data[:8] == b"CKMSPOOL"
    version, length = struct.unpack("<II", data[8:16])
    assert version == 1 and data[16:16 + length] == str(sock).encode()
    packets, at = [], 16 + length
    while at < len(data):
        (n,) = struct.unpack("<I", data[at:at + 4])
        packets.append(json.loads(data[at + 4:at + 4 + n]))
        at += 4 + n
    assert at == len(data)
    return packets[0], packets[1:]


def spooled(sock):
    """(hello, messages) of each spool file for sock; checks who may read them."""
    directory = spool_dir(sock)
    st = directory.stat(follow_symlinks=False)
    assert st.st_uid == os.geteuid() and oct(st.st_mode & 0o777) == "0o700"
    found = []
    for path in sorted(directory.iterdir()):
        assert path.name.endswith(".spool"), path  # no half-written ".part" left behind
        st = path.stat(follow_symlinks=False)
        assert st.st_uid == os.geteuid() and oct(st.st_mode & 0o777) == "0o600"
        found.append(read_spool_file(path, sock))
    return found


def assert_five_files(hello, messages, directory, run):
    report = json.loads(run.stdout.splitlines()[-1])
    assert hello["t"] == "hello" and hello["pid"] == report["pid"]
    closes = {m["path"]: m for m in messages if m["t"] == "close"}
    assert sorted(closes) == [str(directory / f"state{i}.pkl") for i in range(5)]
    for i in range(5):
        close = closes[str(directory / f"state{i}.pkl")]
        assert close["complete"] is True and close["format"] == "pickle"
        assert close["bytes"] == (directory / f"state{i}.pkl").stat().st_size
    values = [m["values"]["epoch"] for m in messages if m["t"] == "data" and "values" in m]
    assert sorted(values) == list(range(5))


def run_writer(work, sock):
    command = python_script(work, FIVE_FILES)
    run = subprocess.run(command, cwd=work, env=preloaded_env(sock), capture_output=True,
                         text=True, timeout=30 + 10 * EXIT_WAIT_S)
    assert run.returncode == 0, run.stderr
    return run


def test_no_collector_at_all_spools_the_queue(work):
    sock = work / "nobody-listens.sock"
    run = run_writer(work, sock)
    [(hello, messages)] = spooled(sock)
    assert_five_files(hello, messages, work, run)
    with open(work / "state3.pkl", "rb") as f:
        assert pickle.load(f)["epoch"] == 3


@pytest.mark.parametrize("hostile", ["open to all", "another owner", "symlink"])
def test_a_spool_directory_that_is_not_ours_alone_is_not_used(work, hostile):
    sock = work / "nobody-listens.sock"
    directory, elsewhere = spool_dir(sock), work / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if hostile == "symlink":
        directory.symlink_to(elsewhere)
    else:
        directory.mkdir()
        os.chmod(directory, 0o777 if hostile == "open to all" else 0o700)
        if hostile == "another owner":
            if os.geteuid() != 0:
                pytest.skip("giving a directory to another user needs root")
            os.chown(directory, 65534, 65534)
    run_writer(work, sock)
    assert not any(elsewhere.iterdir())
    if hostile != "symlink":
        assert not any(directory.iterdir())


# ---- a collector killed and started again ------------------------------------------------

PHASED = """
import pathlib
def phase(n, first, last):
    for i in range(first, last):
        with open(f"state{i}.pkl", "wb") as f:
            pickle.dump({"epoch": i, "weights": [j / 7 for j in range(500)]}, f)
    pathlib.Path(f"phase{n}.done").touch()
    while n < 3 and not pathlib.Path(f"go{n}").exists():
        time.sleep(0.02)
phase(1, 0, 5)     # collector 1 up; then SIGKILLed
phase(2, 5, 10)    # no collector: queued
phase(3, 10, 15)   # collector 2 on the same socket
report(done=15)
"""


def wait_for(path, process):
    for _ in range(3000):
        if path.exists():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


def listening(path):
    """Waits until a collector accepts connections on path (its file may be stale)."""
    for _ in range(1000):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            try:
                s.connect(str(path))
                return
            except (ConnectionRefusedError, FileNotFoundError):
                time.sleep(0.01)
    raise AssertionError(f"no collector on {path}")


def test_agents_reconnect_to_a_collector_started_again(work):
    first = Collector(work)
    writer = subprocess.Popen(python_script(work, PHASED), cwd=work,
                              env=preloaded_env(first.socket), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    second = None
    try:
        wait_for(work / "phase1.done", writer)
        first.process.kill()  # SIGKILL: the socket file stays behind
        first.process.communicate()
        (work / "go1").touch()
        wait_for(work / "phase2.done", writer)
        second = Collector(work)  # the same socket (stale) and log
        listening(second.socket)
        (work / "go2").touch()
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        records = second.stop()
    finally:
        writer.kill()
        if second:
            second.kill()
    by_path = {}
    for r in records:
        by_path.setdefault(r["path"], []).append(r)
    for i in range(5, 15):  # queued while none listened, and written after the restart
        [record] = by_path.pop(str(work / f"state{i}.pkl"))
        assert record["complete"] is True and record["values"]["epoch"] == i, record
    assert not spool_dir(work / "c.sock").exists()
