"""torch_bench.py — PyTorch's training throughput on the Keras-faithful models of keras_models.py.

usage: /usr/bin/python3 bench/torch_bench.py --model M --size S --batch B [--steps N]
           [--threads T] [--alpha A] [--head H] [--classes K] [--nchw] [--json]

The peer measurement for `initlab bench`: same models (Keras layers, TF padding, Keras BN
settings), one synthetic batch (normal pixels, uniform labels), one warm-up step, then N
timed steps of forward (train mode), cross-entropy, zero_grad, backward and
torch.optim.SGD(lr 0.01, momentum 0.9, nesterov). channels_last memory format unless
--nchw. Prints images/s, seconds per step and the peak RSS of this process
(resource.getrusage ru_maxrss).
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_models as km  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--head", default="keras", choices=["keras", "paper"])
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nchw", action="store_true", help="keep the default NCHW memory format")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    net = km.build(a.model, classes=a.classes, head=a.head, alpha=a.alpha)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
    fmt = torch.contiguous_format if a.nchw else torch.channels_last
    net = net.to(memory_format=fmt).train()
    x = torch.randn(a.batch, 3, a.size, a.size).contiguous(memory_format=fmt)
    y = torch.randint(0, a.classes, (a.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    times = []
    loss = None
    for step in range(-1, a.steps):  # step -1 is the warm-up
        t0 = time.perf_counter()
        out = net(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        if step >= 0:
            times.append(time.perf_counter() - t0)
    per_step = sum(times) / len(times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {
        "model": a.model, "size": a.size, "batch": a.batch, "steps": a.steps,
        "threads": a.threads, "alpha": a.alpha, "head": a.head, "classes": a.classes,
        "memory_format": "nchw" if a.nchw else "channels_last", "torch": torch.__version__,
        "images_per_s": a.batch / per_step, "step_seconds": per_step,
        "step_seconds_min": min(times), "peak_rss_mb": rss_mb, "loss": float(loss),
    }
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"torch {torch.__version__} {a.model} {a.size}px batch {a.batch}, {a.threads} "
              f"threads, {result['memory_format']}: {result['images_per_s']:.2f} images/s, "
              f"{per_step * 1e3:.1f} ms/step (fastest {min(times) * 1e3:.1f}), "
              f"peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
