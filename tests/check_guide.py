#!/usr/bin/env python3
"""Every C++ block of docs/guide.md is a region of docs/examples/guide.cpp, word for word, and every
region is in the guide: the guide's code is the code that the tests build and run.

  check_guide.py PROJECT_ROOT
"""
import re
import sys

root = sys.argv[1]
guide = open(f"{root}/docs/guide.md").read()
source = open(f"{root}/docs/examples/guide.cpp").read()
regions = {m.group(1): m.group(2).rstrip("\n")
           for m in re.finditer(r"// \[guide:(\w+)\]\n(.*?)// \[/guide:\1\]\n", source, re.S)}
blocks = [b.rstrip("\n") for b in re.findall(r"```cpp\n(.*?)```", guide, re.S)]
failures = []
if not regions:
    failures.append("docs/examples/guide.cpp has no [guide:NAME] regions")
for i, block in enumerate(blocks):
    if block not in regions.values():
        first = block.splitlines()[0] if block else "(empty)"
        failures.append(f"code block {i + 1} of docs/guide.md (starting '{first}') is no region of guide.cpp")
for name, code in regions.items():
    if code not in blocks:
        failures.append(f"region [guide:{name}] of guide.cpp is not in docs/guide.md")
for f in failures:
    print(f"check_guide: {f}", file=sys.stderr)
print(f"check_guide: {len(blocks)} blocks, {len(regions)} regions, {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
