"""bench.py — `make bench`: what ckmon costs and how it compares, measured side by side.

Every comparison runs its two sides alternately in one session (A, B, A, B, ...) so that
both see the same machine state, and reports the median of the per-pair ratios A/B with
their range. Files live in /dev/shm so that storage speed does not hide the agent's cost.
The table is printed and written into docs/performance.md between the bench markers,
with the machine it ran on. No result is judged here beyond "target met or not".

Usage: bench.py [--quick]   (--quick: fewer pairs and smaller files, for a smoke run)
       bench.py many_files | digest   (one group of rows, printed only)
       bench.py issue14   (the rows of issue 14 — saves at the defaults, the cost per tensor
                           at 10^4 and 10^5 tensors — printed only)
       bench.py many_tensors [COUNT ...]   (the cost per tensor alone, at 10^4 and 10^5
                           tensors or the counts given, printed only)
"""
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from ckmon_helpers import AGENT, BUILD, CKMON, PYTHON, Collector, clean_env  # noqa: E402
from model_states import MODELS  # noqa: E402

BIN = BUILD / "bench"
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

QUICK = "--quick" in sys.argv
MIB = 1 << 20
CHECKPOINT_BYTES = (32 if QUICK else 256) * MIB
PAIRS = 2 if QUICK else 5
SMALL_WRITES = 10**6
STRACE_WRITES = 3 * 10**4  # strace makes each write cost ~100 µs here
WRITERS, FILES_PER_WRITER = 16, (20 if QUICK else 200)

rows = []  # (what, ratio text, target text, verdict, detail)
notes = []


def timed(cmd, env=None, stdout=subprocess.PIPE):
    """Runs cmd; returns (wall seconds, stdout text)."""
    start = time.perf_counter()
    p = subprocess.run([str(c) for c in cmd], env=env or clean_env(), stdout=stdout,
                       stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"bench: {' '.join(map(str, cmd))} failed ({p.returncode}): {p.stderr}")
    return elapsed, p.stdout or ""


def side_by_side(a, b, pairs=PAIRS):
    """Calls a() and b() alternately (each returns seconds); the A/B ratios' median and
    range, each side's median, and the ratio of the two sides' fastest runs."""
    ta, tb = [], []
    for _ in range(pairs):
        ta.append(a())
        tb.append(b())
    ratios = [x / y for x, y in zip(ta, tb)]
    return (statistics.median(ratios), min(ratios), max(ratios), statistics.median(ta),
            statistics.median(tb), min(ta) / min(tb))


def add_row(what, result, target, detail=""):
    ratio, lo, hi = result[:3]
    verdict = "—" if target is None else ("met" if ratio <= target else "**missed**")
    target_text = "—" if target is None else f"≤ {target:g}"
    rows.append((what, f"{ratio:.3f} ({lo:.3f}–{hi:.3f})", target_text, verdict, detail))
    print(f"{what}: {ratio:.3f} ({lo:.3f}-{hi:.3f}) target {target_text} {verdict} {detail}",
          flush=True)


# ---- files -------------------------------------------------------------------------------

SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}


def state_arrays(total_bytes, dtype, seed=1):
    """A state dict's worth of tensors (a few large, some small), as raw little-endian
    arrays; bfloat16 is float32's top half."""
    size = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    rng = np.random.default_rng(seed)
    big = total_bytes // 16 // size
    tensors = {}
    for i in range(16):
        values = (rng.standard_normal(big, dtype=np.float32) * 0.02)
        if dtype == "bfloat16":
            raw = (values.view(np.uint32) >> 16).astype(np.uint16)
        else:
            raw = values.astype(dtype)
        tensors[f"layers.{i}.weight"] = raw
    return tensors


def write_safetensors(path, tensors, dtype):
    header, offset = {}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": [a.size],
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header)
    text += " " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode())
        for a in tensors.values():
            f.write(a.tobytes())


def preloaded(collector, **extra):
    """The environment of a program monitored by collector."""
    return clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=collector.socket, **extra)


# ---- the benchmarks -----------------------------------------------------------------------

# A save script defines save(path); SAVE_DRIVER saves to argv[3] argv[2] times and
# prints the fastest save's wall time and the smallest CPU time of the process over one
# save: on a shared machine the minimum is the stable estimate. fastest_save reads them.
SAVE_DRIVER = """
import sys, time
walls, cpus = [], []
for _ in range(int(sys.argv[2])):
    start, cpu = time.perf_counter(), time.process_time()
    save(sys.argv[3])
    walls.append(time.perf_counter() - start)
    cpus.append(time.process_time() - cpu)
print(min(walls), min(cpus))
"""


