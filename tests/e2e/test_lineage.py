"""test_lineage.py — which checkpoint a run loaded, and which record wrote it
(docs/integrity.md, "Lineage"; the load record of docs/records.md).

Ground truth: the training and resuming scripts are real torch programs run under
`ckmon run`; they print their own pid and what they read, the writing record is the one the
first run's collector wrote, and the file's size and modification time are taken from the
file system by the test. Files are changed behind the log's back by the test itself.
"""
import json
import os
import subprocess

import pytest

from ckmon_helpers import (AGENT, CKMON, PYTHON, clean_env, parse_lines, python_script,
                           read_loads, read_log)
from sink_servers import request, wait_for
from test_scrape import Collect

TRAIN = """
import os, sys, torch
torch.manual_seed(0)
model = torch.nn.Linear(8, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
os.makedirs("saves", exist_ok=True)
for epoch in range(3):
    opt.zero_grad()
    model(torch.randn(16, 8)).pow(2).mean().backward()
    opt.step()
    torch.save({"epoch": epoch, "model": model.state_dict(), "optim": opt.state_dict()},
               f"saves/epoch_{epoch}.pt")
print(os.getpid())
"""

# Resumes from the newest checkpoint by modification time, as resume scripts do, and
# trains one more epoch.
RESUME = """
import glob, os, sys, torch
newest = max(glob.glob("saves/epoch_*.pt"), key=os.path.getmtime)
state = torch.load(newest)
model = torch.nn.Linear(8, 4)
model.load_state_dict(state["model"])
epoch = state["epoch"] + 1
torch.save({"epoch": epoch, "model": model.state_dict()}, f"saves/epoch_{epoch}.pt")
print(json.dumps({"pid": os.getpid(), "read": os.path.abspath(newest)}))
""".replace("import glob", "import json, glob")


def train(ckmon, work):
    run = ckmon.run(*python_script(work, TRAIN, "train.py"), job="train")
    assert run.returncode == 0, run.stderr
    return run


def resume(ckmon, work):
    run = ckmon.run(*python_script(work, RESUME, "resume.py"), job="resume")
    assert run.returncode == 0, run.stderr
    return run, run.last_json()


def writer_of(run, path):
    """What a load record must say of the checkpoint record that wrote path."""
    r = run.only_record(path)
    return {k: r[k] for k in ("time", "job", "run", "host", "pid")}


def test_resume_names_the_record_that_wrote_the_file(ckmon, work):
    first = train(ckmon, work)
    assert read_loads(work / "ckmon.jsonl") == [], "the training loop read no checkpoint"
    second, said = resume(ckmon, work)
    newest = work / "saves" / "epoch_2.pt"
    assert said["read"] == str(newest)
    (load,) = read_loads(work / "ckmon.jsonl")
    assert load["path"] == str(newest)
    assert load["pid"] == said["pid"]
    assert load["program"] == "python3" and load["job"] == "resume"
    assert load["run"] == second.only_record(work / "saves" / "epoch_3.pt")["run"]
    assert load["run"] != first.only_record(newest)["run"]
    assert load["bytes"] == newest.stat().st_size
    assert load["written"] == writer_of(first, newest)
    assert load["unchanged"] is True
    assert load["total"] == 1
    assert list(load)[:6] == ["schema", "event", "time", "host", "pid", "program"]
    # and the end-of-run summary says where the run resumed from
    assert (f"; 1 load, the first {newest}, written by train at {load['written']['time']}\n"
            in second.stderr), second.stderr


def rewrite_unmonitored(work, path):
    """Saves another state over path without the agent: another size."""
    body = f"import torch; torch.save({{'epoch': 99, 'w': torch.zeros(1000)}}, {str(path)!r})"
    subprocess.run([PYTHON, "-c", body], cwd=work, check=True, env=clean_env(), timeout=120)


