// The /ohif/ routes over a small OHIF-shaped dist/ (index.html, a bundle naming the webpack root
// several times, a stylesheet, a WASM file) and over the installed OHIF build: root URLs moved
// under /ohif/ byte for byte, the isolation headers, the generated app-config.js (evaluated as the
// browser would), client-side routes, 404s, and the server options (--ohif, --ohif-dir, auth).
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../../src/cli/serve.js';
import { issueDicomwebToken } from '../../../src/server/dicomweb-auth.js';
import { ohifAppConfig, resolveOhifDist, rewriteIndexHtml } from '../../../src/server/routes/ohif.js';
import { STUDIES, writeStudies } from '../../support/radiology-studies.js';
import { request, startIndexedServer, startTestServer } from '../../support/server.js';

const SECRET = 'ohif-test-secret-0123456789abcdef-0123456789';
const PUBLIC_PATH = '__webpack_require__.p = "/";';
const INDEX =
  '<!doctype html><html><head><link rel="manifest" href="/manifest.json">' +
  '<script>window.PUBLIC_URL="/"</script><script src="/app-config.js"></script>' +
  '<a href="//example.org/x">protocol-relative</a><script defer src="/app.bundle.0123456789abcdef.js"></script>' +
  '</head><body><div id="root"></div></body></html>';
// The marker at the very start, twice in the middle and at the very end: every splice position.
const BUNDLE =
  PUBLIC_PATH +
  '\nconsole.log("é");\n' +
  PUBLIC_PATH +
  PUBLIC_PATH +
  '\n' +
  'x'.repeat(200_000) +
  PUBLIC_PATH;
const CSS = '@font-face{src:url(/a.woff2)}body{background:url(data:x)}';

