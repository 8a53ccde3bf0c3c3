// The page and asset routes without a browser: content types, headers, the error page, the
// served assets, the embedded configuration (escaping, viewer tokens), the disabled browser
// when signed URLs are on, and no reference to another host in anything a page loads.
import Fastify, { type FastifyInstance } from 'fastify';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { NotFound } from '../../src/errors.js';
import { registerViewerRoutes, type ViewerRouteOptions } from '../../src/server/routes/viewer.js';
import { request, startTestServer } from '../support/server.js';
import { CMU, makeSlideDir, removeSlideDir } from './helpers.js';

const OSD_IMAGES = path.resolve('node_modules/openseadragon/build/openseadragon/images');

/**
 * URLs in OpenSeadragon's code that are never fetched by our pages: XML namespaces and IIIF
 * context/profile identifiers it compares descriptors against, the default server of its
 * OpenStreetMap tile source (we never create one) and a link in a warning message. Anything
 * else pointing at another host fails the test. (The pages' CSP allows only 'self' anyway.)
 */
const ALLOWED_EXTERNAL = new Set([
  'http://schemas.microsoft.com/deepzoom/2008',
  'http://iiif.io/api/image',
  'http://iiif.io/api/image/1.0/context.json',
  'http://iiif.io/api/image/1/context.json',
  'http://iiif.io/api/image/2/context.json',
  'http://iiif.io/api/image/2/level0.json',
  'http://iiif.io/api/image/3/context.json',
  'https://iiif.io/api/image/3/level0.json',
  'http://library.stanford.edu/iiif/image-api/1.1/compliance.html#level0',
  'http://library.stanford.edu/iiif/image-api/1.1/context.json',
  'http://library.stanford.edu/iiif/image-api/compliance.html',
  'http://library.stanford.edu/iiif/image-api/compliance.html#level0',
  'http://library.stanford.edu/iiif/image-api/ns/',
  'http://tile.openstreetmap.org/',
  'https://openseadragon.github.io/examples/advanced-data-model/',
]);

function externalUrls(text: string, host: string): string[] {
  return [...text.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)<>\\]*/gi)]
    .map((m) => m[0])
    .filter((u) => !u.includes(`//${host}`));
}

