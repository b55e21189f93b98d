"""conftest.py — fixtures for ckmon's end-to-end tests (see ckmon_helpers.py).

Tests run in pytest's tmp_path, never in the repository. The default checkpoint globs match
`*checkpoint*/*.json` with `*` crossing `/`, so a test directory whose path happened to
contain "checkpoint" or "ckpt" would turn every JSON file in it into a checkpoint; `work`
refuses such a directory rather than let a test pass or fail by its name.
"""
import pytest

from ckmon_helpers import Ckmon, Collector


@pytest.fixture
def work(tmp_path):
    lowered = str(tmp_path).lower()
    assert "checkpoint" not in lowered and "ckpt" not in lowered, (
        f"rename the test: its directory {tmp_path} matches the default checkpoint globs")
    return tmp_path


@pytest.fixture
def ckmon(work):
    return Ckmon(work)


@pytest.fixture
def collector(work):
    c = Collector(work)
    yield c
    c.kill()


@pytest.fixture
def servers(work):
    """start(kind[, port]): a metric server of sink_servers.py, stopped after the test."""
    started = []

    def start(kind, port=None, **options):
        server = kind(work, f"{kind.__name__.lower()}-{len(started)}", port, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
