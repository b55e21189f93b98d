"""model_states.py — checkpoints shaped like real ones, built with torch from fixed seeds.

Shared by the accuracy test (test_accuracy.py) and the benchmark's save rows
(tools/bench/bench.py): MODELS is Python source for a writer script, defining
resnet_checkpoint() (a resnet18-shaped model after two Adam steps, plus tensors with 1%
NaN/Inf), gpt2_state_dict(dtype) (GPT-2 small's shapes, 124 M parameters),
many_tensors(count) (count tensors of 256 float32), flat(obj) (the record's names) and
truth(obj) (exact statistics in float64).
"""

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

def many_tensors(count=20000):
    g = torch.Generator().manual_seed(3)
    return {f"layer{i}.weight": torch.randn(256, generator=g) * (1 + i % 7) for i in range(count)}

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

