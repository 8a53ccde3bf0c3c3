// A check of a complete JPEG stream without decoding pixels: its markers and tables, and an
// entropy-level walk of the Huffman-coded data (codes and coefficient counts, no IDCT), as strict
// as libjpeg's warnings. It answers "clean" only for streams that libjpeg decodes with no error
// or warning; anything else is "not shown" and the caller decodes the stream in full.
//
// What it accepts: SOI, DQT/DHT/DRI/APPn/COM in any order, one SOF0/SOF1 (8-bit, sequential
// Huffman), one SOS covering every component with Ss=0 Se=63 Ah=Al=0, exactly the MCU count the
// SOF implies (restart markers RST0..7 in sequence at the DRI interval, fewer than 8 unused bits
// before each marker), then EOI. The rules follow libjpeg-turbo's jdmarker.c and jdhuff.c: a
// Huffman code of more than 16 bits (JWRN_HUFF_BAD_CODE), data that runs into a marker
// (JWRN_HIT_MARKER), whole unused bytes before a marker (JWRN_EXTRANEOUS_DATA), a restart marker
// out of sequence (JWRN_MUST_RESYNC) and a missing EOI (JWRN_JPEG_EOF) are all "not shown".

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DQT = 0xdb;
const DHT = 0xc4;
const DRI = 0xdd;
const APP0 = 0xe0;
const APP14 = 0xee;
const COM = 0xfe;
const RST0 = 0xd0;
/**
 * Bits of the direct lookup table per Huffman table: a code and its value bits that fit in 12
 * bits are consumed in one step (libjpeg-turbo's "full lookahead").
 */
const LOOKAHEAD = 12;
/** Look-up entries of a code whose value bits do not fit: bits 0-4 its length, 5-12 its symbol. */
const CODE_ONLY = 0x8000;
/** Tables kept by a `JpegScanner` (a slide has a few; JPEGTables repeat them in every tile). */
const MAX_CACHED_TABLES = 64;
const LOOK_MASK = (1 << LOOKAHEAD) - 1;
/** libjpeg's D_MAX_BLOCKS_IN_MCU. */
const MAX_BLOCKS_IN_MCU = 10;

/** A Huffman table ready for decoding, as libjpeg's d_derived_tbl. */
interface HuffTable {
  /**
   * For every 12-bit prefix that starts with a code whose length plus its value bits fit in 12
   * bits: the bits to consume (bits 0-4) and how far the coefficient index moves (bits 5-11: 1 for
   * a DC code, r + 1 for an AC coefficient, 16 for ZRL, 64 for end of block). For a code of ≤ 12 bits whose value bits
   * do not fit: CODE_ONLY | symbol << 5 | length. 0 for the prefixes of longer codes.
   */
  look: Uint16Array;
  /** Largest code of each length (index 1..16), -1 for none. */
  maxcode: Int32Array;
  /** Index of a length's first symbol minus its first code. */
  valoffset: Int32Array;
  symbols: Uint8Array;
  /** Largest symbol (DC tables must stay ≤ 15). */
  maxSymbol: number;
}

interface Component {
  id: number;
  h: number;
  v: number;
  quant: number;
}

/** Builds a table from a DHT's 16 counts and its symbols; undefined when libjpeg would refuse it. */
function buildTable(counts: Uint8Array, symbols: Uint8Array, isDc: boolean): HuffTable | undefined {
  const look = new Uint16Array(1 << LOOKAHEAD);
  const maxcode = new Int32Array(18).fill(-1);
  const valoffset = new Int32Array(18);
  let code = 0;
  let p = 0;
  for (let length = 1; length <= 16; length++) {
    const n = counts[length - 1];
    if (n > 0) {
      valoffset[length] = p - code;
      for (let i = 0; i < n; i++, p++, code++) {
        const symbol = symbols[p];
        const size = symbol & 15;
        const total = isDc ? length + symbol : length + size;
        if (length > LOOKAHEAD || (isDc && symbol > 15)) continue;
        const run = symbol >> 4;
        const advance = isDc ? 1 : size !== 0 ? run + 1 : run === 15 ? 16 : 64;
        const shift = LOOKAHEAD - length;
        const entry = total <= LOOKAHEAD ? (advance << 5) | total : CODE_ONLY | (symbol << 5) | length;
        for (let fill = 0; fill < 1 << shift; fill++) look[(code << shift) | fill] = entry;
      }
      maxcode[length] = code - 1;
    }
    // jdhuff.c: "code is now 1 more than the last code used for codelength si; but it must still
    // fit in si bits, since no code is allowed to be all ones".
    if (code >= 1 << length) return undefined;
    code <<= 1;
  }
  let maxSymbol = 0;
  for (const s of symbols) if (s > maxSymbol) maxSymbol = s;
  return { look, maxcode, valoffset, symbols, maxSymbol };
}

