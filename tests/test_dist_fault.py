#!/usr/bin/env python3
"""A lost rank of a data-parallel run (tests/dist_fault.cpp under mpirun -np 2): a rank that stalls
(SIGSTOP: the launcher does not notice) makes the other stop within the group's timeout with an error
naming rank 1; a rank that dies (SIGKILL) makes the run end at once, the launcher naming rank 1; either
way the run exits non-zero, and the last checkpoint then resumes to the end.

  test_dist_fault.py MPIEXEC DIST_FAULT_BINARY
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

MPIEXEC, BINARY = sys.argv[1], sys.argv[2]
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAILED: {what}", file=sys.stderr)


def run(folder, mode, limit):
    env = dict(os.environ, DL_DIST_TIMEOUT="5", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    try:
        p = subprocess.run([MPIEXEC, "--oversubscribe", "-np", "2", BINARY, folder, mode], env=env,
                           capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        print(out)
        check(False, f"{mode}: still running after {limit} s (a hang)")
        subprocess.run(["pkill", "-KILL", "-f", BINARY])
        return None, "", limit
    out = p.stdout + p.stderr
    print(f"--- {mode}: exit {p.returncode} after {time.monotonic() - t0:.1f} s\n{out}")
    return p.returncode, out, time.monotonic() - t0


for mode in ("stall", "kill"):
    folder = tempfile.mkdtemp(prefix=f"libdl_dist_fault_{mode}_")
    rc, out, seconds = run(folder, mode, limit=120)
    if rc is not None:
        check(rc != 0, f"{mode}: the run exited 0")
        check(seconds < 60, f"{mode}: the run took {seconds:.0f} s to stop (limit 60)")
        check("rank 1" in out, f"{mode}: nothing names rank 1")
        if mode == "stall":
            check("did not answer" in out, "stall: the survivor's error does not say that rank 1 did not answer")
    check(os.path.exists(os.path.join(folder, "checkpoint_epoch1.dlck")), f"{mode}: no checkpoint of epoch 1")
    rc, out, _ = run(folder, "resume", limit=120)
    check(rc == 0 and "finished 4 epochs" in out, f"{mode}: the resumed run did not finish (exit {rc})")
    shutil.rmtree(folder, ignore_errors=True)

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("all checks passed")