def fastest_save(output):
    """(wall seconds, CPU seconds) from what SAVE_DRIVER printed."""
    wall, cpu = output.splitlines()[-1].split()
    return float(wall), float(cpu)

TORCH_SAVE = """
import sys, torch
torch.manual_seed(0)
count = int(sys.argv[1]) // 16 // 4
state = {f"layers.{i}.weight": torch.randn(count) * 0.02 for i in range(16)}
state["step"] = torch.tensor(1000)
def save(path):
    torch.save(state, path)
""" + SAVE_DRIVER

# save(path) writes a safetensors file of the float32 `arrays` under `names`, array by
# array, as a Python program using only the standard library and numpy would.
SAFETENSORS_WRITER = """
header, offset = {}, 0
for name, a in zip(names, arrays):
    header[name] = {"dtype": "F32", "shape": [a.size], "data_offsets": [offset, offset + a.nbytes]}
    offset += a.nbytes
text = json.dumps(header)
text += " " * (-len(text) % 8)
def save(path):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode())
        for a in arrays:
            f.write(a.data)
""" + SAVE_DRIVER

SAFETENSORS_SAVE = """
import json, struct, sys
import numpy as np
rng = np.random.default_rng(0)
count = int(sys.argv[1]) // 16 // 4
arrays = [(rng.standard_normal(count, dtype=np.float32) * 0.02) for _ in range(16)]
names = [f"layers.{i}.weight" for i in range(16)]
""" + SAFETENSORS_WRITER

SAVES_PER_PROCESS = 6
# Processes differ more than saves within one (the fastest save of one process was
# 189-237 ms across processes of the same script), so the save rows take more pairs.
SAVE_PAIRS = 2 if QUICK else 9


def saves_side_by_side(work, collector, script_text, path, saves=SAVES_PER_PROCESS,
                       pairs=SAVE_PAIRS):
    """A save script run monitored and not, alternately, each process saving `saves`
    times."""
    script = work / f"{path.stem}_{path.suffix[1:]}_save.py"
    script.write_text(script_text)

    def fastest(env):
        out = timed([PYTHON, script, CHECKPOINT_BYTES, saves, path], env)[1]
        return fastest_save(out)[0]

    return side_by_side(lambda: fastest(preloaded(collector)), lambda: fastest(clean_env()),
                        pairs=pairs)


def agent_share(work, collector, script_text, path, saves=2):
    """The share of a monitored save process's CPU samples (perf, 999 Hz) that fall in
    libckmon.so, statistics included: what the wall-clock ratios, which scatter on a
    shared machine, should agree with."""
    if not shutil.which("perf"):
        return "no perf"
    script = work / f"{path.stem}_{path.suffix[1:]}_save.py"
    script.write_text(script_text)
    data = work / "perf.data"
    timed(["perf", "record", "-q", "-F", "999", "-o", data, "--", PYTHON, script,
           CHECKPOINT_BYTES, saves, path], preloaded(collector))
    report = timed(["perf", "report", "-i", data, "--sort", "dso", "--stdio"])[1]
    share = sum(float(m.group(1)) for m in re.finditer(r"([\d.]+)%\s+libckmon\.so", report))
    data.unlink()
    return f"libckmon.so {share:.1f}% of the monitored process's CPU samples (perf)"


def bench_torch_save(work, collector):
    path = work / "model.pt"
    result = saves_side_by_side(work, collector, TORCH_SAVE, path)
    add_row(f"torch.save {CHECKPOINT_BYTES // MIB} MiB to tmpfs: monitored / unmonitored",
            result, 1.03, f"{result[4] * 1000:.0f} ms unmonitored; fastest process against "
            f"fastest: {result[5]:.3f}; {SAVE_PAIRS} pairs; "
            f"{agent_share(work, collector, TORCH_SAVE, path)}")