/**
 * Whether `stream` is a complete baseline/extended sequential Huffman JPEG of at most `maxPixels`
 * pixels that libjpeg decodes without any error or warning. `false` means "not shown": the
 * stream may still decode cleanly (progressive, arithmetic, unusual markers) and needs a decode.
 */
export function scansCleanly(stream: Uint8Array, maxPixels: number): boolean {
  return new JpegScanner().scansCleanly(stream, maxPixels);
}

/**
 * `scansCleanly` with the Huffman tables it builds kept (bounded): the tiles of one slide carry
 * the same tables (TIFF JPEGTables), so a table is built once, not once per tile.
 */
export class JpegScanner {
  private readonly tables = new Map<string, HuffTable | undefined>();

  /** See `scansCleanly`. */
  scansCleanly(stream: Uint8Array, maxPixels: number): boolean {
    return scan(stream, maxPixels, (definition, isDc) => {
      const key = `${isDc ? 'd' : 'a'}${Buffer.from(definition.buffer, definition.byteOffset, definition.length).toString('latin1')}`;
      if (this.tables.has(key)) return this.tables.get(key);
      if (this.tables.size >= MAX_CACHED_TABLES) this.tables.clear();
      const table = buildTable(definition.subarray(0, 16), definition.slice(16), isDc);
      this.tables.set(key, table);
      return table;
    });
  }
}

/** A Huffman table from its DHT definition (16 counts, then the symbols). */
type TableSource = (definition: Uint8Array, isDc: boolean) => HuffTable | undefined;

function scan(stream: Uint8Array, maxPixels: number, tableOf: TableSource): boolean {
  const n = stream.length;
  if (n < 4 || stream[0] !== 0xff || stream[1] !== SOI) return false;
  const dc: (HuffTable | undefined)[] = [];
  const ac: (HuffTable | undefined)[] = [];
  const quant: boolean[] = [];
  let components: Component[] | undefined;
  let width = 0;
  let height = 0;
  let restartInterval = 0;
  let pos = 2;
  for (;;) {
    if (pos + 4 > n || stream[pos] !== 0xff) return false;
    while (pos < n && stream[pos] === 0xff) pos++; // fill bytes before a marker are allowed
    if (pos + 3 > n) return false;
    const marker = stream[pos];
    const length = (stream[pos + 1] << 8) | stream[pos + 2];
    const start = pos + 3;
    const end = pos + 1 + length;
    if (length < 2 || end > n) return false;
    pos = end;
    if (marker === DQT) {
      let p = start;
      while (p < end) {
        const pq = stream[p] >> 4;
        const tq = stream[p] & 15;
        if (tq > 3 || pq > 1) return false;
        p += 1 + 64 * (pq + 1);
        quant[tq] = true;
      }
      if (p !== end) return false;
    } else if (marker === DHT) {
      let p = start;
      while (p < end) {
        if (p + 17 > end) return false;
        const tc = stream[p] >> 4;
        const th = stream[p] & 15;
        if (tc > 1 || th > 3) return false;
        const counts = stream.subarray(p + 1, p + 17);
        let total = 0;
        for (const c of counts) total += c;
        if (total > 256 || p + 17 + total > end) return false;
        const table = tableOf(stream.subarray(p + 1, p + 17 + total), tc === 0);
        if (!table) return false;
        (tc === 0 ? dc : ac)[th] = table;
        p += 17 + total;
      }
    } else if (marker === 0xc0 || marker === 0xc1) {
      if (components || length < 8) return false;
      if (stream[start] !== 8) return false;
      height = (stream[start + 1] << 8) | stream[start + 2];
      width = (stream[start + 3] << 8) | stream[start + 4];
      const nf = stream[start + 5];
      if (height === 0 || width === 0 || (nf !== 1 && nf !== 3) || length !== 8 + 3 * nf) return false;
      if (width * height > maxPixels) return false;
      components = [];
      for (let c = 0; c < nf; c++) {
        const at = start + 6 + 3 * c;
        const h = stream[at + 1] >> 4;
        const v = stream[at + 1] & 15;
        const q = stream[at + 2];
        if (h < 1 || h > 4 || v < 1 || v > 4 || q > 3) return false;
        if (components.some((other) => other.id === stream[at])) return false;
        components.push({ id: stream[at], h, v, quant: q });
      }
    } else if (marker === DRI) {
      if (length !== 4) return false;
      restartInterval = (stream[start] << 8) | stream[start + 1];
    } else if (marker === APP0) {
      // jdmarker.c warns (JWRN_JFIF_MAJOR) on a JFIF major version other than 1.
      if (length >= 16 && isTag(stream, start, 'JFIF\0') && stream[start + 5] !== 1) return false;
    } else if (marker === APP14) {
      // A 3-component Adobe transform other than 0 or 1 is JWRN_ADOBE_XFORM.
      if (length >= 14 && isTag(stream, start, 'Adobe') && stream[start + 11] > 1) return false;
    } else if (marker === COM) {
      // Skipped by libjpeg.
    } else if (marker === SOS) {
      if (!components) return false;
      return scanEntropy(stream, start, end, components, { dc, ac, quant }, width, height, restartInterval);
    } else {
      // Other APPn (EXIF, ICC... parsed by libvips), SOF2+ (progressive, lossless, arithmetic),
      // DNL, DAC, RSTn, a second SOI, EOI before any scan: not shown.
      return false;
    }
  }
}

