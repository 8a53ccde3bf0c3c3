// Cutting tiles out of one large baseline JPEG at its restart markers (Hamamatsu NDPI stores each
// pyramid level as a single JPEG with a DRI restart interval). Every restart interval decodes on
// its own (the DC predictors reset and the data is byte-aligned), so a run of whole intervals
// becomes a standalone JPEG with no decoding: the level's header with its SOF dimensions set to
// the sub-image's, the intervals' entropy-coded bytes, restart markers renumbered RST0, RST1, ...
// in the order the decoder expects, and EOI. (OpenSlide's hamamatsu reader instead feeds libjpeg
// the full-size header and stops decoding early, which libvips cannot do.)
//
//   level JPEG: [SOI..SOF(W x H)..DRI(R)..SOS] i0 RST0 i1 RST1 ... i7 RST7 i8 RST0 ... EOI
//   tile:       [SOI..SOF(w x h)..DRI(R)..SOS] i9 RST0 i10 RST1 ... i17 EOI

import { DecodeError, UnsupportedFormat } from '../errors.js';

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DRI = 0xdd;
const RST0 = 0xd0;

/** What the header of a restart-interval JPEG says, as needed to cut tiles out of it. */
export interface RestartJpegHeader {
  /** Bytes from SOI up to and including the SOS segment: where the entropy-coded data starts. */
  length: number;
  /** Offset of the SOF marker (`FF Cn`) in the header. */
  sofOffset: number;
  /** Dimensions the SOF declares (0 or truncated for images over 65 535 pixels). */
  width: number;
  height: number;
  precision: number;
  components: number;
  /** MCU size in pixels: 8 x the largest sampling factors (8 x 8 for a single-component scan). */
  mcuWidth: number;
  mcuHeight: number;
  /** MCUs per restart interval (DRI); 0 when the stream has no restart markers. */
  restartInterval: number;
}

/**
 * Parses the marker segments at the start of a JPEG stream up to its SOS. Returns undefined when
 * `bytes` ends before the SOS segment does (read more and try again). Throws `DecodeError` for a
 * stream that is not JPEG, `UnsupportedFormat` for non-sequential (progressive, lossless,
 * arithmetic) or multi-scan streams.
 */
export function parseRestartJpegHeader(bytes: Uint8Array): RestartJpegHeader | undefined {
  if (bytes.length < 2) return undefined;
  if (bytes[0] !== 0xff || bytes[1] !== SOI) throw new DecodeError('JPEG stream does not start with SOI');
  let pos = 2;
  let sof: Omit<RestartJpegHeader, 'length' | 'restartInterval' | 'mcuWidth' | 'mcuHeight'> | undefined;
  let sampling: { h: number; v: number }[] = [];
  let restartInterval = 0;
  for (;;) {
    if (pos + 4 > bytes.length) return undefined;
    if (bytes[pos] !== 0xff) throw new DecodeError(`JPEG header: expected a marker at byte ${pos}`);
    const marker = bytes[pos + 1];
    if (marker === 0xff) {
      pos++; // fill byte
      continue;
    }
    if (marker === SOI || marker === EOI || (marker >= RST0 && marker <= RST0 + 7)) {
      throw new DecodeError(`JPEG header: unexpected marker FF${hex(marker)} before SOS`);
    }
    const segmentLength = (bytes[pos + 2] << 8) | bytes[pos + 3];
    if (segmentLength < 2)
      throw new DecodeError(`JPEG header: segment FF${hex(marker)} has length ${segmentLength}`);
    const end = pos + 2 + segmentLength;
    if (end > bytes.length) return undefined;
    const body = bytes.subarray(pos + 4, end);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (marker !== 0xc0 && marker !== 0xc1) {
        throw new UnsupportedFormat(
          `JPEG SOF${marker - 0xc0} (not baseline/sequential Huffman) is not supported`,
        );
      }
      if (sof) throw new DecodeError('JPEG header has two SOF segments');
      const components = body[5] ?? 0;
      if (body.length < 6 + 3 * components || components < 1)
        throw new DecodeError('JPEG SOF segment is truncated');
      sampling = Array.from({ length: components }, (_, c) => ({
        h: body[7 + 3 * c] >> 4,
        v: body[7 + 3 * c] & 15,
      }));
      if (sampling.some((s) => s.h < 1 || s.h > 4 || s.v < 1 || s.v > 4)) {
        throw new DecodeError('JPEG SOF has invalid sampling factors');
      }
      sof = {
        sofOffset: pos,
        precision: body[0],
        height: (body[1] << 8) | body[2],
        width: (body[3] << 8) | body[4],
        components,
      };
    } else if (marker === DRI) {
      if (body.length < 2) throw new DecodeError('JPEG DRI segment is truncated');
      restartInterval = (body[0] << 8) | body[1];
    } else if (marker === SOS) {
      if (!sof) throw new DecodeError('JPEG reaches SOS without a SOF segment');
      const scanComponents = body[0] ?? 0;
      if (scanComponents !== sof.components) {
        throw new UnsupportedFormat(
          `JPEG with ${scanComponents} of ${sof.components} components per scan is not supported`,
        );
      }
      const single = sof.components === 1;
      return {
        ...sof,
        length: end,
        mcuWidth: single ? 8 : 8 * Math.max(...sampling.map((s) => s.h)),
        mcuHeight: single ? 8 : 8 * Math.max(...sampling.map((s) => s.v)),
        restartInterval,
      };
    }
    pos = end;
  }
}

