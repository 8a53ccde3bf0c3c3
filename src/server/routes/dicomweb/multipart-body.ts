// A multipart/related answer body (RFC 2387) built from parts held in memory: frames, rendered
// images and bulk data of WADO-RS.

/** A multipart/related body: each part's headers, then its bytes. */
export function multipartBody(
  parts: Array<{ headers: Record<string, string>; body: Uint8Array }>,
  boundary: string,
): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const head = Object.entries(part.headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    chunks.push(
      Buffer.from(`--${boundary}\r\n${head}\r\n`),
      Buffer.from(part.body.buffer, part.body.byteOffset, part.body.byteLength),
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}