function isTag(stream: Uint8Array, at: number, tag: string): boolean {
  for (let i = 0; i < tag.length; i++) if (stream[at + i] !== tag.charCodeAt(i)) return false;
  return true;
}

/** The SOS header at `start..end` and the entropy-coded data after it, up to EOI. */
function scanEntropy(
  stream: Uint8Array,
  start: number,
  end: number,
  components: Component[],
  tables: { dc: (HuffTable | undefined)[]; ac: (HuffTable | undefined)[]; quant: boolean[] },
  width: number,
  height: number,
  restartInterval: number,
): boolean {
  const ns = stream[start];
  // One scan covering every component, in frame order.
  if (ns !== components.length || end - start !== 4 + 2 * ns) return false;
  const blockDc: HuffTable[] = [];
  const blockAc: HuffTable[] = [];
  for (let c = 0; c < ns; c++) {
    const component = components[c];
    if (stream[start + 1 + 2 * c] !== component.id) return false;
    const selectors = stream[start + 2 + 2 * c];
    const dcTable = tables.dc[selectors >> 4];
    const acTable = tables.ac[selectors & 15];
    // libjpeg-turbo would fall back on the standard tables for a missing one (Motion-JPEG).
    if (!dcTable || !acTable || dcTable.maxSymbol > 15 || !tables.quant[component.quant]) return false;
    const blocks = ns === 1 ? 1 : component.h * component.v;
    for (let b = 0; b < blocks; b++) {
      blockDc.push(dcTable);
      blockAc.push(acTable);
    }
  }
  const spectral = end - 3;
  if (stream[spectral] !== 0 || stream[spectral + 1] !== 63 || stream[spectral + 2] !== 0) return false;
  if (blockDc.length > MAX_BLOCKS_IN_MCU) return false;
  let hMax = 1;
  let vMax = 1;
  for (const c of components) {
    hMax = Math.max(hMax, c.h);
    vMax = Math.max(vMax, c.v);
  }
  const mcuWidth = ns === 1 ? 8 : 8 * hMax;
  const mcuHeight = ns === 1 ? 8 : 8 * vMax;
  const mcus = Math.ceil(width / mcuWidth) * Math.ceil(height / mcuHeight);
  return walkMcus(stream, end, blockDc, blockAc, mcus, restartInterval);
}

