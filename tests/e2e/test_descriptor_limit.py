"""test_descriptor_limit.py — the agent's socket costs the program no descriptor.

tests/programs/fd_limit lowers its RLIMIT_NOFILE and opens checkpoints (each written, so
the agent has something to send) until open() fails. Under `ckmon run` it must open
exactly as many as plainly: with a small limit the agent holds no socket until exit; with
a larger one the socket sits at the top of the range, and when the program reaches it
the agent gives the number back and the open is made again (docs/agent.md
"Descriptors"). Before, with a limit of 5, the program opened 2 files plainly but 1 under
the agent.
"""
import pickle

import pytest

from ckmon_helpers import program, run_plain


@pytest.mark.parametrize("limit", [5, 100])
def test_as_many_files_as_without_the_agent(ckmon, work, limit):
    plain_dir, agent_dir = work / "plain", work / "agent"
    plain_dir.mkdir()
    agent_dir.mkdir()
    plain = run_plain([program("fd_limit"), limit, plain_dir], cwd=work)
    run = ckmon.run(program("fd_limit"), limit, agent_dir)
    assert plain.returncode == 0 and run.returncode == 0, run.stderr
    assert plain.stdout.startswith("opened ") and "Too many open files" in plain.stdout
    assert run.stdout == plain.stdout.replace(str(plain_dir), str(agent_dir))
    opened = int(plain.stdout.split()[1].rstrip(","))
    assert opened >= limit - 4
    for i in range(opened):
        path = agent_dir / f"f{i}.pkl"
        assert pickle.loads(path.read_bytes()) == i % 256
        complete = [r for r in run.records_for(path) if r["complete"]]
        assert len(complete) == 1, run.records_for(path)
        assert complete[0]["values"] == {"value": i % 256} and complete[0]["bytes"] == 5
    if limit == 5:  # no socket while the program ran: one record per file
        assert len(run.records) == opened
