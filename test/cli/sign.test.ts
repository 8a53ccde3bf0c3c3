// `medstream sign` as a user runs it (a real child process), and its signatures checked by a
// real server with auth enabled.
import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/cli/config.js';
import type { RunningServer } from '../../src/cli/serve.js';
import { runSign, SIGN_FLAGS } from '../../src/cli/sign.js';
import { ConfigError } from '../../src/errors.js';
import { runMedstream } from '../support/cli.js';
import { request, startTestServer } from '../support/server.js';

const SAMPLES = fileURLToPath(new URL('../../samples', import.meta.url));
const SECRET = 'sign-test-secret-0123456789abcdef0123456789';
const OTHER = 'sign-test-other-0123456789abcdef0123456789ab';
const SLIDE = 'CMU-1-Small-Region.svs';

/** The parent's environment without any auth secrets of its own. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (extra.MEDSTREAM_AUTH_SECRETS === undefined) delete env.MEDSTREAM_AUTH_SECRETS;
  return env;
}

const medstream = (args: string[], env: Record<string, string> = {}) =>
  runMedstream(['sign', ...args], { env: cleanEnv(env) });

let server: RunningServer;
beforeAll(async () => {
  server = await startTestServer(SAMPLES, ['--auth-enabled', '--auth-secret', SECRET]);
});
afterAll(async () => {
  await server?.close();
});

describe('medstream sign', { timeout: 120_000 }, () => {
  it('prints a signed URL that the server accepts, and only for that URL', async () => {
    const before = Date.now();
    const run = await medstream([
      '--path',
      `/tiles/${SLIDE}/0/1/1.jpg`,
      '--query',
      'quality=90',
      '--secret',
      SECRET,
      '--expires-in',
      '10m',
      '--base-url',
      server.url,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const url = run.stdout.trim();
    expect(url).toMatch(
      new RegExp(`^${server.url}/tiles/${SLIDE}/0/1/1\\.jpg\\?exp=\\d+&quality=90&sig=[0-9a-f]{64}$`),
    );
    const exp = Number(/exp=(\d+)/.exec(url)?.[1]);
    // Signed at some moment while the process ran: exp = that second + 600, whatever the load.
    const after = Date.now();
    expect(exp).toBeGreaterThanOrEqual(Math.floor(before / 1000) + 600);
    expect(exp).toBeLessThanOrEqual(Math.floor(after / 1000) + 600);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect((await fetch(url.replace('quality=90', 'quality=91'))).status).toBe(401);
  });

  it('signs exactly the documented string (WSIStreamer-compatible)', async () => {
    const run = await medstream([
      '--path',
      `/slides/${SLIDE}`,
      '--secret',
      SECRET,
      '--exp',
      '1735689600',
      '--format',
      'json',
    ]);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as {
      url: string;
      path: string;
      query: string;
      exp: number;
      sig: string;
    };
    expect(out.exp).toBe(1735689600);
    expect(out.query).toBe('exp=1735689600');
    expect(out.sig).toBe(
      createHmac('sha256', SECRET).update(`/slides/${SLIDE}?exp=1735689600`).digest('hex'),
    );
    expect(out.url).toBe(`/slides/${SLIDE}?exp=1735689600&sig=${out.sig}`);
  });

  it('signs ids with %2F and listing queries', async () => {
    const run = await medstream(['--path', '/slides', '--query', 'limit=2&prefix=', '--secret', SECRET]);
    expect(run.code).toBe(0);
    const res = await request(server, run.stdout.trim());
    expect(res.status).toBe(200);
    const nested = await medstream(['--path', '/slides/no%2fsuch.svs', '--secret', SECRET]);
    expect(nested.stdout).toMatch(/^\/slides\/no%2Fsuch\.svs\?exp=/);
    expect((await request(server, nested.stdout.trim())).status).toBe(404); // past auth, no such slide
  });

  it('takes the first of MEDSTREAM_AUTH_SECRETS when --secret is absent', async () => {
    const run = await medstream(['--path', `/slides/${SLIDE}`], {
      MEDSTREAM_AUTH_SECRETS: `${SECRET},${OTHER}`,
    });
    expect(run.code).toBe(0);
    expect((await request(server, run.stdout.trim())).status).toBe(200);
    const other = await medstream(['--path', `/slides/${SLIDE}`], {
      MEDSTREAM_AUTH_SECRETS: `${OTHER},${SECRET}`,
    });
    expect((await request(server, other.stdout.trim())).status).toBe(401);
  });

  it('issues viewer tokens the server accepts for that slide only', async () => {
    const run = await medstream([
      '--viewer-token',
      '--slide',
      SLIDE,
      '--secret',
      SECRET,
      '--expires-in',
      '8h',
    ]);
    expect(run.code).toBe(0);
    const query = run.stdout.trim();
    expect(query).toMatch(/^vt=[0-9a-f]{64}&exp=\d+$/);
    expect((await request(server, `/tiles/${SLIDE}/0/0/0.jpg?${query}`)).status).toBe(200);
    expect((await request(server, `/slides/${SLIDE}/dzi?${query}`)).status).toBe(200);
    expect((await request(server, `/slides/other.svs?${query}`)).status).toBe(401);

    const json = await medstream([
      '--viewer-token',
      '--slide',
      'cases/a b.svs',
      '--secret',
      SECRET,
      '--base-url',
      'http://h:3000/',
      '--format',
      'json',
    ]);
    const out = JSON.parse(json.stdout) as { slide: string; vt: string; exp: number; url: string };
    expect(out.slide).toBe('cases/a b.svs');
    expect(out.vt).toBe(createHmac('sha256', SECRET).update(`viewer:cases/a b.svs:${out.exp}`).digest('hex'));
    expect(out.url).toBe(`http://h:3000/view/cases%2Fa%20b.svs?vt=${out.vt}&exp=${out.exp}`);
  });

  it.each([
    [[], /--path <url-path> is required/],
    [['--path', '/slides/a.svs'], /no secret/],
    [['--path', '/slides/a.svs', '--secret', 'short'], /at least 32 are required/],
    [['--path', 'slides/a.svs', '--secret', SECRET], /must be a URL path starting with '\/'/],
    [['--path', '/slides/a.svs?x=1', '--secret', SECRET], /without query/],
    [['--path', '/slides/a.svs', '--query', 'exp=5', '--secret', SECRET], /must not contain 'exp'/],
    [['--path', '/slides/a.svs', '--query', 'sig=5', '--secret', SECRET], /must not contain 'sig'/],
    [['--path', '/slides/a.svs', '--secret', SECRET, '--exp', '5', '--expires-in', '1h'], /not both/],
    [['--path', '/slides/a.svs', '--secret', SECRET, '--exp', 'soon'], /--exp: "soon" is not Unix seconds/],
    [['--path', '/slides/a.svs', '--secret', SECRET, '--expires-in', 'forever'], /--expires-in: "forever"/],
    [['--path', '/slides/a.svs', '--secret', SECRET, '--format', 'xml'], /--format: "xml"/],
    [['--path', '/a', '--secret', SECRET, '--base-url', 'host:3000'], /--base-url: "host:3000"/],
    [['--viewer-token', '--secret', SECRET], /needs --slide/],
    [['--viewer-token', '--slide', 'a.svs', '--path', '/a', '--secret', SECRET], /takes --slide, not --path/],
    [['--slide', 'a.svs', '--secret', SECRET], /--slide goes with --viewer-token/],
    [['--path', '/a', '--secret', SECRET, '--no-such-flag'], /Unknown option '--no-such-flag'/],
  ])('bad usage %j: a ConfigError (exit code 2) with a clear message', (args, message) => {
    const run = () => {
      const parsed = parseConfig(args, {}, SIGN_FLAGS);
      return runSign(parsed.config, {
        values: parsed.commandValues,
        positionals: parsed.positionals,
        out: () => {},
      });
    };
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(message);
    try {
      run();
    } catch (e) {
      expect((e as Error).message).not.toContain(SECRET);
    }
  });

  it('bad usage from the command line: exit code 2, a message, no stack trace, no secret', async () => {
    for (const [args, message] of [
      [[], /^medstream: sign: --path <url-path> is required/],
      [['--path', '/a', '--secret', SECRET, '--exp', 'soon'], /^medstream: sign: --exp: "soon"/],
    ] as const) {
      const run = await medstream([...args]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(run.stderr).not.toContain(SECRET);
    }
  });
});

describe('auth configuration', { timeout: 120_000 }, () => {
  it.each([
    [['--auth-enabled'], {}, /--auth-enabled needs at least one secret/],
    [['--auth-enabled', '--auth-secret', 'too-short'], {}, /secret #1 is 9 bytes; at least 32/],
    [['--auth-enabled'], { MEDSTREAM_AUTH_SECRETS: `${SECRET},short` }, /secret #2 is 5 bytes/],
    [['--auth-secret', SECRET, '--auth-secret', 'short'], {}, /secret #2 is 5 bytes/],
    [['--auth-clock-skew', 'a while'], {}, /--auth-clock-skew: "a while" is not a duration/],
    [
      ['--viewer-token-ttl', '10ms'],
      {},
      /--viewer-token-ttl: "10ms" is not a duration in ms of at least 1000/,
    ],
  ])('%j %j is refused', (args, env, message) => {
    expect(() => parseConfig(args, env)).toThrow(message);
  });

  it('reads secrets from flags (repeated, comma-separated) and MEDSTREAM_AUTH_SECRETS', () => {
    const flags = parseConfig(
      ['--auth-enabled', '--auth-secret', SECRET, '--auth-secret', `${OTHER}, ${SECRET}2`],
      {},
    );
    expect(flags.config.authSecrets).toEqual([SECRET, OTHER, `${SECRET}2`]);
    expect(flags.config.authEnabled).toBe(true);
    expect(flags.config.authClockSkewMs).toBe(30_000);
    expect(flags.config.viewerTokenTtlMs).toBe(8 * 3_600_000);
    const env = parseConfig([], {
      MEDSTREAM_AUTH_ENABLED: 'true',
      MEDSTREAM_AUTH_SECRETS: `${OTHER},${SECRET}`,
    });
    expect(env.config.authSecrets).toEqual([OTHER, SECRET]);
    // A flag wins over the environment.
    expect(
      parseConfig(['--auth-secret', SECRET], { MEDSTREAM_AUTH_SECRETS: OTHER }).config.authSecrets,
    ).toEqual([SECRET]);
  });

  it('serve refuses to start without a secret: exit code 2, the secret never printed', async () => {
    const run = await runMedstream(
      ['serve', SAMPLES, '--port', '0', '--auth-enabled', '--auth-secret', 'too-short'],
      { env: cleanEnv({}) },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/secret #1 is 9 bytes/);
    expect(run.stderr).not.toContain('too-short');
  });
});
