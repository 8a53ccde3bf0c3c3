// The radiology viewer page (Cornerstone3D, bundled by scripts/build-viewer.ts into /assets/):
//   GET /radiology/   study browser and study view (the hash picks: see docs/radiology-viewer.md);
//                     the server ignores trailing slashes, so /radiology answers the same
// The page holds no data: everything it shows comes from /dicomweb with the caller's DICOMweb
// token when auth is on, so it is served like /assets/ (auth.ts exempts it). Its
// Content-Security-Policy allows only this origin, plus WebAssembly compilation (the codecs)
// and module workers (the decoders).

import type { FastifyInstance } from 'fastify';

const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'self'",
].join('; ');

export function registerRadiologyRoutes(app: FastifyInstance): void {
  app.get('/radiology/', async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('Content-Security-Policy', CSP)
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'same-origin')
      .header('Cache-Control', 'no-store')
      .send(PAGE),
  );
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Radiology — MedStream</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/medstream.css">
<link rel="stylesheet" href="/assets/radiology-style.css">
</head>
<body class="radiology">
<header class="topbar"><a class="brand" href="/radiology/">MedStream</a><h1 id="title" class="title">Studies</h1></header>
<main id="app"></main>
<script type="application/json" id="medstream-config">{"dicomwebRoot":"/dicomweb"}</script>
<script type="module" src="/assets/radiology.js"></script>
</body>
</html>
`;
