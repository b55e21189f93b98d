"""tensor_files.py — safetensors and GGUF files built byte by byte, with their expected records.

The builders follow the published layouts, not ckmon's parsers:
- safetensors (https://github.com/huggingface/safetensors, "Format"): u64 little-endian N,
  N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
  {str: str}} padded with spaces to a multiple of 8, then the data; offsets are relative
  to the data's start.
- GGUF v3 (https://github.com/ggerganov/ggml/blob/master/docs/gguf.md): "GGUF", u32
  version, u64 tensor count, u64 key-value count; key-values (u64-length string key, u32
  type, value; arrays as u32 item type, u64 count, items); tensor infos (name, u32
  n_dims, u64 ne[n_dims] with ne[0] fastest, u32 ggml type, u64 offset); zero padding to
  general.alignment (default 32); the data, each tensor at an aligned offset.

Ground truth comes from NumPy: each tensor is described by the float64 (or integer)
array of its values, and expected.tensor() computes the record's statistics from it.
Types NumPy lacks (bfloat16, float8) are decoded here from their bit layouts.
"""
import json
import struct

import numpy as np

from expected import scalar, tensor

RNG = np.random.default_rng(20261129)
BIG_ELEMENTS = 100_000  # 400 KB of float32: several 64 KiB sampling blocks


# ---- values NumPy has no dtype for ------------------------------------------------------

def bfloat16(values):
    """(raw bytes, float64 values) of float32 values cut to bfloat16 (their top halves)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32) >> 16
    top = bits.astype(np.uint16)
    exact = (top.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return top.tobytes(), exact


def e4m3fn_value(byte):
    """float8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no Inf; S.1111.111 is NaN."""
    sign = -1.0 if byte & 0x80 else 1.0
    exponent, mantissa = (byte >> 3) & 0xF, byte & 0x7
    if exponent == 0xF and mantissa == 0x7:
        return float("nan")
    if exponent == 0:
        return sign * mantissa / 8 * 2.0 ** -6
    return sign * (1 + mantissa / 8) * 2.0 ** (exponent - 7)


def e5m2_value(byte):
    """float8 e5m2 is the top byte of an IEEE half."""
    return float(np.array([byte << 8], dtype=np.uint16).view(np.float16)[0])


# ---- safetensors ------------------------------------------------------------------------

class Entry:
    """One tensor: its name, the format's type tag, shape, raw bytes, and the values the
    record should describe (NumPy array) with the record's dtype name."""

    def __init__(self, name, tag, shape, raw, values, dtype):
        self.name, self.tag, self.shape, self.raw = name, tag, list(shape), raw
        self.values, self.dtype = values, dtype

    def expected(self):
        if self.values is None:  # a type without statistics: dtype and shape only
            return None
        return tensor(self.name, np.asarray(self.values).reshape(self.shape), self.dtype)


def numpy_entry(name, tag, array):
    array = np.ascontiguousarray(array)
    values = array.astype(np.uint8) if array.dtype == np.bool_ else array
    return Entry(name, tag, array.shape, array.tobytes(), values, str(array.dtype))


def safetensors_entries():
    """Every dtype the contract names, empty and 0-d tensors, NaN/Inf, and one large tensor."""
    f32 = RNG.normal(0, 0.05, (16, 24)).astype(np.float32)
    bad = np.array([1.5, np.nan, -np.inf, 2.5, np.inf, -0.25, np.nan, 3.0, 4.0], dtype=np.float32)
    bf_raw, bf_values = bfloat16(RNG.normal(1, 2, 50))
    f8 = RNG.integers(0, 256, 40, dtype=np.uint8)
    f8 = f8[(f8 & 0x7F) != 0x7F]  # e4m3 NaNs are tested by the statistics' own tests
    entries = [
        numpy_entry("model.fc.weight", "F32", f32),
        numpy_entry("model.fc.bias", "F64", RNG.normal(3, 1, 24)),
        numpy_entry("half", "F16", RNG.normal(0, 10, (4, 5)).astype(np.float16)),
        Entry("brain", "BF16", [5, 10], bf_raw, bf_values, "bfloat16"),
        numpy_entry("step_ids", "I64", RNG.integers(-2**40, 2**40, 30)),
        numpy_entry("i32", "I32", RNG.integers(-2**31, 2**31 - 1, 12, dtype=np.int32)),
        numpy_entry("i16", "I16", RNG.integers(-2**15, 2**15 - 1, 12, dtype=np.int16)),
        numpy_entry("i8", "I8", RNG.integers(-128, 127, 12, dtype=np.int8)),
        numpy_entry("u8", "U8", RNG.integers(0, 255, 12, dtype=np.uint8)),
        numpy_entry("mask", "BOOL", RNG.random(13) > 0.5),
        Entry("f8_e4m3", "F8_E4M3", [len(f8)], f8.tobytes(),
              np.array([e4m3fn_value(int(b)) for b in f8]), "float8_e4m3fn"),
        Entry("f8_e5m2", "F8_E5M2", [40], bytes(range(40, 80)),
              np.array([e5m2_value(b) for b in range(40, 80)]), "float8_e5m2"),
        numpy_entry("nonfinite", "F32", bad),
        numpy_entry("empty", "F32", np.zeros((0,), dtype=np.float32)),
        numpy_entry("empty2d", "F16", np.zeros((3, 0), dtype=np.float16)),
        numpy_entry("loss", "F32", np.array(0.125, dtype=np.float32)),
        numpy_entry("big", "F32", RNG.normal(5, 3, BIG_ELEMENTS).astype(np.float32)),
    ]
    return entries


