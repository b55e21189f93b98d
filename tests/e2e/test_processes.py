"""test_processes.py — every process a launcher makes is covered, however it ends.

Training jobs are process trees: shells and launchers exec the real program with an
environment of their own making, DataLoader and multiprocessing workers fork, ranks share a
host, and processes end through _exit or a signal. Each test runs a real tree under
`ckmon run` (or a shared `ckmon collect`) and checks the records against the files on disk
and the pids the processes report themselves.
"""
import json
import os
import pickle
import signal
import subprocess

import pytest

from ckmon_helpers import (AGENT, PYTHON, check_record, clean_env, program, python_script, run_plain,
                           strict_json)
from expected import assert_findings


def reports(run):
    return [strict_json(line) for line in run.stdout.splitlines() if line.startswith("{")]


def check_pickle(run, out, **fields):
    """The one record for the file a script reported, against the file itself."""
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="pickle", size=out["size"], pid=out["pid"],
                 **fields)
    with open(out["path"], "rb") as f:
        assert_findings(record, pickle.load(f))
    return record


WRITE_ONE = """
name = sys.argv[1]
with open(name, "wb") as f:
    pickle.dump({"who": name, "epoch": 4, "weights": [i / 8 for i in range(40)]}, f)
report(path=os.path.abspath(name), size=os.path.getsize(name),
       preload=os.environ.get("LD_PRELOAD", ""))
"""


# ---- fork ------------------------------------------------------------------------------

def test_fork_parent_and_child_write_one_file(ckmon, work):
    # The child continues the file its parent opened: its record is read back from disk
    # at its close; the parent's, at its own close after the child is done.
    script = """
data = pickle.dumps({"epoch": 9, "weights": [i * 0.5 for i in range(3000)]})
path = os.path.abspath("shared.pkl")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, data[:1000])
child = os.fork()
if child == 0:
    os.write(fd, data[1000:])
    os.close(fd)
    report(path=path, size=os.path.getsize(path))
    os._exit(0)
os.waitpid(child, 0)
os.close(fd)
report(path=path, size=os.path.getsize(path))
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    outs = reports(run)
    assert len(outs) == 2 and outs[0]["pid"] != outs[1]["pid"]
    records = run.records_for(outs[0]["path"])
    assert sorted(r["pid"] for r in records) == sorted(o["pid"] for o in outs), records
    with open(outs[0]["path"], "rb") as f:
        state = pickle.load(f)
    for out in outs:
        record = next(r for r in records if r["pid"] == out["pid"])
        check_record(record, run, path=out["path"], fmt="pickle", size=out["size"])
        assert_findings(record, state)


def test_child_that_only_inherits_a_file_says_nothing(ckmon, work):
    script = """
f = open("kept.pkl", "wb")
child = os.fork()
if child == 0:
    os._exit(0)  # a worker that never touches the file
os.waitpid(child, 0)
pickle.dump({"epoch": 1, "weights": list(range(100))}, f)
f.close()
report(path=os.path.abspath("kept.pkl"), size=os.path.getsize("kept.pkl"))
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    check_pickle(run, reports(run)[0])
    assert len(run.records) == 1


def test_subprocess_while_a_checkpoint_is_open(ckmon, work):
    # CPython's subprocess starts children with vfork; the child shares the parent's memory
    # and closes every descriptor (close_range) before exec. The parent's file must stay
    # tracked and be reported once, complete, by the parent.
    script = """
data = pickle.dumps({"epoch": 3, "weights": list(range(2000))})
with open("open.pkl", "wb") as f:
    f.write(data[:100])
    f.flush()
    subprocess.run(["/bin/true"], check=True)
    subprocess.run(["/bin/true"], check=True, close_fds=False)
    f.write(data[100:])
report(path=os.path.abspath("open.pkl"), size=os.path.getsize("open.pkl"))
"""
    run = ckmon.run(*python_script(work, "import subprocess\n" + script))
    assert run.returncode == 0, run.stderr
    record = check_pickle(run, reports(run)[0])
    assert record["writes"] == 2
    assert len(run.records) == 1, run.records


