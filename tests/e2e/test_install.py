"""test_install.py — `make install` / `make uninstall` into a DESTDIR, and what they ship:
man pages, the systemd unit (with sd_notify readiness), logrotate, bash completion, and
--help naming docs that are installed (tools/install.mk, docs/deploy.md).
"""
import os
import signal
import socket
import subprocess

from ckmon_helpers import BUILD, REPO, ckmon_args, clean_env
from sink_servers import wait_for

PREFIX = "/usr/local"


def make(target, root):
    # BUILD relative to the checkout, as the Makefile is used by hand: an absolute BUILD would
    # rewrite the objects' dependency files (.d) under absolute target names, which a later
    # plain `make` does not read, so it would then miss header changes.
    build = os.path.relpath(BUILD, REPO)
    p = subprocess.run(["make", "--no-print-directory", f"BUILD={build}", f"PREFIX={PREFIX}",
                        f"DESTDIR={root}", target], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_install_ships_the_kit_and_uninstall_removes_it(work):
    root = work / "root"
    make("install", root)
    usr = root / PREFIX.lstrip("/")
    installed = files(root)
    for path in ("bin/ckmon", "lib/ckmon/libckmon.so", "share/doc/ckmon/README.md",
                 "share/doc/ckmon/docs/sinks.md", "share/man/man1/ckmon.1",
                 "share/man/man1/ckmon-collect.1", "share/man/man1/ckmon-run.1",
                 "share/ckmon/prometheus/ckmon-rules.yml",
                 "share/ckmon/grafana/ckmon-dashboard.json",
                 "lib/systemd/system/ckmon-collect.service",
                 "share/bash-completion/completions/ckmon"):
        assert (usr / path).is_file(), path
    assert (root / "etc/logrotate.d/ckmon").is_file()

    # --help names the installed docs, and they are there.
    ckmon = usr / "bin/ckmon"
    helps = subprocess.run([ckmon, "collect", "--help"], capture_output=True, text=True).stdout
    named = {line.strip() for line in helps.splitlines() if "/share/doc/ckmon/" in line}
    assert named and all((root / n.lstrip("/")).is_file() for n in named), named
    # The installed ckmon finds the installed agent (PREFIX/lib/ckmon) and runs a job.
    p = subprocess.run([ckmon, "run", "-o", work / "l.jsonl", "--", "/usr/bin/python3", "-c",
                        "import pickle; pickle.dump({'epoch': 1}, open('e_1.pkl', 'wb'))"],
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and '"epoch":1' in (work / "l.jsonl").read_text(), p.stderr

    # Man pages render, one per command, each with that command's options.
    for page, option in (("ckmon.1", "collect"), ("ckmon-collect.1", "--listen"),
                         ("ckmon-run.1", "--flush-timeout")):
        text = subprocess.run(["man", "-l", "-P", "cat", usr / "share/man/man1" / page],
                              capture_output=True, text=True, env=dict(os.environ, MANWIDTH="100"),
                              timeout=30).stdout
        assert option in text, page

    # The unit runs the installed binary with a socket in /run/ckmon.
    unit = (usr / "lib/systemd/system/ckmon-collect.service").read_text()
    assert f"ExecStart={PREFIX}/bin/ckmon collect --socket /run/ckmon/collector.sock" in unit
    assert "Type=notify" in unit and "@PREFIX@" not in unit

    # Bash completion: commands, options from --help, sink formats.
    def complete(*words):
        script = (f"source /usr/share/bash-completion/bash_completion; "
                  f"source {usr}/share/bash-completion/completions/ckmon; "
                  f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; "
                  f"COMP_LINE='{' '.join(words)}'; COMP_POINT=${{#COMP_LINE}}; "
                  f"_ckmon; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        env = dict(os.environ, PATH=f"{usr}/bin:{os.environ['PATH']}")
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              env=env, timeout=30).stdout.split()
    assert complete("ckmon", "co") == ["collect"]
    assert "--metric-keys" in complete("ckmon", "collect", "--me")
    assert complete("ckmon", "run", "-s", "prom") == ["prometheus="]

    make("uninstall", root)
    assert files(root) == [], files(root)
    assert installed


def test_collect_tells_systemd_it_is_ready(work):
    notify = work / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(notify))
    server.settimeout(30)
    sock = work / "c.sock"
    p = subprocess.Popen(ckmon_args("collect", "--socket", sock, "--log", work / "l.jsonl"),
                         cwd=work, env=clean_env(NOTIFY_SOCKET=notify),
                         stderr=subprocess.PIPE, text=True)
    try:
        message = server.recv(4096).decode()
        assert "READY=1" in message.split("\n"), message
        assert sock.exists()  # ready means agents can connect
        with open(f"/proc/{p.pid}/maps") as f:
            assert "libsystemd" in f.read()
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        server.close()
    plain = subprocess.Popen(ckmon_args("collect", "--socket", work / "d.sock", "--log",
                                        work / "d.jsonl"), cwd=work, env=clean_env(),
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the collector", lambda: (work / "d.sock").exists())
        with open(f"/proc/{plain.pid}/maps") as f:
            assert "libsystemd" not in f.read()
    finally:
        plain.send_signal(signal.SIGTERM)
        plain.communicate(timeout=30)