# --digest: saves in a row to distinct files, timed inside the process from the first
# save to the last close. The collector hashes each file one second after its close (the
# rename window), so the hashing of the first files runs while the later ones are saved.
DIGEST_SAVES = 6
DIGEST_SAVE = """
import sys, time, torch
torch.manual_seed(0)
count = int(sys.argv[1]) // 16 // 4
state = {f"layers.{i}.weight": torch.randn(count) * 0.02 for i in range(16)}
start, cpu = time.perf_counter(), time.process_time()
for i in range(int(sys.argv[2])):
    torch.save(state, f"{sys.argv[3]}.{i}.pt")
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def checkpoint_lines(log):
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["event"] == "checkpoint"]


def bench_digest(work, collector):
    """The monitored program's time with --digest against without (both monitored), and
    how fast the collector hashes (digest_speed: its own read-and-hash loop)."""
    (work / "digest").mkdir()
    hashing = Collector(work / "digest", options=["--digest"])
    script = work / "digest_save.py"
    script.write_text(DIGEST_SAVE)
    digested, cpu = [], {True: [], False: []}  # the program's CPU seconds, by --digest
    # The collector's bytes read (rchar: the worker's reads of the files, for the digest and
    # the zip CRC check) and CPU seconds, per save, by --digest.
    collector_read, collector_cpu = {True: [], False: []}, {True: [], False: []}

    def saves(c):
        before = len(checkpoint_lines(c.log))
        read_before, cpu_before = proc_rchar(c.process.pid), proc_cpu_seconds(c.process.pid)
        out = timed([PYTHON, script, CHECKPOINT_BYTES, DIGEST_SAVES, work / "digest_model"],
                    preloaded(c))[1]
        deadline = time.monotonic() + 120  # every record written (and hashed) before the next run
        while len(checkpoint_lines(c.log)) < before + DIGEST_SAVES and time.monotonic() < deadline:
            time.sleep(0.1)
        collector_read[c is hashing].append(
            (proc_rchar(c.process.pid) - read_before) / DIGEST_SAVES)
        collector_cpu[c is hashing].append(
            (proc_cpu_seconds(c.process.pid) - cpu_before) / DIGEST_SAVES)
        if c is hashing:
            digested.extend(r for r in checkpoint_lines(c.log)[before:] if "digest" in r)
        wall, cpu_seconds = map(float, out.split()[-2:])
        cpu[c is hashing].append(cpu_seconds)
        return wall

    try:
        result = side_by_side(lambda: saves(hashing), lambda: saves(collector), pairs=SAVE_PAIRS)
        speed = json.loads(timed([BIN / "digest_speed", work / "digest_model.0.pt", 5])[1])
    finally:
        hashing.stop()
        for f in work.glob("digest_model.*.pt"):
            f.unlink()
    add_row(f"{DIGEST_SAVES} × torch.save {CHECKPOINT_BYTES // MIB} MiB to tmpfs, the "
            "program's time: collector with --digest / without", result, 1.03,
            f"{result[4] * 1000:.0f} ms without; {SAVE_PAIRS} pairs; the program's CPU time "
            f"with / without: {statistics.median(a / b for a, b in zip(cpu[True], cpu[False])):.3f}; "
            f"{len(digested)} of {SAVE_PAIRS * DIGEST_SAVES} records with a digest")
    rows.append(("--digest: the collector's hashing of a file in the page cache (digest_speed)",
                 f"{speed['gbps']:.2f} GB/s", "—", "—",
                 f"{speed['bytes'] // MIB} MiB in {speed['seconds'] * 1000:.0f} ms, best of 5; "
                 "libxxhash's XXH3 with its x86 dispatch"))
    print(f"digest speed: {speed}", flush=True)
    reads = {k: statistics.median(v) / CHECKPOINT_BYTES for k, v in collector_read.items()}
    seconds = {k: statistics.median(v) for k, v in collector_cpu.items()}
    what = (f"--digest: the collector's reads per {CHECKPOINT_BYTES // MIB} MiB torch.save "
            "(rchar, in file sizes) and CPU, with --digest / without (the zip CRC check alone)")
    detail = (f"CPU per save {seconds[True] * 1000:.0f} ms / {seconds[False] * 1000:.0f} ms; "
              f"medians of {SAVE_PAIRS} runs of {DIGEST_SAVES} saves")
    rows.append((what, f"{reads[True]:.2f} / {reads[False]:.2f}", "—", "—", detail))
    print(f"{what}: {reads[True]:.2f} / {reads[False]:.2f}; {detail}", flush=True)


def bench_safetensors_save(work, collector):
    """The plan at work on a file written by plain writes; `sampled` shows what was read."""
    path = work / "model.safetensors"
    result = saves_side_by_side(work, collector, SAFETENSORS_SAVE, path)
    time.sleep(1.5)  # the collector holds records for the 1 s rename window
    records = [r for r in map(json.loads, collector.log.read_text().splitlines())
               if r["path"] == str(path) and r["event"] == "checkpoint"]
    sampled = [t["sampled"] for r in records for t in r["tensors"]]
    add_row(f"safetensors {CHECKPOINT_BYTES // MIB} MiB written from Python to tmpfs: "
            "monitored (default sample) / unmonitored", result, 1.03,
            f"{result[4] * 1000:.0f} ms unmonitored; fastest process against fastest: "
            f"{result[5]:.3f}; {SAVE_PAIRS} pairs; sampled per tensor "
            f"{min(sampled):.3f}–{max(sampled):.3f} over {len(records)} records")


MODEL_SAVE = MODELS + """
state = {state}
def save(path):
    torch.save(state, path)
