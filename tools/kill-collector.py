#!/usr/bin/env python3
"""kill-collector.py — records kept when `ckmon collect` is SIGKILLed mid-stream (issue 12).

Four writer processes save 100 pickles each (every other one through a temporary name
renamed into place, 20 ms apart) under a bare LD_PRELOAD; the collector is killed with
SIGKILL KILLS times, each 60 records after its last start, and started again on the same
log, state dir and socket. Prints, per run, the records in the log (each checkpoint once,
under its final name, is a kept record) and the names missing. docs/security.md quotes
the figure ("Collector killed"). tests/e2e/test_collector_kill.py runs the same scenario (with
the collector frozen before each kill) in `make test`; this tool runs it many times.

Usage: tools/kill-collector.py [RUNS [KILLS]]      (after make; uses build/)
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
CKMON, AGENT = TOP / "build" / "ckmon", TOP / "build" / "libckmon.so"
WRITERS, SAVES = 4, 100
WRITER = f"""
import os, pickle, sys, time
k = int(sys.argv[1])
for i in range({SAVES}):
    final = f"ck_{{k}}_{{i}}.pkl"
    tmp = final + ".tmp" if i % 2 else final
    with open(tmp, "wb") as f:
        pickle.dump({{"writer": k, "i": i}}, f)
    if tmp != final:
        os.replace(tmp, final)
    time.sleep(0.02)
"""


def lines(log):
    return len(log.read_text().splitlines()) if log.exists() else 0


def one_run(work, kills):
    sock, log = work / "c.sock", work / "ckmon.jsonl"
    (work / "writer.py").write_text(WRITER)

    def collect():
        p = subprocess.Popen([CKMON, "collect", "--socket", sock, "--log", log], cwd=work,
                             stderr=subprocess.DEVNULL)
        while not sock.exists():
            time.sleep(0.01)
        return p

    collector = collect()
    env = dict(os.environ, LD_PRELOAD=str(AGENT), CKMON_SOCKET=str(sock), CKMON_PATHS="*.pkl")
    writers = [subprocess.Popen([sys.executable, "writer.py", str(k)], cwd=work, env=env)
               for k in range(WRITERS)]
    for _ in range(kills):
        threshold = lines(log) + 60
        while lines(log) < threshold and any(w.poll() is None for w in writers):
            time.sleep(0.005)
        collector.send_signal(signal.SIGKILL)
        collector.wait()
        collector = collect()
    for w in writers:
        w.wait()
    time.sleep(1.5)  # the last records' rename window
    collector.send_signal(signal.SIGTERM)
    collector.wait()
    names = [json.loads(line)["path"].rsplit("/", 1)[1] for line in log.read_text().splitlines()]
    expected = {f"ck_{k}_{i}.pkl" for k in range(WRITERS) for i in range(SAVES)}
    kept = len(set(names) & expected) if len(names) == len(set(names)) else -1  # -1: duplicates
    return kept, sorted(expected - set(names))


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    kills = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    total = 0
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="ckmon-kill-") as work:
            kept, missing = one_run(Path(work), kills)
        total += max(kept, 0)
        print(f"run {run + 1}: {kept}/{WRITERS * SAVES} kept; missing {missing}")
    print(f"{total}/{runs * WRITERS * SAVES} records kept over {runs} runs of {kills} kills")


if __name__ == "__main__":
    main()
