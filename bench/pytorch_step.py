#!/usr/bin/env python3
"""One PyTorch training-step measurement on the CPU, for bench/step_vs_pytorch.py: the network of
scripts/gpu_kit_torch.py (MnistCnn or DeepLabV3Plus) in one configuration (fp32, bf16, bf16-channels-last),
its median step time printed as one JSON line.

  pytorch_step.py --model deeplab --config bf16-channels-last --batch 2 --size 360x480 [--steps 5]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import torch  # noqa: E402

import gpu_kit_torch  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["mnist", "deeplab"], required=True)
    p.add_argument("--config", default="fp32")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--size", help="HxW (DeepLabv3+)")
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    hw = tuple(int(v) for v in a.size.split("x")) if a.size else None
    result = gpu_kit_torch.time_steps(a.model, a.batch, hw, a.config, torch.device("cpu"), a.steps)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
