// Starts Cornerstone3D once per page: the core (WebGL rendering), the DICOM image loader (its
// `wadors:` scheme, decode workers and codec WASM served from /assets/, see
// scripts/cornerstone-assets.ts) with the DICOMweb token on every frame request, and the tools.

import { init as coreInit } from '@cornerstonejs/core';
import { init as loaderInit } from '@cornerstonejs/dicom-image-loader';
import {
  addTool,
  CrosshairsTool,
  init as toolsInit,
  LengthTool,
  PanTool,
  RectangleROITool,
  StackScrollTool,
  WindowLevelTool,
  ZoomTool,
} from '@cornerstonejs/tools';
import type { DicomwebClient } from './dicomweb.js';

let started = false;

export function startCornerstone(client: DicomwebClient): void {
  if (started) return;
  started = true;
  coreInit();
  loaderInit({
    // Two decode workers: a CT slice decodes in a few ms, and the page shares the machine.
    maxWebWorkers: Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1)),
    // Returned, not set on the XHR: the XHR requests (which set what is returned) and the streaming
    // ones (`beforeSend(null, ...)`, no XHR) both send these. Byte-range requests never call it
    // and carry the token as `?token=` (stages.ts).
    beforeSend: () => client.headers(),
  });
  toolsInit();
  for (const tool of [
    WindowLevelTool,
    PanTool,
    ZoomTool,
    StackScrollTool,
    LengthTool,
    CrosshairsTool,
    RectangleROITool,
  ])
    addTool(tool);
}
