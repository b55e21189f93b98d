"""test_report.py — `ckmon report`: one self-contained HTML page, opened in headless Chromium.

A training loop runs under `ckmon run` and writes four checkpoints, the third with a NaN in
one tensor (the collector writes its nonfinite alert record); a torn checkpoint (a truncated
file, recorded by `ckmon inspect`, with its incomplete alert) is added to the log. Chromium (Debian's package) opens the
page with a fresh profile: the test takes a screenshot, checks that the page logged nothing
to the console and made no request (Chromium's net log: every request the page starts has
the page's opaque origin as initiator; Chromium's own have none), and reads from the DOM
that the loss chart, the NaN tensor's chart with its NaN mark and the alert with a link to
its checkpoint are there. A second test bounds the page's size for a large run.
"""
import json
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest

from ckmon_helpers import PYTHON, ckmon_args, clean_env, read_log

CHROMIUM = "/usr/bin/chromium"

TRAIN = r"""
import torch
torch.manual_seed(1)
for epoch in (1, 2, 3, 4):
    w = torch.randn(16, 16) * epoch
    bad = torch.ones(12)
    if epoch == 3:
        bad[4] = float("nan")
    torch.save({"epoch": epoch, "step": 10 * epoch, "loss": 1.0 / epoch,
                "model": {"w": w, "bad": bad}}, f"epoch_{epoch}.pt")
"""


class Dom(HTMLParser):
    """Elements as (tag, attrs, text inside, path of enclosing (tag, attrs))."""

    def __init__(self):
        super().__init__()
        self.stack, self.elements = [], []

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": list(self.stack)}
        self.elements.append(element)
        if tag not in ("meta", "input", "br", "rect", "circle", "polyline", "polygon", "line"):
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": "",
                              "parents": list(self.stack)})

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        for e in self.stack:
            e["text"] += data

    def find(self, tag=None, inside=None, **attrs):
        found = []
        for e in self.elements:
            if tag and e["tag"] != tag:
                continue
            if inside is not None and not any(p is inside for p in e["parents"]):
                continue
            if all((e["attrs"].get(k.rstrip("_")) or "").split().count(v) if k == "class_" else
                   e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items()):
                found.append(e)
        return found


