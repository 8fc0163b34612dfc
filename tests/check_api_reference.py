#!/usr/bin/env python3
"""Builds the API reference with Doxygen and checks that it documents the public API: the pages of
the central classes exist and carry the comments of their headers (the Doxyfile's filter turns the
headers' // comments into Doxygen's), and the guide is the main page.

  check_api_reference.py DOXYGEN DOCS_DIR     (DOCS_DIR holds the configured Doxyfile)
"""
import glob
import os
import shutil
import subprocess
import sys

doxygen, docs = sys.argv[1], sys.argv[2]
html = os.path.join(docs, "html")
shutil.rmtree(html, ignore_errors=True)
subprocess.run([doxygen, "Doxyfile"], cwd=docs, check=True)
failures = []


def page_with(pattern, text, what):
    pages = glob.glob(os.path.join(html, pattern))
    if not pages:
        failures.append(f"no page {pattern} ({what})")
        return
    content = open(pages[0], encoding="utf-8", errors="replace").read()
    if text not in content:
        failures.append(f"{os.path.basename(pages[0])} lacks '{text}' ({what})")


# Each: a page and a phrase of its header's comments, so that an empty reference fails.
page_with("classdl_1_1Tensor.html", "contiguous", "Tensor and its header's comments")
page_with("classdl_1_1nn_1_1Module.html", "register", "Module")
page_with("classdl_1_1ops_1_1CustomOp.html", "device", "CustomOp")
page_with("classdl_1_1train_1_1Trainer.html", "checkpoint", "Trainer")
page_with("index.html", "A model of your own", "the guide as the main page")
for f in failures:
    print(f"check_api_reference: {f}", file=sys.stderr)
print(f"check_api_reference: {len(glob.glob(os.path.join(html, '*.html')))} pages, {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