/**
 * Walks `mcus` MCUs of entropy-coded data from `start`: every block's DC and AC codes and value
 * bits, restart markers in sequence, then EOI. One function with its reader state in locals
 * (this is the hot loop); the bit buffer holds up to 32 bits, `count` of them unread.
 */
function walkMcus(
  data: Uint8Array,
  start: number,
  blockDc: HuffTable[],
  blockAc: HuffTable[],
  mcus: number,
  restartInterval: number,
): boolean {
  const n = data.length;
  const blocksPerMcu = blockDc.length;
  let buf = 0;
  let count = 0;
  let pos = start;
  /** A marker (or the end of the data) is next: no more bytes to load before it. */
  let stopped = false;
  let restart = 0;
  for (let mcu = 0; mcu <= mcus; mcu++) {
    if (mcu === mcus || (restartInterval > 0 && mcu > 0 && mcu % restartInterval === 0)) {
      // Fewer than 8 unused bits (libjpeg counts whole unused bytes as extraneous data), then
      // 0xFF (fill bytes allowed) and the marker: RSTn in sequence, or EOI after the last MCU.
      if (count >= 8 || pos >= n || data[pos] !== 0xff) return false;
      while (pos < n && data[pos] === 0xff) pos++;
      if (pos >= n) return false;
      const marker = data[pos++];
      if (mcu === mcus) return marker === EOI;
      if (marker !== RST0 + (restart & 7)) return false;
      restart++;
      buf = 0;
      count = 0;
      stopped = false;
    }
    for (let b = 0; b < blocksPerMcu; b++) {
      let table = blockDc[b];
      // k: the coefficient index; the DC symbol is k = 0, then AC symbols until k reaches 64.
      for (let k = 0; k < 64;) {
        if (count < 25 && !stopped) {
          while (count <= 24) {
            if (pos >= n) {
              stopped = true;
              break;
            }
            const byte = data[pos];
            if (byte === 0xff) {
              // A stuffed 0xFF is FF 00; anything else (fill bytes included) is a marker here.
              if (pos + 1 >= n || data[pos + 1] !== 0) {
                stopped = true;
                break;
              }
              pos += 2;
            } else {
              pos++;
            }
            buf = (buf << 8) | byte;
            count += 8;
          }
        }
        const entry = count >= LOOKAHEAD ? table.look[(buf >>> (count - LOOKAHEAD)) & LOOK_MASK] : 0;
        if (entry !== 0 && entry < CODE_ONLY) {
          count -= entry & 31;
          k += entry >> 5;
        } else {
          // A code whose value bits did not fit in the look-up (its symbol is in the entry), a long
          // code, or fewer than 12 bits before a marker: the code one bit at a time, as libjpeg's
          // jpeg_huff_decode, so only the bits the code really has are required.
          let symbol = -1;
          if (entry !== 0) {
            count -= entry & 31;
            symbol = (entry >> 5) & 0xff;
          } else {
            let code = 0;
            for (let length = 1; length <= 16; length++) {
              if (count === 0) return false; // the data runs into a marker (JWRN_HIT_MARKER)
              count--;
              code = (code << 1) | ((buf >>> count) & 1);
              if (code <= table.maxcode[length]) {
                symbol = table.symbols[table.valoffset[length] + code];
                break;
              }
            }
          }
          if (symbol < 0) return false; // no such code (JWRN_HUFF_BAD_CODE)
          const size = k === 0 ? symbol : symbol & 15;
          if (count < size) {
            // Value bits: load more (a code of ≤ 16 bits was read from ≥ 25, or from all there was).
            while (count <= 24 && !stopped) {
              if (pos >= n) {
                stopped = true;
                break;
              }
              const byte = data[pos];
              if (byte === 0xff) {
                if (pos + 1 >= n || data[pos + 1] !== 0) {
                  stopped = true;
                  break;
                }
                pos += 2;
              } else {
                pos++;
              }
              buf = (buf << 8) | byte;
              count += 8;
            }
            if (count < size) return false;
          }
          count -= size;
          if (k === 0) k = 1;
          else if (size !== 0) k += (symbol >> 4) + 1;
          else k += symbol >> 4 === 15 ? 16 : 64;
        }
        table = blockAc[b];
      }
    }
  }
  return false;
}
