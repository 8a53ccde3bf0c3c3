// `GET /slides`: one page of the configured storage's objects, in WSIStreamer's shape
// `{slides: [id...], next_cursor}`, with `prefix` (folder navigation) and `search` (substring
// of the id, case-insensitive, applied within each page of the listing). Only objects with a
// slide file extension are listed; opening a slide still detects its format by content.

import type { FastifyInstance } from 'fastify';
import { BadRequest } from '../../errors.js';
import { validatePrefix } from '../../storage/keys.js';
import type { Storage } from '../../storage/types.js';
import { clientAbortSignal } from '../abort.js';

/** File extensions of the slide formats MedStream reads or will read (lower case). */
const SLIDE_EXTENSIONS = /\.(svs|tif|tiff|btf|tf8|ndpi|dcm|scn|bif|mrxs|vms|vmu|svslide)$/i;

interface SlideListQuery {
  limit?: string;
  cursor?: string;
  prefix?: string;
  search?: string;
}

export function registerSlideListRoutes(app: FastifyInstance, storage: Storage): void {
  app.get<{ Querystring: SlideListQuery }>('/slides', async (request, reply) => {
    const { cursor, search } = request.query;
    const limit = parseLimit(request.query.limit);
    const prefix = validatePrefix(request.query.prefix);
    const page = await storage.list({
      prefix,
      cursor,
      limit,
      delimiter: '/',
      signal: clientAbortSignal(reply),
    });
    const needle = search?.toLowerCase();
    const slides = page.objects
      .map((o) => o.key)
      .filter((key) => SLIDE_EXTENSIONS.test(key) && (!needle || key.toLowerCase().includes(needle)));
    return {
      slides,
      folders: page.prefixes,
      ...(page.nextCursor ? { next_cursor: page.nextCursor } : {}),
    };
  });
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return 100;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= 1000))
    throw new BadRequest(`limit must be an integer from 1 to 1000, got ${JSON.stringify(raw)}`);
  return n;
}
