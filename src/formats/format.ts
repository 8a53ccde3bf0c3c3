// The contract between `detect.ts` and the vendor modules: each vendor file exports
// `{ vendor, detect, open }` (a `SlideFormat`), and all of them look at one shared `SlideProbe`
// so the TIFF structure is parsed once however many vendors inspect it.

import type { ByteSource } from '../storage/types.js';
import type { Slide } from './slide.js';
import { TiffFile } from './tiff/tiff-file.js';

export interface OpenSlideOptions {
  signal?: AbortSignal;
  /**
   * The other objects in the same folder as the opened one, opened for reading (formats whose
   * slides span several objects, such as DICOM WSI series, use it; others ignore it). Supplied
   * by the caller, so formats still know nothing of storage.
   */
  siblings?: (signal?: AbortSignal) => Promise<ByteSource[]>;
  /** Put patient and study identifiers in the public properties (`--expose-phi`; default false). */
  exposePhi?: boolean;
}

export interface SlideFormat {
  /** Name reported as `Slide.format` and `properties.vendor`. */
  readonly vendor: string;
  /** Whether this format claims the object, by content (never by file name). */
  detect(probe: SlideProbe): Promise<boolean>;
  open(probe: SlideProbe, options?: OpenSlideOptions): Promise<Slide>;
}

/** What the detectors share about one object: its source and, parsed once, its TIFF structure. */
export class SlideProbe {
  private tiffFile: Promise<TiffFile | null> | undefined;

  constructor(
    readonly source: ByteSource,
    readonly signal?: AbortSignal,
  ) {}

  /** The TIFF structure, or null when the object is not a TIFF. Throws `CorruptFile` for a broken TIFF. */
  tiff(): Promise<TiffFile | null> {
    this.tiffFile ??= TiffFile.open(this.source, { signal: this.signal });
    return this.tiffFile;
  }

  /** Ends the open phase (drops read-ahead windows); the opened slide keeps working. */
  async release(): Promise<void> {
    const tiff = await this.tiffFile?.catch(() => null);
    tiff?.release();
  }
}
