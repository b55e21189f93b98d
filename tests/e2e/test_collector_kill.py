"""test_collector_kill.py — what a killed collector held, and what agents that found no
collector left, reach the log (docs/security.md, "Collector killed").

A collector holds each closed record for a second, waiting for a rename. Killed with
SIGKILL then, it used to lose them; now each is in a journal in the state dir, and the
next collector on the same log and state dir writes those not marked written. An agent
that reaches no collector at exit leaves its queue in the agent spool beside the socket;
the next collector on that socket imports it. Each record must arrive exactly once, under
its final name, with what its writer saved. And what agents had sent to a collector that
was killed before it took it (in its socket buffer, unread) is sent again by the agents,
which keep what the collector has not acknowledged.
"""
import json
import signal
import socket
import subprocess
import time

from ckmon_helpers import AGENT, PYTHON, ckmon_args, clean_env, freeze, read_log
from sink_servers import wait_for
from test_collector_outage import fill_backlog

SAVES = 40

WRITER = f"""
import os, pickle
for i in range({SAVES}):
    final = f"ck_{{i}}.pkl"
    tmp = final + ".tmp" if i % 2 else final
    with open(tmp, "wb") as f:
        pickle.dump({{"i": i, "w": [float(j) for j in range(20)]}}, f)
    if tmp != final:
        os.replace(tmp, final)
"""


def start_collector(work):
    p = subprocess.Popen(ckmon_args("collect", "--socket", work / "c.sock", "--log",
                                    work / "ckmon.jsonl"),
                         cwd=work, env=clean_env(), stderr=subprocess.PIPE, text=True)
    wait_for("the collector's socket", lambda: listening(work / "c.sock") or p.poll() is not None)
    assert p.poll() is None, p.stderr.read()
    return p


def listening(path):
    """Whether the socket takes connections: bind makes the file before listen() is
    called, and a collector stopped in between would refuse every agent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        try:
            s.connect(str(path))
            return True
        except (ConnectionRefusedError, FileNotFoundError):
            return False


def lines_written(log):
    """Whole lines in the log: one being appended may be read half written."""
    return log.read_bytes().count(b"\n") if log.exists() else 0


def stop_collector(p, work):
    """After the records are all in the log (this also knows the collector is serving)."""
    wait_for("every record", lambda: lines_written(work / "ckmon.jsonl") >= SAVES)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return err


def write(work):
    (work / "writer.py").write_text(WRITER)
    env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=work / "c.sock", CKMON_PATHS="*.pkl")
    p = subprocess.run([PYTHON, "writer.py"], cwd=work, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr


def check_records(work):
    records = read_log(work / "ckmon.jsonl")
    assert sorted(r["path"].rsplit("/", 1)[1] for r in records) == sorted(
        f"ck_{i}.pkl" for i in range(SAVES))  # every one, once
    for r in records:
        i = int(r["path"].rsplit("_", 1)[1][:-4])
        assert r["values"]["i"] == i and r["complete"] and ("written_as" in r) == (i % 2 == 1)


def held_in_journal(state):
    """Records journaled and not marked written, read from the journal independently."""
    held = set()
    for journal in state.glob("held-*.jsonl"):
        for line in journal.read_text().splitlines():
            key = line.split(" ", 1)[0]
            if key.startswith("+"):
                held.add(key[1:])
            elif key.startswith("-"):
                held.discard(key[1:])
    return len(held)


def test_records_held_for_a_rename_survive_a_kill(work):
    collector = start_collector(work)
    try:
        write(work)  # the writer's exit waits until the collector has read its messages
        # ... but not until it has handled them all (a save under a temporary name is
        # several messages: open, data, close, rename)
        wait_for("the collector to take every save", lambda: held_in_journal(
            work / "ckmon.jsonl.state") + lines_written(work / "ckmon.jsonl") >= SAVES)
        collector.send_signal(signal.SIGSTOP)  # its records wait out their second: freeze it
        held = held_in_journal(work / "ckmon.jsonl.state")
        written = len(read_log(work / "ckmon.jsonl"))
        collector.send_signal(signal.SIGKILL)
        collector.communicate()
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.communicate()
    assert held > 0 and written + held == SAVES, (held, written)  # it died holding records
    err = stop_collector(start_collector(work), work)
    check_records(work)
    assert f"recovered {held} record(s) a stopped collector held" in err
    stats = json.loads((work / "ckmon.jsonl.state" / "stats.json").read_text())
    assert stats["recovery"]["held_records_recovered"] == held
    assert not list((work / "ckmon.jsonl.state").glob("held-*.jsonl"))  # nothing left to replay


def test_a_queue_spooled_by_agents_is_imported_by_the_next_collector(work):
    write(work)  # no collector: the agent leaves its queue in the spool at exit
    spool = work / "ckmon-agent-spool-0"
    assert len(list(spool.glob("*.spool"))) == 1 and not (work / "ckmon.jsonl").exists()
    err = stop_collector(start_collector(work), work)
    check_records(work)
    assert not list(spool.glob("*.spool"))
    assert "and 1 agent spool file(s)" in err
    stats = json.loads((work / "ckmon.jsonl.state" / "stats.json").read_text())
    assert stats["recovery"]["agent_spool_files_imported"] == 1


def test_a_stopped_collector_imports_what_agents_spooled_meanwhile(work):
    """docs/security.md: a collector stopped (SIGSTOP) with a full backlog makes agents give
    up after their exit bound and spool their queue; resumed, it imports the spool within
    a second, as it runs, and every record arrives once."""
    collector = start_collector(work)
    filler = []
    try:
        freeze(collector)
        filler = fill_backlog(work / "c.sock")
        write(work)  # exits after the agent's bound, its queue spooled
        assert len(list((work / "ckmon-agent-spool-0").glob("*.spool"))) == 1
        for s in filler:
            s.close()
        collector.send_signal(signal.SIGCONT)
        err = stop_collector(collector, work)
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.communicate()
    check_records(work)
    assert "and 1 agent spool file(s)" in err
    assert not list((work / "ckmon-agent-spool-0").glob("*.spool"))


KILL_WRITERS, KILL_SAVES = 4, 100

KILL_WRITER = f"""
import os, pickle, sys, time
k = int(sys.argv[1])
for i in range({KILL_SAVES}):
    final = f"ck_{{k}}_{{i}}.pkl"
    tmp = final + ".tmp" if i % 2 else final
    with open(tmp, "wb") as f:
        pickle.dump({{"writer": k, "i": i}}, f)
    if tmp != final:
        os.replace(tmp, final)
    time.sleep(0.02)