def test_multiprocessing_pool_of_eight(ckmon, work):
    script = """
import multiprocessing
def save(i):
    name = os.path.abspath(f"worker-{i}.pkl")
    with open(name, "wb") as f:
        pickle.dump({"worker": i, "weights": [i + k / 16 for k in range(64)]}, f)
    return dict(path=name, size=os.path.getsize(name), pid=os.getpid(), worker=i)
if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[1]).Pool(8) as pool:
        for out in pool.map(save, range(8), chunksize=1):
            print(json.dumps(out), flush=True)
"""
    for method in ("fork", "spawn"):
        run = ckmon.run(*python_script(work, script), method)
        assert run.returncode == 0, run.stderr
        outs = reports(run)
        assert sorted(o["worker"] for o in outs) == list(range(8))
        for out in outs:
            check_pickle(run, out)
        assert len(run.records) == 8, [r["path"] for r in run.records]
        (work / "ckmon.jsonl").unlink()


# ---- exec ------------------------------------------------------------------------------

def test_exec_through_sh_with_env_i(ckmon, work):
    script = python_script(work, WRITE_ONE)
    command = f"cd {work} && exec env -i {PYTHON} {script[1]} from-sh.pkl"
    run = ckmon.run("/bin/sh", "-c", command, job="shell-job")
    assert run.returncode == 0, run.stderr
    out = reports(run)[0]
    assert out["preload"]  # the agent was given back, not inherited by luck
    check_pickle(run, out, job="shell-job")


def test_subprocess_with_a_stripped_environment(ckmon, work):
    writer = python_script(work, WRITE_ONE, name="child.py")
    script = f"""
import subprocess
subprocess.run({writer + ["stripped.pkl"]!r}, env={{"PATH": "/usr/bin"}}, check=True)
"""
    run = ckmon.run(*python_script(work, script), job="launcher")
    assert run.returncode == 0, run.stderr
    # The caller's CKMON_JOB came back too: the child's record carries the job label.
    check_pickle(run, reports(run)[0], job="launcher")


@pytest.mark.parametrize("method", ["execve", "execvpe", "execle", "fexecve", "posix_spawn",
                                    "posix_spawnp", "execv", "execvp", "execl", "execlp"])
def test_every_exec_call_restores_the_agent(ckmon, work, method):
    writer = python_script(work, WRITE_ONE, name="child.py")
    run = ckmon.run(program("launcher"), method, PYTHON, writer[1], f"{method}.pkl")
    assert run.returncode == 0, run.stderr
    out = reports(run)[0]
    check_pickle(run, out)
    assert out["preload"].split()[0].endswith("/libckmon.so")


def test_failed_exec_looks_the_same(ckmon, work):
    plain = run_plain([program("launcher"), "errors", work], work)
    watched = ckmon.run(program("launcher"), "errors", work)
    assert plain.returncode == watched.returncode == 0, watched.stderr
    assert plain.stdout == watched.stdout
    assert "execve -1 No such file or directory" in plain.stdout.splitlines()


