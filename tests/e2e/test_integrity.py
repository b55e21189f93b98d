"""test_integrity.py — is a file what its writer wrote? (docs/integrity.md)

The zip writers (torch.save, np.savez) put a CRC-32 of every member in the archive; the
walker checks them as the bytes stream. Ground truth: the files are written by the real
writers, and one byte inside a tensor's data is flipped by this test (located by searching
for the tensor's own bytes, so the flip lands in data and nowhere else).
"""
import subprocess

import numpy as np
import pytest

from ckmon_helpers import PYTHON, python_script
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
