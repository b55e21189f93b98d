"""test_sets.py — checkpoints written as many files, judged as one set (docs/sets.md).

DCP checkpoints come from dcp_writer.py, which reproduces the on-disk layout of torch >= 2.0's
FileSystemWriter (real torch.save into the .distcp streams, a .metadata pickle with torch's
class names) in one process per rank. HF sharded, HF Trainer and DeepSpeed layouts are
written with real torch.save and the safetensors format. What a set record must say (files,
bytes, ranks, what is missing) is computed by the test from the files on disk and from what
the writers report, not from ckmon.
"""
import json
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ckmon_helpers import (
    AGENT, PYTHON, Collector, ckmon_args, clean_env, read_alerts, read_log, read_sets,
)
from sink_servers import free_port, request, wait_for
from test_collector_kill import start_collector

DCP_WRITER = Path(__file__).with_name("dcp_writer.py")

LAUNCH = """
import os, subprocess, sys
directory, side, world, ranks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
modes = dict(a.split("=") for a in sys.argv[5:])
procs = [subprocess.Popen([sys.executable, %r, directory, side, r, world]
                          + ([modes[r]] if r in modes else []),
                          env=dict(os.environ, RANK=r)) for r in ranks.split(",")]
sys.exit(max(p.wait() != 0 for p in procs))
""" % str(DCP_WRITER)


def launcher(work):
    script = work / "launch.py"
    script.write_text(LAUNCH)
    return [PYTHON, str(script)]


sets_in = read_sets


def disk(directory):
    files = {p.name: p.stat().st_size for p in Path(directory).iterdir() if p.is_file()}
    return len(files), sum(files.values())


def referenced_end(side, rank):
    """The end of the last byte range the metadata references in a rank's .distcp, from
    what that rank reported writing."""
    items = json.loads((side / f"results.{rank}.json").read_text())["items"]
    return max(i["offset"] + i["length"] for i in items)


def last_good(log, *args):
    p = subprocess.run(ckmon_args("last-good", "--log", log, *args), capture_output=True,
                       text=True, env=clean_env())
    return p.returncode, p.stdout.strip()


def run_dcp(ckmon, work, world, *modes, env=None):
    directory, side = work / "ckpt" / "step_100", work / "side"
    side.mkdir()
    run = ckmon.run(*launcher(work), directory, side, world,
                    ",".join(str(r) for r in range(world)), *modes, env=env)
    return run, directory, side


def test_dcp_set_committed(ckmon, work):
    run, directory, side = run_dcp(ckmon, work, 3)
    assert run.returncode == 0, run.stderr
    (s,) = sets_in(work / "ckmon.jsonl")
    files, size = disk(directory)
    assert (s["path"], s["kind"], s["files"], s["bytes"]) == (str(directory), "dcp", 4, size)
    assert files == 4 and s["ranks"] == [0, 1, 2]
    assert s["complete"] is True and s["missing"] == [] and "alerts" not in s
    assert s["values"]["step"] == 100
    assert s["slowest"]["rank"] in (0, 1, 2) and 0 <= s["slowest"]["seconds"] <= s["seconds"]
    assert last_good(work / "ckmon.jsonl") == (0, str(directory))


def test_dcp_shard_truncated(ckmon, work):
    run, directory, side = run_dcp(ckmon, work, 3, "1=truncate")
    (s,) = sets_in(work / "ckmon.jsonl")
    short = (directory / "__1_0.distcp").stat().st_size
    needed = referenced_end(side, 1)
    assert short < needed
    assert s["complete"] is False and s["alerts"] == ["incomplete"]
    assert f"__1_0.distcp: {short} of {needed} bytes" in s["missing"]
    assert not any(m.startswith(("__0_0", "__2_0", ".metadata")) for m in s["missing"])
    alerts = [a for a in read_alerts(work / "ckmon.jsonl") if a["path"] == str(directory)]
    assert [a["rule"] for a in alerts] == ["incomplete"] and "__1_0.distcp" in alerts[0]["message"]
    # No shard of the torn set passes for a good checkpoint on its own.
    assert last_good(work / "ckmon.jsonl")[0] == 1


def test_dcp_rank_killed_mid_write(ckmon, work):
    run, directory, side = run_dcp(ckmon, work, 3, "2=die", env={"WAIT": "2"})
    assert run.returncode != 0
    assert not (directory / ".metadata").exists()
    (s,) = sets_in(work / "ckmon.jsonl")
    assert s["complete"] is False and s["alerts"] == ["incomplete"]
    assert s["ranks"] == [0, 1, 2]
    missing = " | ".join(s["missing"])
    assert ".metadata: absent" in missing and "__2_0.distcp" in missing
    assert "__0_0.distcp" not in missing and "__1_0.distcp" not in missing