def test_caller_preload_is_kept_behind_the_agent(ckmon, work):
    writer = python_script(work, WRITE_ONE, name="child.py")
    script = f"""
import subprocess
env = {{"LD_PRELOAD": "libm.so.6"}}
subprocess.run({writer + ["kept.pkl"]!r}, env=env, check=True)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = reports(run)[0]
    check_pickle(run, out)
    agent, theirs = out["preload"].split()
    assert agent.endswith("/libckmon.so") and theirs == "libm.so.6"


EXEC_WITH_FILE_OPEN = """
data = pickle.dumps({"epoch": 5, "weights": list(range(3000))})
mode = sys.argv[1]
if mode == "kept":  # the new program continues the file
    fd = os.open("kept.pkl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.set_inheritable(fd, True)
    os.write(fd, data[:1000])
    os.execv(sys.executable, [sys.executable, sys.argv[0], "continue", str(fd)])
if mode == "continue":
    fd = int(sys.argv[2])
    os.write(fd, data[1000:])
    os.close(fd)
    report(path=os.path.abspath("kept.pkl"), size=os.path.getsize("kept.pkl"),
           leaked=[k for k in os.environ if k.startswith("CKMON_INHERITED")])
if mode == "closed":  # close-on-exec: the exec closes it
    f = open("closed.pkl", "wb")
    f.write(data)
    f.flush()
    report(path=os.path.abspath("closed.pkl"), size=os.path.getsize("closed.pkl"))
    os.execv("/bin/true", ["true"])
if mode == "failed":  # the exec fails and the program carries on
    f = open("failed.pkl", "wb")
    f.write(data[:1000])
    f.flush()
    try:
        os.execv(os.path.abspath("no-such-program"), ["x"])
    except OSError as e:
        failed = e.errno
    f.write(data[1000:])
    f.close()
    report(path=os.path.abspath("failed.pkl"), size=os.path.getsize("failed.pkl"), errno=failed)
"""


@pytest.mark.parametrize("mode, writes", [("kept", 1), ("closed", 1), ("failed", 2)])
def test_exec_with_a_file_open(ckmon, work, mode, writes):
    run = ckmon.run(*python_script(work, EXEC_WITH_FILE_OPEN), mode)
    assert run.returncode == 0, run.stderr
    out = reports(run)[0]
    record = check_pickle(run, out)  # one record, complete, whole file; same pid across exec
    assert record["writes"] == writes
    assert len(run.records) == 1, run.records
    assert out.get("leaked", []) == [] and out.get("errno", 2) == 2


def test_shell_redirect_onto_a_checkpoint(ckmon, work):
    (work / "ckpt").mkdir()
    state = {"epoch": 8, "lr": 0.5, "weights": [k / 2 for k in range(20)]}
    writer = work / "print_state.py"
    writer.write_text(f"import json\nprint(json.dumps({state!r}))\n")
    run = ckmon.run("/bin/sh", "-c", f"exec {PYTHON} {writer} > ckpt/state.json")
    assert run.returncode == 0, run.stderr
    path = work / "ckpt" / "state.json"
    record = run.only_record(path)
    check_record(record, run, path=path, fmt="json", size=path.stat().st_size)
    assert_findings(record, json.loads(path.read_text()))


# ---- endings ---------------------------------------------------------------------------

@pytest.mark.parametrize("way", ["return", "exit", "_exit", "thread_exit", "thread__exit"])
def test_open_file_reported_at_every_ending(ckmon, work, way):
    path = work / "ckpt" / f"{way}.json"
    path.parent.mkdir()
    run = ckmon.run(program("endings"), way, path)
    assert run.returncode == 3, run.stderr
    record = run.only_record(path)
    text = path.read_bytes()
    check_record(record, run, path=path, fmt="json", size=len(text), program="endings")
    assert record["writes"] == 2
    assert_findings(record, json.loads(text))


@pytest.mark.parametrize("way", ["_exit_unflushed", "fork_child__exit"])
def test_agent_never_flushes_what_the_program_would_not(ckmon, work, way):
    (work / "plain").mkdir()
    (work / "ckpt").mkdir()
    plain = run_plain([program("endings"), way, work / "plain" / "state.json"], work)
    path = work / "ckpt" / "state.json"
    run = ckmon.run(program("endings"), way, path)
    assert run.returncode == plain.returncode == 3, run.stderr
    text = path.read_bytes()
    assert text == (work / "plain" / "state.json").read_bytes()
    record = run.only_record(path)
    complete = way == "fork_child__exit"  # _exit loses the buffered second half
    check_record(record, run, path=path, fmt="json", size=len(text), complete=complete)
    if complete:
        assert_findings(record, json.loads(text))
    assert len(run.records) == 1, run.records


def test_os_exit_with_file_open(ckmon, work):
    script = """
f = open("left-open.pkl", "wb")
pickle.dump({"epoch": 6, "weights": [k / 4 for k in range(50)]}, f)
f.flush()
report(path=os.path.abspath("left-open.pkl"), size=os.path.getsize("left-open.pkl"))
os._exit(5)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 5, run.stderr
    check_pickle(run, reports(run)[0])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_killed_mid_write_is_torn(ckmon, work, sig):
    script = f"""
data = pickle.dumps({{"epoch": 2, "weights": list(range(4000))}})
f = open("torn.pkl", "wb")
f.write(data[: len(data) // 2])
f.flush()
report(path=os.path.abspath("torn.pkl"), size=os.path.getsize("torn.pkl"))
os.kill(os.getpid(), {int(sig)})
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 128 + sig, run.stderr
    out = reports(run)[0]
    record = run.only_record(out["path"])
    check_record(record, run, path=out["path"], fmt="pickle", size=out["size"], pid=out["pid"],
                 complete=False)



# The first tensor whole, then a pause in which the collector takes it (and acknowledges
# it: the agent leaves acknowledgements unread between batches of findings), then the
# collector stopped (SIGSTOP) while the second tensor and the start of the third are
# written, and the program killed: the agent's last findings wait unread in the
# collector's socket when the program dies.
KILLED_BEHIND_A_SLOW_COLLECTOR = """
import numpy as np
collector = int(sys.argv[1])
tensors = {"first": np.arange(1000, dtype=np.float32), "second": np.linspace(-1, 1, 1000),
           "third": np.ones(1000, dtype=np.float32)}
header, at = {}, 0
for name, t in tensors.items():
    header[name] = {"dtype": "F32" if t.dtype == np.float32 else "F64", "shape": [len(t)],
                    "data_offsets": [at, at + t.nbytes]}
    at += t.nbytes
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open("torn.safetensors", "wb", buffering=0) as f:
    f.write(len(text).to_bytes(8, "little") + text + tensors["first"].tobytes())
    time.sleep(0.5)
    os.kill(collector, signal.SIGSTOP)
    f.write(tensors["second"].tobytes() + tensors["third"].tobytes()[:100])
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_findings_sent_just_before_a_kill_reach_the_record(collector, work):
    """What an agent sent before its process died is read, even when the collector was
    behind: the kernel reports a peer that died with packets of the collector's unread
    (ECONNRESET) before the packets it had sent, which are still there to read."""
    env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=collector.socket)
    try:
        writer = subprocess.run(python_script(work, KILLED_BEHIND_A_SLOW_COLLECTOR) +
                                [str(collector.process.pid)], cwd=work, env=env,
                                capture_output=True, text=True, timeout=120)
    finally:
        os.kill(collector.process.pid, signal.SIGCONT)
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    (record,) = [r for r in collector.stop() if r["event"] == "checkpoint"]
    assert record["path"] == str(work / "torn.safetensors")
    assert record["complete"] is False and record["parsed"] == "stream", record
    assert {t["name"]: (t["min"], t["max"]) for t in record["tensors"]} == {
        "first": (0, 999), "second": (-1, 1)}, record

