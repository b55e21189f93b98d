"""test_signal_handlers.py — a program whose signal handler writes its checkpoint.

write() is async-signal-safe, so a handler may write while its thread is inside malloc.
The agent must then do nothing that allocates or locks (docs/agent.md "Signal
handlers"): before, tests/programs/signal_writer crashed under `ckmon run` in 8 of 8
runs (SIGABRT, malloc's "double free or corruption"). Its bytes still count: the file is
read back at close, so the record is what the file on disk holds.
"""
import pickle

from ckmon_helpers import program

RUNS = 50


def test_a_handler_that_writes_while_main_allocates(ckmon, work):
    writer = program("signal_writer")
    # One collector for all 50 runs; half of them install an SA_SIGINFO handler.
    loop = f"""i=0; while [ $i -lt {RUNS} ]; do
                   mode=; [ $((i % 2)) -eq 1 ] && mode=siginfo
                   {writer} "$PWD/sig$i.pkl" $mode > /dev/null
                   rc=$?; [ $rc -eq 0 ] || {{ echo "run $i exited $rc"; exit 1; }}
                   i=$((i+1)); done; echo all {RUNS}"""
    run = ckmon.run("/bin/sh", "-c", loop, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == f"all {RUNS}"
    for i in range(RUNS):
        path = work / f"sig{i}.pkl"
        expected = pickle.loads(path.read_bytes())
        assert expected == {f"k{k}": 3 * k for k in range(400)}  # the program's own check
        record = run.only_record(path)
        assert record["format"] == "pickle" and record["complete"] is True, record
        assert record["parsed"] == "reread", record
        assert record["bytes"] == path.stat().st_size
        assert record["values"] == expected
