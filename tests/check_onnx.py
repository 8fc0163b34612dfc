#!/usr/bin/env python3
"""Checks ONNX models that libdl exported (tests/test_onnx.cpp) against runtimes independent of libdl.

Usage: check_onnx.py CASE_DIR...   each CASE_DIR holds model.onnx, inputN.npy and outputN.npy, the
outputs libdl computed for those inputs; a file `names` lists the graph's input names, one a line,
then a line '--', then its output names.

For each case: onnx.checker.check_model(full_check=True) (the structure, the opset's schemas and strict
shape inference), then OpenCV's dnn module (cv2.dnn.readNetFromONNX) runs the graph on the inputs and
every output must match libdl's to 1e-4 relative to the output's scale: max |ocv - libdl| <= 1e-4 *
max(1, max |libdl|). Prints one line per case; exits 1 if any fails, 2 if onnx or cv2 cannot be imported.
"""
import os
import sys

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # not its warnings about the shapes it infers
try:
    import numpy as np
    import onnx
    import cv2
except ImportError as e:  # the test fails, saying what is missing: never a silent skip
    print(f"check_onnx.py: cannot import {e.name} with {sys.executable} "
          "(Debian: apt-get install python3-onnx python3-opencv)")
    sys.exit(2)

TOLERANCE = 1e-4


def check_case(folder):
    model_path = os.path.join(folder, "model.onnx")
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    with open(os.path.join(folder, "names")) as f:
        lines = f.read().split()
    cut = lines.index("--")
    inputs, outputs = lines[:cut], lines[cut + 1:]
    net = cv2.dnn.readNetFromONNX(model_path)
    for i, name in enumerate(inputs):
        net.setInput(np.load(os.path.join(folder, f"input{i}.npy")), name)
    results = net.forward(outputs)
    worst = 0.0
    for k, name in enumerate(outputs):
        want = np.load(os.path.join(folder, f"output{k}.npy"))
        got = np.asarray(results[k]).reshape(want.shape) if results[k].size == want.size else results[k]
        if got.shape != want.shape:
            return f"output '{name}': OpenCV gives shape {got.shape}, libdl {want.shape}"
        err = float(np.max(np.abs(got - want))) / max(1.0, float(np.max(np.abs(want))))
        worst = max(worst, err)
        if not err <= TOLERANCE:
            return f"output '{name}': relative error {err:.3g} > {TOLERANCE}"
    return f"ok (relative error {worst:.3g})"


def main(folders):
    failed = 0
    for folder in folders:
        try:
            verdict = check_case(folder)
        except Exception as e:  # the checker's or OpenCV's own words
            verdict = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        ok = verdict.startswith("ok")
        failed += not ok
        print(f"{os.path.basename(folder.rstrip('/'))}: {verdict}")
    print(f"check_onnx: {len(folders) - failed} models reproduced, {failed} not")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
