"""before_after.py — the rows of `make bench` for two or more builds of ckmon, in one sitting.

`make bench` compares a program with and without the agent. A change to ckmon itself is
judged by comparing ckmon with ckmon: this runs the same measurements with each
checkout's own agent, collector and bench programs: each measurement for every build
in turn before the next (the order rotated every round, so none is always first), and
reports per row each build's median, and the median and range of the per-round ratios
to the first build (ratios of time: above 1 is slower). A control row, the same
unmonitored save for every build, shows the machine's noise in the same table.

Usage: before_after.py [--rounds N] NAME=CHECKOUT NAME=CHECKOUT ... > OUT
       before_after.py --table OUT   (the table of the rounds OUT holds, if interrupted)
  Each CHECKOUT has been built: make all build/bench/small_writes build/bench/stats_speed
  build/bench/many_writers. Prints each round's results as a JSON line, then a Markdown
  table (docs/performance.md quotes one).
"""
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  the save scripts of `make bench`, so both measure the same saves
from bench import clean_env, proc_cpu_seconds  # noqa: E402

PYTHON = "/usr/bin/python3"
MIB = 1 << 20
SAVE_BYTES = 256 * MIB
SAVES = 4  # per process; the fastest is kept


def run(cmd, env=None, cwd=None):
    p = subprocess.run([str(c) for c in cmd], env=env or clean_env(), cwd=cwd, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({p.returncode}): {p.stderr}")
    return p.stdout


class Build:
    """One checkout's binaries and the collector its agent reports to."""

    def __init__(self, name, checkout, work):
        self.name, self.build = name, Path(checkout).resolve() / "build"
        self.ckmon, self.agent = self.build / "ckmon", self.build / "libckmon.so"
        self.work = work / name
        self.work.mkdir()
        self.socket = self.work / "c.sock"
        self.collector = subprocess.Popen(
            [str(self.ckmon), "collect", "--socket", str(self.socket), "--log",
             str(self.work / "collected.jsonl")], cwd=self.work, env=clean_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while not self.socket.exists():
            time.sleep(0.02)

    def monitored(self, **extra):
        return clean_env(LD_PRELOAD=self.agent, CKMON_SOCKET=self.socket, **extra)

    def bench(self, program):
        return self.build / "bench" / program

    def stop(self):
        self.collector.terminate()
        self.collector.communicate(timeout=60)


def save_times(script, path, env):
    return bench.fastest_save(run([PYTHON, script, SAVE_BYTES, SAVES, path], env))


def collector_cpu(b, action):
    """The action's seconds, and the CPU seconds b's collector spent on it (records held
    for the 1 s rename window included)."""
    before = proc_cpu_seconds(b.collector.pid)
    seconds = action()
    time.sleep(1.5)
    return seconds, proc_cpu_seconds(b.collector.pid) - before


def callgrind_per_write(b, work):
    """Instructions the agent adds per untracked write: two run lengths, so start-up
    cancels, with and without the agent."""
    def total(preload, count):
        out = work / f"callgrind.{b.name}"
        env = clean_env(LD_PRELOAD=b.agent, CKMON_SOCKET=work / "none.sock") if preload else None
        run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             b.bench("small_writes"), "/dev/null", count], env)
        text = run(["callgrind_annotate", "--inclusive=no", out])
        out.unlink()
        return int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text).group(1)
                   .replace(",", ""))
    n1, n2 = 50_000, 150_000
    return ((total(True, n2) - total(True, n1)) - (total(False, n2) - total(False, n1))) / (n2 - n1)


# Each step measures one or more rows for build b and returns {row: seconds (or a count)}.
# A round runs each step for every build before the next step, so that the values a
# ratio compares were taken seconds apart.


def step_control(b, work, files):
    return {"control: torch.save 256 MiB, no agent (same for every build)":
            save_times(files["torch"], work / "model.pt", clean_env())[0]}


def step_saves(b, work, files):
    m = {}
    for what, script, path in (("torch.save 256 MiB", "torch", "model.pt"),
                               ("safetensors 256 MiB from Python", "safetensors",
                                "model.safetensors")):
        wall, cpu = save_times(files[script], work / path, b.monitored())
        m[f"{what}, monitored: save wall"] = wall
        m[f"{what}, monitored: saving process CPU"] = cpu
    return m


def step_many_tensors(b, work, files):
    times = {}
    _, coll = collector_cpu(b, lambda: times.setdefault(
        "t", save_times(files["many"], work / "many.pt", b.monitored()))[0])
    return {"torch.save 20,000 tensors of 256 float32, monitored: save wall": times["t"][0],
            "torch.save 20,000 tensors of 256 float32, monitored: saving process CPU": times["t"][1],
            f"torch.save 20,000 tensors: collector CPU per process ({SAVES} saves)": coll}


def step_writes(b, work, files):
    m = {}
    for target, label in (("/dev/null", "/dev/null"), (work / "plain.dat", "a file no glob matches")):
        out = run([b.bench("small_writes"), target, 10**6],
                  clean_env(LD_PRELOAD=b.agent, CKMON_SOCKET=work / "none.sock"))
        m[f"10^6 one-byte writes to {label}, agent preloaded: per call"] = \
            json.loads(out)["ns_per_call"] / 1e9
    out = run([b.bench("small_writes"), work / "small.pkl", 30_000], b.monitored())
    m["30,000 one-byte writes to a checkpoint, monitored: per call"] = \
        json.loads(out.splitlines()[-1])["ns_per_call"] / 1e9
    return m


