// Signed URLs and viewer tokens (docs/auth.md), compatible with WSIStreamer's documented scheme
// plus key rotation:
//   sig = hex(HMAC-SHA256(secret, canonical_path + "?" + canonical_query))   (query without sig)
//   vt  = hex(HMAC-SHA256(secret, "viewer:" + slide_id + ":" + exp))
// The first secret signs, every configured secret verifies. Signer (`medstream sign`,
// ViewerTokenIssuer) and verifier (the onRequest hook) share the canonicalisation below, so
// they cannot disagree. Comparisons are constant-time on equal-length buffers.

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError } from '../errors.js';
import { tokenOfRequest, verifyDicomwebToken } from './dicomweb-auth.js';
import { setAccess } from './routes/dicomweb/common.js';

// ---------------------------------------------------------------------------------------------
// Canonicalisation

const HEX = '0123456789ABCDEF';

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2d || // -
    byte === 0x2e || // .
    byte === 0x5f || // _
    byte === 0x7e // ~
  );
}

/** RFC 3986 pchar without pct-encoded: unreserved, sub-delims `!$&'()*+,;=`, `:` and `@`. */
function isPathSafe(byte: number): boolean {
  return isUnreserved(byte) || "!$&'()*+,;=:@".includes(String.fromCharCode(byte));
}

function encodeBytes(bytes: Uint8Array, safe: (byte: number) => boolean): string {
  let out = '';
  for (const byte of bytes) {
    out += safe(byte) ? String.fromCharCode(byte) : '%' + HEX[byte >> 4] + HEX[byte & 15];
  }
  return out;
}

/**
 * Percent-decodes to bytes. `%XY` with two hex digits is one byte; a `%` not followed by two hex
 * digits stays a literal `%`; other characters are their UTF-8 bytes. With `plusIsSpace` (query
 * strings, as HTML forms and Fastify's query parser read them) `+` is a space.
 */
function decodeToBytes(text: string, plusIsSpace: boolean): Buffer {
  const out: number[] = [];
  const utf8 = Buffer.from(text, 'utf8');
  for (let i = 0; i < utf8.length; i++) {
    const byte = utf8[i];
    if (byte === 0x25 && i + 2 < utf8.length && isHex(utf8[i + 1]) && isHex(utf8[i + 2])) {
      out.push(parseInt(String.fromCharCode(utf8[i + 1], utf8[i + 2]), 16));
      i += 2;
    } else if (byte === 0x2b && plusIsSpace) {
      out.push(0x20);
    } else {
      out.push(byte);
    }
  }
  return Buffer.from(out);
}

function isHex(byte: number | undefined): boolean {
  return (
    byte !== undefined &&
    ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66))
  );
}

/** Percent-encodes a query name or value: every byte but RFC 3986 unreserved as `%XY` (upper-case hex). */
export function encodeQueryComponent(value: string | Uint8Array): string {
  return encodeBytes(typeof value === 'string' ? Buffer.from(value, 'utf8') : value, isUnreserved);
}

/**
 * The signed form of a URL path: each `/`-separated segment percent-decoded once, then encoded
 * again keeping only RFC 3986 pchar characters (unreserved, sub-delims, `:`, `@`) literal, hex
 * upper-case. So `/tiles/a%2fb.svs/0/0/0.jpg` and `/tiles/a%2Fb.svs/0/0/0.jpg` sign alike, an
 * encoded `/` (`%2F`) never equals a real `/`, and a path already in this form (the usual case)
 * is signed exactly as sent.
 */
export function canonicalPath(path: string): string {
  return path
    .split('/')
    .map((segment) => encodeBytes(decodeToBytes(segment, false), isPathSafe))
    .join('/');
}

/** One query parameter, decoded to bytes. */
interface QueryParam {
  name: Buffer;
  value: Buffer;
}

/** Splits a raw query string (no leading `?`) into decoded parameters; empty pieces are skipped. */
function parseQueryString(query: string): QueryParam[] {
  const params: QueryParam[] = [];
  for (const piece of query.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const name = eq < 0 ? piece : piece.slice(0, eq);
    const value = eq < 0 ? '' : piece.slice(eq + 1);
    params.push({ name: decodeToBytes(name, true), value: decodeToBytes(value, true) });
  }
  return params;
}

/**
 * The canonical query: each name and value percent-encoded (RFC 3986 unreserved kept), pairs
 * sorted by encoded name, then encoded value (plain ASCII order), joined as `name=value` with `&`.
 */