""" + SAVE_DRIVER

MODEL_SAVES = [  # (what, the state's expression, saves per process, pairs)
    ("resnet18 + Adam checkpoint (140 MB, 308 tensors)", "resnet_checkpoint()", 6, SAVE_PAIRS),
    ("GPT-2-small-shaped state dict, bfloat16 (249 MB, 161 tensors)",
     "gpt2_state_dict(torch.bfloat16)", 6, SAVE_PAIRS),
    ("20,000 tensors of 256 float32 (20 MB)", "many_tensors(20000)", 6, SAVE_PAIRS),
]


def bench_model_saves(work, collector):
    """The saves of issue 14 at the default settings, each with the agent's profile share."""
    path = work / "model_state.pt"
    for what, state, saves, pairs in MODEL_SAVES:
        text = MODEL_SAVE.replace("{state}", state)
        result = saves_side_by_side(work, collector, text, path, saves, pairs)
        add_row(f"torch.save of a {what} to tmpfs: monitored / unmonitored", result, 1.03,
                f"{result[4] * 1000:.0f} ms unmonitored; fastest process against fastest: "
                f"{result[5]:.3f}; {pairs} pairs; {agent_share(work, collector, text, path)}")


def proc_rchar(pid):
    """Bytes the process has read by any read call (/proc/PID/io), page cache hits included."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def proc_cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_minor_faults(pid):
    """Page faults the process has taken that needed no read (/proc/PID/stat minflt): a
    count the host's load does not move, unlike CPU time."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def proc_peak_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


MANY_SAFETENSORS = """
import json, struct, sys
import numpy as np
rng = np.random.default_rng(3)
arrays = [rng.standard_normal(256, dtype=np.float32) for _ in range(COUNT)]
names = [f"layer{i}.weight" for i in range(COUNT)]
""" + SAFETENSORS_WRITER  # COUNT replaced by the number of tensors


def bench_many_tensors(work, kind, count=None):
    """The fixed cost per tensor: a 100,000-tensor save (torch.save, or a safetensors file
    written array by array) monitored and not, the difference per tensor, and what the
    collector spent on those records (CPU time, peak memory), with a collector of its own."""
    count, saves, pairs = (count or 20_000, 1, 2) if QUICK else (count or 100_000, 2, 5)
    out = work / f"many_{kind}_{count}"
    out.mkdir()
    collector = Collector(out)
    try:
        if kind == "torch":
            path = out / "many.pt"
            text = MODEL_SAVE.replace("{state}", f"many_tensors({count})")
        else:
            path = out / "many.safetensors"
            text = MANY_SAFETENSORS.replace("COUNT", str(count))
        script = out / "many_save.py"
        script.write_text(text)
        cpu_times = {True: [], False: []}

        def fastest(monitored):
            env = preloaded(collector) if monitored else clean_env()
            wall, cpu = fastest_save(timed([PYTHON, script, count, saves, path], env)[1])
            cpu_times[monitored].append(cpu)
            return wall

        collector_before = proc_cpu_seconds(collector.process.pid)
        faults_before = proc_minor_faults(collector.process.pid)
        result = side_by_side(lambda: fastest(True), lambda: fastest(False), pairs=pairs)
        time.sleep(1.5)  # the rename window
        collector_cpu = (proc_cpu_seconds(collector.process.pid) - collector_before) / (pairs * saves)
        faults = (proc_minor_faults(collector.process.pid) - faults_before) / (pairs * saves)
        peak = proc_peak_kib(collector.process.pid)
        records = [r for r in map(json.loads, collector.log.read_text().splitlines())
                   if r["event"] == "checkpoint"]
        wall_per_tensor = (result[3] - result[4]) / count * 1e6
        cpu_per_tensor = (statistics.median(cpu_times[True]) -
                          statistics.median(cpu_times[False])) / count * 1e6
        share = agent_share(out, collector, text, path, saves=1)
        errors = records[-1].get("errors", []) if records else []
        add_row(f"{'torch.save' if kind == 'torch' else 'safetensors written'} of {count:,} "
                "tensors of 256 float32: monitored / unmonitored",
                result, 1.03,
                f"{result[4]:.2f} s unmonitored; the agent's fixed cost per tensor (target ≤ 2 µs): "
                f"{cpu_per_tensor:.2f} µs of the saving process's CPU time, {wall_per_tensor:.2f} µs "
                f"of its wall time; collector {collector_cpu:.2f} s CPU per checkpoint "
                f"({collector_cpu / count * 1e6:.2f} µs per tensor, {faults:,.0f} page faults), "
                f"peak RSS {peak / 1024:.0f} MiB; "
                f"{len(records)} records of {len(records[-1]['tensors']) if records else 0} "
                f"tensors{'; ' + errors[0] if errors else ''}; {share}")
    finally:
        collector.stop()