/** A copy of `header` (SOI..SOS) whose SOF declares `width` x `height` (each 1..65 535). */
export function withFrameSize(
  header: Uint8Array,
  parsed: Pick<RestartJpegHeader, 'sofOffset' | 'length'>,
  width: number,
  height: number,
): Uint8Array {
  if (width < 1 || height < 1 || width > 0xffff || height > 0xffff) {
    throw new UnsupportedFormat(`a JPEG frame cannot be ${width}x${height} pixels (at most 65535 a side)`);
  }
  const out = header.slice(0, parsed.length);
  const p = parsed.sofOffset + 5; // FF Cn, length (2), precision (1)
  out[p] = height >> 8;
  out[p + 1] = height & 255;
  out[p + 2] = width >> 8;
  out[p + 3] = width & 255;
  return out;
}

/**
 * One standalone JPEG: `header` (from `withFrameSize`), then each interval's entropy-coded bytes
 * (without the marker that followed it in the source) separated by RST0..RST7 in cycle, then EOI.
 */
export function assembleRestartJpeg(header: Uint8Array, intervals: readonly Uint8Array[]): Uint8Array {
  let size = header.length + 2 * intervals.length;
  for (const interval of intervals) size += interval.length;
  const out = new Uint8Array(size);
  out.set(header, 0);
  let pos = header.length;
  intervals.forEach((interval, k) => {
    out.set(interval, pos);
    pos += interval.length;
    out[pos] = 0xff;
    out[pos + 1] = k === intervals.length - 1 ? EOI : RST0 + (k % 8);
    pos += 2;
  });
  return out;
}

/** Whether `bytes[at..at+2)` is the restart marker RSTn with n = `index` mod 8. */
export function isRestartMarker(bytes: Uint8Array, at: number, index: number): boolean {
  return bytes[at] === 0xff && bytes[at + 1] === RST0 + (index % 8);
}

/** Whether `bytes` ends with EOI. */
export function endsWithEoi(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[bytes.length - 2] === 0xff && bytes[bytes.length - 1] === EOI;
}

/** What a marker scan found in entropy-coded data. */
export type ScanEvent =
  /** A restart marker RSTn; `next` is the offset just after it (the next interval's start). */
  | { kind: 'restart'; n: number; next: number }
  /** EOI at `at`. */
  | { kind: 'end'; at: number };

/**
 * Scans entropy-coded bytes `data` (which start at source offset `base`) for markers: `FF 00` is
 * a stuffed byte, `FF FF` fill, `FF D0..D7` restart markers, `FF D9` the end. Stops after `limit`
 * restart markers or at EOI. Returns the events and how many bytes were consumed (a trailing
 * `FF` is left for the next chunk). Any other marker is a `DecodeError`.
 */
export function scanRestartMarkers(
  data: Uint8Array,
  base: number,
  limit: number,
): { events: ScanEvent[]; consumed: number } {
  const events: ScanEvent[] = [];
  let restarts = 0;
  let i = 0;
  while (i < data.length) {
    const ff = data.indexOf(0xff, i);
    if (ff < 0 || ff + 1 >= data.length) return { events, consumed: ff < 0 ? data.length : ff };
    const code = data[ff + 1];
    if (code === 0x00 || code === 0xff) {
      i = code === 0x00 ? ff + 2 : ff + 1;
      continue;
    }
    if (code >= RST0 && code <= RST0 + 7) {
      events.push({ kind: 'restart', n: code - RST0, next: base + ff + 2 });
      i = ff + 2;
      if (++restarts >= limit) return { events, consumed: i };
      continue;
    }
    if (code === EOI) {
      events.push({ kind: 'end', at: base + ff });
      return { events, consumed: ff + 2 };
    }
    throw new DecodeError(`unexpected JPEG marker FF${hex(code)} in entropy-coded data at byte ${base + ff}`);
  }
  return { events, consumed: data.length };
}

function hex(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, '0');
}
