"""test_accuracy.py — statistics you can trust at the default settings (issue 14).

Checkpoints as users save them, under `ckmon run` with no options, against ground truth
that torch computes in float64 in the writer itself:
- a resnet18-shaped model (built here from torch.nn layers) with the Adam state of two
  training steps on random data, so that exp_avg_sq is heavy-tailed, plus a few tensors
  with 1% NaN or Inf laid out in runs and scattered;
- a GPT-2-small-shaped state dict (124 M parameters), saved as float32 and as bfloat16
  (written to /dev/shm when it exists, and deleted once its truth is taken);
- 20,000 tensors of 256 float32.
What must hold (the issue's bar): every model parameter and buffer has `std` within 5% of
the exact value, `|mean - exact| <= 0.05 * exact std` and `min`/`max` inside the exact
range; a tensor with at least 1% NaN/Inf has `nan`/`inf` > 0; every sampled tensor has
`ci95`, and the exact mean and std each fall inside it for at least 95% of the sampled
tensors. The files are built with fixed seeds and the plan is fixed, so the outcome does
not change from run to run.
"""
import json
import os
import shutil
import tempfile

import pytest

from ckmon_helpers import check_record, python_script

MODELS = r'''
import json, sys, torch, torch.nn as nn

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

class ResNet18(nn.Module):
    """torchvision's resnet18, layer for layer (torchvision need not be installed)."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        for i, (cin, cout, stride) in enumerate([(64, 64, 1), (64, 128, 2), (128, 256, 2),
                                                 (256, 512, 2)], 1):
            setattr(self, f"layer{i}", nn.Sequential(Block(cin, cout, stride),
                                                     Block(cout, cout, 1)))
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

def resnet_checkpoint():
    torch.manual_seed(0)
    model = ResNet18()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 1000, (4,))
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    g = torch.Generator().manual_seed(1)
    run = torch.randn(1 << 20, generator=g)
    run[400000:410486] = float("nan")           # 1% in one run
    scattered = torch.randn(300000, generator=g)
    scattered[torch.randperm(300000, generator=g)[:3000]] = float("inf")  # 1% anywhere
    tail = torch.randn(200000, generator=g)
    tail[-2000:] = float("-inf")                 # 1% at the very end
    extra = {"nan_run": run, "inf_scattered": scattered, "inf_tail": tail}
    return {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": 1, "extra": extra}

def gpt2_state_dict(dtype):
    g = torch.Generator().manual_seed(2)
    d, vocab, positions, layers = 768, 50257, 1024, 12
    def normal(*shape, std=0.02):
        return (torch.randn(*shape, generator=g) * std).to(dtype)
    sd = {"wte.weight": normal(vocab, d), "wpe.weight": normal(positions, d, std=0.01)}
    for i in range(layers):
        p = f"h.{i}."
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = torch.ones(d, dtype=dtype), torch.zeros(d, dtype=dtype)
        sd[p + "attn.bias"] = torch.tril(torch.ones(positions, positions)).view(1, 1, positions, positions).to(dtype)
        sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"] = normal(d, 3 * d), normal(3 * d, std=0.01)
        sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"] = normal(d, d, std=0.02 / (2 * layers) ** 0.5), torch.zeros(d, dtype=dtype)
        sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = torch.ones(d, dtype=dtype), torch.zeros(d, dtype=dtype)
        sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = normal(d, 4 * d), normal(4 * d, std=0.01)
        sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = normal(4 * d, d, std=0.02 / (2 * layers) ** 0.5), torch.zeros(d, dtype=dtype)
    sd["ln_f.weight"], sd["ln_f.bias"] = torch.ones(d, dtype=dtype), torch.zeros(d, dtype=dtype)
    return sd

def many_tensors():
    g = torch.Generator().manual_seed(3)
    return {f"layer{i}.weight": torch.randn(256, generator=g) * (1 + i % 7) for i in range(20000)}

def flat(obj, prefix=""):
    """The record's names: nested keys joined with '.'."""
    if torch.is_tensor(obj):
        yield prefix[:-1], obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flat(v, f"{prefix}{k}.")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flat(v, f"{prefix}{i}.")

def truth(obj):
    out = {}
    for name, t in flat(obj):
        if not t.is_floating_point():
            continue
        x = t.detach().flatten().double()
        finite = x[torch.isfinite(x)]
        out[name] = {"n": x.numel(), "nonfinite": x.numel() - finite.numel(),
                     "mean": finite.mean().item(), "std": finite.std(unbiased=False).item(),
                     "min": finite.min().item(), "max": finite.max().item()} if finite.numel() else None
    return out
'''