def bench_small_writes(work):
    plain = work / "plain.dat"
    for target, label in ((Path("/dev/null"), "/dev/null"), (plain, "a file no glob matches")):
        rounds = []

        def loop(env):
            out = json.loads(timed([BIN / "small_writes", target, SMALL_WRITES], env)[1])
            rounds.append(out["rounds"])
            return out["ns_per_call"] / 1e9

        env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=work / "none.sock")
        result = side_by_side(lambda: loop(env), lambda: loop(clean_env()), pairs=PAIRS)
        add_row(f"10^6 one-byte writes to {label}: monitored / unmonitored", result, 1.03,
                f"{result[3] * 1e9:.1f} vs {result[4] * 1e9:.1f} ns/call (fastest of {rounds[0]} "
                "rounds)")


MANY_FILES = 10**4


def bench_many_files(work):
    """Creating and writing many files no glob matches: each open marks its descriptor
    undecided and the first write looks at the bytes (docs/agent.md)."""
    folder = work / "many"
    folder.mkdir(exist_ok=True)

    def loop(env):
        out = json.loads(timed([BIN / "many_files", folder, MANY_FILES], env)[1])
        return out["ns_per_file"] / 1e9

    env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=work / "none.sock")
    result = side_by_side(lambda: loop(env), lambda: loop(clean_env()), pairs=PAIRS)
    add_row("10^4 small files created and written, no glob matching: monitored / unmonitored",
            result, 1.03, f"{result[3] * 1e9:.0f} vs {result[4] * 1e9:.0f} ns/file (fastest of "
            "5 rounds)")


IMPORT_TORCH_PAIRS = 4 if QUICK else 15


def bench_import_torch(work, collector):
    """`python3 -c 'import torch'`: about 1,150 opens for reading, none of a checkpoint
    (the *.pth files Python reads at start are not loads), so each is rejected by the
    quick path test of docs/agent.md ("Loads"). Single runs, alternating, so that both
    sides see the same machine; the median of the per-pair ratios of wall time, and in
    the detail that of CPU time (user + system), which other processes disturb less."""
    command = [PYTHON, "-c", "import torch"]
    monitored = preloaded(collector)
    cpu = {True: [], False: []}

    def run(with_agent):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = timed(command, monitored if with_agent else clean_env())[0]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[with_agent].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return wall

    timed(command, monitored)  # the page cache warm for both sides
    result = side_by_side(lambda: run(True), lambda: run(False), pairs=IMPORT_TORCH_PAIRS)
    cpu_ratio = statistics.median(a / b for a, b in zip(cpu[True], cpu[False]))
    add_row("`python3 -c 'import torch'`: monitored / unmonitored", result, 1.02,
            f"{result[3] * 1000:.0f} vs {result[4] * 1000:.0f} ms (medians of "
            f"{IMPORT_TORCH_PAIRS} alternating runs each); fastest / fastest {result[5]:.3f}; "
            f"CPU time: median ratio {cpu_ratio:.3f}, {statistics.median(cpu[True]) * 1000:.0f} "
            f"vs {statistics.median(cpu[False]) * 1000:.0f} ms")


def callgrind_total(work, preload, command, functions):
    """Instructions of command under callgrind: the program's total, and those counted in
    libckmon's own functions named by the regular expression functions."""
    out = work / "callgrind.out"
    env = clean_env(LD_PRELOAD=AGENT, CKMON_SOCKET=work / "none.sock") if preload else clean_env()
    timed(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command], env)
    text = timed(["callgrind_annotate", "--inclusive=no", out])[1]
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))
    wrapper = 0
    for line in text.splitlines():
        m = re.match(rf"\s*([\d,]+) \(.*\)\s+\S*:({functions}) \[.*libckmon\.so\]", line)
        if m:
            wrapper += int(m.group(1).replace(",", ""))
    return total, wrapper


def callgrind_added(work, command, functions, n1=50_000, n2=150_000):
    """Instructions per call the agent adds to command(n) (two counts, so that start-up
    cancels), and of those, how many in libckmon's functions."""
    plain = [callgrind_total(work, False, command(n), functions)[0] for n in (n1, n2)]
    watched = [callgrind_total(work, True, command(n), functions) for n in (n1, n2)]
    added = ((watched[1][0] - watched[0][0]) - (plain[1] - plain[0])) / (n2 - n1)
    return added, (watched[1][1] - watched[0][1]) / (n2 - n1)


