# Independent reference for the built-in tissue model (test/ai/tissue.test.ts): Otsu's threshold
# with NumPy and the opening/closing with scipy.ndimage, on raw RGB bytes.
# Usage: tissue-reference.py FILE WIDTH HEIGHT RADIUS -> JSON {threshold, fraction, mask_sum}
import json
import sys

import numpy as np
from scipy import ndimage

path, width, height, radius = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rgb = np.fromfile(path, dtype=np.uint8).reshape(height, width, 3).astype(np.float64)
luma = np.floor(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2] + 0.5).astype(np.int64)

hist = np.bincount(luma.ravel(), minlength=256).astype(np.float64)
t = np.arange(256, dtype=np.float64)
w0 = np.cumsum(hist)
w1 = w0[-1] - w0
s0 = np.cumsum(t * hist)
valid = (w0 > 0) & (w1 > 0)
mu0 = np.where(valid, s0 / np.maximum(w0, 1), 0)
mu1 = np.where(valid, (s0[-1] - s0) / np.maximum(w1, 1), 0)
between = np.where(valid, w0 * w1 * (mu0 - mu1) ** 2, -1)
threshold = int(np.argmax(between))

tissue = luma <= threshold
gap = luma[~tissue].mean() - luma[tissue].mean() if tissue.any() and (~tissue).any() else 0
if gap >= 8:
    square = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    tissue = ndimage.binary_erosion(tissue, square, border_value=1)
    tissue = ndimage.binary_dilation(tissue, square, border_value=0)
    tissue = ndimage.binary_dilation(tissue, square, border_value=0)
    tissue = ndimage.binary_erosion(tissue, square, border_value=1)
else:
    tissue = np.zeros_like(tissue)
print(json.dumps({"threshold": threshold, "fraction": float(tissue.mean()), "mask": tissue.astype(np.uint8).ravel().tolist()}))
