#!/usr/bin/env python3
"""libdl's CPU training steps against PyTorch's own front end at its best, in one run, as ratios.

Each case runs in its own process (so that each process's peak RSS is its own), the libdl and PyTorch
cases interleaved round by round so that the machine's noise falls on both alike:
  - libdl: build/bin/bench_train_step, one `<Model>TrainStep/libdl/<config>` case per process;
  - PyTorch: the same networks in Python (scripts/gpu_kit_torch.py's MnistCnn and DeepLabV3Plus), with
    tcmalloc preloaded (with glibc's malloc PyTorch returns its big blocks to the kernel and page-faults
    them back every step on these VMs) and in each of its configurations: FP32, and BF16 autocast with
    channels-last.

  bench/step_vs_pytorch.py [--build build] [--rounds 3] [--models deeplab,mnist] [--json out.json]

Prints a table of median milliseconds, peak RSS and each libdl case's ratio to PyTorch's FP32 and to its
fastest configuration. Set OMP_NUM_THREADS (default 2) and pin the process (taskset -c 0,1) for figures
worth quoting; unset OPENBLAS_CORETYPE only in the command you time.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (model, batch, image size, libdl configurations, PyTorch configurations)
MODELS = {
    "deeplab": ("DeepLabTrainStep", 2, (360, 480), ["fp32", "fp32-channels-last", "bf16", "bf16-channels-last"],
                ["fp32", "fp32-channels-last", "bf16-channels-last"]),
    "mnist": ("MnistTrainStep", 1024, None, ["fp32", "bf16"], ["fp32", "bf16-channels-last"]),
}


def tcmalloc():
    hits = sorted(glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4*") + glob.glob("/usr/lib/*/libtcmalloc.so.4*"))
    if not hits:
        sys.exit("step_vs_pytorch: tcmalloc not found (apt-get install libtcmalloc-minimal4; scripts/setup.sh does)")
    return hits[0]


def run_measured(cmd, env=None):
    """Runs cmd and returns (stdout, peak RSS MiB), the RSS read from the child's own rusage."""
    pid = os.fork()
    if pid == 0:  # child: stdout to a pipe file
        with open(run_measured.tmp, "w") as f:
            os.dup2(f.fileno(), 1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.execvpe(cmd[0], cmd, env if env is not None else os.environ)
    _, status, usage = os.wait4(pid, 0)
    with open(run_measured.tmp) as f:
        out = f.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"step_vs_pytorch: {' '.join(cmd)} failed ({os.waitstatus_to_exitcode(status)})")
    return out, usage.ru_maxrss / 1024.0


def libdl_case(build, step_name, config, batch):
    name = f"{step_name}/libdl/{config}"
    out, rss = run_measured([os.path.join(build, "bin", "bench_train_step"),
                             f"--benchmark_filter=^{name}/batch:{batch}/",
                             "--benchmark_format=json"])
    rows = [b for b in json.loads(out)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    if not rows:
        sys.exit(f"step_vs_pytorch: bench_train_step has no case {name}/batch:{batch}")
    ms = statistics.median(r.get("median_ms", r["real_time"]) for r in rows)
    return {"ms": ms, "rss_MiB": rss, "allocator_peak_MiB": rows[0].get("allocator_peak_MiB")}


def torch_python():
    """A Python that imports torch: this one, else Debian's (python3-torch), else DL_TORCH_PYTHON."""
    for exe in [os.environ.get("DL_TORCH_PYTHON"), sys.executable, "/usr/bin/python3"]:
        if exe and subprocess.run([exe, "-c", "import torch"], capture_output=True).returncode == 0:
            return exe
    sys.exit("step_vs_pytorch: no Python here imports torch (apt-get install python3-torch; scripts/setup.sh does)")


def torch_case(model, config, batch, hw, threads):
    env = dict(os.environ, LD_PRELOAD=tcmalloc(), OMP_NUM_THREADS=str(threads))
    cmd = [torch_case.python, os.path.join(ROOT, "bench", "pytorch_step.py"), "--model", model, "--config", config,
           "--batch", str(batch)]
    if hw:
        cmd += ["--size", f"{hw[0]}x{hw[1]}"]
    out, rss = run_measured(cmd, env)
    result = json.loads(out.strip().splitlines()[-1])
    return {"ms": result["ms"], "rss_MiB": rss}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default="deeplab,mnist")
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    run_measured.tmp = os.path.join(a.build, ".step_vs_pytorch.out")
    torch_case.python = torch_python()
    results = {}
    for rnd in range(a.rounds):
        for model in a.models.split(","):
            step_name, batch, hw, ours, theirs = MODELS[model]
            for config in ours:
                r = libdl_case(a.build, step_name, config, batch)
                results.setdefault((model, "libdl", config), []).append(r)
                print(f"round {rnd + 1}: {model} libdl {config}: {r['ms']:.1f} ms", file=sys.stderr, flush=True)
            for config in theirs:
                r = torch_case(model, config, batch, hw, threads)
                results.setdefault((model, "pytorch", config), []).append(r)
                print(f"round {rnd + 1}: {model} pytorch {config}: {r['ms']:.1f} ms", file=sys.stderr, flush=True)
    table = []
    for model in a.models.split(","):
        step_name, batch, hw, ours, theirs = MODELS[model]
        med = {k: statistics.median(r["ms"] for r in v) for k, v in results.items() if k[0] == model}
        rss = {k: max(r["rss_MiB"] for r in v) for k, v in results.items() if k[0] == model}
        torch_fp32 = med[(model, "pytorch", "fp32")]
        torch_best = min(med[(model, "pytorch", c)] for c in theirs)
        print(f"\n{step_name}, batch {batch}" + (f", {hw[0]}x{hw[1]}" if hw else "") + f", {threads} threads")
        print(f"{'case':42s} {'ms':>9s} {'RSS MiB':>9s} {'/torch fp32':>12s} {'/torch best':>12s}")
        for (m, impl, config), ms in sorted(med.items(), key=lambda kv: (kv[0][1], kv[1])):
            print(f"{step_name + '/' + impl + '/' + config:42s} {ms:9.1f} {rss[(m, impl, config)]:9.0f} "
                  f"{ms / torch_fp32:12.2f} {ms / torch_best:12.2f}")
            table.append({"case": f"{step_name}/{impl}/{config}", "ms": ms, "rss_MiB": rss[(m, impl, config)],
                          "vs_torch_fp32": ms / torch_fp32, "vs_torch_best": ms / torch_best})
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"threads": threads, "rounds": a.rounds, "cases": table}, f, indent=2)
        os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
