#!/usr/bin/env python3
"""check-layout.py — the layout rules of docs/architecture.md, checked on the built tree.

1. Includes: core/ includes nothing from agent/ or collector/; collector/ nothing from
   agent/; agent/ nothing from collector/ (quoted includes, resolved like the compiler).
2. No cycle between modules (a module is x.c with its x.h): neither through includes nor
   through calls, read from the symbols each object file defines and uses (nm).
Usage: check-layout.py BUILD_DIR     exit 1 and one line per violation.
"""
import os
import re
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDES = ("core", "agent", "collector")
FORBIDDEN = {"core": ("agent", "collector"), "collector": ("agent",), "agent": ("collector",)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    for side in SIDES:
        for root, _, files in os.walk(os.path.join(TOP, side)):
            for f in files:
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(root, f), TOP)


def resolve(src, inc):
    """The project file an #include "inc" in src names, as the compiler (-I.) finds it."""
    for cand in (os.path.join(os.path.dirname(src), inc), inc):
        cand = os.path.normpath(cand)
        if os.path.exists(os.path.join(TOP, cand)):
            return cand
    return None


def module(path):
    return os.path.splitext(path)[0]


def find_cycle(graph):
    """One cycle of the directed graph {node: set(nodes)}, as a list, or None."""
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def symbol_graph(build):
    defined, used = {}, {}
    for src in sources():
        if not src.endswith(".c"):
            continue
        obj = os.path.join(build, "obj", module(src) + ".o")
        if not os.path.exists(obj):
            continue
        out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
        mod = module(src)
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                used.setdefault(mod, set()).add(parts[1])
            elif len(parts) == 3 and parts[1] in "TDBRVW" and parts[1].isupper():
                defined[parts[2]] = mod
    graph = {}
    for mod, syms in used.items():
        for s in syms:
            owner = defined.get(s)
            if owner and owner != mod:
                graph.setdefault(mod, set()).add(owner)
    return graph


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    problems = []
    includes = {}
    for src in sources():
        side = src.split(os.sep)[0]
        with open(os.path.join(TOP, src), errors="replace") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            target = resolve(src, inc)
            if not target:
                continue
            tside = target.split(os.sep)[0]
            if tside in FORBIDDEN[side]:
                problems.append(f"{src}: includes {target} ({side}/ may not include {tside}/)")
            if module(target) != module(src):
                includes.setdefault(module(src), set()).add(module(target))
    cycle = find_cycle(includes)
    if cycle:
        problems.append("include cycle: " + " -> ".join(cycle))
    cycle = find_cycle(symbol_graph(build))
    if cycle:
        problems.append("call cycle between modules: " + " -> ".join(cycle))
    for p in problems:
        print("check-layout:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
