"""test_c_writers.py — one JSON checkpoint written by C through each family of calls.

tests/programs/json_writer.c writes the same bytes by stdio, dup/dup2/F_DUPFD, writev,
backwards pwrite, fdopen, rename, creat, openat, mmap, sendfile and eight threads writing a
byte per call. Each method runs once plainly and once under `ckmon run`: the program's
output, exit status and file must not change, and the record must describe the file exactly.
"""
import re

import pytest

from ckmon_helpers import check_record, program, run_plain
from expected import assert_findings

WEIGHTS = [(i - 10) * 0.0625 for i in range(20)]
STATE = {
    "epoch": 7,
    "lr": 0.125,
    "name": "c-writer",
    "optim": {"betas": [0.9, 0.999], "step": 140},
    "weights": WEIGHTS,
}
# The program prints the weights with %.4f, which is exact for these multiples of 1/16.
CONTENT = (
    '{"epoch": 7, "lr": 0.125, "name": "c-writer", '
    '"optim": {"betas": [0.9, 0.999], "step": 140}, "weights": ['
    + ", ".join(f"{w:.4f}" for w in WEIGHTS) + "]}\n"
).encode()

ONE_BYTE_PER_CALL = {"threads_pwrite", "threads_write", "threads_stdio_locks"}
NO_WRITE_CALLS = {"mmap", "sendfile"}  # the bytes arrive where no wrapper sees them
TMP_GLOBS = ("*checkpoint*/*.json", "*checkpoint*/*.json.tmp")
# How the record was obtained: the file parsed again at close when its bytes were not all
# seen in order. Eight threads' pwrites land in whatever order the scheduler gives.
REREAD = {"pwrite_backwards", "mmap", "sendfile"}

CASES = [
    ("stdio", ()),
    ("dup", ()),
    ("dup2", ()),
    ("fcntl_dupfd", ()),
    ("writev", ()),
    ("pwrite_backwards", ()),
    ("fdopen", ()),
    ("fdopen_dup_left_open", ()),
    ("rename_after_close", ()),  # state.json.tmp is a checkpoint name only after the rename
    ("rename_after_close", TMP_GLOBS),  # ... and here from the start
    ("creat", ()),
    ("openat", ()),
    ("mmap", ()),
    ("sendfile", ()),
    ("threads_pwrite", ()),
    ("threads_write", ()),
    ("threads_stdio_locks", ()),
]


def writer_pid(run):
    found = re.search(r"^pid (\d+)$", run.stderr, re.M)
    assert found, run.stderr
    return int(found.group(1))


def target(work, name):
    path = work / name / "checkpoint" / "state.json"
    path.parent.mkdir(parents=True)
    return path


@pytest.mark.parametrize("method, paths", CASES)
def test_c_writer(ckmon, work, method, paths):
    writer = program("json_writer")
    plain_path, path = target(work, "plain"), target(work, "agent")
    plain = run_plain([writer, method, plain_path], cwd=work)
    run = ckmon.run(writer, method, path, paths=paths)

    assert plain.returncode == 0, plain.stderr
    assert plain_path.read_bytes() == CONTENT
    assert run.returncode == plain.returncode, run.stderr
    assert run.stdout.replace(str(path), "PATH") == plain.stdout.replace(str(plain_path), "PATH")
    assert path.read_bytes() == CONTENT

    record = run.only_record(path)
    written_as = f"{path}.tmp" if method == "rename_after_close" else None
    check_record(record, run, path=path, fmt="json", size=len(CONTENT), pid=writer_pid(run),
                 program="json_writer", job="json_writer", written_as=written_as)
    if method in ONE_BYTE_PER_CALL:
        assert record["writes"] == len(CONTENT)
    elif method == "rename_after_close" and not paths:
        assert record["writes"] == 0  # a checkpoint only by its rename: its writes were not watched
    elif method not in NO_WRITE_CALLS:
        assert record["writes"] >= 1
    assert_findings(record, STATE)
    assert len(run.records) == 1, run.records
    if method == "rename_after_close" and not paths:
        assert record["parsed"] == "file"  # adopted: the collector parsed the finished file
    elif method in REREAD:
        assert record["parsed"] == "reread"
    elif method != "threads_pwrite":
        assert record["parsed"] == "stream"