def test_two_hosts_share_the_directory(work):
    """Ranks 0-1 report to one collector, ranks 2-3 to another (as two hosts would); rank 3
    writes a short shard. The collector that sees the commit judges every shard on the
    shared filesystem; the other one leaves the set to it."""
    directory, side = work / "ckpt" / "step_100", work / "side"
    side.mkdir()
    hosts = []
    for name in ("a", "b"):
        (work / name).mkdir()
        hosts.append(Collector(work / name))
    try:
        other = subprocess.Popen(launcher(work) + [str(directory), str(side), "4", "2,3", "3=truncate"],
                                 env=clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=str(hosts[1].socket)))
        first = hosts[0].run(launcher(work) + [directory, side, "4", "0,1"], work)
        assert other.wait(timeout=120) == 0 and first.returncode == 0, first.stderr
        a, b = hosts[0].stop(), hosts[1].stop()
    finally:
        for h in hosts:
            h.kill()
    assert sets_in(hosts[1].log) == []
    assert {r["rank"] for r in b if r["event"] == "checkpoint"} == {2, 3}
    (s,) = sets_in(hosts[0].log)
    assert {r["rank"] for r in a if r["event"] == "checkpoint"} == {0, 1}
    files, size = disk(directory)
    assert s["ranks"] == [0, 1, 2, 3] and s["files"] == files == 5 and s["bytes"] == size
    short = (directory / "__3_0.distcp").stat().st_size
    assert s["complete"] is False
    assert s["missing"] == [f"__3_0.distcp: {short} of {referenced_end(side, 3)} bytes"]


# ---- Hugging Face and DeepSpeed layouts ----

