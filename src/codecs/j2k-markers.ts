// A small JPEG 2000 codestream marker parser (ITU-T T.800 Annex A): the main header's SIZ, CAP,
// COD, QCD and TLM segments and the list of tile-parts (SOT). Used to label derived HTJ2K frames
// with the right transfer syntax (HTJ2K Lossless RPCL only when the stream meets its rules) and by
// the tests that check progression order, TLM presence and where each resolution ends.

import { DecodeError } from '../errors.js';

export const PROGRESSIONS = ['LRCP', 'RLCP', 'RPCL', 'PCRL', 'CPRL'] as const;
export type Progression = (typeof PROGRESSIONS)[number];

export interface J2kTilePart {
  /** Offset of the SOT marker in the codestream. */
  offset: number;
  /** Psot: bytes from the SOT marker to the end of the tile-part. */
  length: number;
  tile: number;
  index: number;
}

export interface J2kCodestream {
  width: number;
  height: number;
  imageOffset: { x: number; y: number };
  tileSize: { width: number; height: number };
  tileOffset: { x: number; y: number };
  components: number;
  bitDepth: number;
  signed: boolean;
  /** Rsiz bit 14: a CAP marker follows (Part 15, HTJ2K). */
  capabilities: boolean;
  /** Pcap bit 15 (Part 15) in the CAP marker. */
  htj2k: boolean;
  progression: Progression;
  layers: number;
  decompositions: number;
  /** 5-3 reversible wavelet (lossless). */
  reversible: boolean;
  /** QCD quantization style: 0 none, 1 scalar derived, 2 scalar expounded. */
  quantization: number;
  /** Tile-part lengths of the TLM segments; undefined without TLM. */
  tlm: number[] | undefined;
  tileParts: J2kTilePart[];
  /** Bytes before the first SOT marker. */
  mainHeaderLength: number;
}

const SOC = 0xff4f;
const SIZ = 0xff51;
const CAP = 0xff50;
const COD = 0xff52;
const QCD = 0xff5c;
const TLM = 0xff55;
const SOT = 0xff90;
const EOC = 0xffd9;

/** Parses the main header and the tile-part list; `DecodeError` for what is not a codestream. */
export function parseJ2kCodestream(bytes: Uint8Array): J2kCodestream {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (at: number, n: number) => {
    if (at + n > bytes.length) throw new DecodeError(`J2K codestream ends inside a marker at ${at}`);
  };
  need(0, 2);
  if (view.getUint16(0) !== SOC) throw new DecodeError('not a JPEG 2000 codestream (no SOC marker)');
  const out: Partial<J2kCodestream> & { tlm?: number[] } = { capabilities: false, htj2k: false };
  let at = 2;
  for (;;) {
    need(at, 4);
    const marker = view.getUint16(at);
    if (marker === SOT) break;
    const length = view.getUint16(at + 2);
    need(at + 2, length);
    const body = at + 4;
    if (marker === SIZ) {
      const rsiz = view.getUint16(body);
      out.capabilities = (rsiz & 0x4000) !== 0;
      out.width = view.getUint32(body + 2) - view.getUint32(body + 10);
      out.height = view.getUint32(body + 6) - view.getUint32(body + 14);
      out.imageOffset = { x: view.getUint32(body + 10), y: view.getUint32(body + 14) };
      out.tileSize = { width: view.getUint32(body + 18), height: view.getUint32(body + 22) };
      out.tileOffset = { x: view.getUint32(body + 26), y: view.getUint32(body + 30) };
      out.components = view.getUint16(body + 34);
      const ssiz = view.getUint8(body + 36);
      out.bitDepth = (ssiz & 0x7f) + 1;
      out.signed = (ssiz & 0x80) !== 0;
    } else if (marker === CAP) {
      const pcap = view.getUint32(body);
      out.htj2k = (pcap & 0x00020000) !== 0; // bit 15 counted from the MSB as bit 1 (Part 15)
    } else if (marker === COD) {
      const progression = view.getUint8(body + 1);
      if (progression >= PROGRESSIONS.length)
        throw new DecodeError(`unknown progression order ${progression}`);
      out.progression = PROGRESSIONS[progression];
      out.layers = view.getUint16(body + 2);
      out.decompositions = view.getUint8(body + 5);
      out.reversible = view.getUint8(body + 9) === 1;
    } else if (marker === QCD) {
      out.quantization = view.getUint8(body) & 0x1f;
    } else if (marker === TLM) {
      const stlm = view.getUint8(body + 1);
      const tileBytes = (stlm >> 4) & 3;
      const lengthBytes = (stlm >> 6) & 1 ? 4 : 2;
      const entry = tileBytes + lengthBytes;
      out.tlm ??= [];
      for (let p = body + 2; p + entry <= at + 2 + length; p += entry) {
        out.tlm.push(lengthBytes === 4 ? view.getUint32(p + tileBytes) : view.getUint16(p + tileBytes));
      }
    }
    at += 2 + length;
  }
  if (out.width === undefined || out.progression === undefined)
    throw new DecodeError('J2K codestream without SIZ or COD marker');
  out.mainHeaderLength = at;
  const tileParts: J2kTilePart[] = [];
  while (at + 2 <= bytes.length && view.getUint16(at) === SOT) {
    need(at, 12);
    const length = view.getUint32(at + 6);
    const part = { offset: at, length, tile: view.getUint16(at + 4), index: view.getUint8(at + 10) };
    if (length < 12 || at + length > bytes.length)
      throw new DecodeError(`tile-part at ${at} of ${length} bytes runs past the codestream`);
    tileParts.push(part);
    at += length;
  }
  if (at + 2 > bytes.length || view.getUint16(at) !== EOC)
    throw new DecodeError('J2K codestream does not end with EOC after its tile-parts');
  out.tileParts = tileParts;
  out.tlm = out.tlm ?? undefined;
  return out as J2kCodestream;
}

/**
 * What keeps a codestream from HTJ2K Lossless RPCL (1.2.840.10008.1.2.4.202, PS3.5 §10.18 as
 * MedStream checks it): it must be HT (CAP), reversible with no quantization, RPCL, carry TLM
 * segments that match its tile-parts, and have zero image and tile offsets. Empty = it meets them.
 */
export function rpclViolations(cs: J2kCodestream): string[] {
  const why: string[] = [];
  if (!cs.capabilities || !cs.htj2k) why.push('no HTJ2K capability (CAP) marker');
  if (!cs.reversible || cs.quantization !== 0) why.push('not reversible');
  if (cs.progression !== 'RPCL') why.push(`progression ${cs.progression}, not RPCL`);
  if (!cs.tlm) why.push('no TLM marker');
  else if (
    cs.tlm.length !== cs.tileParts.length ||
    cs.tlm.some((length, i) => length !== cs.tileParts[i].length)
  )
    why.push('TLM does not match the tile-parts');
  if (cs.imageOffset.x || cs.imageOffset.y || cs.tileOffset.x || cs.tileOffset.y)
    why.push('non-zero offsets');
  return why;
}