def bench_callgrind(work):
    if not shutil.which("valgrind"):
        notes.append("valgrind is not installed: no instruction counts.")
        return
    added, wrapper = callgrind_added(work, lambda n: [BIN / "small_writes", "/dev/null", n],
                                     "write|tracked_enter")
    rows.append(("untracked write(): instructions the agent adds per call (callgrind)",
                 f"{added:.1f}", "—", "—", f"{wrapper:.1f} in libckmon's write itself"))
    print(f"callgrind: {added:.1f} instructions added per write, {wrapper:.1f} in the wrapper", flush=True)
    # What Python's imports open: an absolute path no glob can match by its ending.
    module = "/usr/lib/python3.11/collections/__init__.py"
    added, wrapper = callgrind_added(work, lambda n: [BIN / "read_opens", module, n],
                                     "open|close|paths_may_match|tracked_opened")
    rows.append(("open() for reading of a file no glob matches, and its close(): instructions "
                 "the agent adds per pair (callgrind)", f"{added:.1f}", "—", "—",
                 f"{wrapper:.1f} in libckmon's open, close and the quick path test"))
    print(f"callgrind: {added:.1f} instructions added per open+close", flush=True)


def bench_exact_stats(work):
    files = {}
    for dtype in SAFETENSORS_DTYPES:
        path = work / f"state_{dtype}.safetensors"
        write_safetensors(path, state_arrays(CHECKPOINT_BYTES, dtype), dtype)
        files[dtype] = path
    f32 = files["float32"]

    def inspect(path):
        return timed([CKMON, "inspect", "--sample", "1", path], stdout=subprocess.DEVNULL)[0]

    def cat(path):
        return timed(["sh", "-c", 'cat "$1" > /dev/null', "cat", path])[0]

    result = side_by_side(lambda: inspect(f32), lambda: cat(f32), pairs=3 * PAIRS)
    add_row(f"exact statistics over {CHECKPOINT_BYTES // MIB} MiB float32: "
            "`ckmon inspect --sample 1` / `cat`", result, 1.5,
            f"{CHECKPOINT_BYTES / result[3] / 1e9:.2f} GB/s vs {CHECKPOINT_BYTES / result[4] / 1e9:.2f} GB/s")

    kernels = {}
    for line in timed([BIN / "stats_speed", 64 if not QUICK else 16, 7])[1].splitlines():
        k = json.loads(line)
        kernels[k["dtype"], k["kernel"]] = k
    for dtype, path in files.items():
        seconds = statistics.median(inspect(path) for _ in range(3))
        size = path.stat().st_size
        speeds = " / ".join(f"{kernels[dtype, k]['gb_per_s']:.2f}" if (dtype, k) in kernels
                            else "n/a" for k in ("portable", "avx2"))
        avx2 = kernels.get((dtype, "avx2"))
        target = 0.8 if dtype in ("float16", "bfloat16") else 0.9
        verdict = "—" if not avx2 else "met" if avx2["of_memcpy"] >= target else "**missed**"
        rows.append((f"{dtype}: statistics GB/s — kernel portable / AVX2, and `ckmon inspect` "
                     f"of {size // MIB} MiB", f"{speeds}; {size / seconds / 1e9:.2f}",
                     f"AVX2 ≥ {target:.0%} of memcpy", verdict,
                     f"AVX2 at {avx2['of_memcpy']:.0%} of memcpy ({avx2['memcpy_gb_per_s']:.2f} "
                     "GB/s, measured alternately)" if avx2 else "no AVX2 here"))
        print(rows[-1], flush=True)
    return f32


POST_HOC_NUMPY = """
import json, struct, sys
import numpy as np
with open(sys.argv[1], "rb") as f:
    blob = f.read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
for name, t in header.items():
    b, e = t["data_offsets"]
    a = np.frombuffer(blob, dtype=np.float32, count=(e - b) // 4, offset=8 + n + b).astype(np.float64)
    finite = a[np.isfinite(a)]
    print(name, finite.min(), finite.max(), finite.mean(), finite.std(),
          int(np.isnan(a).sum()), int(np.isinf(a).sum()))
"""

POST_HOC_TORCH = """
import sys, torch
state = torch.load(sys.argv[1])
for name, t in state.items():
    a = t.double().reshape(-1)
    finite = a[torch.isfinite(a)]
    if finite.numel():
        print(name, finite.min().item(), finite.max().item(), finite.mean().item(),
              finite.std(unbiased=False).item(), int(torch.isnan(a).sum()), int(torch.isinf(a).sum()))
"""


