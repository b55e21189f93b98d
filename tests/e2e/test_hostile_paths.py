"""test_hostile_paths.py — what a program can put at a checkpoint's path or in its name.

A FIFO renamed onto a checkpoint name must not hang the collector (it opens what it parses
itself with O_NONBLOCK|O_NOFOLLOW and skips what is not a regular file); see
docs/security.md. Names that are not UTF-8 (file names, the program, the job, pickle keys)
must leave every line valid UTF-8 JSON, written so that the original bytes come back by the
rule of docs/records.md, the same in the log, `inspect` and every sink.
"""
import json
import os
import re
import subprocess

from ckmon_helpers import PYTHON, ckmon_args, clean_env, python_script, read_log
from sink_servers import FaultySink, Pushgateway, wait_for

FIFO_WRITER = """
def save(name, epoch):
    path = os.path.abspath(name)
    with open(path, "wb") as f:
        pickle.dump({"epoch": epoch}, f)
    report(path=path, epoch=epoch)

save("before.pkl", 1)
os.mkfifo("q.tmp")
os.rename("q.tmp", "q.pkl")       # the collector is told of a rename onto a checkpoint name
os.mkfifo("r.pkl.tmp")
os.rename("r.pkl.tmp", "r.pkl")
save("after.pkl", 2)
"""


def test_a_fifo_renamed_to_a_checkpoint_name_hangs_nothing(work):
    script = python_script(work, FIFO_WRITER)
    log = work / "ckmon.jsonl"
    # No reader or writer ever opens the FIFOs: a blocking open() would wait forever,
    # and `ckmon run` would not return. The timeout only bounds a failure.
    p = subprocess.run(ckmon_args("run", "-o", log, "--", *script), cwd=work, env=clean_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    records = read_log(log)
    by_path = {r["path"]: r for r in records}
    assert by_path[str(work / "before.pkl")]["values"] == {"epoch": 1}
    assert by_path[str(work / "after.pkl")]["values"] == {"epoch": 2}
    # a FIFO is no checkpoint: no record claims to have parsed it
    assert str(work / "q.pkl") not in by_path and str(work / "r.pkl") not in by_path
    # nor does `ckmon inspect` wait on one
    inspected = subprocess.run(ckmon_args("inspect", work / "q.pkl"), cwd=work,
                               capture_output=True, text=True, timeout=60)
    assert inspected.returncode != 0 and "not a regular file" in inspected.stderr


# docs/records.md, "Names that are not UTF-8": \xHH with HH in 00-1f, 5c or 80-ff is the byte
# HH; everything else is the name's own UTF-8.
ESCAPE = re.compile(rb"\\x(5c|[01][0-9a-f]|[89a-f][0-9a-f])")


def name_bytes(text):
    return ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), text.encode())


# Bytes names: Latin-1 and broken UTF-8, valid UTF-8, a name that holds the text \xff
# (its backslash must not read as an escape), and one renamed into place.
NAMES = [b"lat\xe9.pkl", b"bad\xff\xfe.pkl", b"cut\xe2\x82.pkl", b"caf\xc3\xa9.pkl",
         b"text\\xff.pkl", b"plain.pkl"]
TMP_NAME, FINAL_NAME = b"moved\xff.pkl.tmp", b"moved\xff.pkl"
KEYS = {"epoch": 1, b"raw\xff": 2, "back\\xff": 3}  # a bytes key prints as its repr, b'raw\xff'

NAMES_WRITER = f"""
names, keys = {NAMES!r}, {KEYS!r}
for name in names:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(keys, f)
fd = os.open({TMP_NAME!r}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
with os.fdopen(fd, "wb") as f:
    pickle.dump(keys, f)
os.rename({TMP_NAME!r}, {FINAL_NAME!r})
"""


def strict_lines(data):
    """Every line of data as JSON, read as strict UTF-8 (a stray byte fails the test)."""
    return [json.loads(line.decode("utf-8")) for line in data.splitlines() if line.strip()]


def test_names_that_are_not_utf8_are_written_losslessly(work, servers):
    pg = servers(Pushgateway)
    sink = FaultySink([(200, {})])
    script = python_script(work, NAMES_WRITER)
    program = os.fsencode(work) + b"/py\xff"  # the program's name is not UTF-8 either
    os.symlink(PYTHON, program)
    job = b"job\xfe"
    log = work / "ckmon.jsonl"
    try:
        p = subprocess.run(ckmon_args("run", "-o", log, "-s", f"ndjson={sink.url}", "-s",
                                      f"pushgateway={pg.url}", "--job") +
                           [job, "--", program, script[1]], cwd=work, env=clean_env(),
                           capture_output=True, timeout=120)
    finally:
        sink.stop()
    assert p.returncode == 0, p.stderr
    records = strict_lines(log.read_bytes())
    by_name = {name_bytes(r["path"]): r for r in records}
    base = os.fsencode(work) + b"/"
    assert set(by_name) == {base + n for n in NAMES + [FINAL_NAME]}
    moved = by_name[base + FINAL_NAME]
    assert name_bytes(moved["written_as"]) == base + TMP_NAME
    for r in records:
        assert name_bytes(r["program"]) == b"py\xff" and name_bytes(r["job"]) == job
        assert {name_bytes(k) for k in r["values"]} == {b"epoch", b"b'raw\\xff'", b"back\\xff"}
        assert sorted(r["values"].values()) == [1, 2, 3]
    # valid UTF-8 stays as it is: no escape where none is needed
    assert by_name[base + b"caf\xc3\xa9.pkl"]["path"] == str(work / "caf\u00e9.pkl")
    # the same text in every sink: NDJSON gets the log's lines, Pushgateway takes them all
    assert sink.delivered() == records
    stats = json.loads((work / "ckmon.jsonl.state" / "stats.json").read_text())
    assert all(s["dead_lettered"] == 0 and s["sent"] == len(records) for s in stats["sinks"])
    # (a key label has its digit runs as N, docs/sinks.md: the same text, made coarser)
    keys = wait_for("the keys in Pushgateway", lambda: {
        labels["key"] for name, labels, _ in pg.samples() if name == "ckmon_value"} or None)
    assert keys == {re.sub(r"[0-9]+", "N", k) for k in records[0]["values"]}
    # inspect writes the same names the same way
    inspected = subprocess.run(ckmon_args("inspect") + [base + n for n in NAMES], cwd=work,
                               capture_output=True, timeout=60)
    assert inspected.returncode == 0, inspected.stderr
    assert sorted(name_bytes(r["path"]) for r in strict_lines(inspected.stdout)) == sorted(
        base + n for n in NAMES)
