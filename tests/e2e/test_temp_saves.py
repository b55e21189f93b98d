"""test_temp_saves.py — saves under a temporary name (issue 13, items 7 and 8).

A checkpoint written under a name no glob matches is followed for its first bytes
(docs/agent.md, "Saves under a temporary name"): renamed onto a checkpoint name it gets the
record of a file written under that name (parsed "stream", its real writes); killed while
open it is a torn save; otherwise it leaves no record. A held record whose path is opened
for writing again is replaced by the later one (numpy's open_memmap).
"""
import numpy as np

from ckmon_helpers import check_record, python_script

TORCH_STATE = """
import shutil, tempfile, torch
state = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "epoch": 3}
"""


def checkpoint_records(run):
    return [r for r in run.records if "format" in r]


def assert_streamed(run, out, final, tmp):
    record = run.only_record(final)
    check_record(record, run, path=final, written_as=tmp, fmt="torch", size=out["size"],
                 pid=out["pid"])
    assert record["parsed"] == "stream"
    assert record["writes"] > 0
    assert record["seconds"] > 0
    [tensor] = record["tensors"]
    assert tensor["name"] == "w" and tensor["shape"] == [3, 4]
    assert (tensor["min"], tensor["max"], tensor["mean"]) == (0, 11, 5.5)
    assert record["values"]["epoch"] == 3
    assert len(checkpoint_records(run)) == 1


def test_torch_save_to_tmp_then_replace(ckmon, work):
    script = TORCH_STATE + """
final, tmp = os.path.abspath("x.pt"), os.path.abspath("x.pt.tmp")
torch.save(state, tmp)
os.replace(tmp, final)
report(final=final, tmp=tmp, size=os.path.getsize(final))
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    assert_streamed(run, out, out["final"], out["tmp"])


def test_mkstemp_then_shutil_move(ckmon, work):
    script = TORCH_STATE + """
fd, tmp = tempfile.mkstemp(dir=".")
with os.fdopen(fd, "wb") as f:
    torch.save(state, f)
final = os.path.abspath("y.pt")
shutil.move(tmp, final)
report(final=final, tmp=os.path.abspath(tmp), size=os.path.getsize(final))
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    assert_streamed(run, out, out["final"], out["tmp"])


def test_killed_while_writing_a_temp_file_is_a_torn_save(ckmon, work):
    script = """
import io, torch
buffer = io.BytesIO()
torch.save({"w": torch.ones(1000)}, buffer)
data = buffer.getvalue()
tmp = os.path.abspath("z.pt.tmp")
f = open(tmp, "wb")
f.write(data[: len(data) // 2])
f.flush()
report(tmp=tmp, size=len(data) // 2)
os.kill(os.getpid(), signal.SIGKILL)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode != 0
    out = run.last_json()
    [record] = checkpoint_records(run)
    assert record["path"] == out["tmp"]
    assert record["complete"] is False
    assert record["format"] == "torch"
    assert record["bytes"] == out["size"]
    assert any("ended while the file was open" in e for e in record["errors"])


def test_files_that_are_no_checkpoint_leave_no_record(ckmon, work):
    script = """
with open("notes.txt", "w") as f:
    f.write("hello\\n" * 100)
os.replace("notes.txt", "notes2.txt")
with open("blob.bin", "wb") as f:
    f.write(bytes(range(256)) * 40)
os.replace("blob.bin", "blob2.bin")
with open("kept.pkl.tmp", "wb") as f:  # a checkpoint's bytes, never given a checkpoint name
    pickle.dump({"epoch": 1}, f)
os.replace("kept.pkl.tmp", "kept.pkl.old")
report()
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    assert checkpoint_records(run) == []
    assert (work / "blob2.bin").read_bytes() == bytes(range(256)) * 40


def test_open_memmap_gives_one_complete_record(ckmon, work):
    script = """
import numpy as np
path = os.path.abspath("m.npy")
a = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(100, 10))
a[:] = (np.arange(1000, dtype=np.float32).reshape(100, 10) - 300) / 7
a.flush()
del a
report(path=path, size=os.path.getsize(path))
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    [record] = checkpoint_records(run)
    check_record(record, run, path=out["path"], fmt="npy", size=out["size"], pid=out["pid"])
    truth = np.load(out["path"]).astype(np.float64)
    [tensor] = record["tensors"]
    assert tensor["shape"] == [100, 10] and tensor["dtype"] == "float32"
    assert tensor["min"] == truth.min() and tensor["max"] == truth.max()
    assert abs(tensor["mean"] - truth.mean()) <= 1e-9 * max(1, abs(truth.mean()))
    assert abs(tensor["std"] - truth.std()) <= 1e-6 * truth.std()
