#!/usr/bin/env python3
"""Fails on any include in libdl/ or kernels/ that points up a layer.

The layer order is libdl/LAYERS (lowest first). A file of layer L may include headers of L and of the
layers below it; a layer marked `private: A B` may be included only from the layers A, B (the
backends are reached through the ops front ends, never from above them). Includes are resolved the
way the build resolves them: <dl/L/...> and "dl/L/..." are the public headers of layer L, "L/..." a
source-tree header of layer L, "x.cuh" beside a kernel is the kernels layer.

  check_layers.py [ROOT]       check the tree at ROOT (default: the repository of this script)
  check_layers.py --self-test  plant an upward include in a copy of the tree and check it is caught
"""
import pathlib
import re
import shutil
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
SOURCE_SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh"}


def read_layers(root):
    order, private = [], {}
    for line in (root / "libdl" / "LAYERS").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        order.append(fields[0])
        if len(fields) > 1:
            if fields[1] != "private:":
                raise SystemExit(f"libdl/LAYERS: expected 'private: LAYER...' after {fields[0]}, got {fields[1]!r}")
            private[fields[0]] = set(fields[2:]) | {fields[0]}
    return order, private


def layer_of_file(root, path, order):
    rel = path.relative_to(root).parts
    if rel[0] == "kernels":
        return "kernels"
    if rel[0] == "libdl":
        candidate = rel[2] if rel[1] == "dl" and len(rel) > 3 else rel[1]
        if candidate in order:
            return candidate
    return None


def layer_of_include(name, own_layer, order, path):
    parts = name.split("/")
    if parts[0] == "dl" and len(parts) > 2 and parts[1] in order:
        return parts[1]
    if parts[0] in order and len(parts) > 1:
        return parts[0]
    if len(parts) == 1 and (path.parent / name).exists():
        return own_layer  # beside the including file
    if own_layer == "kernels" and name.endswith(".cuh"):
        return "kernels"
    return None  # the standard library, third-party headers, dl/config.h, dl/dl.h


def check(root):
    order, private = read_layers(root)
    rank = {layer: i for i, layer in enumerate(order)}
    problems, checked = [], 0
    for top in ("libdl", "kernels"):
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or "emu" in path.relative_to(root).parts:
                continue
            own = layer_of_file(root, path, order)
            if own is None:
                continue
            text = path.read_text(errors="replace")
            for match in INCLUDE.finditer(text):
                target = layer_of_include(match.group(1), own, order, path)
                if target is None:
                    continue
                checked += 1
                line = text.count("\n", 0, match.start()) + 1
                where = f"{path.relative_to(root)}:{line}"
                if rank[target] > rank[own]:
                    problems.append(f"{where}: layer {own} includes {match.group(1)} of layer {target}, "
                                    f"which is above it (libdl/LAYERS: {' < '.join(order)})")
                elif target in private and own not in private[target]:
                    problems.append(f"{where}: layer {own} includes {match.group(1)} of layer {target}, "
                                    f"which only {', '.join(sorted(private[target]))} may include")
    return problems, checked


def self_test(root):
    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp)
        for top in ("libdl", "kernels"):
            shutil.copytree(root / top, copy / top)
        problems, _ = check(copy)
        if problems:
            raise SystemExit("self-test: the tree itself has upward includes:\n" + "\n".join(problems))
        plants = [("libdl/core/shape.cpp", '#include "dl/nn/module.h"', "layer core includes dl/nn/module.h"),
                  ("kernels/compat.cuh", '#include "dl/core/tensor.h"', "layer kernels includes dl/core/tensor.h"),
                  ("libdl/train/trainer.cpp", '#include "backend/cuda/runtime.h"', "which only backend, dist, ops may"),
                  ("libdl/dl/core/params.h", "#include <dl/optim/optimizer.h>", "layer core includes dl/optim")]
        for file, include, expected in plants:
            target = copy / file
            original = target.read_text()
            target.write_text(include + "\n" + original)
            problems, _ = check(copy)
            target.write_text(original)
            if not any(expected in p for p in problems):
                raise SystemExit(f"self-test: planting {include} in {file} was not caught: {problems}")
    print(f"check_layers self-test: {len(plants)} planted upward includes caught")


def main():
    args = sys.argv[1:]
    root = pathlib.Path(__file__).resolve().parent.parent
    if args and args[0] == "--self-test":
        self_test(pathlib.Path(args[1]) if len(args) > 1 else root)
        return
    if args:
        root = pathlib.Path(args[0])
    problems, checked = check(root)
    if problems:
        print("\n".join(problems))
        raise SystemExit(f"check_layers: {len(problems)} include(s) point up a layer")
    print(f"check_layers: {checked} includes of libdl/ and kernels/ follow libdl/LAYERS")


if __name__ == "__main__":
    main()