# ---- ranks -----------------------------------------------------------------------------

@pytest.mark.parametrize("env, expected", [
    ({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8"},
     {"rank": 3, "local_rank": 1, "world_size": 8}),
    ({"SLURM_PROCID": "5", "SLURM_LOCALID": "2", "SLURM_NTASKS": "16"},
     {"rank": 5, "local_rank": 2, "world_size": 16}),
    ({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
      "OMPI_COMM_WORLD_SIZE": "4"}, {"rank": 2, "local_rank": 0, "world_size": 4}),
    ({"PMI_RANK": "9", "MPI_LOCALRANKID": "3", "PMI_SIZE": "12"},
     {"rank": 9, "local_rank": 3, "world_size": 12}),
    ({"RANK": "1", "SLURM_PROCID": "7"}, {"rank": 1}),
    ({"RANK": "x1", "PMI_RANK": "4"}, {"rank": 4}),
    ({"LOCAL_RANK": "0"}, {"local_rank": 0}),
])
def test_rank_fields(ckmon, work, env, expected):
    run = ckmon.run(*python_script(work, WRITE_ONE), "ranked.pkl", env=env)
    assert run.returncode == 0, run.stderr
    record = check_pickle(run, reports(run)[0], rank=expected.get("rank"))
    for field in ("local_rank", "world_size"):
        assert record.get(field) == expected.get(field), record


def test_ranks_on_one_host_share_a_collector(collector, work):
    writer = python_script(work, WRITE_ONE)
    procs = []
    for rank in range(4):
        env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=collector.socket, RANK=rank,
                        LOCAL_RANK=rank, WORLD_SIZE=4)
        procs.append(subprocess.Popen(writer + [f"rank-{rank}.pkl"], cwd=work, env=env,
                                      stdout=subprocess.PIPE, text=True))
    outs = [json.loads(p.communicate(timeout=60)[0].splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    records = {r["path"]: r for r in collector.stop()}
    assert len(records) == 4
    for rank, out in enumerate(outs):
        record = records[out["path"]]
        assert record["pid"] == out["pid"]
        assert (record["rank"], record["local_rank"], record["world_size"]) == (rank, rank, 4)
        with open(out["path"], "rb") as f:
            assert_findings(record, pickle.load(f))