def flip_byte_later(work, path):
    """One byte changed in place, the same size, modified 10 s after it was written."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    st = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 * 10**9))


@pytest.mark.parametrize("change", [rewrite_unmonitored, flip_byte_later],
                         ids=["replaced", "byte-flipped"])
def test_a_file_changed_since_written_is_not_unchanged(ckmon, work, change):
    first = train(ckmon, work)
    newest = work / "saves" / "epoch_2.pt"
    size = newest.stat().st_size
    change(work, newest)
    assert (newest.stat().st_size == size) == (change is flip_byte_later)
    second = ckmon.run(PYTHON, "-c", "open('saves/epoch_2.pt', 'rb').read()", job="check")
    assert second.returncode == 0, second.stderr
    (load,) = read_loads(work / "ckmon.jsonl")
    assert load["path"] == str(newest)
    assert load["bytes"] == newest.stat().st_size
    assert load["written"] == writer_of(first, newest)
    assert load["unchanged"] is False, (load, second.stderr)
    assert f"the first {newest}, written by train at " in second.stderr
    assert second.stderr.rstrip().endswith(", CHANGED since"), second.stderr


@pytest.mark.parametrize("digest", [True, False], ids=["with-digest", "size-and-time-only"])
def test_a_byte_flipped_with_its_time_kept(ckmon, work, digest):
    """Same size, modification time put back: only a recorded digest can tell."""
    body = "import torch; torch.save({'w': torch.arange(4096.0)}, 'kept.pt')"
    run = ckmon.run(PYTHON, "-c", body, job="train", options=["--digest"] if digest else [])
    assert run.returncode == 0, run.stderr
    path = work / "kept.pt"
    assert ("digest" in run.only_record(path)) == digest
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    reader = ckmon.run(PYTHON, "-c", "open('kept.pt', 'rb').read()", job="check")
    assert reader.returncode == 0, reader.stderr
    (load,) = read_loads(work / "ckmon.jsonl")
    assert load["written"] == writer_of(run, path)
    assert load["unchanged"] is (not digest)


def test_a_file_no_record_wrote(ckmon, work):
    path = work / "downloaded.pt"
    rewrite_unmonitored(work, path)
    run = ckmon.run(PYTHON, "-c", "import torch; torch.load('downloaded.pt')")
    assert run.returncode == 0, run.stderr
    (load,) = read_loads(work / "ckmon.jsonl")
    assert load["path"] == str(path) and load["bytes"] == path.stat().st_size
    assert load["written"] is None and load["unchanged"] is None
    assert f"; 1 load, the first {path}, which no record in the log wrote" in run.stderr


def test_import_torch_loads_nothing(ckmon, work):
    run = ckmon.run(PYTHON, "-c", "import torch, numpy, json; print(torch.__version__)")
    assert run.returncode == 0, run.stderr
    log = work / "ckmon.jsonl"
    assert not log.exists() or log.read_text() == "", log.read_text()


# Three ways to open a checkpoint for reading, each read in many small reads.
READERS = {
    "open": "f = open(NAME, 'rb'); [f.read(64) for _ in range(100)]; f.close()",
    "openat": "d = os.open('.', os.O_RDONLY | os.O_DIRECTORY); fd = os.open(NAME, os.O_RDONLY, "
              "dir_fd=d); [os.read(fd, 64) for _ in range(100)]; os.close(fd); os.close(d)",
    "fopen": "libc = ctypes.CDLL(None); libc.fopen.restype = ctypes.c_void_p; "
             "libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]; "
             "fp = libc.fopen(NAME.encode(), b'rb'); buf = ctypes.create_string_buffer(64); "
             "[libc.fread(buf, 1, 64, ctypes.c_void_p(fp)) for _ in range(100)]; "
             "libc.fclose(ctypes.c_void_p(fp))",
}


@pytest.mark.parametrize("how", sorted(READERS))
def test_one_load_per_open_whatever_the_reads(ckmon, work, how):
    path = work / "weights.npy"
    subprocess.run([PYTHON, "-c", "import numpy as np; np.save('weights.npy', np.ones(4096))"],
                   cwd=work, check=True, env=clean_env(), timeout=60)
    body = f"import ctypes, os\nNAME = 'weights.npy'\nfor _ in range(2):\n    {READERS[how]}\n"
    run = ckmon.run(*python_script(work, body, "reader.py"))
    assert run.returncode == 0, run.stderr
    loads = read_loads(work / "ckmon.jsonl")
    assert [l["path"] for l in loads] == [str(path)] * 2
    assert [l["total"] for l in loads] == [1, 2]
    assert all(l["bytes"] == path.stat().st_size for l in loads)


def test_a_file_read_right_after_its_save(ckmon, work):
    """The writer's record is still held for its rename window when the read comes: it is
    written first, and the load names it."""
    body = ("import torch, os\ntorch.save({'w': torch.ones(3)}, 'now.pt')\n"
            "torch.load('now.pt')\nprint(os.getpid())\n")
    run = ckmon.run(*python_script(work, body))
    assert run.returncode == 0, run.stderr
    lines = parse_lines((work / "ckmon.jsonl").read_text())
    assert [l["event"] for l in lines] == ["checkpoint", "load"]
    checkpoint, load = lines
    assert load["written"] == {k: checkpoint[k] for k in ("time", "job", "run", "host", "pid")}
    assert load["written"]["pid"] == load["pid"] == int(run.stdout.split()[-1])
    assert load["unchanged"] is True


def test_loads_total_is_exported(work):
    """ckmon_loads_total on /metrics: one series per job, host, run and file label, the
    running count of the loads in the log."""
    c = Collect(work)
    try:
        c.write(0, 2)
        reader = python_script(work, "import pickle\nfor name in ('epoch_0.pkl', 'epoch_1.pkl',"
                               " 'epoch_1.pkl'):\n    pickle.load(open(name, 'rb'))\n",
                               "reader.py")
        p = subprocess.run(reader, cwd=work, timeout=60, env=clean_env(
            LD_PRELOAD=AGENT, CKMON_SOCKET=c.socket, CKMON_JOB="eval", CKMON_RUN_ID="r2"))
        assert p.returncode == 0
        wait_for("3 loads", lambda: len(read_loads(work / "ckmon.jsonl")) == 3)
        metrics = c.metrics()
    finally:
        code, err = c.stop()
    assert code == 0, err
    host = read_log(work / "ckmon.jsonl")[0]["host"]
    samples = [l for l in metrics.splitlines() if l.startswith("ckmon_loads_total{")]
    assert samples == [f'ckmon_loads_total{{job="eval",host="{host}",run="r2",'
                       f'file="epoch_N.pkl"}} 3'], metrics
    assert "# TYPE ckmon_loads_total counter" in metrics
    loads = read_loads(work / "ckmon.jsonl")
    assert [l["written"]["job"] for l in loads] == ["train"] * 3
    assert [l["total"] for l in loads] == [1, 2, 3]


def test_report_shows_where_the_run_resumed_from(ckmon, work):
    first = train(ckmon, work)
    resume(ckmon, work)
    page = work / "r.html"
    p = subprocess.run([str(CKMON), "report", "--log", str(work / "ckmon.jsonl"), "-o", str(page)],
                       cwd=work, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    html = page.read_text()
    start = html.index('id="resumed-from"')
    row = html[start:html.index("</td>", start)]
    written = writer_of(first, work / "saves" / "epoch_2.pt")
    assert str(work / "saves" / "epoch_2.pt") in row
    assert f"written at {written['time']} by train run {written['run']}, unchanged" in row
    assert json.dumps("resume")[1:-1] in row