"""


def test_a_collector_killed_twice_mid_stream_loses_nothing(work):
    """docs/security.md, "Collector killed": four processes save 100 pickles each (every
    other one renamed into place); the collector is killed with SIGKILL twice while they
    write, each time once it has written 60 more records and then sat frozen for 0.3 s
    (so that the agents' messages wait unread in its socket, which the kill loses), and
    started again on the same log, state dir and socket. Every save is in the log once,
    under its final name, with its values."""
    log = work / "ckmon.jsonl"
    (work / "writer.py").write_text(KILL_WRITER)
    collector = start_collector(work)
    env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=work / "c.sock", CKMON_PATHS="*.pkl")
    writers = [subprocess.Popen([PYTHON, "writer.py", str(k)], cwd=work, env=env,
                                stderr=subprocess.PIPE, text=True)
               for k in range(KILL_WRITERS)]
    try:
        for _ in range(2):
            threshold = lines_written(log) + 60
            while lines_written(log) < threshold and any(w.poll() is None for w in writers):
                time.sleep(0.005)
            collector.send_signal(signal.SIGSTOP)
            time.sleep(0.3)
            collector.send_signal(signal.SIGKILL)
            collector.communicate()
            collector = start_collector(work)
        for w in writers:
            _, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
        total = KILL_WRITERS * KILL_SAVES
        wait_for("every record", lambda: lines_written(log) >= total)
        collector.send_signal(signal.SIGTERM)
        _, err = collector.communicate(timeout=60)
        assert collector.returncode == 0, err
    finally:
        for p in [collector, *writers]:
            if p.poll() is None:
                p.kill()
                p.communicate()
    records = read_log(log)
    names = sorted(r["path"].rsplit("/", 1)[1] for r in records)
    assert names == sorted(f"ck_{k}_{i}.pkl" for k in range(KILL_WRITERS)
                           for i in range(KILL_SAVES))  # every one, once, by its final name
    for r in records:
        k, i = map(int, r["path"].rsplit("/", 1)[1][3:-4].split("_"))
        assert r["values"] == {"writer": k, "i": i} and r["complete"], r
        assert ("written_as" in r) == (i % 2 == 1), r
    stats = json.loads((work / "ckmon.jsonl.state" / "stats.json").read_text())
    assert stats["recovery"]["agent_messages_lost"] == 0
