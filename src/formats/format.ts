// The contract between `detect.ts` and the vendor modules: each vendor file exports
// `{ vendor, detect, open }` (a `SlideFormat`), and all of them look at one shared `SlideProbe`
// so the TIFF structure is parsed once however many vendors inspect it. A lazy probe reads the
// TIFF chain only up to the first directory that would cost a request; detectors look at IFD 0
// alone (`head`), and `open` walks the rest (`tiff`). Formats that can serve level 0 from IFD 0
// alone also export `openBase` (see `detect.ts` `openSlideLazily`).

import type { ByteSource } from '../storage/types.js';
import type { ImageGrid, Slide } from './slide.js';
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
  /**
   * Level 0's stored tiles from the probe's first directory alone (`probe.head()`), without
   * reading the rest of the chain; undefined when the format cannot tell level 0 that way. The
   * grid is kept on the probe (`baseGrid`) so that `open` reuses it for that directory.
   */
  openBase?(probe: SlideProbe, options?: OpenSlideOptions): Promise<ImageGrid | undefined>;
}

/** What the detectors share about one object: its source and, parsed once, its TIFF structure. */
export class SlideProbe {
  private tiffFile: Promise<TiffFile | null> | undefined;
  private opened: TiffFile | null = null;
  /** Level 0's grid when `openBase` made it (IFD 0's image); `open` uses it for IFD 0. */
  baseGrid: ImageGrid | undefined;

  constructor(
    readonly source: ByteSource,
    readonly signal?: AbortSignal,
    /** Read the TIFF chain only as far as the first fetched windows hold it (see the module comment). */
    readonly lazy = false,
  ) {}

  /**
   * The TIFF structure with at least its first directory read (all of them unless the probe is
   * lazy), or null when the object is not a TIFF. Throws `CorruptFile` for a broken TIFF.
   */
  head(): Promise<TiffFile | null> {
    this.tiffFile ??= TiffFile.open(this.source, { signal: this.signal, lazy: this.lazy }).then((tiff) => {
      this.opened = tiff;
      return tiff;
    });
    return this.tiffFile;
  }

  /** The TIFF structure with every directory of its chain read, or null when not a TIFF. */
  async tiff(signal: AbortSignal | undefined = this.signal): Promise<TiffFile | null> {
    const tiff = await this.head();
    await tiff?.readRest(signal);
    return tiff;
  }

  /** Ends the open phase (drops read-ahead windows); the opened slide keeps working. */
  async release(): Promise<void> {
    const tiff = await this.tiffFile?.catch(() => null);
    tiff?.release();
  }

  /** Starts a second open phase after `release()` (a lazy slide's rest): windows are kept again. */
  resume(): void {
    this.opened?.reader.resume();
  }
}