def write_safetensors(path, tensors):
    """The safetensors format: u64 header length, JSON header, the tensors' bytes."""
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        data = np.ascontiguousarray(a, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


HF_WRITER = """
import json, os, struct, sys
import numpy as np
import pytest
sys.path.insert(0, %r)
from test_sets import write_safetensors
directory, shards, written = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(directory, exist_ok=True)
weight_map = {}
for k in range(1, shards + 1):
    name = f"model-{k:05d}-of-{shards:05d}.safetensors"
    tensors = {f"layers.{k}.weight": np.random.default_rng(k).standard_normal((32, 16))}
    weight_map.update({t: name for t in tensors})
    if k <= written:
        write_safetensors(os.path.join(directory, name), tensors)
with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
""" % str(Path(__file__).parent)


def test_hf_sharded(ckmon, work):
    script = work / "hf.py"
    script.write_text(HF_WRITER)
    good, torn = work / "models" / "good", work / "models" / "torn"
    assert ckmon.run(PYTHON, script, good, 3, 3).returncode == 0
    assert ckmon.run(PYTHON, script, torn, 3, 2).returncode == 0
    sets = {s["path"]: s for s in sets_in(work / "ckmon.jsonl")}
    files, size = disk(good)
    assert sets[str(good)]["kind"] == "hf-sharded" and sets[str(good)]["complete"] is True
    assert (sets[str(good)]["files"], sets[str(good)]["bytes"]) == (files, size) == (4, size)
    assert sets[str(torn)]["complete"] is False
    assert sets[str(torn)]["missing"] == ["model-00003-of-00003.safetensors: absent"]
    assert last_good(work / "ckmon.jsonl") == (0, str(good))


DEEPSPEED = """
import os, subprocess, sys, time, torch
base, rank = sys.argv[1], int(os.environ.get("RANK", "-1"))
if rank < 0:  # the launcher: two ranks, then rank 0's `latest` once both are done
    procs = [subprocess.Popen([sys.executable, __file__, base], env=dict(os.environ, RANK=str(r)))
             for r in range(2)]
    sys.exit(max(p.wait() for p in procs))
tag = "global_step10"
step = os.path.join(base, tag)
os.makedirs(step, exist_ok=True)
torch.manual_seed(rank)
torch.save({"optimizer_state_dict": {"exp_avg": torch.randn(64, 8)}, "ds_version": "0.9"},
           os.path.join(step, f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"))
if rank == 0:
    torch.save({"module": {"w": torch.randn(64, 8)}, "global_steps": 10},
               os.path.join(step, "mp_rank_00_model_states.pt"))
    while not os.path.exists(os.path.join(step, "zero_pp_rank_1_mp_rank_00_optim_states.pt")):
        time.sleep(0.02)
    time.sleep(0.2)
    with open(os.path.join(base, "latest"), "w") as f:
        f.write(tag)
"""


def test_deepspeed(ckmon, work):
    script = work / "ds.py"
    script.write_text(DEEPSPEED)
    base = work / "run"
    run = ckmon.run(PYTHON, script, base)
    assert run.returncode == 0, run.stderr
    (s,) = sets_in(work / "ckmon.jsonl")
    files, size = disk(base / "global_step10")
    assert (s["path"], s["kind"], s["files"], s["bytes"]) == (str(base / "global_step10"), "deepspeed", 3, size)
    assert s["ranks"] == [0, 1] and s["complete"] is True and s["values"]["step"] == 10


TRAINER = """
import json, os, sys, torch
sys.path.insert(0, %r)
import numpy as np
import pytest
from test_sets import write_safetensors
d = os.path.join(sys.argv[1], "checkpoint-5")
os.makedirs(d, exist_ok=True)
write_safetensors(os.path.join(d, "model.safetensors"), {"w": np.ones((16, 16))})
torch.save({"state": {}, "param_groups": [{"lr": 0.1}]}, os.path.join(d, "optimizer.pt"))
if sys.argv[2] == "commit":
    with open(os.path.join(d, "trainer_state.json"), "w") as f:
        json.dump({"global_step": 5, "epoch": 1.0, "log_history": []}, f)
""" % str(Path(__file__).parent)


def test_hf_trainer(ckmon, work):
    script = work / "trainer.py"
    script.write_text(TRAINER)
    run = ckmon.run(PYTHON, script, work / "out", "commit")
    (s,) = sets_in(work / "ckmon.jsonl")
    assert s["kind"] == "hf-trainer" and s["complete"] is True, s
    assert s["values"]["global_step"] == 5 and s["files"] == 3
    run = ckmon.run(PYTHON, script, work / "died", "no")
    s = sets_in(work / "ckmon.jsonl")[-1]
    assert s["path"] == str(work / "died" / "checkpoint-5")
    assert s["complete"] is False and s["missing"] == ["trainer_state.json: absent (the set was never committed)"]


def test_set_metrics_scraped(work):
    """/metrics carries ckmon_set_* for each set, labelled by kind and directory name."""
    script = work / "hf.py"
    script.write_text(HF_WRITER)
    port, socket_path = free_port(), work / "c.sock"
    collect = subprocess.Popen(
        ckmon_args("collect", "--socket", socket_path, "--log", work / "ckmon.jsonl",
                   "--listen", f"127.0.0.1:{port}"), cwd=work, env=clean_env(),
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the collector", lambda: socket_path.exists() or collect.poll() is not None)
        p = subprocess.run([PYTHON, str(script), str(work / "models" / "run7"), "2", "1"],
                           env=clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=socket_path, CKMON_JOB="t"))
        assert p.returncode == 0
        wait_for("the set record", lambda: sets_in(work / "ckmon.jsonl"))
        status, text = request("GET", f"http://127.0.0.1:{port}/metrics")
    finally:
        collect.terminate()
        collect.communicate(timeout=60)
    assert status == 200
    files, size = disk(work / "models" / "run7")
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line.startswith("ckmon_set_")}
    labels = 'job="t",host="%s",kind="hf-sharded",set="runN"' % __import__("socket").gethostname()
    run = read_log(work / "ckmon.jsonl")[0].get("run")
    labels = labels.replace(',kind', f',run="{run}",kind') if run else labels
    (s,) = sets_in(work / "ckmon.jsonl")
    assert samples == {f"ckmon_set_bytes{{{labels}}}": size, f"ckmon_set_files{{{labels}}}": files,
                       f"ckmon_set_complete{{{labels}}}": 0,
                       f"ckmon_set_seconds{{{labels}}}": pytest.approx(s["seconds"], abs=1e-6)}


# ---- the items of a .distcp file ----

def distcp_items(side, rank):
    """What a rank wrote into its .distcp: fqn -> (offset, length, tensor shape or None)."""
    items = json.loads((side / f"results.{rank}.json").read_text())["items"]
    return {i["fqn"]: (i["offset"], i["length"], i["size"]) for i in items}


