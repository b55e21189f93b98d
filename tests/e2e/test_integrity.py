"""test_integrity.py — is a file what its writer wrote? (docs/integrity.md)

The zip writers (torch.save, np.savez) put a CRC-32 of every member in the archive; the
walker checks them as the bytes stream. Ground truth: the files are written by the real
writers, and one byte inside a tensor's data is flipped by this test (located by searching
for the tensor's own bytes, so the flip lands in data and nowhere else).
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from ckmon_helpers import CKMON, PYTHON, python_script
from test_torch import inspect

# kind: (file, writer, the member holding the tensor "w")
WRITERS = {
    "torch": ("m.pt", """
import torch
torch.save({"w": torch.arange(4096, dtype=torch.float32), "epoch": 3}, "m.pt")
""", "m/data/0"),
    "npz": ("a.npz", """
import numpy as np
np.savez("a.npz", w=np.arange(4096, dtype=np.float32), b=np.ones(50))
""", "w.npy"),
}


def write(work, kind):
    name, body, _ = WRITERS[kind]
    subprocess.run([PYTHON, "-c", body], cwd=work, check=True, timeout=120)
    return work / name


def flip_tensor_byte(path):
    """Flips one bit of element 1000 of the float32 arange the writer saved."""
    data = bytearray(path.read_bytes())
    needle = np.arange(4096, dtype=np.float32).tobytes()[4000:4016]
    at = data.find(needle)
    assert at > 0 and data.find(needle, at + 1) < 0, "the tensor's bytes are where, once"
    data[at + 1] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_crc_mismatch_makes_the_record_incomplete(work, kind):
    path = write(work, kind)
    intact = inspect(path)
    assert intact["complete"] is True and "errors" not in intact, intact
    flip_tensor_byte(path)
    broken = inspect(path)
    assert broken["complete"] is False
    member = WRITERS[kind][2]
    (error,) = broken["errors"]
    assert error.startswith(f"{kind}: {member}: CRC-32 mismatch: content "), error


# A monitored program writes, with one write family each, the bytes the real writer
# produced with one bit flipped in a tensor: the live record must catch it, since the
# agent leaves the CRCs to the collector, which checks the finished file (zip_check.h).
LIVE_WRITERS = {
    "torch": """
import io, sys, torch
buf = io.BytesIO()
torch.save({"w": torch.arange(4096, dtype=torch.float32), "epoch": 3}, buf)
""",
    "npz": """
import io, sys, numpy as np
buf = io.BytesIO()
np.savez(buf, w=np.arange(4096, dtype=np.float32), b=np.ones(50))
""",
    "npz_compressed": """
import io, sys, numpy as np
buf = io.BytesIO()
np.savez_compressed(buf, w=np.arange(4096, dtype=np.float32), b=np.ones(50))
""",
}
LIVE_TAIL = """
data = bytearray(buf.getvalue())
if sys.argv[1] == "flip":
    data[int(sys.argv[2])] ^= 0x04
if sys.argv[1] == "restate":  # every place the archive states w.npy's CRC says another
    import struct, zipfile
    stated = struct.pack("<I", zipfile.ZipFile(buf).getinfo("w.npy").CRC)
    data = bytearray(bytes(data).replace(stated, bytes([stated[0] ^ 1]) + stated[1:]))
# torch's under a temporary name then renamed (the agent follows it for its bytes); the
# others under their own name (an .npz under another would be the collector's to parse)
temp = sys.argv[3] + ".tmp" if sys.argv[3].endswith(".pt") else sys.argv[3]
with open(temp, "wb") as f:
    f.write(bytes(data))
if temp != sys.argv[3]:
    import os
    os.replace(temp, sys.argv[3])
