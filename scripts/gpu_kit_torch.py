#!/usr/bin/env python3
"""PyTorch's side of the GPU kit (scripts/gpu_kit.py): the MNIST CNN and DeepLabv3+ (ResNet-18) training
steps that bench_kernels times in libdl, here in PyTorch's own front end on the same device, in each of
its configurations (cuDNN benchmark mode on; TF32 as PyTorch defaults it, and off; AMP BF16, with and
without channels-last), plus the device's copy bandwidth, the peak the kernels' GB/s are read against.

  gpu_kit_torch.py --device cuda --out torch.json [--budget SECONDS] [--quick]

Writes one JSON object; a case that does not fit the budget is listed under "not_reached".
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class MnistCnn(nn.Module):
    """libdl's nn::MnistCnn: three conv 3x3 + batch norm + ReLU blocks (8, 16, 32), max pools, fc 10."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 1
        for i, filters in enumerate((8, 16, 32)):
            layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.BatchNorm2d(filters), nn.ReLU()]
            if i < 2:
                layers.append(nn.MaxPool2d(2, 2))
            channels = filters
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def conv(cin, cout, k, stride=1, dilation=1, bias=False):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k - 1) // 2, dilation=dilation, bias=bias)


class Block(nn.Module):
    def __init__(self, cin, cout, stride, dilation):
        super().__init__()
        self.conv1, self.bn1 = conv(cin, cout, 3, stride, dilation), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv(cout, cout, 3, 1, dilation), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))


class Cbr(nn.Sequential):
    def __init__(self, cin, cout, k, dilation=1):
        super().__init__(conv(cin, cout, k, 1, dilation), nn.BatchNorm2d(cout), nn.ReLU())


def up(x, h, w):
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


class DeepLabV3Plus(nn.Module):
    """libdl's nn::DeepLabV3Plus: ResNet-18 (output stride 16, the last stage dilated), ASPP at rates 6, 12
    and 18 with image pooling, a decoder on the first stage's features (the twin of tests/reference)."""

    def __init__(self, classes=11):
        super().__init__()
        self.conv1, self.bn1 = conv(3, 64, 7, 2), nn.BatchNorm2d(64)
        stages, cin = [], 64
        for i, cout in enumerate((64, 128, 256, 512)):
            stride, dilation = (1 if i in (0, 3) else 2), (2 if i == 3 else 1)
            stages.append(nn.Sequential(Block(cin, cout, stride, 1), Block(cout, cout, 1, dilation)))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.aspp = nn.ModuleList([Cbr(512, 256, 1)] + [Cbr(512, 256, 3, r) for r in (6, 12, 18)])
        self.pool = Cbr(512, 256, 1)
        self.project = Cbr(256 * 5, 256, 1)
        self.low = Cbr(64, 48, 1)
        self.dec1, self.dec2 = Cbr(304, 256, 3), Cbr(256, 256, 3)
        self.classifier = conv(256, classes, 1, bias=True)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        low = None
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i == 0:
                low = h
        branches = [b(h) for b in self.aspp]
        branches.append(up(self.pool(F.adaptive_avg_pool2d(h, 1)), h.shape[2], h.shape[3]))
        a = up(self.project(torch.cat(branches, 1)), low.shape[2], low.shape[3])
        d = self.dec2(self.dec1(torch.cat([a, self.low(low)], 1)))
        return up(self.classifier(d), x.shape[2], x.shape[3])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model_name, batch, hw, config, device, steps):
    """Median milliseconds of one training step (forward, cross-entropy, backward, update)."""
    torch.manual_seed(1)
    low = config.startswith("bf16") or config.startswith("fp16")
    channels_last = config.endswith("channels-last")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default
        torch.backends.cudnn.allow_tf32 = config != "fp32-strict"  # PyTorch's default is True
    if model_name == "mnist":
        model, x_shape, classes = MnistCnn(), (batch, 1, 28, 28), 10
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        y_shape = (batch,)
    else:
        model, x_shape, classes = DeepLabV3Plus(), (batch, 3, hw[0], hw[1]), 11
        opt = torch.optim.SGD(model.parameters(), lr=0.003, momentum=0.9, weight_decay=0.005)
        y_shape = (batch, hw[0], hw[1])
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    x = torch.randn(x_shape, device=device).to(memory_format=memory_format)
    y = torch.randint(0, classes, y_shape, device=device)
    dtype = torch.float16 if config.startswith("fp16") else torch.bfloat16
    scaler = torch.cuda.amp.GradScaler() if config.startswith("fp16") else None

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=low):
            loss = F.cross_entropy(model(x), y)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):  # warm up: cuDNN's benchmark search, the caching allocator
        step()
    sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    out = {"model": model_name, "batch": batch, "config": config, "ms": times[len(times) // 2], "steps": steps}
    if hw:
        out["size"] = f"{hw[0]}x{hw[1]}"
    if device.type == "cuda":
        out["device_peak_MiB"] = torch.cuda.max_memory_allocated(device) / 1048576
    return out


def copy_bandwidth(device):
    """GB/s of a device-to-device copy of 1 GiB (read + write counted), the kernels' achievable peak."""
    n = (1 << 30) // 4
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    sync(device)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        b.copy_(a)
        sync(device)
        best = max(best, 2 * a.numel() * 4 / (time.perf_counter() - t0) / 1e9)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", required=True)
    p.add_argument("--budget", type=float, default=240)
    p.add_argument("--quick", action="store_true", help="small cases only (the CPU half of the kit)")
    a = p.parse_args()
    start = time.monotonic()
    device = torch.device(a.device)
    result = {"torch": torch.__version__, "device": a.device, "steps": [], "not_reached": [], "errors": []}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        result["gpu"] = torch.cuda.get_device_name(device)
        result["cudnn"] = torch.backends.cudnn.version()
        result["cuda"] = torch.version.cuda
        configs = ["fp32-strict", "fp32", "bf16", "bf16-channels-last", "fp16"]
        cases = [("mnist", b, None) for b in (128, 1024)] + [("deeplab", 8, (360, 480)), ("deeplab", 8, (720, 960))]
        steps = 10
    else:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        configs = ["fp32", "bf16-channels-last"]
        # --quick: the MNIST step libdl's CPU half is compared with, and a small DeepLabv3+ step that checks
        # the twin runs (batch 2: batch norm after the image pooling needs more than one value per channel).
        cases = [("mnist", 128, None), ("deeplab", 2, (90, 120) if a.quick else (360, 480))]
        steps = 3
    if device.type == "cuda":
        try:
            result["copy_GBps"] = copy_bandwidth(device)
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            result["errors"].append(f"copy bandwidth: {e}")
    for model_name, batch, hw in cases:
        for config in configs:
            name = f"{model_name}/{config}/batch:{batch}" + (f"/{hw[0]}x{hw[1]}" if hw else "")
            if time.monotonic() - start > a.budget:
                result["not_reached"].append(name)
                continue
            try:
                result["steps"].append(time_steps(model_name, batch, hw, config, device, steps))
                print(f"gpu_kit_torch: {name}: {result['steps'][-1]['ms']:.2f} ms", flush=True)
            except Exception as e:  # noqa: BLE001 - an out-of-memory case is a figure too
                result["errors"].append(f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    result["seconds"] = time.monotonic() - start
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
