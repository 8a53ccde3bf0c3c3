// Placeholder: being written (issue 4).
import type { FastifyInstance } from 'fastify';
import type { TileService } from '../../tiles/tile-service.js';
import type { CachePolicy } from '../image-reply.js';

export function registerRegionRoutes(
  _app: FastifyInstance,
  _tiles: TileService,
  _policy: CachePolicy,
  _options?: { maxRegionPixels: number },
): void {}