"""


@pytest.mark.parametrize("kind", sorted(LIVE_WRITERS))
def test_live_crc_is_checked_after_close(ckmon, work, kind):
    """Written intact: complete, no error; one bit flipped in a member's data: the live
    record is incomplete and names the member, as inspect does."""
    name, form = ("m.pt", "torch") if kind == "torch" else ("a.npz", "npz")
    member = "archive/data/0" if kind == "torch" else "w.npy"  # torch names it by its file
    script = work / "live.py"
    script.write_text(LIVE_WRITERS[kind] + LIVE_TAIL)
    intact = ckmon.run(PYTHON, script, "intact", "0", name)
    assert intact.returncode == 0, intact.stderr
    (record,) = intact.records
    assert record["complete"] is True and "errors" not in record, record
    assert record["path"] == str(work / name) and record["parsed"] == "stream"
    assert record.get("written_as") == (str(work / name) + ".tmp" if kind == "torch" else None)
    assert record["tensors"] == inspect(work / name)["tensors"]

    needle = np.arange(4096, dtype=np.float32).tobytes()[4000:4016]
    at = (work / name).read_bytes().find(needle) + 1
    # deflated data cannot take a flip unnoticed by inflate: its stated CRC changes instead
    change = "restate" if kind == "npz_compressed" else "flip"
    (work / name).unlink()
    (work / "ckmon.jsonl").unlink()
    flipped = ckmon.run(PYTHON, script, change, str(at), name)
    assert flipped.returncode == 0, flipped.stderr
    (record,) = flipped.records
    offline = inspect(work / name)
    assert record["complete"] is False and offline["complete"] is False
    assert record["parsed"] == "stream"
    (error,) = record["errors"]
    assert error.startswith(f"{form}: {member}: CRC-32 mismatch: content "), error
    crcs = re.compile(r"content ([0-9a-f]{8}), .* says ([0-9a-f]{8})$")
    assert crcs.search(error).groups() == crcs.search(offline["errors"][0]).groups()


CHANGED_AFTER_CLOSE = """
import io, os, time, torch
import numpy as np
torch.save({"w": torch.randn(1000)}, "grown.pt")
os.truncate("grown.pt", os.path.getsize("grown.pt") + 10)    # size differs, within the hold
torch.save({"w": torch.randn(1000)}, "kept.pt")
torch.save({"w": torch.randn(1000)}, "gone.pt")
os.unlink("gone.pt")               # rotated away at once, maybe before the collector saw it
buf = io.BytesIO()
torch.save({"w": torch.arange(4096, dtype=torch.float32)}, buf)
data = bytearray(buf.getvalue())
data[data.find(np.arange(4096, dtype=np.float32).tobytes()[4000:4016]) + 1] ^= 0x04
with open("bad.pt", "wb") as f:
    f.write(bytes(data))
time.sleep(0.5)  # the collector has the close (in ms), the record is in its 1 s hold
os.unlink("bad.pt")                                           # corrupt, and rotated away
"""


def test_a_file_changed_or_deleted_before_its_check(ckmon, work):
    """Without --digest: a file changed before the collector could check its CRCs keeps
    the stream's verdict and an error saying they were not checked; one deleted within
    the rename hold is checked all the same (the collector opened it at its close), and
    one deleted before the collector could open it raises nothing (no one can read it
    any more); a neighbour left alone is checked and clean."""
    run = ckmon.run(*python_script(work, CHANGED_AFTER_CLOSE))
    assert run.returncode == 0, run.stderr
    grown, kept = run.only_record(work / "grown.pt"), run.only_record(work / "kept.pt")
    assert grown["complete"] is True and grown["errors"] == [
        "torch: CRC-32s not checked: the file was replaced or changed after its close (its "
        "size differs)"], grown
    assert kept["complete"] is True and "errors" not in kept, kept
    gone = run.only_record(work / "gone.pt")
    assert gone["complete"] is True and "errors" not in gone, gone
    bad = run.only_record(work / "bad.pt")
    assert bad["complete"] is False, bad
    (error,) = bad["errors"]
    assert error.startswith("torch: archive/data/0: CRC-32 mismatch: content "), error



# With --digest the collector takes the digest and the CRC check in one read of the file
# (docs/integrity.md); the files are larger than the check's first read of the archive's
# end (64 KiB), so that the digest follows the check's reads of the members.
DIGEST_AND_CRC = """
import io, os, time
import numpy as np, torch
torch.manual_seed(0)
w = torch.arange(1 << 18, dtype=torch.float32)
torch.save({"w": w, "b": torch.randn(300, 200), "c": torch.randn(7), "epoch": 3}, "big.pt")
np.savez("big.npz", w=w.numpy(), b=np.ones((500, 100)))
np.savez_compressed("small.npz", w=np.random.default_rng(0).random(50000), b=np.ones(50))
buf = io.BytesIO()
torch.save({"w": w, "b": torch.randn(300, 200)}, buf)
data = bytearray(buf.getvalue())
data[data.find(np.arange(1 << 18, dtype=np.float32).tobytes()[500000:500016]) + 1] ^= 0x04
for name in ("bad.pt", "gone.pt", "gone.bytes"):  # gone.bytes: what gone.pt held
    with open(name, "wb") as f:
        f.write(bytes(data))