WRITER = MODELS + r'''
out = sys.argv[1]
def save(name, obj, params, delete=False):
    path = f"{out}/{name}.pt"
    torch.save(obj, path)
    with open(f"{out}/{name}.truth", "w") as f:
        json.dump({"truth": truth(obj), "params": sorted(params)}, f)
    if delete:
        os.unlink(path)
import os
ck = resnet_checkpoint()
save("resnet18_adam", ck, [n for n, _ in flat(ck["model"], "model.")])
del ck
for dtype, name in ((torch.float32, "gpt2_f32"), (torch.bfloat16, "gpt2_bf16")):
    sd = gpt2_state_dict(dtype)
    save(name, sd, list(sd), delete=True)
    del sd
sd = many_tensors()
save("many", sd, list(sd))
'''

NAMES = ("resnet18_adam", "gpt2_f32", "gpt2_bf16", "many")


@pytest.fixture
def out_dir():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    d = tempfile.mkdtemp(prefix="ckmon-accuracy-", dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_default_statistics_meet_the_accuracy_bar(ckmon, work, out_dir):
    run = ckmon.run(*python_script(work, WRITER), out_dir, timeout=900)
    assert run.returncode == 0, run.stderr
    sampled = covered_mean = covered_std = both = 0
    problems = []
    for name in NAMES:
        path = f"{out_dir}/{name}.pt"
        record = run.only_record(path)
        assert record["complete"] and "errors" not in record, record.get("errors")
        with open(f"{out_dir}/{name}.truth") as f:
            saved = json.load(f)
        exact, params = saved["truth"], set(saved["params"])
        tensors = {t["name"]: t for t in record["tensors"]}
        for tname, e in exact.items():
            t = tensors[tname]
            if e is None:
                continue
            if e["nonfinite"] >= 0.01 * e["n"] and t["nan"] + t["inf"] == 0:
                problems.append(f"{name} {tname}: {e['nonfinite']} NaN/Inf, none counted")
            if tname in params:
                if abs(t["std"] - e["std"]) > 0.05 * e["std"] + 1e-12 * abs(e["mean"]):
                    problems.append(f"{name} {tname}: std {t['std']} vs {e['std']}")
                if abs(t["mean"] - e["mean"]) > 0.05 * e["std"] + 1e-12 * abs(e["mean"]):
                    problems.append(f"{name} {tname}: mean {t['mean']} vs {e['mean']} (std {e['std']})")
                if not e["min"] <= t["min"] <= t["max"] <= e["max"]:
                    problems.append(f"{name} {tname}: range {t['min']}..{t['max']} vs {e['min']}..{e['max']}")
            if t["sampled"] < 1:
                sampled += 1
                ci = t["ci95"]
                mean_in = abs(t["mean"] - e["mean"]) <= ci["mean"] + 1e-12 * abs(e["mean"])
                std_in = abs(t["std"] - e["std"]) <= ci["std"] + 1e-12 * e["std"]
                covered_mean += mean_in
                covered_std += std_in
                both += mean_in and std_in
            else:
                assert "ci95" not in t, t
    assert not problems, "\n".join(problems)
    print(f"sampled tensors {sampled}: mean inside ci95 {covered_mean}, std {covered_std}, "
          f"both {both}")
    assert sampled > 150
    assert covered_mean >= 0.95 * sampled and covered_std >= 0.95 * sampled
