// The OHIF viewer (prebuilt @ohif/app dist/, docs/ohif.md) under /ohif/, pointed at this server's
// DICOMweb service by an app-config.js generated here. OHIF is built for the site root: its
// index.html, stylesheets and webpack runtime say "/"; those few strings are rewritten as files
// are served (byte offsets found once per file, the rest streamed from disk untouched).
//
//   GET /ohif                 redirect to /ohif/
//   GET /ohif/app-config.js   the generated configuration (never OHIF's own)
//   GET /ohif/<file>          a file of dist/, rewritten where it names the root
//   GET /ohif/<route>         index.html for OHIF's client-side routes (/ohif/viewer?..., ...)
//
// Every response carries the cross-origin isolation headers OHIF asks for (SharedArrayBuffer
// for its volume loader): COOP same-origin, COEP require-corp.

import type { FastifyInstance, FastifyReply } from 'fastify';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { ConfigError, NotFound } from '../../errors.js';

/** Where OHIF is served. */
export const OHIF_PREFIX = '/ohif/';

export interface OhifRouteOptions {
  /** OHIF's dist/ folder (resolveOhifDist). */
  distDir: string;
}

/** One string replaced in a served file. */
interface Rewrite {
  from: Buffer;
  to: Buffer;
}

const rewrite = (from: string, to: string): Rewrite => ({
  from: Buffer.from(from, 'utf8'),
  to: Buffer.from(to, 'utf8'),
});

// The webpack runtime of OHIF's bundle and of each of its workers loads chunks, workers, WASM
// and images from this public path, fixed at build time (PUBLIC_URL does not reach it).
const SCRIPT_REWRITES = [
  rewrite('__webpack_require__.p = "/";', `__webpack_require__.p = "${OHIF_PREFIX}";`),
];
// app.bundle.css loads its font from the root.
const STYLE_REWRITES = [rewrite('url(/', `url(${OHIF_PREFIX}`)];

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.xml': 'application/xml; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/** Files whose names carry a content hash (`app.bundle.0f6159c501addfe9.js`, `34b1e6b1deb5828e.wasm`). */
const HASHED = /(^|\.)[0-9a-f]{16}\.[a-z0-9]+$/;

/** The folder of the package this file belongs to (from src/ or from dist/). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return dir;
}

/**
 * OHIF's dist/ folder: `dir` when given, else `vendor/ohif/dist` (scripts/install-ohif.sh), else
 * `node_modules/@ohif/app/dist` (a full `npm install @ohif/app`). A ConfigError when none holds
 * OHIF's index.html.
 */
export function resolveOhifDist(dir?: string): string {
  const root = packageRoot();
  const candidates =
    dir !== undefined
      ? [path.resolve(dir)]
      : [path.join(root, 'vendor', 'ohif', 'dist'), path.join(root, 'node_modules', '@ohif', 'app', 'dist')];
  const found = candidates.find((c) => existsSync(path.join(c, 'index.html')));
  if (found === undefined) {
    throw new ConfigError(
      `--ohif: no OHIF build in ${candidates.join(' or ')} (install it with \`npm run ohif:install\`, docs/ohif.md)`,
    );
  }
  return found;
}

