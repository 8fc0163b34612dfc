#!/usr/bin/env python3
"""The GPU kit's run writes its report whatever happens: when the folder is not a kit, when there is no
GPU, when a stage fails, when the budget runs out during a stage, and when the run is terminated.
A stand-in `cmake` first on PATH makes the build stage fail or hang on cue; nothing is built.

  test_gpu_kit.py PROJECT_ROOT
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT = os.path.join(ROOT, "scripts", "gpu_kit.py")
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAILED: {what}", file=sys.stderr)


def fake_kit(tmp):
    kit = os.path.join(tmp, "kit")
    os.makedirs(os.path.join(kit, "deps"))
    os.symlink(ROOT, os.path.join(kit, "src"))
    return kit


def fake_cmake(tmp, body):
    """A `cmake` that does BODY instead, first on PATH; also hides nvidia-smi (none here anyway)."""
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir, exist_ok=True)
    path = os.path.join(bindir, "cmake")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], DL_KIT_CCACHE="0")


def report_of(out):
    md = os.path.join(out, "report.md")
    js = os.path.join(out, "results.json")
    check(os.path.isfile(md), f"{md} written")
    check(os.path.isfile(js), f"{js} written")
    if not (os.path.isfile(md) and os.path.isfile(js)):
        return "", {"stages": []}
    with open(md) as f, open(js) as g:
        return f.read(), json.load(g)


def status(results, name):
    return next((s for s in results["stages"] if s["name"] == name), {"status": "absent", "detail": ""})


def run(args, env=None, timeout=60):
    return subprocess.run([sys.executable, KIT, "run"] + args, env=env, capture_output=True, text=True, timeout=timeout)


with tempfile.TemporaryDirectory() as tmp:
    # Not a kit: refused, and said so in the report.
    out = os.path.join(tmp, "out-not-a-kit")
    p = run([os.path.join(tmp, "nothing"), out, "--no-gpu"])
    check(p.returncode == 1, f"a missing kit exits 1 (got {p.returncode})")
    md, results = report_of(out)
    check(status(results, "kit")["status"] == "failed" and "not a kit" in md, "the report says the folder is not a kit")

    kit = fake_kit(tmp)

    # No GPU (nvidia-smi answers nothing here): the machine stage fails, the rest is not reached.
    if subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode != 0:
        out = os.path.join(tmp, "out-no-gpu")
        p = run([kit, out], env=fake_cmake(tmp, "exit 0"))
        md, results = report_of(out)
        check(p.returncode == 1, f"a run without a GPU exits 1 (got {p.returncode})")
        check(status(results, "machine")["status"] == "failed" and "--no-gpu" in status(results, "machine")["detail"],
              "without a GPU the machine stage fails and points at --no-gpu")
        check(status(results, "sweep")["status"] == "not reached", "stages after a failed machine stage are not reached")

    # A stage fails: the build (cmake exits 2); every later stage is listed as not reached.
    out = os.path.join(tmp, "out-failed")
    p = run([kit, out, "--no-gpu"], env=fake_cmake(tmp, "echo 'CMake Error: planted failure' >&2; exit 2"))
    md, results = report_of(out)
    check(p.returncode == 1, f"a failed build exits 1 (got {p.returncode})")
    check(status(results, "build")["status"] == "failed", f"the build stage failed: {status(results, 'build')}")
    check("planted failure" in status(results, "build")["detail"], "the failure's last lines are in the report")
    later = [s for s in results["stages"] if s["name"] not in ("machine", "build")]
    check(later and all(s["status"] == "not reached" for s in later), "every stage after the build is not reached")
    check("## Not done" in md and "- train_mnist (not reached)" in md, "report.md lists what was not reached")

    # The budget runs out during a stage: the build hangs, the run stops at the budget.
    out = os.path.join(tmp, "out-budget")
    t0 = time.monotonic()
    p = run([kit, out, "--no-gpu", "--budget", "12"], env=fake_cmake(tmp, "sleep 300"))
    elapsed = time.monotonic() - t0
    md, results = report_of(out)
    check(elapsed < 40, f"the run stops near its budget of 12 s (took {elapsed:.0f} s)")
    check(status(results, "build")["status"] == "stopped", f"the hung build is stopped: {status(results, 'build')}")
    check(all(s["status"] == "not reached" for s in results["stages"][2:]), "nothing runs after the budget ran out")

    # SIGTERM during a stage: the child is stopped and the report written.
    out = os.path.join(tmp, "out-term")
    proc = subprocess.Popen([sys.executable, KIT, "run", kit, out, "--no-gpu"], env=fake_cmake(tmp, "sleep 300"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not os.path.isfile(os.path.join(out, "logs", "configure.log")):
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        check(False, "a terminated run exits within 30 s")
    md, results = report_of(out)
    check(proc.returncode == 1, f"a terminated run exits 1 (got {proc.returncode})")
    check(status(results, "build")["status"] == "stopped" and "terminated" in status(results, "build")["detail"],
          f"the report says the run was terminated: {status(results, 'build')}")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("test_gpu_kit: every check passed")
