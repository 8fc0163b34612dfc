#!/usr/bin/env python3
# Lays two or more Google Benchmark JSON files (--benchmark_format=json --benchmark_out=FILE) side by side: one row
# per benchmark name; per file its real time (in the first file's unit for that row), its rates when present
# (bytes_per_second as GB/s, items_per_second as G/s, the FLOP/s counter as GFLOP/s) and its time relative to the
# first file. A header lists each file's context (host, CPUs, MHz, date, the benchmark library's build type). Names
# missing from a file show "—"; entries that errored or were skipped (no GPU, ...) show "skipped".
#
#   scripts/compare_bench.py h200.json a100.json            # Markdown table on stdout
#   scripts/compare_bench.py --csv h200.json a100.json > cmp.csv
#   scripts/compare_bench.py --filter '^Cuda/conv2d' h200.json a100.json
#   scripts/compare_bench.py --self-test
#
# Standard library only. See bench/README.md.
import argparse
import csv
import io
import json
import os
import re
import sys

MISSING = "—"
SKIPPED = "skipped"
# Seconds per unit of Google Benchmark's time_unit.
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
FLOPS = "FLOP/s"  # the counter of bench_ops and bench_kernels' convolution and linear cases
CONTEXT_KEYS = ("host_name", "num_cpus", "mhz_per_cpu", "date", "library_build_type")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def label_of(path):
    """A column label: the file name without .json (the machine's name, by convention)."""
    base = os.path.basename(path)
    return base[:-5] if base.endswith(".json") else base


def index_benchmarks(doc):
    """name -> entry: the mean when repetitions were aggregated, else the first run of the name."""
    out = {}
    for b in doc.get("benchmarks", []):
        name = b.get("run_name") or b.get("name")
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "mean":
                out[name] = b
        elif name not in out:
            out[name] = b
    return out


def is_skipped(b):
    """Errored or skipped entries (SkipWithError: "error_occurred"; newer versions also "skipped")."""
    return bool(b.get("error_occurred")) or bool(b.get("skipped")) or b.get("iterations") == 0


def fmt(v):
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def compare(paths, docs, name_filter=None):
    """Returns (context lines, header row, rows) for the files, in order."""
    labels = []
    for p in paths:  # unique labels: a repeated file name gets "#2", "#3", ...
        label = label_of(p)
        labels.append(label if label not in labels else f"{label}#{sum(l.split('#')[0] == label for l in labels) + 1}")
    indexes = [index_benchmarks(d) for d in docs]
    names = []
    seen = set()
    for idx in indexes:
        for n in idx:
            if n not in seen and (name_filter is None or re.search(name_filter, n)):
                seen.add(n)
                names.append(n)
    has_bytes = any("bytes_per_second" in b for idx in indexes for b in idx.values())
    has_items = any("items_per_second" in b for idx in indexes for b in idx.values())
    has_flops = any(FLOPS in b for idx in indexes for b in idx.values())

    context = []
    for label, path, d in zip(labels, paths, docs):
        c = d.get("context", {})
        parts = [f"{k}={c[k]}" for k in CONTEXT_KEYS if k in c]
        context.append(f"{label} ({path}): " + ", ".join(parts))

    header = ["benchmark"]
    for i, label in enumerate(labels):
        header.append(f"{label} time")
        if has_bytes:
            header.append(f"{label} GB/s")
        if has_items:
            header.append(f"{label} G/s")
        if has_flops:
            header.append(f"{label} GFLOP/s")
        if i > 0:
            header.append(f"{label} / {labels[0]}")

    rows = []
    for name in names:
        first = indexes[0].get(name)
        timed = [idx[name] for idx in indexes if name in idx and not is_skipped(idx[name])]
        # The row's unit: the first file's, or the first file's that ran it (ratios need the first file).
        unit = timed[0].get("time_unit", "ns") if timed else "ns"
        base_s = None
        if first is not None and not is_skipped(first):
            base_s = first["real_time"] * UNIT_SECONDS[first.get("time_unit", "ns")]
        row = [name]
        for i, idx in enumerate(indexes):
            b = idx.get(name)
            if b is None or is_skipped(b):
                cell = MISSING if b is None else SKIPPED
                row.append(cell)
                if has_bytes:
                    row.append(cell)
                if has_items:
                    row.append(cell)
                if has_flops:
                    row.append(cell)
                if i > 0:
                    row.append(cell)
                continue
            t_s = b["real_time"] * UNIT_SECONDS[b.get("time_unit", "ns")]
            row.append(f"{fmt(t_s / UNIT_SECONDS[unit])} {unit}")
            if has_bytes:
                row.append(fmt(b["bytes_per_second"] / 1e9) if "bytes_per_second" in b else MISSING)
            if has_items:
                row.append(fmt(b["items_per_second"] / 1e9) if "items_per_second" in b else MISSING)
            if has_flops:
                row.append(fmt(b[FLOPS] / 1e9) if FLOPS in b else MISSING)
            if i > 0:
                row.append(f"{t_s / base_s:.3f}" if base_s else MISSING)
        rows.append(row)
    return context, header, rows


