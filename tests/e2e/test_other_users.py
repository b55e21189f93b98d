"""test_other_users.py — a log or state dir that another user made first (docs/security.md).

In a shared directory (/tmp, a project directory) another user can create the log or the
state dir before the collector does: their file, a file anyone may write (their forged
lines would reach the sinks as ours), or symlinks to files of ours they cannot write. The
collector must refuse the first two with one line and a non-zero exit before COMMAND runs,
and never write through a symlink put in the state dir. Run as root, the tests make the
other user's files with os.chown to `nobody`; the targets are root-only files whose bytes
must be the same afterwards.
"""
import os
import pwd
import subprocess

import pytest

from ckmon_helpers import ckmon_args, clean_env, python_script, read_log
from sink_servers import FaultySink

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")

NOBODY = pwd.getpwnam("nobody")
SECRET = b"root only: must never change\n"
FORGED = b'{"schema": 1, "event": "checkpoint", "path": "/forged.pt"}\n'

WRITER = """
for i in range(2):
    path = os.path.abspath(f"epoch_{i}.pkl")
    with open(path, "wb") as f:
        pickle.dump({"epoch": i}, f)
    report(path=path)
"""


def run(work, *options):
    """`ckmon run` of a writer of two checkpoints; returns the finished process."""
    args = ["run", *options, "--", *python_script(work, WRITER)]
    return subprocess.run(ckmon_args(*args), cwd=work, env=clean_env(), capture_output=True,
                          text=True, timeout=120)


def secret_file(path):
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def assert_refused(p, work, *phrases):
    assert p.returncode != 0
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("ckmon: ") and all(s in lines[0] for s in phrases), lines[0]
    assert not (work / "epoch_0.pkl").exists(), "COMMAND ran although the collector refused"


def fnv1a(text):
    h = 2166136261
    for b in text.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def test_a_log_of_another_user_is_refused(work):
    log = work / "ckmon.jsonl"
    log.write_bytes(FORGED)
    os.chown(log, NOBODY.pw_uid, NOBODY.pw_gid)
    log.chmod(0o666)
    p = run(work, "-o", log)
    assert_refused(p, work, f"log {log}", "belongs to another user")
    assert log.read_bytes() == FORGED


def test_a_log_others_can_write_is_refused(work):
    log = work / "ckmon.jsonl"
    log.write_bytes(b"")
    log.chmod(0o622)
    p = run(work, "-o", log)
    assert_refused(p, work, f"log {log}", "writable by other users")
    assert log.read_bytes() == b""


def test_a_symlink_of_another_user_as_the_log_is_not_followed(work):
    target = secret_file(work / "secret")
    log = work / "ckmon.jsonl"
    log.symlink_to(target)
    os.chown(log, NOBODY.pw_uid, NOBODY.pw_gid, follow_symlinks=False)
    p = run(work, "-o", log)
    assert_refused(p, work, f"log {log}", "symlink owned by another user")
    assert target.read_bytes() == SECRET


def test_our_own_symlink_as_the_log_is_followed(work):
    """A user's own link (and /dev/stdout, root's) still works as it did."""
    (work / "logs").mkdir()
    log = work / "ckmon.jsonl"
    log.symlink_to(work / "logs" / "real.jsonl")
    p = run(work, "-o", log)
    assert p.returncode == 0, p.stderr
    assert len(read_log(work / "logs" / "real.jsonl")) == 2


@pytest.mark.parametrize("mode", [0o700, 0o777])
def test_a_state_dir_of_another_user_is_refused(work, mode):
    target = secret_file(work / "secret")
    state = work / "ckmon.jsonl.state"
    state.mkdir()
    for name in ("stats.json.tmp", "lock", "stats.json"):
        (state / name).symlink_to(target)
    os.chown(state, NOBODY.pw_uid, NOBODY.pw_gid)
    state.chmod(mode)
    sink = FaultySink([(200, {})])
    try:
        p = run(work, "-o", work / "ckmon.jsonl", "-s", f"ndjson={sink.url}")
    finally:
        sink.stop()
    assert_refused(p, work, f"state dir {state}", "belongs to another user")
    assert target.read_bytes() == SECRET
    assert sink.requests == []


def test_a_state_dir_others_can_write_is_refused(work):
    state = work / "ckmon.jsonl.state"
    state.mkdir()
    state.chmod(0o777)
    p = run(work, "-o", work / "ckmon.jsonl", "-s", "ndjson=http://127.0.0.1:9/x")
    assert_refused(p, work, f"state dir {state}", "writable by other users")


def test_a_symlinked_lock_is_refused(work):
    target = secret_file(work / "secret")
    state = work / "ckmon.jsonl.state"
    state.mkdir(mode=0o700)
    (state / "lock").symlink_to(target)
    p = run(work, "-o", work / "ckmon.jsonl", "-s", "ndjson=http://127.0.0.1:9/x")
    assert_refused(p, work, f"state dir {state}", "lock: a symlink")
    assert target.read_bytes() == SECRET and (state / "lock").is_symlink()


def test_symlinks_in_the_state_dir_are_never_written_through(work):
    """Every file the collector writes in the state dir, as a symlink to a root-only file:
    the records are still delivered (one batch refused first, to write a dead letter),
    and no target changes."""
    sink = FaultySink([(400, {}), (200, {})])
    stem = f"ndjson-{fnv1a(sink.url):08x}"
    state = work / "ckmon.jsonl.state"
    state.mkdir(mode=0o700)
    names = ["stats.json", "stats.json.tmp", f"{stem}.cursor", f"{stem}.cursor.tmp",
             f"{stem}.dead.jsonl"]
    targets = [secret_file(work / f"secret-{i}") for i in range(len(names))]
    for name, target in zip(names, targets):
        (state / name).symlink_to(target)
    try:
        p = run(work, "-o", work / "ckmon.jsonl", "-s", f"ndjson={sink.url}")
    finally:
        sink.stop()
    assert p.returncode == 0, p.stderr
    assert all(t.read_bytes() == SECRET for t in targets)
    log = read_log(work / "ckmon.jsonl")
    assert len(log) == 2 and sink.delivered() == log
    assert sink.requests[0][0] == 400  # its dead letter could not be written: sent again
    assert "cannot write the dead-letter file" in p.stderr
    # the cursor and stats.json are regular files now: the links were replaced, not followed
    assert not (state / f"{stem}.cursor").is_symlink() and not (state / "stats.json").is_symlink()
