// HTTP byte ranges over a response body already built (RFC 9110 §14): `Range: bytes=a-b`,
// `bytes=a-`, `bytes=-n` (one range; several are answered whole, as the RFC allows) on WADO-RS
// frames and bulk data, with If-Range against the strong ETag. The range applies to the body as
// sent, multipart envelope included, so a prefix is the part header plus a codestream prefix —
// what Cornerstone3D's progressive `rangeRequest` relies on.

import type { FastifyReply, FastifyRequest } from 'fastify';

/** The single byte range a request asks of a body of `size` bytes; null = the whole body; 'unsatisfiable' = 416. */
export function requestedRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | null | 'unsatisfiable' {
  if (header === undefined) return null;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match || (match[1] === '' && match[2] === '')) return null; // several ranges, or not bytes: ignore
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** Sends `body` whole (200) or the requested range (206 / 416), with Accept-Ranges and ETag. */
export function sendWithRanges(
  request: FastifyRequest,
  reply: FastifyReply,
  body: Buffer,
  etag: string,
): FastifyReply {
  reply.header('Accept-Ranges', 'bytes').header('ETag', etag);
  const ifRange = request.headers['if-range'];
  const range =
    ifRange === undefined || ifRange === etag ? requestedRange(request.headers.range, body.length) : null;
  if (range === 'unsatisfiable') {
    return reply
      .code(416)
      .header('Content-Range', `bytes */${body.length}`)
      .type('application/json; charset=utf-8')
      .send({
        error: 'invalid_range',
        message: `the range lies outside the ${body.length} bytes of the response`,
        status: 416,
      });
  }
  if (range === null) return reply.send(body);
  return reply
    .code(206)
    .header('Content-Range', `bytes ${range.start}-${range.end}/${body.length}`)
    .send(body.subarray(range.start, range.end + 1));
}
