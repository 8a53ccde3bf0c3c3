// Credentials out of logged URLs: the values of `token` (a DICOMweb bearer token the viewer puts
// in byte-range URLs), `vt` (a slide viewer token) and `sig` (a signed URL's signature) become
// "[redacted]", so an access log never holds a replayable credential. Everything else is kept.
// serializeRequest is the logger's `req` serializer (app.ts) that applies it.

const CREDENTIAL_PARAM = /([?&](?:token|vt|sig)=)[^&#]*/gi;

/** `url` with the values of its credential query parameters replaced. */
export function redactUrl(url: string): string {
  return url.includes('?') ? url.replace(CREDENTIAL_PARAM, '$1[redacted]') : url;
}

/** What a logged `req` may be: a Fastify request, or the fast path's plain object (fast-path.ts). */
interface LoggedRequest {
  raw?: unknown;
  method?: string;
  url?: string;
  headers?: Record<string, unknown>;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/** Fastify's default `req` log serializer, with the URL redacted; plain objects pass through. */
export function serializeRequest(req: LoggedRequest): Record<string, unknown> {
  if (req.raw === undefined) return { ...req, url: redactUrl(req.url ?? '') };
  return {
    method: req.method,
    url: redactUrl(req.url ?? ''),
    version: req.headers?.['accept-version'],
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}
