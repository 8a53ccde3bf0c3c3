// Frames transcoded for clients that cannot take the stored transfer syntax (PS3.18 §8.7.3):
// JPEG 2000 and JPEG-LS (lossless and lossy) grayscale frames are decoded at their stored
// precision in worker threads (volumes/frame-samples.ts) and answered as explicit VR little
// endian native pixels (BitsAllocated 8 or 16, signed or not as stored). Other compressed
// syntaxes and colour frames are not transcoded yet: negotiation answers 406 for them.

import type { StoredInstance } from '../catalog/catalog.js';
import { TransferSyntax } from '../dicom/tags.js';
import { DecodeError } from '../errors.js';
import type { FramePixelInfo, FrameSampleDecoder } from '../volumes/frame-samples.js';

/** Stored syntaxes a frame can be transcoded from, to explicit VR little endian. */
const TRANSCODABLE = new Set<string>([
  TransferSyntax.Jpeg2000Lossless,
  TransferSyntax.Jpeg2000,
  TransferSyntax.JpegLsLossless,
  TransferSyntax.JpegLsNearLossless,
]);
const JPEG_LS = new Set<string>([TransferSyntax.JpegLsLossless, TransferSyntax.JpegLsNearLossless]);

function num(instance: StoredInstance, tag: string): number | undefined {
  const v = instance.json[tag]?.Value?.[0];
  return typeof v === 'number' ? v : undefined;
}

/** Whether this instance's frames can be sent as explicit VR little endian after decoding. */
export function canTranscode(instance: StoredInstance): boolean {
  const bits = num(instance, '00280100');
  return (
    TRANSCODABLE.has(instance.transferSyntax) &&
    (num(instance, '00280002') ?? 1) === 1 &&
    (bits === 8 || bits === 16)
  );
}

/** The native little-endian bytes of one stored frame. */
export async function transcodeFrame(
  decoder: FrameSampleDecoder,
  instance: StoredInstance,
  frame: Uint8Array,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const info: FramePixelInfo = {
    rows: num(instance, '00280010') ?? 0,
    columns: num(instance, '00280011') ?? 0,
    bitsAllocated: num(instance, '00280100') ?? 16,
    bitsStored: num(instance, '00280101') ?? 16,
    pixelRepresentation: num(instance, '00280103') ?? 0,
    rescaleSlope: 1,
    rescaleIntercept: 0,
  };
  // JPEG-LS decodes straight to the native layout.
  if (JPEG_LS.has(instance.transferSyntax)) return decoder.decodeJpegLsRaw(frame, info, signal);
  const samples = await decoder.decodeJp2kSamples(frame, info, signal);
  const count = info.rows * info.columns;
  if (samples.length < count)
    throw new DecodeError(`frame decoded to ${samples.length} samples, expected ${count}`);
  const size = info.bitsAllocated / 8;
  const out = new Uint8Array(count * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    if (size === 1) out[i] = samples[i] & 0xff;
    else if (info.pixelRepresentation === 1) view.setInt16(2 * i, samples[i], true);
    else view.setUint16(2 * i, samples[i], true);
  }
  return out;
}