function canonicalQueryOf(params: QueryParam[]): string {
  return params
    .map((p) => [encodeQueryComponent(p.name), encodeQueryComponent(p.value)] as const)
    .sort(([an, av], [bn, bv]) => (an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([n, v]) => `${n}=${v}`)
    .join('&');
}

/** The canonical form of a raw query string (`quality=90&exp=1` → `exp=1&quality=90`). */
export function canonicalQuery(query: string): string {
  return canonicalQueryOf(parseQueryString(query.startsWith('?') ? query.slice(1) : query));
}

/** The exact string HMAC'ed for a signed URL. */
export function signatureBase(path: string, canonicalQueryString: string): string {
  return `${canonicalPath(path)}?${canonicalQueryString}`;
}

function hmac(secret: Buffer, message: string): Buffer {
  return createHmac('sha256', secret).update(message, 'utf8').digest();
}

function secretBuffer(secret: string | Buffer): Buffer {
  return typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
}

// ---------------------------------------------------------------------------------------------
// Signing

export interface SignedUrl {
  /** Canonical path (what to request). */
  path: string;
  /** Canonical query including `exp`, without `sig`. */
  query: string;
  exp: number;
  sig: string;
  /** `path?query&sig=...`, ready to append to a base URL. */
  pathAndQuery: string;
}

/**
 * Signs `path` with the extra query parameters in `query` (a raw query string, without `exp`
 * and `sig`) until `exp` (Unix seconds).
 */
export function signUrl(options: {
  path: string;
  query?: string;
  exp: number;
  secret: string | Buffer;
}): SignedUrl {
  const extra = parseQueryString((options.query ?? '').replace(/^\?/, ''));
  for (const p of extra) {
    const name = p.name.toString('utf8');
    if (name === 'sig' || name === 'exp' || name === 'vt') {
      throw new Error(`the query must not contain '${name}': exp and sig are added by the signer`);
    }
  }
  extra.push({ name: Buffer.from('exp'), value: Buffer.from(String(options.exp)) });
  const query = canonicalQueryOf(extra);
  const path = canonicalPath(options.path);
  const sig = hmac(secretBuffer(options.secret), `${path}?${query}`).toString('hex');
  return { path, query, exp: options.exp, sig, pathAndQuery: `${path}?${query}&sig=${sig}` };
}

/** `hex(HMAC-SHA256(secret, "viewer:" + slideId + ":" + exp))`; `slideId` is the decoded storage key. */
export function viewerToken(secret: string | Buffer, slideId: string, exp: number): string {
  return hmac(secretBuffer(secret), `viewer:${slideId}:${exp}`).toString('hex');
}

/** Issues viewer tokens with the first (signing) secret; `/view/{id}` hands them to the viewer. */
export class ViewerTokenIssuer {
  private readonly secret: Buffer;

  constructor(
    private readonly options: {
      secrets: readonly string[];
      ttlSeconds: number;
      /** Milliseconds since the epoch (tests). */
      now?: () => number;
    },
  ) {
    if (options.secrets.length === 0) throw new Error('ViewerTokenIssuer needs a secret');
    this.secret = Buffer.from(options.secrets[0], 'utf8');
  }

  issue(slideId: string): { vt: string; exp: number } {
    const now = Math.floor((this.options.now ?? Date.now)() / 1000);
    const exp = now + Math.max(1, Math.round(this.options.ttlSeconds));
    return { vt: viewerToken(this.secret, slideId, exp), exp };
  }
}

// ---------------------------------------------------------------------------------------------
// Verifying

export interface VerifierOptions {
  /** Every secret that verifies; the first is the one that signs. */
  secrets: readonly string[];
  /** Seconds a signature or token is still accepted after its `exp`. */
  clockSkewSeconds: number;
  /** Milliseconds since the epoch (tests). */
  now?: () => number;
}

const SIG_PATTERN = /^[0-9a-fA-F]{64}$/;
const EXP_PATTERN = /^\d{1,15}$/;

export class RequestVerifier {
  private readonly secrets: Buffer[];

  constructor(private readonly options: VerifierOptions) {
    if (options.secrets.length === 0) throw new Error('RequestVerifier needs at least one secret');
    this.secrets = options.secrets.map((s) => Buffer.from(s, 'utf8'));
  }

  /**
   * Verifies a request given its target as sent (`/path?query`) and the slide its route
   * addresses (undefined for routes of no slide). Returns normally when it carries a valid
   * signature, or a valid viewer token for `slideId`; throws `AuthError` otherwise.
   */
  verify(url: string, slideId: string | undefined): void {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const params = q < 0 ? [] : parseQueryString(url.slice(q + 1));

    let sig: string | undefined;
    let vt: string | undefined;
    let expText: string | undefined;
    const signed: QueryParam[] = [];
    for (const p of params) {
      const name = p.name.toString('utf8');
      if (name === 'sig' || name === 'vt') {
        if ((name === 'sig' ? sig : vt) !== undefined)
          throw new AuthError(
            'invalid_signature_format',
            `Invalid signature format: more than one '${name}'`,
          );
        if (name === 'sig') sig = p.value.toString('latin1');
        else vt = p.value.toString('latin1');
        if (name === 'sig') continue; // everything but sig is signed
      } else if (name === 'exp') {
        if (expText !== undefined)
          throw new AuthError('invalid_expiry_format', "Invalid expiry format: more than one 'exp'");
        expText = p.value.toString('latin1');
      }
      signed.push(p);
    }

    const useToken = vt !== undefined && slideId !== undefined;
    if (sig === undefined && !useToken) {
      throw new AuthError(
        'missing_signature',
        vt !== undefined
          ? 'Missing signature parameter: a viewer token (vt) is valid only on the routes of its slide'
          : 'Missing signature parameter (sig)',
      );
    }
    if (expText === undefined) throw new AuthError('missing_expiry', 'Missing expiry parameter (exp)');
    if (!EXP_PATTERN.test(expText)) {
      throw new AuthError('invalid_expiry_format', 'Invalid expiry format: exp must be Unix seconds');
    }
    const presented = useToken ? (vt as string) : (sig as string);
    if (!SIG_PATTERN.test(presented)) {
      throw new AuthError(
        'invalid_signature_format',
        `Invalid signature format: ${useToken ? 'vt' : 'sig'} must be 64 hexadecimal digits`,
      );
    }
    const exp = Number(expText);
    const now = Math.floor((this.options.now ?? Date.now)() / 1000);
    if (now > exp + this.options.clockSkewSeconds) {
      throw new AuthError('signature_expired', `Signature expired at ${exp} (current time: ${now})`);
    }
    const message = useToken ? `viewer:${slideId}:${exp}` : signatureBase(path, canonicalQueryOf(signed));
    const given = Buffer.from(presented, 'hex');
    let ok = false;
    for (const secret of this.secrets) {
      const expected = hmac(secret, message);
      // Both are 32 bytes (SIG_PATTERN), as timingSafeEqual requires.
      if (timingSafeEqual(expected, given)) ok = true;
    }
    if (!ok) throw new AuthError('invalid_signature', 'Invalid signature');
  }
}

/**
 * The `exp` (Unix seconds) of a URL as the verifier reads it, or undefined when it has none that
 * verifies. A URL that passed `verify` is accepted until exactly this plus the clock skew: the
 * cached-image fast path (fast-path.ts) answers it until then without verifying it again.
 */
export function expiryOf(url: string): number | undefined {
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  const exp = parseQueryString(url.slice(q + 1))
    .find((p) => p.name.toString('utf8') === 'exp')
    ?.value.toString('latin1');
  return exp !== undefined && EXP_PATTERN.test(exp) ? Number(exp) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Fastify wiring

/** Route patterns whose first parameter is a slide id: `/slides/:id...`, `/tiles/:id/...`, `/iiif/3/:id...`, `/view/:id`. */
const SLIDE_ROUTE = /^\/(?:slides|tiles|view|iiif\/3)\/:([A-Za-z_][A-Za-z0-9_]*)(?:\/|$)/;

/** The slide a matched route addresses (the decoded id), or undefined. */
export function slideIdOfRequest(request: FastifyRequest): string | undefined {
  const pattern = request.routeOptions?.url;
  const match = pattern ? SLIDE_ROUTE.exec(pattern) : null;
  if (!match) return undefined;
  const id = (request.params as Record<string, unknown> | undefined)?.[match[1]];
  return typeof id === 'string' ? id : undefined;
}

/** `/dicomweb` and below. */
export function isDicomwebUrl(url: string): boolean {
  return (
    url === '/dicomweb' ||
    url.startsWith('/dicomweb/') ||
    url.startsWith('/dicomweb?') ||
    // Segmentation jobs act on studies: they take the same DICOMweb tokens.
    /^\/segmentations([/?]|$)/.test(url)
  );
}

/**
 * Served without a signature: `/health`, static viewer assets under `/assets/`, and OHIF's static
 * files under `/ohif/` (its DICOMweb requests carry their own token).
 */
export function isOpenRequest(request: FastifyRequest): boolean {
  if (request.method === 'OPTIONS') return true; // CORS preflight: no data, and browsers send no query of ours
  const pattern = request.routeOptions?.url;
  if (pattern === '/health') return true;
  if (pattern === '/ohif' || pattern === '/ohif/*') return true;
  // The radiology viewer page holds no data; its DICOMweb requests carry tokens (routes/radiology.ts).
  if (pattern === '/radiology/' || pattern === '/radiology') return true;
  const path = request.url.split('?')[0];
  // The assets route, or no route at all (a 404 says nothing about slides).
  return path.startsWith('/assets/') && (pattern === undefined || pattern.startsWith('/assets/'));
}

export interface AuthOptions extends VerifierOptions {
  enabled: boolean;
  /**
   * The slide a heat-map job was made over (undefined: no such job). A viewer token for that
   * slide then also reads the job (`GET /ai/jobs/{id}`, its map PNG) and its pyramid, the derived
   * slide `_derived/ai/heatmaps/{id}.tif`: the whole-slide viewer's heat-map layer.
   */
  heatmapSlide?: (jobId: string) => Promise<string | undefined>;
}

/** The derived slide of a heat-map job's pyramid (ai/heatmap-jobs.ts names them so). */
const HEATMAP_PYRAMID = /^_derived\/ai\/heatmaps\/([0-9a-f-]{36})\.tif$/;
/**
 * Whether a viewer token for this slide is checked against a heat-map job (the job's slide), so
 * that its verdict depends on more than the URL.
 */
export function isHeatmapPyramid(slideId: string): boolean {
  return HEATMAP_PYRAMID.test(slideId);
}
/** The job routes a viewer token reads (never DELETE). */
const HEATMAP_JOB_ROUTE = /^\/ai\/jobs\/:id(\/map\.png)?$/;

function hasViewerToken(request: FastifyRequest): boolean {
  return (request.query as Record<string, unknown> | undefined)?.vt !== undefined;
}

/**
 * The slide a viewer token must be for: the route's slide, except that a heat-map pyramid (and,
 * on /ai/, a heat-map job read with GET) takes the token of the slide the job was made over.
 */
async function tokenSlideOf(request: FastifyRequest, options: AuthOptions): Promise<string | undefined> {
  if (!options.heatmapSlide || !hasViewerToken(request)) return slideIdOfRequest(request);
  const pattern = request.routeOptions?.url ?? '';
  if (HEATMAP_JOB_ROUTE.test(pattern)) {
    if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
    const id = (request.params as Record<string, unknown> | undefined)?.id;
    return typeof id === 'string' ? options.heatmapSlide(id) : undefined;
  }
  const slide = slideIdOfRequest(request);
  const job = slide === undefined ? null : HEATMAP_PYRAMID.exec(slide);
  return job ? options.heatmapSlide(job[1]) : slide;
}

/**
 * Adds the verifier as an `onRequest` hook (call it before registering routes). Does nothing
 * when auth is disabled.
 */
export function registerAuth(app: FastifyInstance, options: AuthOptions): void {
  if (!options.enabled) return;
  const verifier = new RequestVerifier(options);
  app.addHook('onRequest', async (request) => {
    // DICOMweb carries bearer tokens instead (dicomweb-auth.ts, checked by its own hook).
    if (isOpenRequest(request) || isDicomwebUrl(request.url)) return;
    if (/^\/ai\//.test(request.url)) return verifyAi(request, verifier, options);
    verifier.verify(request.url, await tokenSlideOf(request, options));
  });
}

// ---------------------------------------------------------------------------------------------
// /ai/: a DICOMweb token or a signed URL (docs/ai.md, "Access")

const BY_TOKEN = Symbol('aiByDicomwebToken');

/**
 * `/ai/` requests take a DICOMweb token (Bearer or `?token=`), which reaches the studies it is
 * scoped to, or a signed URL, which reaches the studies its signed `study` parameters name
 * (none without one). Either way the routes check studies with `assertStudyAccess`.
 */
async function verifyAi(
  request: FastifyRequest,
  verifier: RequestVerifier,
  options: AuthOptions,
): Promise<void> {
  const token = tokenOfRequest(request);
  if (token !== undefined) {
    const now = options.now ? Math.floor(options.now() / 1000) : undefined;
    setAccess(
      request,
      verifyDicomwebToken(token, options.secrets, { clockSkewSeconds: options.clockSkewSeconds, now }),
    );
    (request as unknown as Record<symbol, boolean>)[BY_TOKEN] = true;
    return;
  }
  verifier.verify(request.url, await tokenSlideOf(request, options));
  const study = (request.query as Record<string, unknown> | undefined)?.study;
  const studies = (Array.isArray(study) ? study : [study]).filter((s): s is string => typeof s === 'string');
  setAccess(request, { studies, write: false, exp: Number.MAX_SAFE_INTEGER });
}

/** Whether an `/ai/` request was let in by a DICOMweb token (which reaches studies only). */
export function byDicomwebToken(request: FastifyRequest): boolean {
  return (request as unknown as Record<symbol, boolean>)[BY_TOKEN] === true;
}
