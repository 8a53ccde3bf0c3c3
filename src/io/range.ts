// Range checks shared by the io/ wrappers. Every read is validated before any cache or store
// sees it, so a corrupt offset in a file fails fast as `InvalidRange` instead of costing a
// request, and a short answer from a store is never mistaken for the bytes asked for.

import { InvalidRange, StorageUnavailable } from '../errors.js';
import type { ByteSource } from '../storage/types.js';

/** Throws `InvalidRange` unless [offset, offset + length) lies inside the object. */
export function assertRange(source: ByteSource, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > source.size
  ) {
    throw new InvalidRange(
      `read [${offset}, +${length}) of ${source.key} is outside the object (size ${source.size})`,
    );
  }
}

/** Throws when a store answered fewer (or more) bytes than asked for; such bytes are never cached. */
export function assertLength(source: ByteSource, offset: number, bytes: Uint8Array, expected: number): void {
  if (bytes.byteLength !== expected) {
    throw new StorageUnavailable(
      `read [${offset}, +${expected}) of ${source.key} returned ${bytes.byteLength} bytes`,
      { code: 'connection_error', retryable: false },
    );
  }
}
