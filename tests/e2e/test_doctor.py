"""test_doctor.py — `ckmon doctor` on real programs that the agent can and cannot monitor.

Each program is a real file: Debian's python3, C programs built here (glibc static and
dynamic, musl, setuid, with file capabilities, importing io_uring), Go programs from Debian
packages (one static, one dynamically linked), #! scripts with and without env, and an ELF
for another machine made by changing e_machine in a copy of a test program (no cross
compiler needed; libelf reads only the headers). The doctor must name each problem on one
line, exit 1 when there is one, and 0 when there is none; `ckmon run` must warn the same
way on stderr and still run the program.
"""
import os
import platform
import shutil
import stat
import struct
import subprocess

import pytest

from ckmon_helpers import PYTHON, ckmon_args, clean_env, program

GO_STATIC = "/usr/bin/golang-petname"  # Debian package golang-petname
GO_DYNAMIC = "/usr/bin/dataurl"  # Debian package dataurl (cgo: links libc.so.6)
EM_X86_64, EM_AARCH64 = 62, 183


def doctor(*args, cwd=None):
    p = subprocess.run(ckmon_args("doctor", *args), capture_output=True, text=True,
                       env=clean_env(), cwd=cwd, timeout=60)
    return p.returncode, p.stdout.splitlines(), p.stderr


def problems(lines):
    return [l for l in lines if l.startswith("problem: ")]


def one_problem(lines, path, words):
    found = problems(lines)
    assert len(found) == 1, lines
    assert found[0].startswith(f"problem: {path}: ") and words in found[0], found
    return found[0]


def compile_c(work, name, source, *flags, compiler="gcc"):
    if not shutil.which(compiler):
        pytest.skip(f"{compiler} is not installed (tools/install-deps.sh installs it)")
    src = work / f"{name}.c"
    src.write_text(source)
    out = work / name
    subprocess.run([compiler, "-o", out, src, *flags], check=True, capture_output=True)
    return out


HELLO = ('#include <stdio.h>\n'
         'int main(int argc, char **argv) {\n'
         '    FILE *f = fopen("x", "w");\n'
         '    fputs(argc > 1 ? argv[1] : "x", f);\n'
         '    return 0;\n'
         '}\n')
# The write-family calls the agent wraps (agent/exports.map), as the doctor lists them.
WRAPPED_WRITES = {
    "write", "pwrite", "pwrite64", "writev", "pwritev", "pwritev2", "pwritev64", "fwrite",
    "fwrite_unlocked", "fputs", "fputs_unlocked", "fputc", "fputc_unlocked", "putc",
    "putc_unlocked", "fprintf", "vfprintf", "__fprintf_chk", "__vfprintf_chk", "dprintf",
    "vdprintf"}


def imported_writes(path):
    """The wrapped write calls path imports, as binutils' nm sees its dynamic symbols."""
    out = subprocess.run(["nm", "-D", "--undefined-only", path], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines()} & WRAPPED_WRITES


def listed_writes(lines, path):
    found = [l for l in lines if l.startswith(f"{path}: writes through ")]
    assert len(found) == 1, lines
    return set(found[0].split(": writes through ", 1)[1].split(", "))


def test_python3_can_be_monitored():
    rc, lines, _ = doctor(PYTHON)
    real = os.path.realpath(PYTHON)
    assert rc == 0, lines
    assert lines[-1] == f"ok: the agent can monitor {PYTHON}"
    assert not problems(lines)
    assert f"{PYTHON}: 64-bit x86-64 ELF, dynamically linked (loader " \
           "/lib64/ld-linux-x86-64.so.2)" in lines, lines
    assert listed_writes(lines, PYTHON) == imported_writes(real)
    assert {"write", "fwrite"} <= imported_writes(real)


def test_static_glibc_program(work):
    exe = compile_c(work, "static", HELLO, "-static")
    rc, lines, _ = doctor(exe)
    assert rc == 1
    one_problem(lines, exe, "statically linked")


def test_dynamic_glibc_program_is_fine(work):
    exe = compile_c(work, "dynamic", HELLO)
    rc, lines, _ = doctor(exe)
    assert rc == 0, lines
    assert listed_writes(lines, exe) == imported_writes(exe) == {"fputs"}


def test_musl_program(work):
    exe = compile_c(work, "musl", HELLO, compiler="musl-gcc")
    rc, lines, _ = doctor(exe)
    assert rc == 1
    one_problem(lines, exe, "musl")


@pytest.mark.parametrize("path, static", [(GO_DYNAMIC, False), (GO_STATIC, True)])
def test_go_programs(path, static):
    if not os.path.exists(path):
        pytest.skip(f"{path} is not installed (tools/install-deps.sh installs it)")
    rc, lines, _ = doctor(path)
    assert rc == 1
    found = problems(lines)
    assert any("a Go program" in l for l in found), lines
    assert any("statically linked" in l for l in found) == static, lines
    assert len(found) == 1 + static


