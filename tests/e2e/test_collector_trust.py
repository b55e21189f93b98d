"""test_collector_trust.py — the collector listens to its own user only, and survives its clients.

docs/security.md: the socket is created 0600, in a directory no other user can replace it
in; a peer of another uid (SO_PEERCRED) is refused with a log line even when the socket's
mode would let it in; malformed, oversized and truncated packets are dropped and counted;
a client that connects and says nothing, or floods garbage, holds up no one.
"""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ckmon_helpers import AGENT, PYTHON, ckmon_args, clean_env, python_script, read_log

SAVE = """
path = os.path.abspath(sys.argv[1])
with open(path, "wb") as f:
    pickle.dump({"epoch": int(sys.argv[2])}, f)
report(path=path)
"""

# A client speaking the wire protocol by hand (core/wire.h): hello, open, close.
CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect", e.errno); sys.exit(0)
try:
    for m in ({"t": "hello", "pid": 1, "program": "stranger", "host": "h", "job": "x"},
              {"t": "open", "id": 1, "path": "/stranger.pt"},
              {"t": "close", "id": 1, "bytes": 1, "complete": True}):
        s.send(json.dumps(m).encode())
    print("sent")
except OSError as e:
    print("send", e.errno)
"""


@pytest.fixture
def shared_dir():
    """A directory other users can enter (pytest's own are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="ckmon-trust-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_collector(sock, log):
    p = subprocess.Popen(ckmon_args("collect", "--socket", sock, "--log", log), env=clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not Path(sock).exists():
        assert p.poll() is None, p.communicate()[1]
        assert time.monotonic() < deadline, "no socket after 10 s"
        time.sleep(0.02)
    return p


def stop_collector(p):
    p.terminate()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    return err


def as_nobody(*command):
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if os.getuid() != 0 or not runuser:
        pytest.skip("needs root and runuser to act as another user")
    return subprocess.run(["runuser", "-u", "nobody", "--", *map(str, command)],
                          capture_output=True, text=True, timeout=60, env=clean_env())


def test_other_users_are_refused(shared_dir, work):
    sock, log = shared_dir / "c.sock", shared_dir / "log.jsonl"
    client = shared_dir / "client.py"
    client.write_text(CLIENT)
    p = start_collector(sock, log)
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        # The mode alone keeps another user out...
        blocked = as_nobody(PYTHON, client, sock)
        assert blocked.stdout.split() == ["connect", "13"], blocked  # EACCES
        # ...and SO_PEERCRED still refuses them when the mode was loosened by mistake.
        sock.chmod(0o777)
        refused = as_nobody(PYTHON, client, sock)
        assert refused.returncode == 0, refused.stderr
        # The owner is still served.
        save = python_script(work, SAVE)
        own = subprocess.run([*save, work / "own.pkl", "3"], cwd=work, capture_output=True,
                             text=True, timeout=60,
                             env=clean_env(LD_PRELOAD=AGENT,
                                           CKMON_SOCKET=sock, CKMON_PATHS="*.pkl"))
        assert own.returncode == 0, own.stderr
    finally:
        err = stop_collector(p)
    records = read_log(log)
    assert [r["path"] for r in records] == [str(work / "own.pkl")], records
    nobody = 65534
    assert f"refused a connection from uid {nobody}" in err, err
    assert "refused 1 connection(s) from other users" in err, err


def test_socket_directory_others_may_write_is_refused(shared_dir):
    open_dir = shared_dir / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # not sticky: anyone could replace the socket
    p = subprocess.run(ckmon_args("collect", "--socket", open_dir / "c.sock", "--log",
                                  shared_dir / "log"), env=clean_env(), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    assert "writable by other users" in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
    assert not (open_dir / "c.sock").exists()


def seqpacket(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(str(sock))
    return s


def test_malformed_messages_are_dropped_and_silent_clients_block_no_one(collector, work):
    silent = seqpacket(collector.socket)  # connects and never says anything
    hostile = seqpacket(collector.socket)
    # (No empty packet: on SOCK_SEQPACKET it reads as the end of the connection.)
    garbage = [b"\x00\xff" * 100, b"{", b'{"t": "open", "id": "x"}', b"[1, 2]",
               b'{"t": 7}', b'{"t": "data", "id": 1e308}', b'{"t": "hello", "keys": [1]}',
               b'{"t": "close"}', b'{"t": "nope"}', b'{"t": "data", "id": 5, "bytes": ' + b"9" * 400 + b"}",
               b'{"t": "open", "id": 2, "path": "' + b"a" * 50000 + b'"']
    for g in garbage:
        hostile.send(g)
    hostile.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    hostile.send(b'{"t": "hello", "x": "' + b"y" * 100000 + b'"}')  # over WIRE_MAX_MESSAGE
    # The hostile client's well-formed messages still count: it is not cut off.
    hostile.send(json.dumps({"t": "open", "id": 9, "path": str(work / "by_hand.pt")}).encode())
    hostile.send(json.dumps({"t": "close", "id": 9, "bytes": 3, "complete": True}).encode())
    save = python_script(work, SAVE)
    runs = [collector.run([*save, f"after{i}.pkl", str(i)], work, paths=["*.pkl"]) for i in range(3)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    hostile.close()
    records = collector.stop()
    silent.close()
    # Data for ids never opened start records of their own (core/wire.h: a replaced
    # connection); they have no path and are not complete.
    strays = [r for r in records if r["path"] == ""]
    assert strays and all(r["complete"] is False for r in strays), strays
    paths = sorted(r["path"] for r in records if r["path"])
    assert paths == sorted([str(work / "by_hand.pt")] + [str(work / f"after{i}.pkl") for i in range(3)])
    for r in records:
        if r["path"].endswith(".pkl"):
            assert r["complete"] is True and r["values"]["epoch"] == int(r["path"][-5])
    err = collector.stderr
    assert "1 oversized" in err, err
    malformed = int(err.split("ignored ")[1].split(" malformed")[0])
    assert malformed >= 8, err


# Another user's listener on the socket path, keeping every packet it receives.
SQUATTER = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(8)
open(sys.argv[2] + ".ready", "w").close()
with open(sys.argv[2], "ab") as out:
    while True:
        c, _ = s.accept()
        while (packet := c.recv(1 << 17)):
            out.write(packet + b"\\n"); out.flush()
"""


def test_agent_sends_nothing_to_another_users_collector(shared_dir, work):
    """Someone else bound the socket path first (and let everyone in): the agent checks
    the listener's uid and keeps the program's findings to itself."""
    if os.getuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser to act as another user")
    theirs = shared_dir / "theirs"
    theirs.mkdir()
    shutil.chown(theirs, "nobody")
    sock, got = theirs / "c.sock", theirs / "received"
    squatter = theirs / "squatter.py"
    squatter.write_text(SQUATTER)
    p = subprocess.Popen(["runuser", "-u", "nobody", "--", PYTHON, squatter, sock, got],
                         env=clean_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not Path(f"{got}.ready").exists():
            assert p.poll() is None and time.monotonic() < deadline, "no squatter"
            time.sleep(0.02)
        save = python_script(work, SAVE)
        run = subprocess.run([*save, work / "mine.pkl", "2"], cwd=work, capture_output=True,
                             text=True, timeout=60,
                             env=clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=sock,
                                           CKMON_PATHS="*.pkl"))
        assert run.returncode == 0, run.stderr
        assert (work / "mine.pkl").stat().st_size > 0
    finally:
        os.killpg(p.pid, signal.SIGKILL)  # runuser and the listener under it
        p.wait()
    assert not got.exists() or got.read_bytes() == b"", got.read_bytes()[:300]


WRITE_THREE = """
for i in range(3):
    with open(f"epoch_{i}.pkl", "wb") as f:
        pickle.dump({"epoch": i}, f)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the job as another user")
def test_job_of_another_user_says_once_that_it_is_not_recorded(work):
    """A per-machine collector takes its own user's records only: a job of another user
    says so once on stderr instead of running unwatched without a word."""
    shared = Path(tempfile.mkdtemp(prefix="ckmon-users-"))
    try:
        shared.chmod(0o755)  # the socket's directory: no other user may write in it
        jobs = shared / "jobs"
        jobs.mkdir(mode=0o777)
        jobs.chmod(0o777)
        sock = shared / "c.sock"
        collector = subprocess.Popen(ckmon_args("collect", "--socket", sock, "--log",
                                                shared / "c.jsonl"),
                                     cwd=shared, env=clean_env(), stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline and collector.poll() is None
            time.sleep(0.02)
        script = python_script(jobs, WRITE_THREE)
        jobs.joinpath("writer.py").chmod(0o644)
        env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=sock)
        other = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup",
                                "--clear-groups", *script], cwd=jobs, env=env,
                               capture_output=True, text=True, timeout=60)
        own = subprocess.run(script, cwd=jobs, env=env, capture_output=True, text=True,
                             timeout=60)
        collector.send_signal(signal.SIGTERM)
        collector.communicate(timeout=30)
        assert other.returncode == 0 and own.returncode == 0, other.stderr + own.stderr
        lines = other.stderr.splitlines()
        assert len(lines) == 1 and "not recorded" in lines[0] and str(sock) in lines[0], lines
        assert own.stderr == ""
        assert len(read_log(shared / "c.jsonl")) == 3  # the own user's three, no more
    finally:
        shutil.rmtree(shared, ignore_errors=True)
