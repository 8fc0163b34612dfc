#!/usr/bin/env python3
"""Fails on any call in libdl/ that makes the host wait for a GPU outside the one counted place.

Note [blocking calls] (libdl/dl/core/cuda.h): every such call goes through dl::cuda::blocking
(libdl/backend/cuda/runtime.h), which counts it for dl::cuda::blocking_calls(). A call counts as inside
when it stands within the parentheses of a `blocking(...)` call, whatever file it is in (the runtime's own
file included). The calls looked for: stream, event and device synchronisation, the synchronous copies
(cudaMemcpy and its 2D, 3D, peer and symbol forms; their Async forms are free), cudaFree and cudaFreeHost
(which synchronise the device) and cuDNN's timed algorithm searches (cudnnFind*). Comments and string
literals are not code; the cuDNN loader's table of names (X(cudnnFind...)) declares, it does not call.

  check_blocking_calls.py [ROOT]       check the tree at ROOT (default: the repository of this script)
  check_blocking_calls.py --self-test  plant unwrapped calls in a copy of the tree and check they are caught
"""
import argparse
import pathlib
import re
import shutil
import tempfile

SOURCE_SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh"}
BLOCKING_NAMES = re.compile(
    r"\b(cudaStreamSynchronize|cudaDeviceSynchronize|cudaEventSynchronize|cudaThreadSynchronize|cudaMemcpy|"
    r"cudaMemcpy2D|cudaMemcpy3D|cudaMemcpyPeer|cudaMemcpy3DPeer|cudaMemcpyToSymbol|cudaMemcpyFromSymbol|"
    r"cudaFree|cudaFreeHost|cudnnFind\w*)\b")
WRAPPER = re.compile(r"\bblocking\s*\(")
LOADER_ENTRY = re.compile(r"\bX\(\s*\w+\s*\)")


def strip_comments_and_strings(text):
    """The text with comments, string and character literals blanked out (newlines kept, so that offsets
    and line numbers stay those of the file)."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif text[i] in "\"'":
            quote, j = text[i], i + 1
            while j < n and text[j] != quote and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, min(j, n))  # the quotes stay: "" is still an argument
            i = j + 1
        else:
            i += 1
    return "".join(out)


def wrapped_spans(code):
    """The (start, end) offsets of the argument lists of the blocking(...) calls of `code`."""
    spans = []
    for m in WRAPPER.finditer(code):
        depth, j = 0, m.end() - 1
        while j < len(code):
            if code[j] == "(":
                depth += 1
            elif code[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        spans.append((m.end(), j))
    return spans


def check(root):
    problems, wrapped = [], 0
    for path in sorted((root / "libdl").rglob("*")):
        if path.suffix not in SOURCE_SUFFIXES:
            continue
        code = strip_comments_and_strings(path.read_text(errors="replace"))
        spans = wrapped_spans(code)
        declared = [(m.start(), m.end()) for m in LOADER_ENTRY.finditer(code)]
        for m in BLOCKING_NAMES.finditer(code):
            if any(a <= m.start() < b for a, b in declared):
                continue
            if any(a <= m.start() < b for a, b in spans):
                wrapped += 1
                continue
            line = code.count("\n", 0, m.start()) + 1
            problems.append(f"{path.relative_to(root)}:{line}: {m.group(1)} outside dl::cuda::blocking: wrap it, "
                            f'DL_CUDA_CHECK(blocking("why", [&] {{ return {m.group(1)}(...); }})), so that '
                            f"dl::cuda::blocking_calls() counts it (Note [blocking calls] in dl/core/cuda.h)")
    return problems, wrapped


def self_test(root):
    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp)
        shutil.copytree(root / "libdl", copy / "libdl")
        problems, wrapped = check(copy)
        if problems:
            raise SystemExit("self-test: the tree itself has unwrapped blocking calls:\n" + "\n".join(problems))
        if wrapped == 0:
            raise SystemExit("self-test: no wrapped blocking call found in the tree: is the check looking?")
        plants = [
            # the counted file itself gets no pass
            ("libdl/backend/cuda/runtime.cpp", "void f(cudaStream_t s) { cudaStreamSynchronize(s); }",
             "cudaStreamSynchronize outside"),
            ("libdl/backend/cuda/device.cpp", "void f(void* p) { static_cast<void>(cudaFree(p)); }", "cudaFree outside"),
            ("libdl/dist/nccl_transport.cpp", "void f(void* d, void* s) { cudaMemcpy(d, s, 4, cudaMemcpyDefault); }",
             "cudaMemcpy outside"),
            ("libdl/backend/cuda/cudnn_conv.cpp",
             "auto f = [] { return DL_CUDNN(cudnnFindConvolutionForwardAlgorithmEx); };",
             "cudnnFindConvolutionForwardAlgorithmEx outside"),
            # after a wrapped call on the same line
            ("libdl/backend/cuda/runtime.cpp",
             "void f(cudaEvent_t e) { blocking(\"x\", [&] { return cudaEventSynchronize(e); }); cudaEventSynchronize(e); }",
             "cudaEventSynchronize outside"),
        ]
        for file, code, expected in plants:
            target = copy / file
            original = target.read_text()
            target.write_text(original + "\n" + code + "\n")
            problems, _ = check(copy)
            target.write_text(original)
            if not any(expected in p and p.startswith(file) for p in problems):
                raise SystemExit(f"self-test: planting `{code}` in {file} was not caught: {problems}")
        # Not calls: a comment, a string, the Async forms, the copy kinds.
        quiet = ('// cudaStreamSynchronize(s) in a comment\nconst char* k = "cudaFree(p)";\n'
                 "void g(void* d, void* s, cudaStream_t t) { cudaMemcpyAsync(d, s, 4, cudaMemcpyDeviceToHost, t); "
                 "cudaFreeAsync(d, t); }\n")
        target = copy / "libdl/backend/cuda/device.cpp"
        original = target.read_text()
        target.write_text(original + "\n" + quiet)
        problems, _ = check(copy)
        target.write_text(original)
        if problems:
            raise SystemExit("self-test: comments, strings or asynchronous calls were reported:\n" + "\n".join(problems))
    print(f"check_blocking_calls self-test: {len(plants)} planted unwrapped calls caught, comments and strings passed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-test", action="store_true", help="plant unwrapped calls in a copy of the tree")
    parser.add_argument("root", nargs="?", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent.parent,
                        help="the repository to check (default: this script's)")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.root)
    problems, wrapped = check(args.root)
    print("\n".join(problems) or f"check_blocking_calls: the {wrapped} blocking calls of libdl/ all go through "
          "dl::cuda::blocking")
    if problems:
        raise SystemExit(f"check_blocking_calls: {len(problems)} blocking call(s) outside dl::cuda::blocking")


if __name__ == "__main__":
    main()
