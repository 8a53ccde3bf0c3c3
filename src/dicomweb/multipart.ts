// Streaming multipart/related (RFC 2387, RFC 2046 §5.1) for STOW-RS request bodies: parts are
// handed to a sink chunk by chunk as they arrive, so a body of any size is never held in memory.
// The reader keeps at most one delimiter's length of carry-over between chunks and bounds the
// part headers and the number of parts.
//
//   [preamble] --B CRLF headers CRLF CRLF body CRLF --B CRLF ... CRLF --B-- [epilogue]

import { BadRequest } from '../errors.js';

export interface PartSink {
  write(chunk: Buffer): void | Promise<void>;
  /** The part is complete. */
  end(): void | Promise<void>;
  /** The body ended inside the part: what was received is not the whole part. */
  abort(): void | Promise<void>;
}

export interface MultipartLimits {
  maxParts: number;
  maxHeaderBytes: number;
}

/** The `boundary` and `type` parameters of a multipart Content-Type (quoted or not). */
export function multipartParameters(contentType: string): {
  mediaType: string;
  boundary?: string;
  type?: string;
} {
  const [mediaType, ...rest] = contentType.split(';');
  const params: Record<string, string> = {};
  for (const piece of rest) {
    const eq = piece.indexOf('=');
    if (eq < 0) continue;
    const name = piece.slice(0, eq).trim().toLowerCase();
    let value = piece.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    params[name] = value;
  }
  return {
    mediaType: mediaType.trim().toLowerCase(),
    boundary: params.boundary,
    type: params.type?.toLowerCase(),
  };
}

function parseHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Reads every part of `body`, calling `onPart` with its headers for a sink that receives its
 * bytes. Throws `BadRequest` for a body that is not multipart as declared (no first boundary,
 * no closing one, oversized headers, too many parts).
 */
export async function readMultipart(
  body: AsyncIterable<Buffer | Uint8Array | string>,
  boundary: string,
  onPart: (headers: Record<string, string>, index: number) => PartSink | Promise<PartSink>,
  limits: MultipartLimits,
): Promise<number> {
  if (!/^[\x20-\x7e]{1,70}$/.test(boundary)) throw new BadRequest('invalid multipart boundary');
  // A CRLF before the first delimiter makes it look like every other one.
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  let carry: Buffer = Buffer.from('\r\n');
  let state: 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'done' = 'preamble';
  let sink: PartSink | undefined;
  let parts = 0;

  const consume = async (buf: Buffer): Promise<Buffer> => {
    for (;;) {
      if (state === 'done') return Buffer.alloc(0);
      if (state === 'preamble' || state === 'body') {
        const at = buf.indexOf(delimiter);
        if (at < 0) {
          const keep = Math.min(buf.length, delimiter.length - 1);
          if (state === 'body' && buf.length > keep) await sink!.write(buf.subarray(0, buf.length - keep));
          return buf.subarray(buf.length - keep);
        }
        if (state === 'body') {
          if (at > 0) await sink!.write(buf.subarray(0, at));
          await sink!.end();
          sink = undefined;
        }
        buf = buf.subarray(at + delimiter.length);
        state = 'after-delimiter';
      } else if (state === 'after-delimiter') {
        if (buf.length < 2) return buf;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = 'done';
          return Buffer.alloc(0);
        }
        // Transport padding (spaces, tabs) then CRLF.
        const eol = buf.indexOf('\r\n');
        if (eol < 0) {
          if (buf.length > 1024) throw new BadRequest('malformed multipart delimiter line');
          return buf;
        }
        if (!/^[ \t]*$/.test(buf.subarray(0, eol).toString('latin1'))) {
          throw new BadRequest('malformed multipart delimiter line');
        }
        buf = buf.subarray(eol + 2);
        state = 'headers';
      } else {
        // An empty header block is "\r\n" right away; otherwise headers end at CRLF CRLF.
        let end: number;
        let skip: number;
        if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
          end = 0;
          skip = 2;
        } else {
          end = buf.indexOf(CRLFCRLF);
          skip = 4;
        }
        if (end < 0) {
          if (buf.length > limits.maxHeaderBytes) throw new BadRequest('multipart part headers too long');
          return buf;
        }
        if (end > limits.maxHeaderBytes) throw new BadRequest('multipart part headers too long');
        if (++parts > limits.maxParts)
          throw new BadRequest(`more than ${limits.maxParts} parts in one request`);
        sink = await onPart(parseHeaders(buf.subarray(0, end).toString('latin1')), parts - 1);
        buf = buf.subarray(end + skip);
        state = 'body';
      }
    }
  };

  for await (const chunk of body) {
    const bytes =
      typeof chunk === 'string'
        ? Buffer.from(chunk, 'latin1')
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    carry = await consume(carry.length ? Buffer.concat([carry, bytes]) : bytes);
  }
  // `state` changes inside consume(); TypeScript's narrowing cannot see that.
  if ((state as string) !== 'done') {
    if (sink) await sink.abort();
    throw new BadRequest(
      (state as string) === 'preamble'
        ? `no multipart boundary "${boundary.slice(0, 70)}" in the body`
        : 'multipart body ends without its closing boundary',
    );
  }
  return parts;
}
