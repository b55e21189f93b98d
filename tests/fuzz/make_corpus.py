#!/usr/bin/python3
"""make_corpus.py — writes the fuzzers' seed corpus: small real files of every format.

Seeds come from the real writers (pickle, json, numpy.save and savez, torch.save in
both its formats and back to back as in DCP's .distcp) and, for safetensors and GGUF (no writer library in Debian), from the layouts in
their specifications. Wire seeds are agent message sequences as core/wire.h describes
them, packets separated by NUL ('#' switches to the other connection). Small on purpose:
libFuzzer mutates them, and `make regress` replays them on every `make test`.

Usage: tests/fuzz/make_corpus.py [DIR]   (default: tests/fuzz/corpus next to this file)
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np


class Command:
    """Unpickling this calls os.system: the parser must describe it, never run it."""

    def __reduce__(self):
        return os.system, ("true",)


def pickles():
    state = collections.OrderedDict(epoch=3, lr=0.001, name="run-1", done=False, none=None,
                                    losses=[0.5, 0.25, 0.125], nested={"a": {"b": (1, 2.5)}},
                                    big=2**70, blob=b"\x00\x01", weights=list(range(20)))
    out = {f"state_p{p}.pkl": pickle.dumps(state, protocol=p) for p in range(6)}
    out["numpy_p2.pkl"] = pickle.dumps({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, 2)
    out["numpy_p4.pkl"] = pickle.dumps({"w": np.linspace(-1, 1, 10), "i": np.int64(7)}, 4)
    out["shared_p4.pkl"] = pickle.dumps([state["losses"]] * 3, protocol=4)  # memo GETs
    out["os_system_p0.pkl"] = pickle.dumps({"run": Command()}, protocol=0)
    out["os_system_p4.pkl"] = pickle.dumps({"run": Command()}, protocol=4)
    return out


def jsons():
    return {
        "trainer_state.json": json.dumps({"epoch": 2.0, "global_step": 400, "log_history": [
            {"loss": 0.7, "learning_rate": 5e-5, "step": 200}, {"loss": 0.5, "step": 400}]},
            indent=2).encode(),
        "config.json": json.dumps({"hidden": [64] * 12, "act": "gelu", "eps": 1e-12,
                                   "flags": [True, False, None], "nan": "NaN"}).encode(),
        "nonfinite.json": b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": [1, 2.0]}',
    }


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, array in tensors.items():
        raw = array.tobytes()
        dtype = {"float32": "F32", "float64": "F64", "int64": "I64", "float16": "F16",
                 "uint8": "U8", "bool": "BOOL"}[str(array.dtype)]
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def safetensors_files():
    return {
        "model.safetensors": safetensors(
            {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1.5, -2.0]),
             "steps": np.array(5, dtype=np.int64), "h": np.ones(4, dtype=np.float16),
             "mask": np.array([True, False])}, {"format": "pt", "epoch": "4"}),
        "empty.safetensors": safetensors({"e": np.zeros((0, 3), dtype=np.float32)}),
    }


def npys():
    out = {}
    for name, array, version in [
            ("f32.npy", np.arange(12, dtype=np.float32).reshape(3, 4), None),
            ("fortran.npy", np.asfortranarray(np.arange(6.0).reshape(2, 3)), None),
            ("scalar.npy", np.array(2.5), None), ("v2.npy", np.arange(5, dtype=">i4"), (2, 0)),
            ("bool.npy", np.array([True, False, True]), None),
            ("nan.npy", np.array([np.nan, np.inf, 1.0, -np.inf]), None)]:
        buf = io.BytesIO()
        if version:
            np.lib.format.write_array(buf, array, version=version)
        else:
            np.save(buf, array)
        out[name] = buf.getvalue()
    return out


def torches():
    """torch.save's zip (new) and legacy formats, for the torch target (FUZZ_FORMATS)."""
    import torch
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optim.step()
    out = {}
    for name, obj, new in [("state_dict.pt", model.state_dict(), True),
                           ("full.pt", {"epoch": 2, "model": model.state_dict(),
                                        "optim": optim.state_dict()}, True),
                           ("legacy.pt", {"w": torch.arange(6.0).reshape(2, 3)}, False),
                           ("half.pt", {"h": torch.ones(4, dtype=torch.float16),
                                        "b": torch.tensor([True, False])}, True)]:
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=new)
        out[name] = buf.getvalue()
    return out