def make_run(work):
    (work / "train.py").write_text(TRAIN)
    log = work / "ckmon.jsonl"
    p = subprocess.run(ckmon_args("run", "-o", log, "--", PYTHON, "train.py"), cwd=work,
                       env=clean_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    records = read_log(log)
    third = next(r for r in records if r.get("path", "").endswith("epoch_3.pt"))
    # a torn checkpoint, as the collector records one
    data = (work / "epoch_4.pt").read_bytes()
    (work / "torn.pt").write_bytes(data[: len(data) // 2])
    inspected = subprocess.run(ckmon_args("inspect", "torn.pt"), cwd=work, env=clean_env(),
                               capture_output=True, text=True, timeout=60)
    with open(log, "a") as f:
        f.write(inspected.stdout)
    return log, third


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def chromium(work, page, *args):
    profile = work / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    net_log = work / "net-log.json"
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr",
                        "--v=0", f"--log-net-log={net_log}", *args, page.as_uri()],
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p, json.loads(net_log.read_text())


def page_requests(net_log):
    """URLs of the requests the page started (initiator: the file's opaque origin)."""
    names = {v: k for k, v in net_log["constants"]["logEventTypes"].items()}
    return [e["params"]["url"] for e in net_log["events"]
            if names.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in e.get("params", {})
            and e["params"].get("initiator") != "not an origin"]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_report_opens_offline_in_chromium(work):
    log, third = make_run(work)
    page = work / "report.html"
    p = subprocess.run(ckmon_args("report", "--log", log, "-o", page), cwd=work,
                       env=clean_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    text = page.read_text()
    assert not re.search(r"https?://", text)  # nothing that could be fetched

    shot = work / "report.png"
    p, net_log = chromium(work, page, "--window-size=1200,1600", f"--screenshot={shot}")
    assert png_size(shot) == (1200, 1600) and shot.stat().st_size > 20000
    assert "CONSOLE" not in p.stderr, p.stderr
    assert page_requests(net_log) == []

    p, net_log = chromium(work, page, "--dump-dom")
    assert "CONSOLE" not in p.stderr and page_requests(net_log) == []
    dom = Dom()
    dom.feed(p.stdout)

    [loss] = dom.find("figure", data_key="loss")
    # one line per file label: epoch_N.pt (first by name) and torn.pt, whose values were
    # read before its data ended
    lines = dom.find("polyline", inside=loss)
    assert len(lines) == 2 and loss["text"].index("epoch_N.pt") < loss["text"].index("torn.pt")
    assert len(lines[0]["attrs"]["points"].split()) == 4  # one point per epoch
    assert "step" in loss["text"]  # every record has a step: it is the x axis

    tensor_charts = dom.find("figure", class_="tensor")
    assert tensor_charts[0]["attrs"]["data-tensor"] == "model.bad"  # alerted first
    bad = tensor_charts[0]
    assert "alerted" in bad["attrs"]["class"].split()
    [mark] = dom.find("circle", inside=bad, class_="nonfinite")
    [title] = dom.find("title", inside=bad)
    assert title["text"].startswith("1 NaN/Inf at step 30")
    assert {c["attrs"]["data-tensor"] for c in tensor_charts} == {"model.bad", "model.w"}

    [rules] = dom.find("td", id="alert-rules")
    assert "nonfinite" in rules["text"]
    [row] = [r for r in dom.find("tr", class_="alert") if "nonfinite" in r["text"]]
    [link] = dom.find("a", inside=row)
    assert "model.bad" in row["text"] and "critical" in row["text"]
    target = link["attrs"]["href"].lstrip("#")
    [checkpoint_row] = dom.find("tr", id=target)
    assert third["path"] in checkpoint_row["text"]

    # the torn checkpoint: marked in the table and on the size chart
    [torn] = [r for r in dom.find("tr") if "torn.pt" in r["text"] and "id" in r["attrs"]]
    assert [r for r in dom.find("tr", class_="alert") if "incomplete" in r["text"]]
    assert "NO (torn)" in torn["text"] and torn["attrs"].get("class") == "bad"
    [sizes] = dom.find("figure", data_key="bytes")
    assert dom.find("circle", inside=sizes, class_="nonfinite")
    [count] = dom.find("td", id="count-checkpoints")
    assert count["text"].startswith("5,") and "1 incomplete" in count["text"]


def test_report_size_is_bounded(work):
    """300 checkpoints × 300 tensors: every chart has at most 200 points, 40 tensor charts
    and the rest as filtered rows, and the page stays small."""
    log = work / "big.jsonl"
    with open(log, "w") as f:
        for i in range(300):
            tensors = [{"name": f"layer.{k}.weight", "dtype": "float32", "shape": [64],
                        "min": -1.0 - i, "max": 1.0 + i, "mean": k * 0.001 * i, "std": 0.5,
                        "nan": 1 if (k == 7 and i == 200) else 0, "inf": 0, "sampled": 1.0,
                        "head": [0.0]} for k in range(300)]
            f.write(json.dumps({"schema": 1, "event": "checkpoint",
                                "time": f"2026-11-23T21:{i // 60:02d}:{i % 60:02d}.000000Z",
                                "host": "h", "pid": 1, "program": "p", "job": "big",
                                "path": f"/r/step_{i}.safetensors", "format": "safetensors",
                                "bytes": 1000 + i, "writes": 1, "seconds": 0.5,
                                "complete": True, "values": {"step": i, "loss": 1 / (i + 1)},
                                "tensors": tensors}) + "\n")
    page = work / "big.html"
    p = subprocess.run(ckmon_args("report", "--log", log, "-o", page), cwd=work,
                       env=clean_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    dom = Dom()
    dom.feed(page.read_text())
    charts = dom.find("figure", class_="tensor")
    assert len(charts) == 40 and charts[0]["attrs"]["data-tensor"] == "layer.7.weight"
    assert len(dom.find("div", class_="row")) == 260
    for line in dom.find("polyline"):
        assert len(line["attrs"]["points"].split()) <= 200
    assert page.stat().st_size < 2_000_000
    # --job keeps one job's records
    p = subprocess.run(ckmon_args("report", "--log", log, "--job", "another", "-o", "other.html"),
                       cwd=work, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    dom = Dom()
    dom.feed((work / "other.html").read_text())
    [count] = dom.find("td", id="count-checkpoints")
    assert count["text"].startswith("0,") and not dom.find("figure", class_="tensor")
