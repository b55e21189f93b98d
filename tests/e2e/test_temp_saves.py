"""test_temp_saves.py — saves under a temporary name (issue 13, items 7 and 8).

A checkpoint written under a name no glob matches is followed for its first bytes
(docs/agent.md, "Saves under a temporary name"): renamed onto a checkpoint name it gets the
record of a file written under that name (parsed "stream", its real writes); killed while
open it is a torn save; otherwise it leaves no record. A held record whose path is opened
for writing again is replaced by the later one (numpy's open_memmap).
"""
import numpy as np

from ckmon_helpers import check_record, program, python_script

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


def stdio_copy_source(work):
    """A torch.save file to copy with stdio (a zip whose first member is data.pkl)."""
    import torch
    source = work / "source.bin"
    torch.save({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "epoch": 3}, source)
    return source


def assert_stdio_streamed(run, final, tmp, source, program_name, piece, pid=None):
    record = run.only_record(final)
    check_record(record, run, path=final, written_as=tmp, fmt="torch",
                 size=source.stat().st_size, pid=pid, program=program_name)
    writes = -(-source.stat().st_size // piece)  # one per fwrite
    assert record["parsed"] == "stream" and record["writes"] == writes, record
    [tensor] = record["tensors"]
    assert tensor["name"] == "w" and tensor["shape"] == [3, 4]
    assert (tensor["min"], tensor["max"], tensor["mean"]) == (0, 11, 5.5)
    assert record["values"]["epoch"] == 3
    assert len(checkpoint_records(run)) == 1
    assert final.read_bytes() == source.read_bytes()  # the program's bytes, unchanged


def test_stdio_writes_to_a_temp_name_then_rename(ckmon, work):
    """fopen + fwrite under a temporary name, fclose, rename: only stdio carries the bytes
    (glibc flushes them with calls no write() wrapper sees), and they are followed."""
    source = stdio_copy_source(work)
    script = f"""
import ctypes
libc = ctypes.CDLL(None)  # the interposed fopen/fwrite/fclose, as a C program calls them
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fwrite.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
data = open({str(source)!r}, "rb").read()
tmp, final = os.path.abspath("save.part"), os.path.abspath("x.pt")
f = libc.fopen(tmp.encode(), b"wb")
for at in range(0, len(data), 100):
    chunk = data[at : at + 100]
    assert libc.fwrite(chunk, 1, len(chunk), f) == len(chunk)
assert libc.fclose(f) == 0
os.rename(tmp, final)
report(final=final, tmp=tmp)
"""
    run = ckmon.run(*python_script(work, script))
    assert run.returncode == 0, run.stderr
    out = run.last_json()
    assert_stdio_streamed(run, work / "x.pt", work / "save.part", source,
                          run.only_record(out["final"])["program"], 100, pid=out["pid"])


def test_stdio_writes_then_mv_by_another_process(ckmon, work):
    """A C program writes with fwrite under a temporary name, and `mv` (another process)
    renames it: the writer's streamed record takes the final name."""
    source = stdio_copy_source(work)
    tmp, final = work / "save.part", work / "y.pt"
    run = ckmon.run("sh", "-c", '"$0" stdio "$1" "$2" && mv "$2" "$3"', program("order_writer"),
                    source, tmp, final)
    assert run.returncode == 0, run.stderr
    assert_stdio_streamed(run, final, tmp, source, "order_writer", 3000)  # its STDIO_PIECE