def distcps():
    """PyTorch DCP data files: torch.save archives back to back (tests/e2e/dcp_writer.py's
    layout), one with a raw byte item between them, one cut inside its second archive."""
    import torch
    items = []
    for obj in (100, torch.arange(12.0).reshape(3, 4), {"m": torch.ones(5), "k": 2}):
        buf = io.BytesIO()
        torch.save(obj, buf)
        items.append(buf.getvalue())
    whole = b"".join(items)
    return {"items.distcp": whole,
            "raw_item.distcp": items[0] + b"\x00raw planner bytes" + items[1],
            "cut.distcp": whole[:len(items[0]) + len(items[1]) // 2]}


def npzs():
    out = {}
    for name, save in [("plain.npz", np.savez), ("compressed.npz", np.savez_compressed)]:
        buf = io.BytesIO()
        save(buf, w=np.arange(6, dtype=np.float32).reshape(2, 3), step=np.array(7))
        out[name] = buf.getvalue()
    return out


def gguf_string(s):
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf():
    kv = [("general.architecture", 8, gguf_string("llama")),
          ("general.alignment", 4, struct.pack("<I", 32)),
          ("llama.context_length", 4, struct.pack("<I", 2048)),
          ("general.file_type", 5, struct.pack("<i", 1)),
          ("f", 6, struct.pack("<f", 0.5)), ("flag", 7, b"\x01"),
          ("u64", 10, struct.pack("<Q", 2**40)), ("f64", 12, struct.pack("<d", -1.25)),
          ("tokens", 9, struct.pack("<IQ", 8, 2) + gguf_string("a") + gguf_string("bc")),
          ("scores", 9, struct.pack("<IQ", 6, 3) + struct.pack("<3f", 1, 2, 3))]
    w = np.arange(8, dtype=np.float32).reshape(2, 4)
    h = np.linspace(0, 1, 6).astype(np.float16)
    tensors = [("w", w, 0), ("h", h, 1)]
    out = b"GGUF" + struct.pack("<Iqq", 3, len(tensors), len(kv))
    for key, kind, value in kv:
        out += gguf_string(key) + struct.pack("<I", kind) + value
    offset, data = 0, b""
    for name, array, ggml_type in tensors:
        out += gguf_string(name) + struct.pack("<I", array.ndim)
        out += b"".join(struct.pack("<Q", n) for n in reversed(array.shape))
        out += struct.pack("<IQ", ggml_type, offset)
        data += array.tobytes() + b"\0" * (-len(array.tobytes()) % 32)
        offset = len(data)
    return {"model.gguf": out + b"\0" * (-len(out) % 32) + data}


def wire():
    def packets(*messages):
        return b"\0".join(m if isinstance(m, bytes) else json.dumps(m).encode()
                          for m in messages)
    hello = {"t": "hello", "pid": 42, "program": "python3", "host": "h", "job": "j",
             "rank": 1, "sample": 0.5, "keys": ["epoch", "model.*"]}
    data = {"t": "data", "id": 1, "bytes": 4096, "writes": 3, "format": "pickle",
            "values": {"epoch": 3, "lr": 0.001, "x": "nan"},
            "tensors": [{"name": "w", "dtype": "float32", "shape": [2, 2], "min": 0,
                         "max": 1, "mean": 0.5, "std": 0.5, "nan": 0, "inf": 0,
                         "sampled": 1.0, "head": [0, 1, 0, 1]}],
            "errors": ["pickle: truncated"]}
    return {
        "session": packets(hello, {"t": "open", "id": 1, "path": "a.pt", "time_us": 1},
                           data, {"t": "close", "id": 1, "time_us": 2, "path": "b.pt",
                                  "written_as": "a.pt", "format": "pickle", "bytes": 9,
                                  "writes": 3, "seconds": 0.5, "complete": True},
                           {"t": "rename", "from": "b.pt", "to": "c.pt"}),
        "torn": packets(hello, {"t": "open", "id": 7, "path": "x.npy"}, data,
                        {"t": "data", "id": 7, "reset": True}, b"{\"t\":\"data\",\"id\":7,"),
        "two_connections": packets(hello, {"t": "open", "id": 1, "path": "p.pt"}, b"#",
                                   {"t": "close", "id": 1, "complete": False},
                                   {"t": "adopt", "from": "q.tmp", "to": "q.pt"}, b"#", data),
    }


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "corpus"
    for target, files in [("parser_pickle", pickles()), ("parser_json", jsons()),
                          ("parser_safetensors", safetensors_files()), ("parser_npy", npys()),
                          ("parser_gguf", gguf()), ("parser_torch", torches()),
                          ("parser_torch_legacy", {k: v for k, v in torches().items()
                                                   if k == "legacy.pt"}),
                          ("parser_npz", npzs()), ("parser_distcp", distcps()),
                          ("wire", wire())]:
        (root / target).mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (root / target / name).write_bytes(content)


if __name__ == "__main__":
    main()