let dir: string;
let dist: string;
let server: RunningServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ohif-routes-'));
  dist = path.join(dir, 'dist');
  await mkdir(path.join(dist, 'assets'), { recursive: true });
  await writeFile(path.join(dist, 'index.html'), INDEX);
  await writeFile(path.join(dist, 'app.bundle.0123456789abcdef.js'), BUNDLE);
  await writeFile(path.join(dist, 'app.bundle.css'), CSS);
  await writeFile(path.join(dist, '0123456789abcdef.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  await writeFile(path.join(dist, 'app-config.js'), 'window.config = { theirs: true };');
  await writeFile(path.join(dir, 'secret.txt'), 'outside dist');
  await writeStudies(path.join(dir, 'store'));
  server = await startIndexedServer(path.join(dir, 'store'), ['--ohif', '--ohif-dir', dist]);
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function expectIsolated(headers: Headers): void {
  expect(headers.get('cross-origin-opener-policy')).toBe('same-origin');
  expect(headers.get('cross-origin-embedder-policy')).toBe('require-corp');
}

/** Runs app-config.js as the page would, at `origin`, and returns window.config. */
function evaluateConfig(script: string, origin: string): Record<string, unknown> {
  const stored = new Map<string, string>();
  const window: {
    location: { origin: string; search: string };
    sessionStorage: object;
    config?: Record<string, unknown>;
  } = {
    location: { origin, search: '' },
    sessionStorage: {
      getItem: (k: string) => stored.get(k) ?? null,
      setItem: (k: string, v: string) => stored.set(k, v),
    },
  };
  vm.runInNewContext(script, { window, URLSearchParams });
  return window.config!;
}

describe('OHIF static files', () => {
  it('serves index.html with PUBLIC_URL and every root URL under /ohif/, for /ohif/ and client routes', async () => {
    for (const url of [
      '/ohif/',
      '/ohif/index.html',
      '/ohif/viewer',
      '/ohif/viewer/dicomweb?StudyInstanceUIDs=1.2',
    ]) {
      const res = await request(server, url);
      expect(res.status, url).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expectIsolated(res.headers);
      const html = res.body.toString();
      expect(html).toContain('window.PUBLIC_URL="/ohif/"');
      expect(html).toContain('href="/ohif/manifest.json"');
      expect(html).toContain('src="/ohif/app-config.js"');
      expect(html).toContain('src="/ohif/app.bundle.0123456789abcdef.js"');
      expect(html).toContain('href="//example.org/x"'); // not a root URL: left alone
      expect(html).not.toMatch(/(href|src)="\/(?!ohif\/|\/)/);
    }
  });

  it('redirects /ohif to /ohif/ with its query; answers HEAD', async () => {
    const res = await fetch(server.url + '/ohif', { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/ohif/');
    const withToken = await fetch(server.url + '/ohif?token=dw1.a.b&x=1', { redirect: 'manual' });
    expect(withToken.headers.get('location')).toBe('/ohif/?token=dw1.a.b&x=1');
    const head = await fetch(server.url + '/ohif/app.bundle.0123456789abcdef.js', {
      method: 'HEAD',
      headers: { 'accept-encoding': 'identity' },
    });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(Buffer.byteLength(BUNDLE) + 4 * '/ohif'.length);
  });

  it('moves the webpack public path of a bundle under /ohif/ at every occurrence, byte for byte', async () => {
    const res = await request(server, '/ohif/app.bundle.0123456789abcdef.js', {
      headers: { 'accept-encoding': 'identity' },
    });
    expect(res.status).toBe(200);
    expectIsolated(res.headers);
    expect(res.headers.get('cache-control')).toContain('immutable');
    const expected = Buffer.from(BUNDLE.replaceAll(PUBLIC_PATH, '__webpack_require__.p = "/ohif/";'));
    expect(Number(res.headers.get('content-length'))).toBe(expected.length);
    expect(res.body.equals(expected)).toBe(true);
    // A second request uses the offsets found by the first.
    const again = await request(server, '/ohif/app.bundle.0123456789abcdef.js');
    expect(again.body.equals(expected)).toBe(true);
  });

  it('moves stylesheet root URLs and serves other files untouched with their types', async () => {
    const css = await request(server, '/ohif/app.bundle.css');
    expect(css.body.toString()).toBe(CSS.replace('url(/a.woff2)', 'url(/ohif/a.woff2)'));
    expect(css.headers.get('cache-control')).toBe('no-cache');
    const wasm = await request(server, '/ohif/0123456789abcdef.wasm');
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
    expect([...wasm.body]).toEqual([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
    expectIsolated(wasm.headers);
  });

  it('answers 404 for missing files and for paths out of dist/', async () => {
    for (const url of [
      '/ohif/nope.js',
      '/ohif/assets/nope.png',
      '/ohif/..%2fsecret.txt',
      '/ohif/%2e%2e/secret.txt',
    ]) {
      const res = await request(server, url);
      expect(res.status, url).toBe(404);
      expect(res.json()).toMatchObject({ error: 'not_found' });
      expect(res.body.toString()).not.toContain('outside dist');
    }
  });
});

describe('app-config.js', () => {
  it("is MedStream's, pointing a DICOMweb source at the page's origin", async () => {
    const res = await request(server, '/ohif/app-config.js');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/javascript/);
    expectIsolated(res.headers);
    const config = evaluateConfig(res.body.toString(), 'http://viewer.example:8080');
    expect(config.theirs).toBeUndefined();
    expect(config.routerBasename).toBe('/ohif');
    expect(config.defaultDataSourceName).toBe('medstream');
    const [source] = config.dataSources as Array<{
      namespace: string;
      configuration: Record<string, unknown>;
    }>;
    expect(source.namespace).toBe('@ohif/extension-default.dataSourcesModule.dicomweb');
    expect(source.configuration).toMatchObject({
      qidoRoot: 'http://viewer.example:8080/dicomweb',
      wadoRoot: 'http://viewer.example:8080/dicomweb',
      imageRendering: 'wadors',
      omitQuotationForMultipartRequest: true,
      qidoSupportsIncludeField: true,
      supportsFuzzyMatching: true,
      supportsWildcard: true,
      staticWado: false,
    });
  });

  it('declares only what QIDO-RS does: includefield, fuzzy person names and wildcards, as OHIF asks', async () => {
    const config = evaluateConfig(ohifAppConfig(), server.url);
    const root = (config.dataSources as Array<{ configuration: { qidoRoot: string } }>)[0].configuration
      .qidoRoot;
    const search = async (query: string) => {
      const res = await fetch(`${root}/studies?${query}`, { headers: { accept: 'application/dicom+json' } });
      expect(res.status, query).toBe(200);
      return (await res.json()) as Array<Record<string, { Value?: unknown[] }>>;
    };
    // OHIF's study list query: fuzzy matching of a lower-case fragment of a name, and includefield.
    const doe = await search(
      'limit=101&offset=0&fuzzymatching=true&includefield=00081030%2C00080060&PatientName=doe',
    );
    const descriptions = doe.map((s) => s['00081030']?.Value?.[0]).sort();
    expect(descriptions).toEqual(['CT ABDOMEN', 'MR BRAIN']);
    expect(doe.every((s) => s['00080061']?.Value?.length)).toBe(true);
    // Wildcards in a text attribute.
    const ct = await search('StudyDescription=CT*');
    expect(ct.map((s) => s['00081030']?.Value?.[0]).sort()).toEqual(['CT ABDOMEN', 'CT CHEST']);
    expect(STUDIES.filter((s) => s.description.startsWith('CT'))).toHaveLength(2);
  });
});

describe('server options', () => {
  it('refuses --ohif without an OHIF build, naming the install command', async () => {
    await expect(startTestServer(dir, ['--ohif', '--ohif-dir', path.join(dir, 'store')])).rejects.toThrow(
      /npm run ohif:install/,
    );
    expect(() => resolveOhifDist(path.join(dir, 'nowhere'))).toThrow(/no OHIF build/);
  });

  it('refuses an index.html that is not an OHIF 3 build', () => {
    expect(() => rewriteIndexHtml('<html><script src="/x.js"></script></html>')).toThrow(/PUBLIC_URL/);
  });

  it('serves no /ohif/ routes without --ohif', async () => {
    const plain = await startTestServer(path.join(dir, 'store'));
    try {
      expect((await request(plain, '/ohif/')).status).toBe(404);
    } finally {
      await plain.close();
    }
  });

  it('with auth on, serves OHIF without a signature while DICOMweb still needs a token', async () => {
    const secured = await startTestServer(path.join(dir, 'store'), [
      '--auth-enabled',
      '--auth-secret',
      SECRET,
      '--ohif',
      '--ohif-dir',
      dist,
    ]);
    try {
      expect((await request(secured, '/ohif/')).status).toBe(200);
      expect((await request(secured, '/ohif/viewer')).status).toBe(200);
      expect((await request(secured, '/ohif/app-config.js')).status).toBe(200);
      expect((await request(secured, '/dicomweb/studies')).status).toBe(401);
      const token = issueDicomwebToken(SECRET, { expiresAt: Math.floor(Date.now() / 1000) + 60 });
      const res = await request(secured, '/dicomweb/studies', {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
    } finally {
      await secured.close();
    }
  });
});

describe('the installed OHIF build (npm run ohif:install)', () => {
  it('is found, and its index.html, bundle and stylesheet are rewritten for /ohif/', async () => {
    const installed = resolveOhifDist();
    const real = await startTestServer(path.join(dir, 'store'), ['--ohif']);
    try {
      const html = (await request(real, '/ohif/')).body.toString();
      expect(html).toContain('window.PUBLIC_URL="/ohif/"');
      expect(html).not.toMatch(/(href|src)="\/(?!ohif\/|\/)/);
      const bundle = /src="\/ohif\/(app\.bundle\.[0-9a-f]+\.js)"/.exec(html)?.[1];
      expect(bundle).toBeDefined();
      const original = await readFile(path.join(installed, bundle!));
      const res = await request(real, `/ohif/${bundle}`, { headers: { 'accept-encoding': 'identity' } });
      const text = res.body.toString();
      expect(text).toContain('__webpack_require__.p = "/ohif/";');
      expect(text).not.toContain(PUBLIC_PATH);
      expect(res.body.length).toBe(original.length + '/ohif'.length);
      const css = (await request(real, '/ohif/app.bundle.css')).body.toString();
      expect(css).toContain('url(/ohif/');
      expect(css).not.toMatch(/url\(\/(?!ohif\/)/);
    } finally {
      await real.close();
    }
  });
});
