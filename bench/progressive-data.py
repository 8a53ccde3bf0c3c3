# Makes the data of `npm run bench -- progressive` (called by bench/progressive-data.ts):
# a 3036x3036 16-bit single image (the fixture CT's middle slice upsampled bilinearly, with seeded
# noise of sigma 4 so it does not compress like a smooth synthetic image) and a 512x512x174 series
# (the fixture's 20 slices repeated along z, 3 mm apart, new UIDs), both native explicit VR LE, and a
# 64x64 image (the floor of the browser path).
import copy, os, sys
import numpy as np
import pydicom
from pydicom.uid import generate_uid, ExplicitVRLittleEndian

src, out = sys.argv[1], sys.argv[2]
files = sorted((pydicom.dcmread(os.path.join(src, f)) for f in os.listdir(src)),
               key=lambda d: float(d.ImagePositionPatient[2]))

def native(d):
    d.PixelData = d.pixel_array.astype(np.int16 if d.PixelRepresentation else np.uint16).tobytes()
    d['PixelData'].VR = 'OW'
    d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    d.is_implicit_VR, d.is_little_endian = False, True
    return d

big_dir, vol_dir = os.path.join(out, 'stack3036'), os.path.join(out, 'volume174')
os.makedirs(big_dir, exist_ok=True)
os.makedirs(vol_dir, exist_ok=True)

d = copy.deepcopy(files[len(files) // 2])
px = d.pixel_array.astype(np.float64)
n = 3036
xs = np.linspace(0, px.shape[1] - 1, n)
ys = np.linspace(0, px.shape[0] - 1, n)
rows = np.array([np.interp(xs, np.arange(px.shape[1]), r) for r in px])
img = np.array([np.interp(ys, np.arange(px.shape[0]), c) for c in rows.T]).T
img += np.random.default_rng(16).normal(0, 4, img.shape)
lo, hi = (-(1 << (d.BitsStored - 1)), (1 << (d.BitsStored - 1)) - 1) if d.PixelRepresentation else (0, (1 << d.BitsStored) - 1)
img = np.clip(np.rint(img), lo, hi).astype(np.int16 if d.PixelRepresentation else np.uint16)
d.Rows = d.Columns = n
sp = [float(v) * px.shape[0] / n for v in d.PixelSpacing]
d.PixelSpacing = sp
d.PixelData = img.tobytes()
d['PixelData'].VR = 'OW'
d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
d.is_implicit_VR, d.is_little_endian = False, True
d.StudyInstanceUID, d.SeriesInstanceUID = generate_uid(), generate_uid()
d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = generate_uid()
d.SeriesDescription = 'bench 3036x3036'
d.save_as(os.path.join(big_dir, 'big.dcm'), write_like_original=False)

study, series = generate_uid(), generate_uid()
z0 = float(files[0].ImagePositionPatient[2])
for i in range(174):
    d = files[i % len(files)]
    if i < len(files): native(d)
    d.StudyInstanceUID, d.SeriesInstanceUID = study, series
    d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    d.InstanceNumber = i + 1
    d.ImagePositionPatient = [d.ImagePositionPatient[0], d.ImagePositionPatient[1], z0 + 3.0 * i]
    d.SeriesDescription = 'bench 174 slices'
    d.save_as(os.path.join(vol_dir, f'ct{i:04d}.dcm'), write_like_original=False)

# A 64x64 image (the same middle slice, mean of 8x8 blocks): the browser's floor, through the same
# Cornerstone3D path as the 3036x3036 stack (issue 16: first render with almost nothing to decode).
tiny_dir = os.path.join(out, 'tiny64')
os.makedirs(tiny_dir, exist_ok=True)
d = copy.deepcopy(files[len(files) // 2])
px = d.pixel_array.astype(np.float64)
k = px.shape[0] // 64
img = np.rint(px[: 64 * k, : 64 * k].reshape(64, k, 64, k).mean(axis=(1, 3)))
d.Rows = d.Columns = 64
d.PixelSpacing = [float(v) * k for v in d.PixelSpacing]
d.PixelData = img.astype(np.int16 if d.PixelRepresentation else np.uint16).tobytes()
d['PixelData'].VR = 'OW'
d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
d.is_implicit_VR, d.is_little_endian = False, True
d.StudyInstanceUID, d.SeriesInstanceUID = generate_uid(), generate_uid()
d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = generate_uid()
d.SeriesDescription = 'bench 64x64'
d.save_as(os.path.join(tiny_dir, 'tiny.dcm'), write_like_original=False)
