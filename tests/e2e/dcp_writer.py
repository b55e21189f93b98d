"""dcp_writer.py — writes a checkpoint exactly as torch >= 2.0's
torch.distributed.checkpoint.FileSystemWriter lays it out on disk (Debian's torch 1.13
cannot run DCP under Python 3.11, so this reproduces the layout; see torch's
torch/distributed/checkpoint/filesystem.py and metadata.py):

  DIR/__<rank>_0.distcp   every rank: its byte items (each a torch.save of a non-tensor
                          object, written raw) then its tensors, each written with the
                          real torch.save straight into the one stream, back to back
  DIR/.metadata           rank 0, after every rank finished: pickle.dump of Metadata
                          (state_dict_metadata, storage_data: MetadataIndex -> _StorageInfo
                          (relative_path, offset, length)) written to .metadata.tmp, then
                          renamed

The stand-in classes carry torch's module and class names, so pickle writes the same
GLOBALs torch does. Ranks stand for hosts: the WriteResults torch gathers over the network
are handed to rank 0 through small JSON files in SIDE (outside any checkpoint glob).

usage: dcp_writer.py DIR SIDE RANK WORLD [truncate|die|raw]
  truncate  this rank cuts its .distcp short after writing it (a short write)
  die       this rank kills itself (SIGKILL) in the middle of its tensors
  raw       this rank also writes a raw byte item (as a custom planner's io.BytesIO
            would be written), between its torch.save'd objects and its tensors
"""
import dataclasses
import io
import json
import os
import pickle
import signal
import sys
import time
import types
from typing import Any, Optional

import torch


def stand_in(module_name, cls):
    """Puts cls in a module object registered under torch's module name."""
    module = sys.modules.get(module_name) or types.ModuleType(module_name)
    sys.modules[module_name] = module
    cls.__module__ = module_name
    setattr(module, cls.__qualname__, cls)
    return cls


METADATA = "torch.distributed.checkpoint.metadata"
FILESYSTEM = "torch.distributed.checkpoint.filesystem"


@dataclasses.dataclass
class ChunkStorageMetadata:
    offsets: torch.Size
    sizes: torch.Size


@dataclasses.dataclass
class TensorProperties:
    dtype: torch.dtype = dataclasses.field(default_factory=torch.get_default_dtype)
    layout: torch.layout = dataclasses.field(default=torch.strided)
    requires_grad: bool = False
    memory_format: torch.memory_format = dataclasses.field(default=torch.contiguous_format)
    pin_memory: bool = False


@dataclasses.dataclass
class TensorStorageMetadata:
    properties: TensorProperties
    size: torch.Size
    chunks: list


@dataclasses.dataclass
class BytesStorageMetadata:
    pass


@dataclasses.dataclass(frozen=True)
class MetadataIndex:
    fqn: str
    offset: Optional[torch.Size] = None
    index: Optional[int] = dataclasses.field(hash=False, compare=False, default=None)


@dataclasses.dataclass
class Metadata:
    state_dict_metadata: dict
    planner_data: Any = None
    storage_data: Any = None


@dataclasses.dataclass
class _StorageInfo:
    relative_path: str
    offset: int
    length: int


for _cls in (ChunkStorageMetadata, TensorProperties, TensorStorageMetadata,
             BytesStorageMetadata, MetadataIndex, Metadata):
    stand_in(METADATA, _cls)
stand_in(FILESYSTEM, _StorageInfo)


def rank_state(rank):
    """Each rank's part of the state dict: its own layer, and rank 0 the step."""
    g = torch.Generator().manual_seed(rank)
    state = {f"layers.{rank}.weight": torch.randn(64, 32, generator=g),
             f"layers.{rank}.bias": torch.randn(64, generator=g)}
    if rank == 0:
        state["step"] = 100
    return state


RAW_ITEM = b"\x00\x01raw planner bytes, PK\x03\x04 not an archive" * 3


def write_rank(directory, side, rank, mode):
    name = f"__{rank}_0.distcp"
    state = rank_state(rank)
    if mode == "raw":
        state["extra_state"] = io.BytesIO(RAW_ITEM)
    results = []
    with open(os.path.join(directory, name), "wb") as stream:
        byte_items = [(k, v) for k, v in state.items() if not torch.is_tensor(v)]
        tensor_items = [(k, v) for k, v in state.items() if torch.is_tensor(v)]
        for i, (fqn, value) in enumerate(byte_items + tensor_items):
            offset = stream.tell()
            if torch.is_tensor(value):
                torch.save(value, stream)
            elif isinstance(value, io.BytesIO):
                stream.write(value.getbuffer())
            else:
                buffer = io.BytesIO()
                torch.save(value, buffer)
                stream.write(buffer.getbuffer())
            length = stream.tell() - offset
            results.append({"fqn": fqn, "offset": offset, "length": length,
                            "tensor": torch.is_tensor(value),
                            "size": list(value.shape) if torch.is_tensor(value) else None})
            if mode == "die" and i == len(state) // 2:
                stream.flush()
                stream.write(b"PK\x03\x04partial")
                stream.flush()
                os.kill(os.getpid(), signal.SIGKILL)
    if mode == "truncate":
        with open(os.path.join(directory, name), "r+b") as f:
            f.truncate(os.path.getsize(os.path.join(directory, name)) // 2)
    with open(os.path.join(side, f"results.{rank}.json.tmp"), "w") as f:
        json.dump({"file": name, "items": results}, f)
    os.rename(os.path.join(side, f"results.{rank}.json.tmp"),
              os.path.join(side, f"results.{rank}.json"))


def commit(directory, side, world, timeout=60):
    deadline = time.monotonic() + timeout
    paths = [os.path.join(side, f"results.{r}.json") for r in range(world)]
    while not all(os.path.exists(p) for p in paths):
        if time.monotonic() > deadline:
            return False  # a rank never finished: no commit, as torch's gather would fail
        time.sleep(0.02)
    state_dict_metadata, storage_data = {}, {}
    for p in paths:
        with open(p) as f:
            result = json.load(f)
        for item in result["items"]:
            if item["tensor"]:
                size = torch.Size(item["size"])
                offsets = torch.Size([0] * len(size))
                state_dict_metadata[item["fqn"]] = TensorStorageMetadata(
                    TensorProperties(dtype=torch.float32), size,
                    [ChunkStorageMetadata(offsets, size)])
                index = MetadataIndex(item["fqn"], offsets, 0)
            else:
                state_dict_metadata[item["fqn"]] = BytesStorageMetadata()
                index = MetadataIndex(item["fqn"])
            storage_data[index] = _StorageInfo(result["file"], item["offset"], item["length"])
    metadata = Metadata(state_dict_metadata=state_dict_metadata, storage_data=storage_data)
    tmp = os.path.join(directory, ".metadata.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(metadata, f)
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(directory, ".metadata"))
    return True


def main():
    directory, side, rank, world = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    mode = sys.argv[5] if len(sys.argv) > 5 else ""
    os.makedirs(directory, exist_ok=True)
    write_rank(directory, side, rank, mode)
    while rank == 0 and os.environ.get("GO") and not os.path.exists(os.environ["GO"]):
        time.sleep(0.02)  # the test's moment to commit (GO: a file it creates)
    if rank == 0 and not commit(directory, side, world, timeout=float(os.environ.get("WAIT", "60"))):
        sys.exit(1)


if __name__ == "__main__":
    main()