@pytest.mark.parametrize("bit, word", [(stat.S_ISUID, "setuid"), (stat.S_ISGID, "setgid")])
def test_setuid_and_setgid(work, bit, word):
    exe = work / "privileged"
    shutil.copy(program("launcher"), exe)
    os.chmod(exe, 0o755 | bit)
    rc, lines, _ = doctor(exe)
    assert rc == 1
    one_problem(lines, exe, word)


def test_file_capabilities(work):
    if not shutil.which("setcap"):
        pytest.skip("setcap is not installed (libcap2-bin; tools/install-deps.sh installs it)")
    exe = work / "capable"
    shutil.copy(program("launcher"), exe)
    p = subprocess.run(["setcap", "cap_net_bind_service+ep", exe], capture_output=True,
                       text=True)
    if p.returncode != 0:
        pytest.skip(f"this file system does not take file capabilities: {p.stderr.strip()}")
    rc, lines, _ = doctor(exe)
    assert rc == 1
    one_problem(lines, exe, "file capabilities")


def test_foreign_machine(work):
    native = platform.machine() == "aarch64"
    foreign, names = (EM_X86_64, ("x86-64", "aarch64")) if native else \
        (EM_AARCH64, ("aarch64", "x86-64"))
    exe = work / "foreign-program"
    data = bytearray(open(program("launcher"), "rb").read())
    data[18:20] = struct.pack("<H", foreign)  # e_machine
    exe.write_bytes(data)
    exe.chmod(0o755)
    rc, lines, _ = doctor(exe)
    assert rc == 1
    one_problem(lines, exe, "64-bit {}, but the agent is 64-bit {}".format(*names))


def test_io_uring_import(work):
    lib = compile_c(work, "liburing.so.2", "int io_uring_queue_init(unsigned n, void *r, "
                    "unsigned f) { (void)n; (void)r; return (int)f; }\n", "-shared", "-fPIC")
    exe = compile_c(work, "ring", "int io_uring_queue_init(unsigned, void *, unsigned);\n"
                    "int main(void) { return io_uring_queue_init(8, 0, 0); }\n",
                    str(lib), f"-Wl,-rpath,{work}")
    rc, lines, _ = doctor(exe)
    assert rc == 1
    one_problem(lines, exe, "io_uring")


def script(work, name, first_line):
    path = work / name
    path.write_text(f"{first_line}\nprint('hi')\n")
    path.chmod(0o755)
    return path


def test_shebang_script_follows_its_interpreter(work):
    s = script(work, "ok.py", f"#!{PYTHON}")
    rc, lines, _ = doctor(s)
    assert rc == 0, lines
    assert lines[0] == f"{s}: a script run by {PYTHON}"
    static = compile_c(work, "static", HELLO, "-static")
    s = script(work, "bad", f"#!{static}")
    rc, lines, _ = doctor(s)
    assert rc == 1
    one_problem(lines, static, "statically linked")


@pytest.mark.parametrize("line, problem", [
    ("#!/usr/bin/env python3", None),
    ("#!/usr/bin/env -S python3 -u", None),
    ("#!/usr/bin/env -S -i PYTHONUNBUFFERED=1 python3", None),
    ("#!/usr/bin/env python3 -u", "env would look for a program named 'python3 -u'"),
])
def test_env_shebang(work, line, problem):
    s = script(work, "tool", line)
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(PYTHON)  # PATH decides which python3 env finds
    p = subprocess.run(ckmon_args("doctor", s), capture_output=True, text=True, timeout=60,
                       env=clean_env(PATH=f"{bin_dir}:/usr/bin:/bin"))
    lines = p.stdout.splitlines()
    if problem is None:
        assert p.returncode == 0, lines
        assert any(l.startswith(f"{bin_dir}/python3: 64-bit") for l in lines), lines
    else:
        assert p.returncode == 1
        one_problem(lines, "/usr/bin/env", problem)


def test_env_command_line_with_options(work):
    static = compile_c(work, "static", HELLO, "-static")
    rc, lines, _ = doctor("env", "-i", "-u", "HOME", "A=1", static, "--flag")
    assert rc == 1
    one_problem(lines, static, "statically linked")


def test_missing_command_and_usage():
    rc, lines, _ = doctor("no-such-command-anywhere")
    assert rc == 1
    assert problems(lines) == ["problem: no-such-command-anywhere: command not found"]
    rc, lines, err = doctor()
    assert rc == 2 and "no COMMAND" in err and "\n" not in err.strip()
    rc, lines, _ = doctor("--help")
    assert rc == 0 and lines[0].startswith("Usage: ckmon doctor")


def test_run_warns_and_still_runs(ckmon, work):
    exe = compile_c(work, "static", HELLO, "-static")
    run = ckmon.run(exe)
    assert run.returncode == 0
    warnings = [l for l in run.stderr.splitlines() if l.startswith("ckmon: warning: ")]
    assert warnings == [f"ckmon: warning: {exe}: statically linked (no program interpreter): "
                        "LD_PRELOAD cannot load the agent into it"]
    assert (work / "x").read_text() == "x"
    run = ckmon.run(PYTHON, "-c", "pass")
    assert run.returncode == 0 and "warning" not in run.stderr
