"""Training throughput of the U-Net: windows per second for a few widths, with and without bf16 autocast.

Usage: python benchmarks/train_speed.py [--steps 20] [--tile 256] [--batch 4] [--device cpu]
Prints a Markdown table on stdout. Synthetic input: only the model's forward and backward are timed.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from geounet.config import ModelConfig
from geounet.device import autocast, channels_last, resolve_device
from geounet.train.losses import segmentation_loss
from geounet.model import build_model


def bench(width: int, amp: bool, steps: int, tile: int, batch: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = channels_last(build_model(ModelConfig(width=width)).to(device)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = segmentation_loss("bce+dice")
    x = torch.randn(batch, 3, tile, tile, device=device).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, tile, tile, device=device) > 0.7).to(torch.uint8)
    for i in range(steps + 3):
        if i == 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with autocast(device, amp):
            logits = model(x)
        loss = loss_fn(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--widths", default="16,32")
    a = ap.parse_args()
    device = resolve_device(a.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"tile {a.tile}, batch {a.batch}, {a.steps} timed steps\n")
    print("| width | fp32 windows/s | bf16 autocast windows/s | speed-up |")
    print("|---|---|---|---|")
    for w in (int(v) for v in a.widths.split(",")):
        fp32 = bench(w, False, a.steps, a.tile, a.batch, device)
        amp = bench(w, True, a.steps, a.tile, a.batch, device)
        print(f"| {w} | {fp32:.1f} | {amp:.1f} | {amp / fp32:.2f}x |")


if __name__ == "__main__":
    main()