/** OHIF's index.html with every root URL moved under the prefix; throws if it does not look like one. */
export function rewriteIndexHtml(html: string): string {
  if (!html.includes('window.PUBLIC_URL="/"')) {
    throw new ConfigError('--ohif: index.html does not set window.PUBLIC_URL="/" (not an OHIF 3 build?)');
  }
  return html
    .replaceAll('window.PUBLIC_URL="/"', `window.PUBLIC_URL="${OHIF_PREFIX}"`)
    .replace(/\b(href|src)="\/(?!\/)/g, `$1="${OHIF_PREFIX}`);
}

// With --auth-enabled, DICOMweb wants a token. OHIF sends one only on its viewer routes opened
// with `?token=` (Mode.tsx); its study list sends none. So: a `?token=` on any /ohif/ page is kept
// for the tab (sessionStorage) and added as a Bearer header to every XMLHttpRequest and fetch to
// this server's /dicomweb that carries no Authorization of its own (docs/ohif.md, "Tokens").
const TOKEN_SCRIPT = `
  var KEY = 'medstream.dicomweb.token';
  var token = new URLSearchParams(window.location.search).get('token') || window.sessionStorage.getItem(KEY);
  if (!token) return;
  window.sessionStorage.setItem(KEY, token);
  var ours = function (url) {
    var href = new URL(String(url), window.location.href).href;
    return href === root || href.indexOf(root + '/') === 0 || href.indexOf(root + '?') === 0;
  };
  var xhr = XMLHttpRequest.prototype;
  var open = xhr.open, setRequestHeader = xhr.setRequestHeader, send = xhr.send;
  xhr.open = function (method, url) {
    this.medstreamDicomweb = ours(url);
    this.medstreamAuthorized = false;
    return open.apply(this, arguments);
  };
  xhr.setRequestHeader = function (name) {
    if (String(name).toLowerCase() === 'authorization') this.medstreamAuthorized = true;
    return setRequestHeader.apply(this, arguments);
  };
  xhr.send = function () {
    if (this.medstreamDicomweb && !this.medstreamAuthorized) {
      setRequestHeader.call(this, 'Authorization', 'Bearer ' + token);
    }
    return send.apply(this, arguments);
  };
  var fetch = window.fetch;
  window.fetch = function (input, init) {
    var request = new Request(input, init);
    if (ours(request.url) && !request.headers.has('Authorization')) {
      request.headers.set('Authorization', 'Bearer ' + token);
    }
    return fetch.call(window, request);
  };`.split('\n');

/**
 * The app-config.js OHIF reads before it starts: one DICOMweb data source at this server's
 * /dicomweb (the page's own origin, so it works behind any host name), declaring what
 * src/dicomweb/qido.ts implements: includefield, fuzzy matching of person names, `*`/`?` wildcards.
 */
export function ohifAppConfig(): string {
  const configuration = {
    friendlyName: 'MedStream',
    name: 'medstream',
    // Frames as WADO-RS (multipart/related, no quotes around the type parameter, which some
    // servers reject; MedStream accepts both).
    imageRendering: 'wadors',
    thumbnailRendering: 'wadors',
    omitQuotationForMultipartRequest: true,
    qidoSupportsIncludeField: true,
    supportsFuzzyMatching: true,
    supportsWildcard: true,
    supportsReject: false,
    // A real QIDO/WADO server, not a static file tree.
    staticWado: false,
    enableStudyLazyLoad: true,
    singlepart: 'bulkdata,video',
    bulkDataURI: { enabled: true },
  };
  const config = {
    name: 'medstream',
    routerBasename: OHIF_PREFIX.slice(0, -1),
    extensions: [],
    modes: [],
    customizationService: {},
    showStudyList: true,
    maxNumberOfWebWorkers: 3,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    investigationalUseDialog: { option: 'never' },
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 25 },
    showErrorDetails: 'always',
    defaultDataSourceName: 'medstream',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'medstream',
        configuration,
      },
    ],
  };
  return [
    '// Generated by MedStream (src/server/routes/ohif.ts): OHIF reads this DICOMweb service.',
    '(function () {',
    "  var root = window.location.origin + '/dicomweb';",
    `  var config = ${JSON.stringify(config, null, 2).replaceAll('\n', '\n  ')};`,
    '  var source = config.dataSources[0].configuration;',
    '  source.qidoRoot = root;',
    '  source.wadoRoot = root;',
    '  source.wadoUriRoot = root;',
    '  window.config = config;',
    ...TOKEN_SCRIPT,
    '})();',
    '',
  ].join('\n');
}

/** Offsets of every occurrence of each rewrite's `from` in `bytes`, in file order. */
function findRewrites(bytes: Buffer, rewrites: readonly Rewrite[]): Array<{ at: number; rewrite: Rewrite }> {
  const hits: Array<{ at: number; rewrite: Rewrite }> = [];
  for (const r of rewrites) {
    for (let at = bytes.indexOf(r.from); at >= 0; at = bytes.indexOf(r.from, at + r.from.length)) {
      hits.push({ at, rewrite: r });
    }
  }
  return hits.sort((a, b) => a.at - b.at);
}

/** A file with its rewrites spliced in, streamed from disk. */
async function* spliced(
  file: string,
  size: number,
  hits: ReadonlyArray<{ at: number; rewrite: Rewrite }>,
): AsyncGenerator<Buffer> {
  let pos = 0;
  for (const { at, rewrite: r } of hits) {
    if (at > pos) yield* createReadStream(file, { start: pos, end: at - 1 });
    yield r.to;
    pos = at + r.from.length;
  }
  if (pos < size) yield* createReadStream(file, { start: pos, end: size - 1 });
}

export function registerOhifRoutes(app: FastifyInstance, options: OhifRouteOptions): void {
  const distDir = path.resolve(options.distDir);
  const indexHtml = rewriteIndexHtml(readFileSync(path.join(distDir, 'index.html'), 'utf8'));
  const appConfig = ohifAppConfig();
  // Rewrite offsets per file, found on its first request (the files do not change while we run).
  const offsets = new Map<string, Promise<Array<{ at: number; rewrite: Rewrite }>>>();

  const isolate = (reply: FastifyReply): FastifyReply =>
    reply
      .header('Cross-Origin-Opener-Policy', 'same-origin')
      .header('Cross-Origin-Embedder-Policy', 'require-corp')
      .header('Cross-Origin-Resource-Policy', 'same-origin');

  const sendIndex = (reply: FastifyReply) =>
    isolate(reply).header('Cache-Control', 'no-cache').type(CONTENT_TYPES['.html']).send(indexHtml);

  // The router ignores trailing slashes: /ohif and /ohif/ both land here.
  app.get('/ohif', async (request, reply) => {
    const [pathname, query] = request.url.split(/\?(.*)/s, 2);
    if (pathname.endsWith('/')) return sendIndex(reply);
    // Keep the query: `/ohif?token=…` must reach the page.
    return reply.redirect(query ? `${OHIF_PREFIX}?${query}` : OHIF_PREFIX, 302);
  });

  app.get<{ Params: { '*': string } }>('/ohif/*', async (request, reply) => {
    const rel = request.params['*'];
    if (rel === '' || rel === 'index.html') return sendIndex(reply);
    if (rel === 'app-config.js') {
      return isolate(reply).header('Cache-Control', 'no-cache').type(CONTENT_TYPES['.js']).send(appConfig);
    }
    const normalized = path.posix.normalize(rel);
    if (rel.includes('\0') || normalized.startsWith('..') || path.posix.isAbsolute(normalized)) {
      throw new NotFound(`no OHIF file ${rel.slice(0, 200)}`);
    }
    const file = path.join(distDir, normalized);
    const info = await stat(file).catch(() => undefined);
    const ext = path.extname(normalized).toLowerCase();
    if (!info?.isFile()) {
      // OHIF's client-side routes (/ohif/viewer, /ohif/viewer/dicomweb, ...) have no extension.
      if (ext === '') return sendIndex(reply);
      throw new NotFound(`no OHIF file ${rel.slice(0, 200)}`);
    }
    isolate(reply)
      .type(CONTENT_TYPES[ext] ?? 'application/octet-stream')
      .header(
        'Cache-Control',
        HASHED.test(path.basename(normalized)) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
    const rewrites = ext === '.js' ? SCRIPT_REWRITES : ext === '.css' ? STYLE_REWRITES : undefined;
    if (rewrites === undefined) {
      return reply.header('Content-Length', info.size).send(createReadStream(file));
    }
    let found = offsets.get(file);
    if (found === undefined) {
      found = readFile(file).then((bytes) => findRewrites(bytes, rewrites));
      offsets.set(file, found);
    }
    const hits = await found;
    const delta = hits.reduce((sum, h) => sum + h.rewrite.to.length - h.rewrite.from.length, 0);
    return reply
      .header('Content-Length', info.size + delta)
      .send(Readable.from(spliced(file, info.size, hits)));
  });
}