def to_markdown(context, header, rows):
    out = io.StringIO()
    for line in context:
        out.write(f"- {line}\n")
    out.write("\nTime: real time per iteration, in the first file's unit; ratio: time / time of the first file "
              "(above 1: slower than the first).\n\n")
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|\n")
    for r in rows:
        out.write("| " + " | ".join(r) + " |\n")
    return out.getvalue()


def to_csv(context, header, rows):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for line in context:
        out.write(f"# {line}\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def self_test():
    def doc(host, entries):
        return {"context": {"host_name": host, "num_cpus": 16, "mhz_per_cpu": 3000, "date": "2026-01-01T00:00:00",
                            "library_build_type": "release"},
                "benchmarks": entries}

    a = doc("h200", [
        {"name": "Cuda/add/fwd/x/manual_time", "run_name": "Cuda/add/fwd/x/manual_time", "run_type": "iteration",
         "real_time": 100.0, "time_unit": "us", "bytes_per_second": 4e12},
        {"name": "Emulated/fill/n:1/real_time", "run_name": "Emulated/fill/n:1/real_time", "run_type": "iteration",
         "real_time": 2.0, "time_unit": "ms", "bytes_per_second": 2e8},
        {"name": "Only/in/first", "run_type": "iteration", "real_time": 1.0, "time_unit": "ms"},
        {"name": "Cuda/conv2d/fwd/c/manual_time", "run_type": "iteration", "real_time": 50.0, "time_unit": "us",
         "FLOP/s": 2e14},
    ])
    b = doc("a100", [
        {"name": "Cuda/add/fwd/x/manual_time", "run_name": "Cuda/add/fwd/x/manual_time", "run_type": "iteration",
         "real_time": 0.25, "time_unit": "ms", "bytes_per_second": 1.6e12},
        {"name": "Emulated/fill/n:1/real_time", "run_name": "Emulated/fill/n:1/real_time", "run_type": "iteration",
         "error_occurred": True, "error_message": "no CUDA device", "real_time": 0, "time_unit": "ms"},
        {"name": "Cuda/conv2d/fwd/c/manual_time", "run_type": "iteration", "real_time": 100000.0, "time_unit": "ns",
         "FLOP/s": 1e14},
    ])
    context, header, rows = compare(["h200.json", "a100.json"], [a, b])
    md = to_markdown(context, header, rows)
    # Columns: time, GB/s, GFLOP/s per file, then the ratio of the second file to the first.
    assert "| Cuda/add/fwd/x/manual_time | 100 us | 4000 | — | 250 us | 1600 | — | 2.500 |" in md, md
    assert "| Cuda/conv2d/fwd/c/manual_time | 50.0 us | — | 200000 | 100 us | — | 100000 | 2.000 |" in md, md
    assert "| Emulated/fill/n:1/real_time | 2.00 ms | 0.2 | — | skipped | skipped | skipped | skipped |" in md, md
    assert "| Only/in/first | 1.00 ms | — | — | — | — | — | — |" in md, md
    assert "library_build_type=release" in md and "host_name=a100" in md, md
    text = to_csv(context, header, rows)
    assert "Cuda/add/fwd/x/manual_time,100 us,4000,—,250 us,1600,—,2.500" in text, text
    print("compare_bench.py self-test passed")


def main(argv=None):
    p = argparse.ArgumentParser(description="Compare Google Benchmark JSON files side by side (first file = base).")
    p.add_argument("files", nargs="*", help="two or more JSON files from --benchmark_out (name them after the machine)")
    p.add_argument("--csv", action="store_true", help="CSV instead of a Markdown table")
    p.add_argument("--filter", help="only benchmark names matching this regular expression")
    p.add_argument("--self-test", action="store_true", help="check this script on two made-up files and exit")
    args = p.parse_args(argv)
    if args.self_test:
        self_test()
        return 0
    if len(args.files) < 2:
        p.error("give two or more JSON files")
    docs = [load(f) for f in args.files]
    context, header, rows = compare(args.files, docs, args.filter)
    sys.stdout.write(to_csv(context, header, rows) if args.csv else to_markdown(context, header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
