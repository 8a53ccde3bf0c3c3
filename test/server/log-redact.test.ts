// Credentials never reach the access log: `token`, `vt` and `sig` query values are replaced in
// logged URLs (src/server/log-redact.ts), both on Fastify's lines and on the cached-tile fast
// path's, checked on a real `medstream serve` process's stdout.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/server/log-redact.js';
import { runMedstream } from '../support/cli.js';
import { fixture } from '../support/fixtures.js';

describe('redactUrl', () => {
  it('replaces credential values and keeps everything else', () => {
    expect(redactUrl('/a/b?token=abc.def&accept=image%2Fjhc')).toBe(
      '/a/b?token=[redacted]&accept=image%2Fjhc',
    );
    expect(redactUrl('/view/x?vt=v1&level=2')).toBe('/view/x?vt=[redacted]&level=2');
    expect(redactUrl('/tiles/s/0/0/0.jpg?exp=9&SIG=f00d')).toBe('/tiles/s/0/0/0.jpg?exp=9&SIG=[redacted]');
    expect(redactUrl('/tiles/s/0/0/0.jpg?mytoken=keep&tokens=keep')).toBe(
      '/tiles/s/0/0/0.jpg?mytoken=keep&tokens=keep',
    );
    expect(redactUrl('/token=x')).toBe('/token=x');
  });
});

describe('access log', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-redact-'));
    await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, 'CMU.svs'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('logs request URLs without token, vt or sig values', async () => {
    const run = await runMedstream(
      ['serve', dir, '--host', '127.0.0.1', '--port', '0', '--data-dir', path.join(dir, 'data')],
      { untilStdout: /medstream listening/, timeoutMs: 60_000 },
    );
    try {
      const url = /"url":"(http:[^"]+)"/.exec(run.stdout)![1];
      // Twice each: the second tile request is answered by the cached-image fast path.
      for (let i = 0; i < 2; i++) {
        expect((await fetch(`${url}/tiles/CMU.svs/0/0/0.jpg?vt=SECRET-VT`)).status).toBe(200);
        await fetch(`${url}/dicomweb/studies?token=SECRET-TOKEN`);
        await fetch(`${url}/tiles/CMU.svs/0/0/1.jpg?exp=1&sig=SECRET-SIG`);
      }
      expect(await run.stop()).toBe(0);
      const logged = run.stdout.split('\n').filter((l) => l.includes('[redacted]'));
      expect(logged.length).toBeGreaterThanOrEqual(6);
      expect(run.stdout).not.toContain('SECRET');
    } finally {
      await run.stop();
    }
  }, 60_000);
});