SAFETENSORS_METADATA = {"format": "pt", "epoch": "7", "lr": "0.0003", "note": "1e5x",
                        "global_step": "-12"}


def safetensors_bytes(entries, metadata=SAFETENSORS_METADATA):
    """The file, with the data section in reverse header order (writers choose)."""
    header, data, offset = {}, b"", 0
    for e in reversed(entries):
        header[e.name] = {"dtype": e.tag, "shape": e.shape,
                          "data_offsets": [offset, offset + len(e.raw)]}
        data += e.raw
        offset += len(e.raw)
    ordered = {"__metadata__": metadata} if metadata is not None else {}
    ordered.update({e.name: header[e.name] for e in entries})  # header in entry order
    text = json.dumps(ordered).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def metadata_value(text):
    """The contract: __metadata__ strings that are numbers become numbers."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def safetensors_expected(entries, metadata=SAFETENSORS_METADATA):
    """(values, tensors by name) the record should hold."""
    values = {f"__metadata__.{key}": metadata_value(text) for key, text in (metadata or {}).items()}
    tensors = {e.name: e.expected() for e in entries}
    for e in entries:
        if e.shape == []:
            values[e.name] = scalar(np.asarray(e.values).reshape(()).item())
    return values, tensors


# ---- GGUF -------------------------------------------------------------------------------

GGUF_TYPES = {"u8": (0, "<B"), "i8": (1, "<b"), "u16": (2, "<H"), "i16": (3, "<h"),
              "u32": (4, "<I"), "i32": (5, "<i"), "f32": (6, "<f"), "bool": (7, "<?"),
              "string": (8, None), "array": (9, None), "u64": (10, "<Q"), "i64": (11, "<q"),
              "f64": (12, "<d")}
GGML_F32, GGML_F16, GGML_Q8_0, GGML_F64, GGML_I32, GGML_BF16 = 0, 1, 8, 28, 26, 30


def gguf_string(text):
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_array(item_kind, items):
    """An array value: item type, count, items; an item of an array of arrays is itself
    (item_kind, items)."""
    out = struct.pack("<IQ", GGUF_TYPES[item_kind][0], len(items))
    return out + b"".join(gguf_value(item_kind, v) for v in items)


def gguf_value(kind, value):
    if kind == "string":
        return gguf_string(value)
    if kind == "array":
        return gguf_array(*value)
    return struct.pack(GGUF_TYPES[kind][1], value)


def gguf_kv(key, kind, value, item_kind=None):
    out = gguf_string(key) + struct.pack("<I", GGUF_TYPES[kind][0])
    if kind != "array":
        return out + gguf_value(kind, value)
    return out + gguf_array(item_kind, value)


class GgufTensor:
    def __init__(self, name, ggml_type, array=None, ne=None, raw=None, dtype=None, values=None):
        """A tensor from a C-order NumPy array (shape = reversed ne), or raw bytes with ne."""
        self.name, self.ggml_type = name, ggml_type
        if array is not None:
            self.ne = list(reversed(array.shape))
            self.raw = np.ascontiguousarray(array).tobytes()
            self.shape = list(array.shape)
            self.values, self.dtype = array, dtype or str(array.dtype)
        else:
            self.ne, self.raw, self.shape = ne, raw, list(reversed(ne))
            self.values, self.dtype = values, dtype

    def expected(self):
        if self.values is None:
            return None
        return tensor(self.name, np.asarray(self.values).reshape(self.shape), self.dtype)


def gguf_kvs(alignment):
    """(kv list for the builder, expected values)."""
    tokens = [f"tok{i}" for i in range(10)] + [""]
    scores = [float(np.float32(x)) for x in RNG.normal(0, 1, 20)]
    kvs = [
        ("general.architecture", "string", "llama", None),
        ("general.name", "string", "ckmon-test", None),
        ("general.quantization_version", "u32", 2, None),
        ("test.nested", "array", [("i32", [1, 2, 3]), ("string", ["a", "", "bc"]),
                                  ("array", [("f64", [1.5] * 20), ("u8", [])]),
                                  ("bool", [True] * 12)], "array"),  # stepped over
        ("test.u8", "u8", 200, None), ("test.i8", "i8", -100, None),
        ("test.u16", "u16", 60000, None), ("test.i16", "i16", -30000, None),
        ("test.i32", "i32", -2_000_000_000, None), ("test.u64", "u64", 2**60 + 1, None),
        ("test.i64", "i64", -(2**50), None), ("test.f32", "f32", 0.1, None),
        ("test.f64", "f64", 1e-300, None), ("test.bool", "bool", True, None),
        ("test.empty", "string", "", None),
        ("llama.context_length", "u32", 4096, None),
        ("test.short", "array", [3, -4, 5], "i32"),
        ("test.flags", "array", [True, False], "bool"),
        ("tokenizer.ggml.tokens", "array", tokens, "string"),
        ("tokenizer.ggml.scores", "array", scores, "f32"),
    ]
    if alignment is not None:
        kvs.insert(1, ("general.alignment", "u32", alignment, None))
    values, tensors = {}, {}
    for key, kind, value, item_kind in kvs:
        if kind == "f32":
            values[key] = float(np.float32(value))
        elif kind != "array":
            values[key] = value
        elif item_kind == "array":
            pass  # arrays of arrays are not reported
        elif item_kind == "string":
            values.update({f"{key}.{i}": v for i, v in enumerate(value[:8])})
        elif len(value) <= 8:
            values.update({f"{key}.{i}": v for i, v in enumerate(value)})
        else:
            tensors[key] = tensor(key, np.array(value, dtype=np.float32), "float32")
    return kvs, values, tensors


def gguf_tensors():
    q8 = bytearray(RNG.integers(0, 256, 2 * 2 * 34, dtype=np.uint8).tobytes())
    bf_raw, bf_values = bfloat16(RNG.normal(0, 1, 64))
    return [
        GgufTensor("token_embd.weight", GGML_F32, RNG.normal(0, 0.02, (12, 32)).astype(np.float32)),
        GgufTensor("blk.0.attn_norm.weight", GGML_F16, RNG.normal(1, 0.1, 32).astype(np.float16)),
        GgufTensor("blk.0.ffn.weight", GGML_BF16, ne=[16, 4], raw=bf_raw, dtype="bfloat16",
                   values=bf_values),
        GgufTensor("blk.0.q8", GGML_Q8_0, ne=[64, 2], raw=bytes(q8), dtype="q8_0"),
        GgufTensor("rope.freqs", GGML_F64, RNG.normal(0, 1, 10)),
        GgufTensor("positions", GGML_I32, np.arange(-5, 20, dtype=np.int32)),
        GgufTensor("output.weight", GGML_F32,
                   RNG.normal(-2, 4, (100, BIG_ELEMENTS // 100)).astype(np.float32)),
    ]


def gguf_bytes(kvs, tensors, alignment):
    """The file: tensor data in reverse info order, each at an aligned offset."""
    align = alignment or 32
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(gguf_kv(*kv) for kv in kvs)
    offsets, data = {}, b""
    for t in reversed(tensors):
        data += b"\0" * (-len(data) % align)
        offsets[t.name] = len(data)
        data += t.raw
    for t in tensors:
        head += gguf_string(t.name) + struct.pack("<I", len(t.ne))
        head += b"".join(struct.pack("<Q", n) for n in t.ne)
        head += struct.pack("<IQ", t.ggml_type, offsets[t.name])
    head += b"\0" * (-len(head) % align)
    return head + data


def gguf_expected(alignment):
    """(file bytes, expected values, expected tensors by name; None: no statistics)."""
    kvs, values, tensors = gguf_kvs(alignment)
    described = gguf_tensors()
    tensors.update({t.name: t.expected() for t in described})
    return gguf_bytes(kvs, described, alignment), values, tensors, described
