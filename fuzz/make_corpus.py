#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/ (small valid and nearly
valid files of each format). Run once; the files are committed. Regression inputs (crashes found
and fixed) are added to the same folders by hand, named regression-<what>."""
import gzip, json, os, struct, zlib

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data)

# ---- IDX ----
def idx(type_byte, dims, payload):
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload
put("idx", "ubyte_2x3", idx(8, [2, 3], bytes(range(6))))
put("idx", "labels_4", idx(8, [4], bytes([0, 1, 9, 3])))
put("idx", "int_3", idx(0x0C, [3], struct.pack(">3i", 1, -2, 0x01020304)))
put("idx", "float_2", idx(0x0D, [2], struct.pack(">2f", 1.5, -2.0)))
put("idx", "images_1x28x28.gz", gzip.compress(idx(8, [1, 28, 28], bytes(784)), mtime=0))
put("idx", "two_members.gz", gzip.compress(idx(8, [4], b"ab"), mtime=0) + gzip.compress(b"cd", mtime=0))
put("idx", "truncated", idx(8, [10], bytes(3)))

# ---- PNG / JPEG ----
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
def png(w, h, depth, color, rows, plte=b""):
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    if plte:
        out += chunk(b"PLTE", plte)
    out += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows)))
    return out + chunk(b"IEND", b"")
put("png", "grey1.png", png(8, 2, 1, 0, [b"\xa5", b"\x5a"]))
put("png", "grey4.png", png(3, 1, 4, 0, [b"\x3a\x70"]))
put("png", "grey8.png", png(4, 2, 8, 0, [b"\x00\x01\x02\x03", b"\x04\x05\x06\xff"]))
put("png", "grey16.png", png(2, 1, 16, 0, [b"\x00\x05\x00\xff"]))
put("png", "rgb8.png", png(2, 2, 8, 2, [b"\x80\x80\x80\x80\x40\x80", b"\x00\x00\xc0\x40\x00\x40"]))
put("png", "rgba8.png", png(1, 1, 8, 6, [b"\x80\x80\x80\xff"]))
put("png", "ga8.png", png(2, 1, 8, 4, [b"\x03\xff\x04\x00"]))
put("png", "palette2.png", png(4, 1, 2, 3, [b"\x1b"], plte=b"\x80\x80\x80\x80\x40\x80\x00\x00\xc0\x40\x00\x40"))
put("png", "palette8.png", png(2, 1, 8, 3, [b"\x01\x00"], plte=b"\x80\x80\x80\x80\x40\x80"))
put("png", "gif.png", b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(99))
# A tiny baseline JPEG (8x8 grey) written by hand would be long: take the shortest valid one we know,
# the 1x1 grey JPEG of the JFIF reference layout (SOI, DQT, SOF0, DHT x2, SOS, data, EOI).
jpeg = bytes.fromhex(
    "ffd8ffdb004300030202020203020202030303030406040404040408060605060908"
    "0a0a090809090a0c0f0c0a0b0e0b09090d110d0e0f101011100a0c12131210130f10"
    "1010ffc0000b080001000101011100ffc4001f00000105010101010101000000000000"
    "0000010203040506070809 0a0bffc400b5100002010303020403050504040000017d"
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433"
    "627282090a161718191a25262728292a3435363738393a434445464748494a535455"
    "565758595a636465666768696a737475767778797a838485868788898a9293949596"
    "9798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4"
    "d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f"
    "00fbd3ffd9".replace(" ", ""))
put("png", "grey1x1.jpg", jpeg)

# ---- safetensors ----
def st(header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data
f32 = struct.pack("<4f", 1, 2, 3, 4)
put("safetensors", "one_f32", st({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, f32))
put("safetensors", "meta_and_two", st({"__metadata__": {"format": "pt"},
                                        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                        "b": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}},
                                       struct.pack("<2f", 1, 2) + struct.pack("<q", 7)))
put("safetensors", "bf16_f16", st({"h": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]},
                                    "b": {"dtype": "BF16", "shape": [1], "data_offsets": [2, 4]}}, b"\x00\x3c\x80\x3f"))
put("safetensors", "bool_mask", st({"m": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}, b"\x01\x00\x01"))
put("safetensors", "mnist_like", st({"conv1.weight": {"dtype": "F32", "shape": [2, 1, 3, 3], "data_offsets": [0, 72]},
                                      "conv1.bias": {"dtype": "F32", "shape": [2], "data_offsets": [72, 80]}},
                                     bytes(80)))
put("safetensors", "escapes", st({"w\\u00e9\\n": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\x01"))

# ---- libdl tensor files / checkpoints ----
def tensor_file(meta, tensors):
    out = b"DLTENSR1" + struct.pack("<I", 1) + struct.pack("<Q", len(meta))
    for k, v in meta.items():
        out += struct.pack("<I", len(k)) + k.encode() + struct.pack("<I", len(v)) + v.encode()
    out += struct.pack("<Q", len(tensors))
    for name, dtype, dims, data in tensors:
        out += struct.pack("<I", len(name)) + name.encode() + bytes([dtype, len(dims)])
        out += b"".join(struct.pack("<q", d) for d in dims) + struct.pack("<Q", len(data)) + data
    return out + struct.pack("<I", zlib.crc32(out) & 0xffffffff)
put("checkpoint", "weights", tensor_file({"kind": "weights"}, [("a", 0, [3], struct.pack("<3f", 1, 2, 3))]))
put("checkpoint", "training_state", tensor_file(
    {"kind": "training-state", "solver": "adam", "epoch": "1", "iteration": "4", "optimizer_steps": "4",
     "best_validation_loss": "inf", "patience_count": "0", "shuffle_generator": "1 2 3 4 "},
    [("model.fc.bias", 0, [2], bytes(8))]))
put("checkpoint", "empty", tensor_file({}, []))

# ---- options (one argument a line) ----
for i, args in enumerate([
        ["--lr", "0.01", "--epochs", "3", "--batch-size", "128"],
        ["--batch-size=0"], ["--threads", "-2"], ["--seed", "-1"], ["--memory-limit", "0.4"],
        ["--image-size", "9223372036854775807x48"], ["--gradient-threshold", "inf", "--momentum", "0.95"],
        ["--augment", "off", "--shuffle", "every-epoch", "--keep-checkpoints", "2"], ["--help"]]):
    put("options", "args%d" % i, "\n".join(args).encode())
