// Writes tiny baseline JPEGs of one flat colour, split the way TIFF stores them: an abbreviated
// table stream (SOI DQT DHT EOI, what JPEGTables holds) and a tile stream without tables. Tests
// use them where sharp cannot produce what is needed (4:2:2 chroma, table-less tiles, exact
// known sample values: with a quantiser of 1 a flat block decodes to exactly its value).

export interface SynthJpegOptions {
  width: number;
  height: number;
  /** Sample values in the stream's own colour space (Y, Cb, Cr unless marked otherwise), or one gray value. */
  colour: readonly [number, number, number] | readonly [number];
  /** Luma sampling factors [H, V] (chroma is 1x1): [1,1] 4:4:4, [2,1] 4:2:2, [2,2] 4:2:0. */
  lumaSampling?: readonly [number, number];
}

export interface SynthJpeg {
  /** JPEGTables content: SOI, DQT, DHT, EOI. */
  tables: Uint8Array;
  /** The tile: SOI, SOF0, SOS, entropy-coded data, EOI, with no tables of its own. */
  tile: Uint8Array;
  /** Tables spliced into the tile by hand: a standalone stream. */
  standalone: Uint8Array;
}

// Standard luminance DC table (ITU-T T.81 K.3) and an AC table holding only EOB.
const DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_BITS = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const AC_VALUES = [0x00];

function canonicalCodes(bits: number[], values: number[]): Map<number, { code: number; length: number }> {
  const codes = new Map<number, { code: number; length: number }>();
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    for (let i = 0; i < bits[length - 1]; i++) codes.set(values[k++], { code: code++, length });
    code <<= 1;
  }
  return codes;
}

class BitWriter {
  private readonly bytes: number[] = [];
  private accumulator = 0;
  private count = 0;

  write(value: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) {
      this.accumulator = (this.accumulator << 1) | ((value >> i) & 1);
      if (++this.count === 8) this.flushByte();
    }
  }

  finish(): number[] {
    while (this.count !== 0) this.write(1, 1); // pad with 1-bits
    return this.bytes;
  }

  private flushByte(): void {
    this.bytes.push(this.accumulator);
    if (this.accumulator === 0xff) this.bytes.push(0x00); // byte stuffing
    this.accumulator = 0;
    this.count = 0;
  }
}

const segment = (marker: number, body: number[]): number[] => [
  0xff,
  marker,
  (body.length + 2) >> 8,
  (body.length + 2) & 255,
  ...body,
];

export function synthJpeg(options: SynthJpegOptions): SynthJpeg {
  const { width, height, colour } = options;
  const components = colour.length;
  const [h, v] = components === 1 ? [1, 1] : (options.lumaSampling ?? [1, 1]);
  const dqt = segment(0xdb, [0x00, ...new Array<number>(64).fill(1)]);
  const dht = segment(0xc4, [0x00, ...DC_BITS, ...DC_VALUES, 0x10, ...AC_BITS, ...AC_VALUES]);
  const sampling = (c: number): number => (c === 0 ? (h << 4) | v : 0x11);
  const sof = segment(0xc0, [
    8,
    height >> 8,
    height & 255,
    width >> 8,
    width & 255,
    components,
    ...colour.flatMap((_, c) => [c + 1, sampling(c), 0]),
  ]);
  const sos = segment(0xda, [components, ...colour.flatMap((_, c) => [c + 1, 0x00]), 0, 63, 0]);

  const dc = canonicalCodes(DC_BITS, DC_VALUES);
  const ac = canonicalCodes(AC_BITS, AC_VALUES);
  const writer = new BitWriter();
  const previous = new Array<number>(components).fill(0);
  const block = (c: number): void => {
    const coefficient = 8 * (colour[c] - 128); // flat block, quantiser 1
    const diff = coefficient - previous[c];
    previous[c] = coefficient;
    const category = diff === 0 ? 0 : Math.floor(Math.log2(Math.abs(diff))) + 1;
    const huffman = dc.get(category) as { code: number; length: number };
    writer.write(huffman.code, huffman.length);
    if (category > 0) writer.write(diff > 0 ? diff : diff + (1 << category) - 1, category);
    const eob = ac.get(0) as { code: number; length: number };
    writer.write(eob.code, eob.length);
  };
  const mcus = Math.ceil(width / (8 * h)) * Math.ceil(height / (8 * v));
  for (let m = 0; m < mcus; m++) {
    for (let b = 0; b < h * v; b++) block(0);
    for (let c = 1; c < components; c++) block(c);
  }
  const data = writer.finish();

  const SOI = [0xff, 0xd8];
  const EOI = [0xff, 0xd9];
  return {
    tables: Uint8Array.from([...SOI, ...dqt, ...dht, ...EOI]),
    tile: Uint8Array.from([...SOI, ...sof, ...sos, ...data, ...EOI]),
    standalone: Uint8Array.from([...SOI, ...dqt, ...dht, ...sof, ...sos, ...data, ...EOI]),
  };
}