def bench_post_hoc(work, f32):
    numpy_script = work / "post_hoc_numpy.py"
    numpy_script.write_text(POST_HOC_NUMPY)
    torch_script = work / "post_hoc_torch.py"
    torch_script.write_text(POST_HOC_TORCH)

    def inspect(path):
        return timed([CKMON, "inspect", "--sample", "1", path], stdout=subprocess.DEVNULL)[0]

    result = side_by_side(lambda: inspect(f32), lambda: timed([PYTHON, numpy_script, f32])[0],
                          pairs=max(2, PAIRS - 2))
    add_row("`ckmon inspect --sample 1` / post-hoc numpy load + statistics (safetensors)",
            result, 0.05, f"{result[3]:.2f} s vs {result[4]:.2f} s")

    pt = work / "model.pt"  # left by bench_torch_save
    record = json.loads(timed([CKMON, "inspect", "--sample", "1", pt])[1].splitlines()[0])
    result = side_by_side(lambda: inspect(pt), lambda: timed([PYTHON, torch_script, pt])[0],
                          pairs=2)
    add_row("`ckmon inspect --sample 1` / post-hoc torch.load + statistics (torch.save file)",
            result, 0.05, f"{result[3]:.2f} s vs {result[4]:.2f} s; ckmon read it as format "
            f"\"{record['format']}\" with {len(record['tensors'])} tensors")
    if record["format"] != "torch":
        notes.append("The torch.save file was read as format "
                     f"\"{record['format']}\", not \"torch\": the torch rows measured the "
                     "agent without statistics.")