describe('viewer routes on a real server', () => {
  let server: RunningServer;
  let dir: string;
  beforeAll(async () => {
    dir = await makeSlideDir();
    server = await startTestServer(dir);
  });
  afterAll(async () => {
    await server?.close();
    await removeSlideDir(dir);
  });

  it('GET / is the slide browser page', async () => {
    const res = await request(server, '/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('cache-control')).toBe('no-store');
    const html = res.body.toString();
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<script type="module" src="/assets/browser.js">');
    expect(html).toContain('href="/assets/medstream.css"');
    expect(html).toContain('id="search"');
  });

  it('GET /view/{id} is the viewer page with the slide id in its configuration', async () => {
    const res = await request(server, `/view/${encodeURIComponent(CMU)}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = res.body.toString();
    expect(html).toContain('<script type="module" src="/assets/viewer.js">');
    const json = /<script type="application\/json" id="medstream-config">(.*?)<\/script>/.exec(html)?.[1];
    expect(JSON.parse(json ?? 'null')).toEqual({ slideId: CMU });
    expect((await request(server, `/view/${encodeURIComponent(CMU)}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('a missing slide is a 404 HTML error page, not a viewer', async () => {
    const res = await request(server, '/view/no-such-slide.svs');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = res.body.toString();
    expect(html).toContain('Slide not found');
    expect(html).not.toContain('viewer.js');
    const folder = await request(server, `/view/${encodeURIComponent('cases/missing.tif')}`);
    expect(folder.status).toBe(404);
  });

  it('an id that escapes the root is a 400 HTML page, and ids are escaped', async () => {
    const res = await request(server, `/view/${encodeURIComponent('../etc/passwd')}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const nasty = await request(server, `/view/${encodeURIComponent('<img src=x onerror=alert(1)>.svs')}`);
    expect(nasty.status).toBe(404);
    expect(nasty.body.toString()).not.toContain('<img src=x');
  });

  it('serves the bundle, the stylesheet and every OpenSeadragon button image', async () => {
    const js = await request(server, '/assets/viewer.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.body.length).toBeGreaterThan(100_000);
    expect(js.body.length).toBeLessThan(600_000);
    const etag = js.headers.get('etag');
    expect(etag).toMatch(/^"/);
    expect((await request(server, '/assets/viewer.js', { headers: { 'if-none-match': etag! } })).status).toBe(
      304,
    );
    expect((await request(server, '/assets/browser.js')).headers.get('content-type')).toBe(
      'text/javascript; charset=utf-8',
    );
    expect((await request(server, '/assets/medstream.css')).headers.get('content-type')).toBe(
      'text/css; charset=utf-8',
    );
    const images = (await readdir(OSD_IMAGES)).filter((f) => f.endsWith('.png'));
    expect(images.length).toBeGreaterThan(30);
    for (const name of images) {
      const png = await request(server, `/assets/openseadragon/images/${name}`);
      expect(png.status, name).toBe(200);
      expect(png.headers.get('content-type')).toBe('image/png');
      expect(png.body.subarray(1, 4).toString()).toBe('PNG');
    }
    const licence = await request(server, '/assets/openseadragon/LICENSE.txt');
    expect(licence.body.toString()).toContain('OpenSeadragon');
  });

  it('refuses paths outside the assets and unknown assets', async () => {
    for (const p of [
      '/assets/nope.js',
      '/assets/..%2F..%2Fpackage.json',
      '/assets/%2e%2e/%2e%2e/package.json',
    ]) {
      const res = await request(server, p);
      expect(res.status, p).toBe(404);
      expect(res.headers.get('content-type')).toContain('application/json');
    }
  });

  it('nothing a page loads refers to another host', async () => {
    const host = new URL(server.url).host;
    const texts: [string, string][] = [];
    for (const p of ['/', `/view/${encodeURIComponent(CMU)}`, '/view/missing.svs']) {
      texts.push([p, (await request(server, p)).body.toString()]);
    }
    for (const html of texts.map(([, t]) => t)) {
      for (const m of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
        if (m[1].startsWith('data:')) continue;
        expect(m[1]).toMatch(/^\/(?!\/)/); // same origin
        const res = await request(server, m[1]);
        expect(res.status, m[1]).toBe(200);
        if (m[1].startsWith('/assets/')) texts.push([m[1], res.body.toString()]);
      }
    }
    const paths = texts.map(([p]) => p);
    expect(paths).toContain('/assets/viewer.js');
    expect(paths).toContain('/assets/browser.js');
    expect(paths).toContain('/assets/medstream.css');
    const found = new Set<string>();
    for (const [p, text] of texts) {
      for (const u of externalUrls(text, host)) {
        expect(ALLOWED_EXTERNAL.has(u), `${p} refers to ${u}`).toBe(true);
        found.add(u);
      }
    }
    // The allow-list is OpenSeadragon's, no more: our own code and pages have none.
    expect(found.size).toBeGreaterThan(0);
    for (const [p, text] of texts.filter(([p]) => !p.endsWith('viewer.js')))
      expect(externalUrls(text, host), p).toEqual([]);
  });
});

describe('viewer routes with signed URLs on', () => {
  let app: FastifyInstance;
  const issued: string[] = [];
  const options: ViewerRouteOptions = {
    authEnabled: true,
    viewerTokens: {
      issue(slideId) {
        issued.push(slideId);
        return { vt: '</script><script>alert(1)</script>&\u2028', exp: 4102444800 };
      },
    },
    slides: {
      async slide(id) {
        if (id.startsWith('missing')) throw new NotFound(`no slide ${id}`);
        return {};
      },
    },
  };
  beforeAll(async () => {
    app = Fastify();
    registerViewerRoutes(app, options);
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  it('GET / says the browser is disabled and loads no script', async () => {
    const res = await app.inject('/');
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('The slide browser is disabled');
    expect(res.body).not.toContain('<script');
    expect(res.body).not.toContain('/slides');
  });

  it('the viewer page embeds the issued token, escaped', async () => {
    const res = await app.inject(`/view/${encodeURIComponent('a/b c.svs')}`);
    expect(res.statusCode).toBe(200);
    expect(issued).toEqual(['a/b c.svs']);
    expect(res.body).not.toContain('</script><script>alert');
    const json = /<script type="application\/json" id="medstream-config">(.*?)<\/script>/s.exec(
      res.body,
    )?.[1];
    expect(JSON.parse(json ?? 'null')).toEqual({
      slideId: 'a/b c.svs',
      token: { vt: '</script><script>alert(1)</script>&\u2028', exp: 4102444800 },
    });
  });

  it('no token is issued for a missing slide', async () => {
    const res = await app.inject('/view/missing.svs');
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain('medstream-config');
    expect(res.body).not.toContain('Back to the slide browser');
    expect(issued).toEqual(['a/b c.svs']);
  });
});
