// Results of segmentation and heatmap inference (and tissue masks): 8-bit gray PNGs kept in a
// byte-bounded LRU under a random id, fetched by clients at /ai/results/{id}.png. Results are
// per replica and transient: a client fetches them soon after the inference that made them.

import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { NotFound } from '../errors.js';
import { ByteLru } from '../io/lru.js';

export class ResultStore {
  private readonly lru: ByteLru<string, Buffer>;

  constructor(maxBytes: number) {
    this.lru = new ByteLru({ maxBytes, sizeOf: (b) => b.length + 64 });
  }

  /** Encodes one gray plane as PNG and stores it; returns its id. */
  async putPlane(plane: { data: Uint8Array; width: number; height: number }): Promise<string> {
    const png = await sharp(plane.data, { raw: { width: plane.width, height: plane.height, channels: 1 } })
      .toColourspace('b-w')
      .png({ compressionLevel: 6 })
      .toBuffer();
    const id = randomUUID();
    this.lru.set(id, png);
    return id;
  }

  get(id: string): Buffer {
    const png = this.lru.get(id);
    if (!png)
      throw new NotFound(`no result ${JSON.stringify(id)} (results are kept for a while, then dropped)`);
    return png;
  }
}
