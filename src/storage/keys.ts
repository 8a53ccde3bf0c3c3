// Validation of object keys (slide ids) before any backend sees them. A key is a relative,
// `/`-separated path inside the configured root, bucket prefix or base URL. Anything that could
// name something outside it is refused here, for every backend alike; the local backend adds a
// realpath check for symlinks on top.

import { InvalidId } from '../errors.js';

/** Longest key accepted (S3's own limit is 1024 bytes). */
export const MAX_KEY_LENGTH = 1024;

/**
 * Returns the key unchanged if it is safe, else throws `InvalidId`. Refused: empty keys,
 * absolute paths, backslashes, control characters, empty segments, `.` and `..` segments, and
 * segments that would become `.`/`..` after one more round of percent-decoding (`%2e%2e`) —
 * so a proxy or client that decodes twice cannot be used to climb out.
 */
export function validateKey(key: string): string {
  if (key.length === 0) throw new InvalidId('empty id');
  if (key.length > MAX_KEY_LENGTH) throw new InvalidId(`id longer than ${MAX_KEY_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) throw new InvalidId('id contains control characters');
  if (key.includes('\\')) throw new InvalidId('id contains a backslash');
  if (key.startsWith('/') || /^[A-Za-z]:/.test(key)) throw new InvalidId('id must be a relative path');
  const segments = key.split('/');
  segments.forEach((segment, i) => {
    if (segment === '' && i !== segments.length - 1) throw new InvalidId('id contains an empty path segment');
    const decoded = segment.replace(/%2e/gi, '.');
    if (decoded === '.' || decoded === '..') throw new InvalidId('id contains a "." or ".." segment');
  });
  return key;
}

/** Validates a listing prefix: like a key, but may be empty and may end with `/`. */
export function validatePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '') return '';
  validateKey(prefix);
  return prefix;
}
