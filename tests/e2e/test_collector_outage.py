"""test_collector_outage.py — a collector that is stopped, gone or swamped never holds a
monitored program up (docs/agent.md "Exit").

A process that wrote no checkpoint never connects; one that did waits at most
CHANNEL_EXIT_WAIT_MS (2 s, agent/channel.h) for its collector at exit. The collector here
is a real `ckmon collect` frozen with SIGSTOP, with its listen backlog filled by the test
where the case needs it (as 4,096 exiting processes would).
"""
import hashlib
import signal
import socket
import subprocess

import pytest

from ckmon_helpers import AGENT, PYTHON, Collector, clean_env, python_script

EXIT_WAIT_S = 2.0  # CHANNEL_EXIT_WAIT_MS
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
    c.process.send_signal(signal.SIGSTOP)
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
