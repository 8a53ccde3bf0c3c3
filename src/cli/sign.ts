// `medstream sign`: prints a signed URL, or a viewer token, made exactly as the server verifies
// them (server/auth.ts). The secret comes from --secret, else the first of MEDSTREAM_AUTH_SECRETS
// / --auth-secret (config.ts). Bad usage is a ConfigError: exit code 2.
//
//   medstream sign --path /tiles/a.svs/0/0/0.jpg [--query 'quality=90'] [--secret S]
//                  [--expires-in 1h | --exp 1735689600] [--base-url http://host:3000] [--format text|json]
//   medstream sign --viewer-token --slide a.svs [--secret S] [--expires-in 8h | --exp N] [...]
//   medstream sign --dicomweb [--study UID ...] [--write] [--expires-in 1h | --exp N] [...]

import { ConfigError } from '../errors.js';
import { encodeQueryComponent, signUrl, viewerToken } from '../server/auth.js';
import { issueDicomwebToken } from '../server/dicomweb-auth.js';
import { MIN_SECRET_BYTES, parseDuration, type Config } from './config.js';

/** The command's own flags, for parseConfig. */
export const SIGN_FLAGS = {
  path: { type: 'string' },
  query: { type: 'string' },
  secret: { type: 'string' },
  'expires-in': { type: 'string' },
  exp: { type: 'string' },
  'base-url': { type: 'string' },
  format: { type: 'string' },
  'viewer-token': { type: 'boolean' },
  slide: { type: 'string' },
  dicomweb: { type: 'boolean' },
  study: { type: 'string', multiple: true },
  write: { type: 'boolean' },
} as const satisfies Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

export interface SignOptions {
  values: Record<string, string | string[] | boolean | undefined>;
  positionals: string[];
  /** Milliseconds since the epoch (tests). */
  now?: number;
  out?: (line: string) => void;
}

export function runSign(config: Config, options: SignOptions): number {
  const print = options.out ?? ((line: string) => process.stdout.write(line + '\n'));
  const v = options.values;
  const str = (name: string): string | undefined => {
    const value = v[name];
    return typeof value === 'string' ? value : undefined;
  };
  if (options.positionals.length > 0) {
    throw new ConfigError(`sign: unexpected argument ${JSON.stringify(options.positionals[0])}`);
  }
  const format = str('format') ?? 'text';
  if (format !== 'text' && format !== 'json') {
    throw new ConfigError(`sign: --format: ${JSON.stringify(format)} is not text or json`);
  }
  const viewer = v['viewer-token'] === true;
  const dicomweb = v.dicomweb === true;
  const studies = (Array.isArray(v.study) ? v.study : typeof v.study === 'string' ? [v.study] : [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (!dicomweb && (studies.length > 0 || v.write === true)) {
    throw new ConfigError('sign: --study and --write go with --dicomweb');
  }
  if (dicomweb) {
    if (viewer || str('path') !== undefined || str('slide') !== undefined || str('query') !== undefined) {
      throw new ConfigError(
        'sign: --dicomweb takes --study and --write, not --path, --query, --slide or --viewer-token',
      );
    }
    const bad = studies.find((uid) => !/^[0-9]+(\.[0-9]+)*$/.test(uid) || uid.length > 64);
    if (bad !== undefined) throw new ConfigError(`sign: --study: ${JSON.stringify(bad)} is not a UID`);
  }
  if (viewer && (str('path') !== undefined || str('query') !== undefined)) {
    throw new ConfigError('sign: --viewer-token takes --slide, not --path or --query');
  }
  if (!dicomweb && viewer && !str('slide')) throw new ConfigError('sign: --viewer-token needs --slide <id>');
  if (!viewer && str('slide') !== undefined) throw new ConfigError('sign: --slide goes with --viewer-token');
  if (!viewer && !dicomweb && str('path') === undefined) {
    throw new ConfigError('sign: --path <url-path> is required (or --viewer-token --slide <id>)');
  }
  const secret = str('secret') ?? config.authSecrets[0];
  if (secret === undefined || secret === '') {
    throw new ConfigError(
      'sign: no secret: pass --secret, or set MEDSTREAM_AUTH_SECRETS (the first one signs)',
    );
  }
  if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) {
    throw new ConfigError(
      `sign: --secret: the secret is ${Buffer.byteLength(secret, 'utf8')} bytes; at least ${MIN_SECRET_BYTES} are required (the server refuses shorter ones)`,
    );
  }
  const baseUrl = str('base-url')?.replace(/\/+$/, '');
  if (baseUrl !== undefined && !/^https?:\/\/[^/]+/i.test(baseUrl)) {
    throw new ConfigError(`sign: --base-url: ${JSON.stringify(baseUrl)} is not an http(s):// URL`);
  }
  const exp = expiryOf(
    str('exp'),
    str('expires-in'),
    viewer ? config.viewerTokenTtlMs : 3_600_000,
    options.now,
  );

  if (dicomweb) {
    const token = issueDicomwebToken(secret, {
      expiresAt: exp,
      studies: studies.length ? studies : undefined,
      write: v.write === true,
    });
    if (format === 'json') {
      print(
        JSON.stringify({ token, exp, studies: studies.length ? studies : 'all', write: v.write === true }),
      );
    } else print(token);
    return 0;
  }
  if (viewer) {
    const slide = str('slide') as string;
    const vt = viewerToken(secret, slide, exp);
    const query = `vt=${vt}&exp=${exp}`;
    const url = baseUrl === undefined ? undefined : `${baseUrl}/view/${encodeQueryComponent(slide)}?${query}`;
    if (format === 'json') print(JSON.stringify({ slide, vt, exp, query, ...(url ? { url } : {}) }));
    else print(url ?? query);
    return 0;
  }

  const path = str('path') as string;
  if (!path.startsWith('/') || path.includes('?') || path.includes('#')) {
    throw new ConfigError(
      `sign: --path: ${JSON.stringify(path)} must be a URL path starting with '/', without query (use --query)`,
    );
  }
  let signed;
  try {
    signed = signUrl({ path, query: str('query'), exp, secret });
  } catch (e) {
    throw new ConfigError(`sign: --query: ${(e as Error).message}`);
  }
  const url = (baseUrl ?? '') + signed.pathAndQuery;
  if (format === 'json') {
    print(JSON.stringify({ url, path: signed.path, query: signed.query, exp, sig: signed.sig }));
  } else {
    print(url);
  }
  return 0;
}

/** `--exp` (Unix seconds) or `--expires-in` (a duration from now), not both. */
function expiryOf(
  exp: string | undefined,
  expiresIn: string | undefined,
  defaultMs: number,
  nowMs = Date.now(),
): number {
  if (exp !== undefined && expiresIn !== undefined) {
    throw new ConfigError('sign: give --exp or --expires-in, not both');
  }
  if (exp !== undefined) {
    if (!/^\d{1,15}$/.test(exp))
      throw new ConfigError(`sign: --exp: ${JSON.stringify(exp)} is not Unix seconds`);
    return Number(exp);
  }
  let ms = defaultMs;
  if (expiresIn !== undefined) {
    const parsed = parseDuration(expiresIn);
    if (parsed === undefined || parsed <= 0) {
      throw new ConfigError(
        `sign: --expires-in: ${JSON.stringify(expiresIn)} is not a duration (e.g. 90s, 1h, 8h)`,
      );
    }
    ms = parsed;
  }
  return Math.floor(nowMs / 1000) + Math.ceil(ms / 1000);
}
