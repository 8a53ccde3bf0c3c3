// Vitest global setup: bundles the viewer into dist/viewer/ (when its sources changed since the
// last build), so the page routes and the browser tests serve what `npm run build` would.
import { buildViewerIfStale } from '../../scripts/build-viewer.js';

export default async function setup(): Promise<void> {
  await buildViewerIfStale();
}
