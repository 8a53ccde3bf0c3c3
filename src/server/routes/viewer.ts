// The built-in pages and their static assets:
//   GET /               slide browser (or a notice when signed URLs are on: it would need /slides)
//   GET /view/{id}      viewer (WSIStreamer's /view/{slide_id}); an HTML error page when the slide
//                       cannot be opened (404 for an unknown id)
//   GET /assets/*       the bundle scripts/build-viewer.ts writes to dist/viewer/ (scripts, CSS,
//                       OpenSeadragon's button images); served without authentication
// Pages carry a Content-Security-Policy that allows only this origin: nothing they load can
// leave the server.

import type { FastifyInstance, FastifyReply } from 'fastify';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { toHttpError } from '../errors.js';

/** Issues the short-lived token a viewer page appends to its requests (see the auth issue). */
export interface ViewerTokenIssuer {
  issue(slideId: string): { vt: string; exp: number };
}

export interface ViewerRouteOptions {
  /** Signed URLs are on: the slide browser is disabled (listing would need credentials). */
  authEnabled: boolean;
  /** Given: `/view/{id}` embeds `issue(id)` and the page sends it with every request. */
  viewerTokens?: ViewerTokenIssuer;
  /** Opens a slide (TileService): the viewer page is only served for a slide that opens. */
  slides: { slide(id: string, signal?: AbortSignal): Promise<unknown> };
  /** Where the built assets are; default `dist/viewer/` of this package. */
  assetsDir?: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'self'",
].join('; ');

/** `dist/viewer/` of the package this file belongs to (from src/ or from dist/). */
export function defaultAssetsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return path.join(dir, 'dist', 'viewer');
}

export function registerViewerRoutes(app: FastifyInstance, options: ViewerRouteOptions): void {
  const assetsDir = path.resolve(options.assetsDir ?? defaultAssetsDir());
  if (!existsSync(path.join(assetsDir, 'viewer.js')))
    app.log.warn({ assetsDir }, 'viewer assets not built: run `npm run build`');

  app.get('/', async (_request, reply) => {
    if (options.authEnabled)
      return sendPage(
        reply,
        200,
        page({
          title: 'MedStream',
          bodyClass: 'browser',
          header: '',
          main: `<div class="notice"><h1>The slide browser is disabled</h1>
<p>Signed URLs are on, so this server does not list its slides to anyone who asks. Open a slide
with the signed viewer link you were given (<code>/view/{id}?…</code>).</p></div>`,
        }),
      );
    return sendPage(
      reply,
      200,
      page({
        title: 'Slides — MedStream',
        bodyClass: 'browser',
        header: `<nav id="crumbs" class="crumbs" aria-label="Folder"></nav>
<input id="search" type="search" placeholder="Search slides" aria-label="Search slides" autocomplete="off">`,
        main: `<p id="status" class="status" role="status"></p>
<ul id="folders" class="folders"></ul>
<ul id="grid" class="grid"></ul>
<button id="more" type="button" hidden>Load more</button>`,
        config: {},
        script: '/assets/browser.js',
      }),
    );
  });

  app.get<{ Params: { id: string } }>('/view/:id', async (request, reply) => {
    const id = request.params.id;
    try {
      await options.slides.slide(id);
    } catch (err) {
      const { status, message } = toHttpError(err);
      const heading = status === 404 ? 'Slide not found' : 'This slide cannot be shown';
      return sendPage(
        reply,
        status,
        page({
          title: `${heading} — MedStream`,
          bodyClass: 'browser error-page',
          header: '',
          main: `<div class="notice" data-status="${status}"><h1>${heading}</h1>
<p>${escapeHtml(message)}</p>
<p>${options.authEnabled ? '' : '<a href="/">Back to the slide browser</a>'}</p></div>`,
        }),
      );
    }
    const config = {
      slideId: id,
      ...(options.viewerTokens ? { token: options.viewerTokens.issue(id) } : {}),
    };
    return sendPage(
      reply,
      200,
      `<!doctype html>
<html lang="en">
<head>
${head(`${id} — MedStream`)}
</head>
<body class="viewer">
<header class="topbar"><a class="brand" href="/">MedStream</a><h1 class="title">${escapeHtml(id)}</h1>
<button id="info-toggle" type="button" aria-controls="panel" aria-expanded="false">Info</button></header>
<div class="viewer-layout">
<div id="osd" tabindex="0" aria-label="Slide viewer"></div>
<aside id="panel" class="panel" aria-label="Slide information"></aside>
</div>
${configScript(config)}
<script type="module" src="/assets/viewer.js"></script>
</body>
</html>
`,
    );
  });

  app.get<{ Params: { '*': string } }>('/assets/*', async (request, reply) => {
    const rel = request.params['*'];
    const file = path.resolve(assetsDir, rel);
    const type = CONTENT_TYPES[path.extname(file)];
    if (!type || !file.startsWith(assetsDir + path.sep) || rel.includes('\0'))
      return assetNotFound(reply, rel);
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      return assetNotFound(reply, rel);
    }
    const etag = `"${createHash('sha1').update(body).digest('base64url')}"`;
    reply
      .header('ETag', etag)
      .header('Cache-Control', 'public, max-age=300')
      .header('X-Content-Type-Options', 'nosniff');
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type(type).send(body);
  });
}

function assetNotFound(reply: FastifyReply, rel: string): FastifyReply {
  return reply
    .code(404)
    .type('application/json; charset=utf-8')
    .send({ error: 'not_found', message: `no asset ${JSON.stringify(rel)}`, status: 404 });
}

function sendPage(reply: FastifyReply, status: number, html: string): FastifyReply {
  return (
    reply
      .code(status)
      .type('text/html; charset=utf-8')
      .header('Content-Security-Policy', CSP)
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'same-origin')
      // A viewer page embeds a short-lived token: never cache it.
      .header('Cache-Control', 'no-store')
      .send(html)
  );
}

function head(title: string): string {
  return `<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/medstream.css">`;
}

function page(p: {
  title: string;
  bodyClass: string;
  header: string;
  main: string;
  config?: object;
  script?: string;
}): string {
  return `<!doctype html>
<html lang="en">
<head>
${head(p.title)}
</head>
<body class="${p.bodyClass}">
<header class="topbar"><a class="brand" href="/">MedStream</a>${p.header}</header>
<main>
${p.main}
</main>
${p.config ? configScript(p.config) : ''}
${p.script ? `<script type="module" src="${p.script}"></script>` : ''}
</body>
</html>
`;
}

/** The page configuration as JSON that cannot end the script element or break out of it. */
function configScript(config: object): string {
  const json = JSON.stringify(config)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return `<script type="application/json" id="medstream-config">${json}</script>`;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