def bench_diff(work):
    """`ckmon diff` of two checkpoints that differ everywhere (two training steps apart)
    against reading both with cat: the issue's target is at most 3 times cat's time."""
    a, b = work / "diff_a.safetensors", work / "diff_b.safetensors"
    tensors = state_arrays(CHECKPOINT_BYTES, "float32")
    write_safetensors(a, tensors, "float32")
    write_safetensors(b, {k: v + np.float32(1e-3) for k, v in tensors.items()}, "float32")

    def diff():
        start = time.perf_counter()
        p = subprocess.run([str(CKMON), "diff", str(a), str(b)], env=clean_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 1:
            raise SystemExit(f"bench: ckmon diff exited {p.returncode}: {p.stderr}")
        return time.perf_counter() - start

    def cat():
        return timed(["sh", "-c", f"cat '{a}' '{b}' > /dev/null"], stdout=None)[0]

    result = side_by_side(diff, cat)
    add_row("`ckmon diff A B` / `cat A B > /dev/null` (2 × safetensors float32, all elements "
            "differ)", result, 3, f"{result[3]:.3f} s vs {result[4]:.3f} s, "
            f"{2 * CHECKPOINT_BYTES // MIB} MiB")


def bench_strace(work, collector):
    if not shutil.which("strace"):
        notes.append("strace is not installed: no strace comparison.")
        return
    path = work / "small.pkl"  # a checkpoint name: ckmon watches every write to it

    def loop(prefix, env):
        out = timed(prefix + [BIN / "small_writes", path, STRACE_WRITES], env)[1]
        return json.loads(out.splitlines()[-1])["ns_per_call"] / 1e9

    strace = ["strace", "-f", "-e", "trace=write,writev,pwrite64", "-o", "/dev/null"]
    result = side_by_side(lambda: loop(strace, clean_env()), lambda: loop([], preloaded(collector)),
                          pairs=2)
    add_row(f"{STRACE_WRITES:,} one-byte writes to a checkpoint: strace / ckmon", result, None,
            f"{result[3] * 1e9:.0f} vs {result[4] * 1e9:.0f} ns/call")


def bench_collector(work):
    out = work / "load"
    out.mkdir()
    collector = Collector(out)
    arrivals = {}
    stop = threading.Event()

    def tail():
        seen = 0
        while True:
            stopping = stop.is_set()
            if collector.log.exists():
                with open(collector.log, "rb") as f:
                    f.seek(seen)
                    chunk = f.read()
                now = time.time()
                complete = chunk[:chunk.rfind(b"\n") + 1]
                seen += len(complete)
                for line in complete.splitlines():
                    r = json.loads(line)
                    arrivals[r["path"]] = (now, r["time"])
            if stopping:
                return
            time.sleep(0.001)

    watcher = threading.Thread(target=tail)
    watcher.start()
    total = WRITERS * FILES_PER_WRITER
    timed([BIN / "many_writers", out, WRITERS, FILES_PER_WRITER],
          preloaded(collector, CKMON_PATHS=str(out) + "/*.json"))
    deadline = time.monotonic() + 60
    while len(arrivals) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    watcher.join()
    collector.stop()
    closes = {p: dt.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
              .replace(tzinfo=dt.timezone.utc).timestamp() for p, (_, t) in arrivals.items()}
    # The collector holds each record for the 1 s rename window (a rename right after
    # close gives the record its final path), so latency is that hold plus the work.
    latencies = sorted(arrivals[p][0] - closes[p] for p in arrivals)
    landed = sorted(a for a, _ in arrivals.values())
    span = max(landed[-1] - landed[0], 1e-3)
    produced = max(closes.values()) - min(closes.values())
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    rows.append((f"collector: {WRITERS} writer processes × {FILES_PER_WRITER} files",
                 f"{len(arrivals) / span:.0f} records/s into the log", "—", "—",
                 f"{len(arrivals)}/{total} records, closed over {produced:.2f} s; close → log "
                 f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, of which 1000 ms is the rename hold "
                 "(log polled every 1 ms)"))
    print(rows[-1], flush=True)


# ---- report -------------------------------------------------------------------------------


def machine():
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    flags = Path("/proc/cpuinfo").read_text()
    simd = [f for f in ("avx2", "fma", "f16c", "avx512f") if re.search(rf"\b{f}\b", flags)]
    return (f"{model} ({', '.join(simd) or 'no AVX2'}), {os.cpu_count()} cores, "
            f"Linux {platform.release()}, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")


def render(elapsed):
    lines = [BEGIN, "", f"Machine: {machine()}. `make bench` took {elapsed:.0f} s"
             f"{' (--quick)' if QUICK else ''}.", "",
             "| measurement | result: median (range over pairs) | target | verdict | detail |",
             "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines += ["", END]
    return "\n".join(lines)


def write_doc(block):
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + block + tail)


def main():
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ckmon-bench-", dir="/dev/shm") as tmp:
        work = Path(tmp)
        collector = Collector(work)
        try:
            bench_torch_save(work, collector)
            bench_digest(work, collector)
            bench_safetensors_save(work, collector)
            bench_model_saves(work, collector)
            bench_small_writes(work)
            bench_many_files(work)
            bench_import_torch(work, collector)
            bench_callgrind(work)
            f32 = bench_exact_stats(work)
            bench_post_hoc(work, f32)
            bench_diff(work)
            bench_strace(work, collector)
        finally:
            collector.stop()
        bench_collector(work)
        for count in (10_000, 100_000):
            bench_many_tensors(work, "torch", count)
            bench_many_tensors(work, "safetensors", count)
    block = render(time.monotonic() - started)
    print("\n" + block)
    write_doc(block)
    print(f"\nwritten to {DOC.relative_to(ROOT)}")


def issue14():
    """The rows of issue 14 alone (saves at the defaults, the cost per tensor), printed."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ckmon-bench-", dir="/dev/shm") as tmp:
        work = Path(tmp)
        collector = Collector(work)
        try:
            bench_torch_save(work, collector)
            bench_model_saves(work, collector)
        finally:
            collector.stop()
        for count in (10_000, 100_000):
            bench_many_tensors(work, "torch", count)
            bench_many_tensors(work, "safetensors", count)
    print("\n" + render(time.monotonic() - started))


if __name__ == "__main__" and sys.argv[1:] == ["many_files"]:  # one row, printed only
    with tempfile.TemporaryDirectory(prefix="ckmon-bench-", dir="/dev/shm") as tmp:
        bench_many_files(Path(tmp))
elif __name__ == "__main__" and "issue14" in sys.argv[1:]:  # those rows, printed only
    issue14()
elif __name__ == "__main__" and sys.argv[1:2] == ["many_tensors"]:  # those rows, printed only
    with tempfile.TemporaryDirectory(prefix="ckmon-bench-", dir="/dev/shm") as tmp:
        for count in [int(c) for c in sys.argv[2:] if c.isdigit()] or [10_000, 100_000]:
            bench_many_tensors(Path(tmp), "torch", count)
            bench_many_tensors(Path(tmp), "safetensors", count)
elif __name__ == "__main__" and sys.argv[1:] == ["digest"]:  # its rows, printed only
    with tempfile.TemporaryDirectory(prefix="ckmon-bench-", dir="/dev/shm") as tmp:
        plain = Collector(Path(tmp))
        try:
            bench_digest(Path(tmp), plain)
        finally:
            plain.stop()
elif __name__ == "__main__" and sys.argv[1:] == ["callgrind"]:  # those rows, printed only
    with tempfile.TemporaryDirectory(prefix="ckmon-bench-", dir="/dev/shm") as tmp:
        bench_callgrind(Path(tmp))
elif __name__ == "__main__" and sys.argv[1:] == ["import_torch"]:  # one row, printed only
    with tempfile.TemporaryDirectory(prefix="ckmon-bench-", dir="/dev/shm") as tmp:
        try:
            c = Collector(Path(tmp))
            bench_import_torch(Path(tmp), c)
        finally:
            c.stop()
elif __name__ == "__main__":
    main()