torch.save({"w": w}, "grown.pt")
os.truncate("grown.pt", os.path.getsize("grown.pt") + 10)     # size differs, within the hold
time.sleep(0.5)  # the collector has the closes (in ms), the records are in their 1 s hold
os.unlink("gone.pt")                                          # corrupt, and rotated away
"""


def stored_crc_mismatches(path):
    """Ground truth from Python's zipfile and zlib: (member, content CRC, stated CRC) of
    each stored member whose data does not match its central directory entry."""
    import struct
    import zipfile
    import zlib
    data = path.read_bytes()
    found = []
    for info in zipfile.ZipFile(path).infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
        start = info.header_offset + 30 + name_len + extra_len
        crc = zlib.crc32(data[start:start + info.compress_size])
        if crc != info.CRC:
            found.append((info.filename, crc, info.CRC))
    return found


def test_with_digest_the_crcs_and_the_digest_come_from_one_read(ckmon, work):
    """--digest and the CRC check together give what each gives alone: every intact file's
    xxh3-128 and no error; a flipped byte's CRC mismatch, with the flipped file's digest;
    a file changed within the hold neither (one error for both); a corrupt file deleted
    within the hold still checked, with no digest."""
    import xxhash
    run = ckmon.run(*python_script(work, DIGEST_AND_CRC), options=["--digest"])
    assert run.returncode == 0, run.stderr
    for name in ("big.pt", "big.npz", "small.npz"):
        record = run.only_record(work / name)
        assert (work / name).stat().st_size > 128 << 10
        assert record["complete"] is True and "errors" not in record, record
        assert record["digest"] == "xxh3-128:" + xxhash.xxh3_128_hexdigest(
            (work / name).read_bytes()), name
    ((member, content, stated),) = stored_crc_mismatches(work / "bad.pt")
    mismatch = (f"torch: {member}: CRC-32 mismatch: content {content:08x}, the central "
                f"directory says {stated:08x}")
    bad = run.only_record(work / "bad.pt")
    assert bad["complete"] is False and bad["errors"] == [mismatch], bad
    assert bad["digest"] == "xxh3-128:" + xxhash.xxh3_128_hexdigest((work / "bad.pt").read_bytes())
    grown = run.only_record(work / "grown.pt")
    assert "digest" not in grown and grown["complete"] is True, grown
    assert grown["errors"] == ["digest: none: the file was replaced or changed after its "
                               "close (its size differs)"], grown
    gone = run.only_record(work / "gone.pt")
    assert stored_crc_mismatches(work / "gone.bytes") == [(member, content, stated)]
    assert "digest" not in gone and gone["complete"] is False, gone
    assert gone["errors"] == [
        "digest: none: cannot open the file: No such file or directory", mismatch], gone


TRAINING = """
import pickle
import torch
for epoch in range(3):
    torch.save({"w": torch.arange(4096, dtype=torch.float32), "epoch": epoch}, f"ep{epoch}.pt")
with open("state.pkl", "wb") as f:
    pickle.dump({"lr": 0.1, "history": [float(i) for i in range(20)]}, f)
"""


def verify(work, *paths):
    p = subprocess.run([str(CKMON), "verify", "--log", str(work / "ckmon.jsonl"), *map(str, paths)],
                       cwd=work, capture_output=True, text=True, timeout=120)
    lines = dict(line.split(": ", 1) for line in p.stdout.splitlines())
    return p.returncode, lines


def test_verify(ckmon, work):
    run = ckmon.run(*python_script(work, TRAINING))
    assert run.returncode == 0, run.stderr
    written = {r["path"]: r for r in run.records}
    assert set(written) == {str(work / n) for n in ("ep0.pt", "ep1.pt", "ep2.pt", "state.pkl")}

    code, lines = verify(work, work)
    assert code == 0 and lines == {p: "ok" for p in written}, lines

    flip_tensor_byte(work / "ep1.pt")                       # the CRC says so
    with open(work / "ep0.pt", "r+b") as f:                 # cut short
        f.truncate(1000)
    state = work / "state.pkl"                              # no checksum: its mtime says so
    data = bytearray(state.read_bytes())
    data[-5] ^= 0x01
    state.write_bytes(bytes(data))
    later = state.stat().st_mtime + 60
    os.utime(state, (later, later))
    elsewhere = work / "copies"
    elsewhere.mkdir()
    shutil.copy(work / "ep2.pt", elsewhere / "ep2.pt")
    shutil.copy(work / "ep1.pt", elsewhere / "ep1.pt")

    code, lines = verify(work, work)
    assert code == 1
    ep1 = written[str(work / "ep1.pt")]
    assert lines[str(work / "ep1.pt")].startswith(
        f"changed since written at {ep1['time']} by {ep1['job']}: torch: ep1/data/0: CRC-32 mismatch")
    assert lines[str(work / "ep0.pt")] == f"truncated (1000 of {written[str(work / 'ep0.pt')]['bytes']} bytes)"
    assert lines[str(state)].startswith("changed since written at ")
    assert lines[str(work / "ep2.pt")] == "ok"
    assert lines[str(elsewhere / "ep2.pt")] == "no record, ok by its checksums"
    assert lines[str(elsewhere / "ep1.pt")].startswith("no record, corrupt: torch: ep1/data/0: CRC-32")
    assert len(lines) == 6

    code, lines = verify(work, elsewhere / "ep2.pt")
    assert code == 0 and lines == {str(elsewhere / "ep2.pt"): "no record, ok by its checksums"}