def assert_tensor_stats(t, expected):
    """A record's tensor against torch's own statistics of the tensor the rank saved."""
    x = expected.double()
    assert t["shape"] == list(expected.shape) and t["dtype"] == "float32"
    assert t["min"] == pytest.approx(x.min().item(), rel=1e-6)
    assert t["max"] == pytest.approx(x.max().item(), rel=1e-6)
    assert t["mean"] == pytest.approx(x.mean().item(), rel=1e-5, abs=1e-7)


def rank_states(world):
    """Each rank's state dict, as dcp_writer.py builds it (torch, not ckmon)."""
    import sys
    sys.path.insert(0, str(DCP_WRITER.parent))
    import dcp_writer
    return {r: dcp_writer.rank_state(r) for r in range(world)}


def test_distcp_every_item_parsed(ckmon, work):
    """Every torch.save archive in a .distcp is parsed: while written (the .metadata does not
    exist yet) its items are named by byte offset; `ckmon inspect` of the committed set names
    them by the .metadata's fully qualified names. Ground truth: the offsets each rank
    reported writing and torch's statistics of the tensors it saved."""
    run, directory, side = run_dcp(ckmon, work, 2, "1=raw", env={"CKMON_SAMPLE": "1"})
    assert run.returncode == 0, run.stderr
    states = rank_states(2)
    records = {Path(r["path"]).name: r for r in read_log(work / "ckmon.jsonl")
               if r["event"] == "checkpoint" and r["path"].endswith(".distcp")}
    for rank in (0, 1):
        items, record = distcp_items(side, rank), records[f"__{rank}_0.distcp"]
        assert record["complete"] is True and "errors" not in record, record
        tensors = {t["name"]: t for t in record["tensors"]}
        if rank == 0:  # every item: the step (a torch.save'd int), then both tensors
            assert record["values"] == {f"@{items['step'][0]}": 100}
            assert set(tensors) == {f"@{items[k][0]}" for k in ("layers.0.weight", "layers.0.bias")}
        else:  # a raw item ends what can be read without the .metadata, with no error
            assert record["values"] == {} and tensors == {}
        for fqn, (offset, _, shape) in items.items():
            if shape and f"@{offset}" in tensors:
                assert_tensor_stats(tensors[f"@{offset}"], states[rank][fqn])
    inspected = subprocess.run(
        ckmon_args("inspect", directory / "__0_0.distcp", directory / "__1_0.distcp"),
        capture_output=True, text=True, env=clean_env(CKMON_SAMPLE="1"))
    assert inspected.returncode == 0, inspected.stderr
    for r in map(json.loads, inspected.stdout.splitlines()):
        if r["event"] != "checkpoint":
            continue
        rank = int(Path(r["path"]).name[2])
        assert r["complete"] is True and "errors" not in r, r
        tensors = {t["name"]: t for t in r["tensors"]}
        expected = {k: v for k, v in states[rank].items() if torch_tensor(v)}
        assert set(tensors) == set(expected)
        for fqn, value in expected.items():
            assert_tensor_stats(tensors[fqn], value)
        assert r.get("values", {}) == ({"step": 100} if rank == 0 else {})


def torch_tensor(v):
    import torch
    return torch.is_tensor(v)


# ---- views: a set is one line, its files folded ----

