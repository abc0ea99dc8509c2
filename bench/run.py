"""run.py — `make bench`: initlab's training throughput against PyTorch's, measured in the same run.

usage: /usr/bin/python3 bench/run.py [--steps N] [--rounds R] [--only SUBSTRING]
                                     [--config MODEL:SIZE:BATCH[:ALPHA] ...]
                                     [--no-concurrency] [--initlab PATH] [--portable PATH]
                                     [--out FILE]

For each configuration (mobilenet 224 px batch 32; resnet50 224 px batch 32; mobilenet
alpha 0.25 128 px batch 64; resnet50 64 px batch 32; Keras head, 1000 classes, 2 threads)
runs `initlab bench --json` and bench/torch_bench.py (channels_last) one after the other,
each in its own process, R rounds in alternation, and prints one table: the best round's
images/s of each, their ratio, each side's share of the fp32 FMA peak and the peak RSS of
each. The share is GFLOP/s over the peak: both sides count initlab's FLOPs per step
(`initlab bench --json` gflop_per_step, its usage text gives the model), so PyTorch's rate
is that × its images/s ÷ the batch; the peak is the best 2-thread FMA peak of the run
(`initlab info --threads 2` and every `initlab bench` measure it; util/peak.c). The
table's heading names the host (vendor, CPU family and model, model name, widest vector
instruction set, from `initlab info --json`), its FMA peak and streaming bandwidth. Then,
unless --no-concurrency, the throughput of two concurrent 1-thread `initlab bench`
processes against one 2-thread process, also the best of R rounds. With --portable (make
bench passes build/portable/initlab, the x86-64-v2 build the Debian package and the image
run, built by scripts/portable.sh), that binary also runs in every round of the
configurations marked portable, and a line gives its images/s against the native build's:
its own kernels choose AVX2 or AVX-512 at run time, and a loop the compiler leaves scalar
without them shows here (such a loop once made the package's MobileNet α 0.25 2.8× slower).
Everything goes to
build/bench.json as well, every round included, with the host ("host": vendor, family,
model, model_name, isa) and the peak ("fma_peak_gflops"; each row's initlab_gflops,
torch_gflops and their *_peak_share). Throughput on a shared or virtual machine drifts by
20% and more over tens of seconds; alternating rounds and keeping each side's best
compares the two at their best moments rather than whichever ran during a slow spell.
Compare ratios and shares of the peak, not absolute numbers. --config replaces the four
configurations (a quick check of the tool on small ones, e.g. mobilenet:32:4:0.25; the
concurrency line then covers each of them).

Scaling out is measured apart: `make bench-scale` (bench/scale.py) times a 4-job grid on
the local executor against two 1-CPU Slurm nodes, the share of a job's time its worker
spends reporting, and what one daemon ingests from simulated workers.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"

CONFIGS = [
    {"name": "mobilenet 224px b32", "model": "mobilenet", "size": 224, "batch": 32, "alpha": 1.0,
     "portable": True},
    {"name": "resnet50 224px b32", "model": "resnet50", "size": 224, "batch": 32, "alpha": 1.0},
    {"name": "mobilenet a0.25 128px b64", "model": "mobilenet", "size": 128, "batch": 64,
     "alpha": 0.25, "portable": True},
    {"name": "resnet50 64px b32", "model": "resnet50", "size": 64, "batch": 32, "alpha": 1.0,
     "portable": True},
]
CONCURRENT = ["mobilenet a0.25 128px b64", "resnet50 64px b32"]


def model_args(c, steps):
    return ["--model", c["model"], "--size", str(c["size"]), "--batch", str(c["batch"]),
            "--alpha", str(c["alpha"]), "--head", "keras", "--classes", "1000",
            "--steps", str(steps)]


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


def initlab_bench(initlab, c, steps, threads):
    return run_json([initlab, "bench", "--json", "--threads", str(threads)] + model_args(c, steps))


def torch_bench(c, steps, threads):
    return run_json([PYTHON, os.path.join(ROOT, "bench", "torch_bench.py"), "--json",
                     "--threads", str(threads)] + model_args(c, steps))


def concurrent(initlab, c, steps):
    """Two 1-thread initlab processes started together; each reports its own images/s."""
    cmd = [initlab, "bench", "--json", "--threads", "1"] + model_args(c, steps)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()}")
        outs.append(json.loads(out))
    return outs


def host_of(info):
    """The host as the table and build/bench.json name it, from `initlab info --json`."""
    cpu = info.get("cpu", {})
    return {"vendor": cpu.get("vendor"), "family": cpu.get("family"),
            "model": cpu.get("model_number"), "model_name": cpu.get("model"),
            "isa": cpu.get("isa")}


def host_line(host):
    return (f"{host['model_name'] or 'unknown CPU'} ({host['vendor']} family {host['family']} "
            f"model {host['model']}, {host['isa']})")


def best_peak(info, rows):
    """The best 2-thread fp32 FMA peak measured in this run (GFLOP/s), or None."""
    limits = info.get("peak") or {}
    peaks = [limits["fma_gflops"]] if limits.get("threads") == 2 else []
    for r in rows:
        p = r["initlab"].get("fma_peak") or {}
        if p.get("threads") == 2 and p.get("gflops"):
            peaks.append(p["gflops"])
    return max(peaks) if peaks else None


def percent(share):
    return f"{100 * share:.0f}%" if share is not None else "-"


def parse_config(text):
    """MODEL:SIZE:BATCH[:ALPHA] as one configuration."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise SystemExit(f"--config {text}: expected MODEL:SIZE:BATCH[:ALPHA]")
    alpha = float(parts[3]) if len(parts) == 4 else 1.0
    name = f"{parts[0]}{'' if alpha == 1.0 else f' a{alpha:g}'} {int(parts[1])}px b{int(parts[2])}"
    return {"name": name, "model": parts[0], "size": int(parts[1]), "batch": int(parts[2]),
            "alpha": alpha, "portable": True}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="make bench-scale (bench/scale.py): the Slurm "
                                 "executor's speed-up and reporting's share")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per run (default 10)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating runs of each side; the best counts (default 3)")
    ap.add_argument("--only", help="run the configurations whose name contains this")
    ap.add_argument("--config", action="append", default=[], metavar="MODEL:SIZE:BATCH[:ALPHA]",
                    help="run this configuration instead of the four (repeatable)")
    ap.add_argument("--no-concurrency", action="store_true")
    ap.add_argument("--initlab", default=os.environ.get("INITLAB_BIN",
                                                         os.path.join(ROOT, "initlab")))
    ap.add_argument("--portable", metavar="PATH",
                    help="also run this build (the x86-64-v2 one) and compare it with --initlab")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench.json"))
    a = ap.parse_args()

    configs, concurrent_names = CONFIGS, CONCURRENT
    if a.config:
        configs = [parse_config(text) for text in a.config]
        concurrent_names = [c["name"] for c in configs]
    configs = [c for c in configs if not a.only or a.only in c["name"]]
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} before the run; other processes skew the numbers",
              flush=True)
    info = run_json([a.initlab, "info", "--json", "--size", "1024", "--threads", "2"])
    host = host_of(info)
    rows = []
    for c in configs:
        print(f"running {c['name']} ...", flush=True)
        t0 = time.monotonic()
        ours_all, peer_all, port_all = [], [], []
        portable = a.portable and c.get("portable")
        for _ in range(max(1, a.rounds)):
            ours_all.append(initlab_bench(a.initlab, c, a.steps, 2))
            peer_all.append(torch_bench(c, a.steps, 2))
            if portable:
                port_all.append(initlab_bench(a.portable, c, a.steps, 2))
        ours = max(ours_all, key=lambda r: r["images_per_s"])
        peer = max(peer_all, key=lambda r: r["images_per_s"])
        row = {"config": c["name"], **{k: c[k] for k in ("model", "size", "batch", "alpha")},
               "initlab": ours, "torch": peer,
               "initlab_rounds": [r["images_per_s"] for r in ours_all],
               "torch_rounds": [r["images_per_s"] for r in peer_all],
               "ratio": ours["images_per_s"] / peer["images_per_s"],
               "rss_ratio": ours["peak_rss_mb"] / peer["peak_rss_mb"],
               "seconds": time.monotonic() - t0}
        if port_all:
            port = max(port_all, key=lambda r: r["images_per_s"])
            row.update({"portable": port,
                        "portable_rounds": [r["images_per_s"] for r in port_all],
                        "portable_ratio": port["images_per_s"] / ours["images_per_s"]})
        rows.append(row)

    peak = best_peak(info, rows)
    for r in rows:
        gflop = r["initlab"].get("gflop_per_step")
        for side in ("initlab", "torch"):
            gflops = gflop * r[side]["images_per_s"] / r["batch"] if gflop else None
            r[f"{side}_gflops"] = gflops
            r[f"{side}_peak_share"] = gflops / peak if gflops and peak else None

    conc = []
    if not a.no_concurrency:
        for c in configs:
            if c["name"] not in concurrent_names:
                continue
            print(f"running {c['name']}: two 1-thread processes vs one 2-thread ...", flush=True)
            pairs = [concurrent(a.initlab, c, a.steps) for _ in range(max(1, a.rounds))]
            pair = max(pairs, key=lambda p: sum(x["images_per_s"] for x in p))
            single = next((r["initlab"] for r in rows if r["config"] == c["name"]), None)
            single = single or initlab_bench(a.initlab, c, a.steps, 2)
            total = sum(p["images_per_s"] for p in pair)
            conc.append({"config": c["name"], "two_1thread_images_per_s": total,
                         "each": [p["images_per_s"] for p in pair],
                         "one_2thread_images_per_s": single["images_per_s"],
                         "ratio": total / single["images_per_s"]})

    print()
    limits = info.get("peak") or {}
    line = f"host: {host_line(host)}; fp32 FMA peak "
    line += f"{peak:.0f} GFLOP/s on 2 threads" if peak else "not measured"
    if limits.get("fma_gflops_per_core"):
        line += f" ({limits['fma_gflops_per_core']:.0f} per core)"
    if limits.get("bandwidth_gbs"):
        line += f", streaming {limits['bandwidth_gbs']:.1f} GB/s"
    print(line)
    print(f"initlab {info.get('version')} (OpenBLAS {info['blas']['core']}, sgemm "
          f"{info['blas']['sgemm']['gflops']:.0f} GFLOP/s on {info['blas']['threads']} threads) "
          f"vs torch {rows[0]['torch']['torch'] if rows else '?'}, 2 threads, "
          f"{a.steps} steps per run, best of {max(1, a.rounds)} alternating rounds")
    hdr = (f"{'configuration':<28}{'initlab img/s':>14}{'torch img/s':>13}{'ratio':>8}"
           f"{'% of FMA peak':>15}{'initlab RSS':>13}{'torch RSS':>11}")
    print(hdr)
    print(f"{'':<63}{'initlab  torch':>15}")
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['config']:<28}{r['initlab']['images_per_s']:>14.2f}"
              f"{r['torch']['images_per_s']:>13.2f}{r['ratio']:>7.2f}x"
              f"{percent(r['initlab_peak_share']):>8}{percent(r['torch_peak_share']):>7}"
              f"{r['initlab']['peak_rss_mb']:>10.0f} MB{r['torch']['peak_rss_mb']:>8.0f} MB")
    for r in rows:
        if "portable" in r:
            print(f"{r['config']}: portable x86-64-v2 build {r['portable']['images_per_s']:.2f} "
                  f"img/s, {r['portable_ratio']:.2f}x the native build's")
    for cc in conc:
        print(f"{cc['config']}: two 1-thread jobs {cc['two_1thread_images_per_s']:.2f} img/s "
              f"({' + '.join(f'{v:.2f}' for v in cc['each'])}), one 2-thread job "
              f"{cc['one_2thread_images_per_s']:.2f} img/s, ratio {cc['ratio']:.2f}")

    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": a.steps,
                   "rounds": max(1, a.rounds),
                   "load_before": load, "host": host, "fma_peak_gflops": peak,
                   "fma_peak_threads": 2, "info": info, "rows": rows, "concurrency": conc},
                  f, indent=1)
    print(f"written to {os.path.relpath(a.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