def children_cpu():
    """CPU seconds of the children waited for so far (the collectors are not, until they end)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def step_inspect(b, work, files):
    m = {}
    for path, label in ((files["f32"], "256 MiB float32 safetensors"),
                        (work / "model.pt", "the 256 MiB torch.save file")):
        start, cpu = time.perf_counter(), children_cpu()
        run([b.ckmon, "inspect", "--sample", "1", path])
        m[f"`ckmon inspect --sample 1` of {label}: wall"] = time.perf_counter() - start
        m[f"`ckmon inspect --sample 1` of {label}: CPU"] = children_cpu() - cpu
    return m


def step_kernels(b, work, files):
    m = {}
    for line in run([b.bench("stats_speed"), 64, 5]).splitlines():
        k = json.loads(line)
        if k.get("kernel") == "avx2":
            m[f"statistics kernel, AVX2, {k['dtype']}: time per 64 MiB"] = \
                64 * MIB / (k["gb_per_s"] * 1e9)
    return m


def step_collector(b, work, files):
    load = work / f"load.{b.name}"
    load.mkdir()

    def writers():
        start = time.perf_counter()
        run([b.bench("many_writers"), load, 16, 200], b.monitored(CKMON_PATHS=f"{load}/*.json"))
        return time.perf_counter() - start

    seconds, coll = collector_cpu(b, writers)
    subprocess.run(["rm", "-rf", str(load)])
    return {"16 writers × 200 small JSON checkpoints: writers' wall": seconds,
            "16 writers × 200 small JSON checkpoints: collector CPU": coll}


STEPS = [step_control, step_saves, step_many_tensors, step_writes, step_inspect, step_kernels,
         step_collector]


def main():
    args = sys.argv[1:]
    if args[:1] == ["--table"]:  # the table of the last round a (maybe interrupted) run printed
        last = json.loads([line for line in Path(args[1]).read_text().splitlines()
                           if line.startswith("{")][-1])
        return report(last["builds"], last["results"], last["instructions"], last["rounds"])
    rounds = 9
    if args[:1] == ["--rounds"]:
        rounds, args = int(args[1]), args[2:]
    if len(args) < 2 or not all("=" in a for a in args):
        raise SystemExit(__doc__)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the collectors, remove the files
    with tempfile.TemporaryDirectory(prefix="ckmon-before-after-", dir="/dev/shm") as tmp:
        work = Path(tmp)
        files = {}
        for name, text in (("torch", bench.TORCH_SAVE), ("safetensors", bench.SAFETENSORS_SAVE),
                           ("many", bench.MODEL_SAVE.replace("{state}", "many_tensors(20000)"))):
            files[name] = work / f"{name}_save.py"
            files[name].write_text(text)
        files["f32"] = work / "state.safetensors"
        run([PYTHON, files["safetensors"], SAVE_BYTES, 1, files["f32"]])  # the file inspect reads
        builds = [Build(*a.split("=", 1), work) for a in args]
        results = {b.name: {} for b in builds}
        try:
            instr = {b.name: callgrind_per_write(b, work) for b in builds}
            for r in range(rounds):
                for step in STEPS:
                    for i in range(len(builds)):
                        b = builds[(r + i) % len(builds)]
                        for row, value in step(b, work, files).items():
                            results[b.name].setdefault(row, []).append(value)
                # each round's results as they stand, so an interrupted run still tells
                print(json.dumps({"builds": [b.name for b in builds], "results": results,
                                  "instructions": instr, "rounds": r + 1}), flush=True)
                print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
        finally:
            for b in builds:
                b.stop()
    report([b.name for b in builds], results, instr, rounds)


def report(builds, results, instr, rounds):
    ref, others = builds[0], builds[1:]
    head = "| row | " + " | ".join(f"{b}: median" for b in builds) + " | " + \
        " | ".join(f"{o} / {ref}: median (range)" for o in others) + " |"
    print(f"{rounds} rounds, builds in rotating order; times are medians over rounds.\n")
    print(head)
    print("|" + "---|" * (1 + len(builds) + len(others)))
    for row in results[ref]:
        def shown(v):
            return f"{v * 1e9:.1f} ns" if v < 1e-5 else f"{v * 1000:.1f} ms" if v < 10 else f"{v:.1f} s"
        cells = [shown(statistics.median(results[b][row])) for b in builds]
        for o in others:
            ratios = [x / y for x, y in zip(results[o][row], results[ref][row]) if y > 0]
            cells.append(f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})"
                         if ratios else "—")
        print(f"| {row} | " + " | ".join(cells) + " |")
    cells = [f"{instr[b]:.1f}" for b in builds] + \
        [f"{instr[o] / instr[ref]:.3f} (exact)" for o in others]
    print("| untracked write(): instructions the agent adds per call (callgrind) | " +
          " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