def tail_lines(work, *args):
    p = subprocess.run(ckmon_args("tail", "--log", work / "ckmon.jsonl", *args), cwd=work,
                       env=clean_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_tail_folds_a_sets_files(ckmon, work):
    run, directory, side = run_dcp(ckmon, work, 3, "1=truncate")
    names = sorted(p.name for p in directory.iterdir())  # .metadata, __0_0 ... __2_0
    lines = tail_lines(work)
    # One line for the set, one for what is missing, one with its files folded; no file's own.
    assert not any(l.startswith(("ckpt/step_100/", str(directory) + "/")) for l in lines), lines
    [set_line] = [l for l in lines if l.split()[0] in ("ckpt/step_100", str(directory))]
    assert set_line.split()[1:3] == ["set:dcp", "NO"] and "4 files, 3 ranks" in set_line
    [folded] = [l for l in lines if "folded:" in l]
    listed = folded.split("folded:")[1].split("(")[0].replace(",", " ").split()
    assert sorted(n for n in listed if n != "NO") == names
    # The files' own records, all of them, with --members.
    members = [l.split()[0] for l in tail_lines(work, "--members") if not l.startswith(" ")]
    assert sorted(Path(m).name for m in members if "/step_100/" in m) == names
    assert not any("folded:" in l for l in tail_lines(work, "--members"))


def test_tail_shows_files_of_a_set_with_no_set_record(work):
    """A log cut before its set's record (or from a collector of before sets): the files
    are shown on their own once the log ends."""
    records = [{"schema": 1, "event": "checkpoint", "time": "2026-11-23T21:42:00.000000Z",
                "path": f"/x/step_5/__{r}_0.distcp", "format": "torch", "bytes": 100,
                "complete": True, "values": {}, "tensors": []} for r in range(2)]
    records.insert(1, {"schema": 1, "event": "checkpoint", "time": "2026-11-23T21:42:00.000000Z",
                       "path": "/x/other.pt", "format": "torch", "bytes": 5, "complete": True,
                       "values": {}, "tensors": []})
    (work / "ckmon.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    shown = [l.split()[0] for l in tail_lines(work)]
    assert shown == ["/x/other.pt", "/x/step_5/__0_0.distcp", "/x/step_5/__1_0.distcp"]


def test_report_folds_a_sets_files(ckmon, work):
    """`ckmon report`: the set is one row of the checkpoints table, its files' rows inside
    a <details> under it (their ids stay the targets of alert links), none on their own."""
    from test_report import Dom
    run, directory, side = run_dcp(ckmon, work, 3, "1=truncate")
    page = work / "report.html"
    p = subprocess.run(ckmon_args("report", "--log", work / "ckmon.jsonl", "-o", page), cwd=work,
                       env=clean_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    dom = Dom()
    dom.feed(page.read_text())
    [section] = dom.find("section", id="saves")
    [set_row] = dom.find("tr", inside=section, class_="set")
    cells = [c["text"] for c in dom.find("td", inside=set_row)]
    assert cells[1:3] == [str(directory), "set: dcp"] and cells[5] == "NO (torn)"
    [details] = dom.find("details", inside=section)
    folded = {Path(c["text"]).name for r in dom.find("tr", inside=details)
              for c in dom.find("td", inside=r)[1:2]}
    assert folded == {p.name for p in directory.iterdir()}
    rows = [r for r in dom.find("tr", inside=section) if r["attrs"].get("id", "").startswith("c")]
    assert len(rows) == 4 and all(any(q is details for q in r["parents"]) for r in rows)


# ---- sets in progress across a collector restart ----

def kill_mid_set(work, world=3):
    """Ranks write their shards under collector A; rank 0 then waits for work/go before it
    commits. A is killed (SIGKILL) once it has every shard's record, and B started on the
    same log and state dir. Returns (B, the launcher, the set's dir, when A had them all)."""
    directory, side = work / "ckpt" / "step_100", work / "side"
    side.mkdir()
    a = start_collector(work)
    launch = subprocess.Popen(
        launcher(work) + [str(directory), str(side), str(world), ",".join(map(str, range(world)))],
        env=clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=str(work / "c.sock"), GO=str(work / "go")))
    shards = lambda: [r for r in read_log(work / "ckmon.jsonl")
                      if r["event"] == "checkpoint" and r["path"].endswith(".distcp")]
    deadline = time.monotonic() + 180  # three torch imports on a loaded machine
    while len(shards()) < world:
        assert time.monotonic() < deadline and launch.poll() is None, "no record of every shard"
        time.sleep(0.1)
    seen = time.time()

    def kept():  # the set as the state dir holds it (noted just after the record is written)
        files = list((work / "ckmon.jsonl.state").glob("sets-*.json"))
        return len(files) == 1 and len(json.loads(files[0].read_text())[0]["files"]) == world
    wait_for("the set in the state dir", kept)
    a.kill()
    a.wait()
    (work / "c.sock").unlink()
    return start_collector(work), launch, directory, seen


def test_set_in_progress_survives_a_collector_kill(work):
    b, launch, directory, seen = kill_mid_set(work)
    try:
        time.sleep(0.5)
        (work / "go").touch()
        committed = time.time()
        assert launch.wait(timeout=120) == 0
        wait_for("the set record", lambda: read_sets(work / "ckmon.jsonl"))
    finally:
        b.terminate()
        b.communicate(timeout=60)
    (s,) = read_sets(work / "ckmon.jsonl")
    files, size = disk(directory)
    assert (s["path"], s["files"], s["bytes"], s["complete"]) == (str(directory), 4, size, True)
    assert s["ranks"] == [0, 1, 2]
    # The first opens and each rank's last shard came from the killed collector's state.
    assert s["seconds"] >= committed - seen and s["slowest"]["rank"] in (0, 1, 2)
    assert s["slowest"]["seconds"] <= s["seconds"] - (committed - seen)
    assert not list((work / "ckmon.jsonl.state").glob("sets-*"))


def test_set_torn_while_its_collector_was_killed(work):
    """The writers die without a commit after the kill, having never talked to the new
    collector: it writes the torn set once their processes are gone."""
    b, launch, directory, seen = kill_mid_set(work)
    try:
        for child in subprocess.run(["pgrep", "-P", str(launch.pid)], capture_output=True,
                                    text=True).stdout.split():
            os.kill(int(child), signal.SIGKILL)
        launch.wait(timeout=60)
        wait_for("the set record", lambda: read_sets(work / "ckmon.jsonl"))
    finally:
        b.terminate()
        b.communicate(timeout=60)
    (s,) = read_sets(work / "ckmon.jsonl")
    assert s["complete"] is False and s["alerts"] == ["incomplete"]
    assert s["missing"] == [".metadata: absent (the set was never committed)"]
    assert s["ranks"] == [0, 1, 2] and "slowest" in s and s["seconds"] > 0


# ---- a directory filled under a temporary name, then renamed into place ----

ORBAX = """
import json, os, sys, time
import numpy as np, torch
final, temp, mode = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(os.path.join(temp, "params"))
np.save(os.path.join(temp, "params", "w.npy"), np.arange(64, dtype=np.float32).reshape(8, 8))
torch.save({"step": 7, "opt": torch.ones(4)}, os.path.join(temp, "state.pt"))
time.sleep(1.5)  # the first files' records are written before the rename
with open(os.path.join(temp, "_CHECKPOINT_METADATA"), "w") as f:
    json.dump({"step": 7, "format": "orbax-like"}, f)
if mode == "rename":
    os.rename(temp, final)
"""


def tree(directory):
    files = {p: p.stat().st_size for p in Path(directory).rglob("*") if p.is_file()}
    return len(files), sum(files.values())


@pytest.mark.parametrize("suffix", [".orbax-checkpoint-tmp-1733500000", ".tmp"])
def test_directory_renamed_into_place(ckmon, work, suffix):
    """Orbax's way (and NAME.tmp/): files in a temporary directory, which a rename commits.
    The files of NAME.tmp/ are named with -p (no default glob takes them)."""
    script = work / "orbax.py"
    script.write_text(ORBAX)
    final, temp = work / "ckpt" / "7", work / "ckpt" / ("7" + suffix)
    (work / "ckpt").mkdir()
    paths = () if "orbax" in suffix else ("*.tmp/*",)
    run = ckmon.run(PYTHON, script, final, temp, "rename", paths=paths)
    assert run.returncode == 0, run.stderr
    (s,) = sets_in(work / "ckmon.jsonl")
    files, size = tree(final)
    assert (s["path"], s["kind"], s["files"], s["bytes"]) == (str(final), "directory", 3, size)
    assert files == 3 and s["complete"] is True and s["missing"] == [] and s["values"]["step"] == 7
    # Every file's record is in the log, under its temporary or (held then) its final name.
    names = {Path(r["path"]).name for r in read_log(work / "ckmon.jsonl")}
    assert {"w.npy", "state.pt", "_CHECKPOINT_METADATA"} <= names
    assert last_good(work / "ckmon.jsonl") == (0, str(final))
    # tail: one line, every file folded under it, whichever name its record has
    lines = tail_lines(work)
    assert [l.split()[:2] for l in lines if not l.startswith(" ")] == [["ckpt/7", "set:directory"]]
    assert any(l.startswith("    3 file records folded:") for l in lines), lines


def test_directory_never_renamed(ckmon, work):
    script = work / "orbax.py"
    script.write_text(ORBAX)
    final, temp = work / "ckpt" / "7", work / "ckpt" / "7.orbax-checkpoint-tmp-1733500000"
    (work / "ckpt").mkdir()
    assert ckmon.run(PYTHON, script, final, temp, "stay").returncode == 0
    (s,) = sets_in(work / "ckmon.jsonl")
    files, size = tree(temp)
    assert (s["path"], s["kind"], s["files"], s["bytes"]) == (str(temp), "directory", 3, size)
    assert s["complete"] is False and s["alerts"] == ["incomplete"]
    assert s["missing"] == [f"{temp.name}: not renamed into place (the set was never committed)"]
