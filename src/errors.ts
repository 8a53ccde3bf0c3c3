// Typed errors shared by every layer. Lower layers throw these; `server/errors.ts` is the one
// place that maps them to an HTTP status and a JSON body `{error, message, status}`.
// `code` is the stable, machine-readable name clients see in `error`.

export type ErrorCode =
  | 'bad_request'
  | 'invalid_id'
  | 'invalid_level'
  | 'tile_out_of_bounds'
  | 'invalid_quality'
  | 'invalid_format'
  | 'not_found'
  | 'access_denied'
  | 'invalid_range'
  | 'range_not_supported'
  | 'object_changed'
  | 'storage_error'
  | 'connection_error'
  | 'storage_timeout'
  | 'unsupported_format'
  | 'corrupt_file'
  | 'decode_error'
  | 'not_implemented'
  | 'not_acceptable'
  | 'conflict'
  | 'overloaded'
  | 'cancelled'
  | 'config_error'
  | 'internal_error'
  // Signed URLs and viewer tokens (server/auth.ts), WSIStreamer's codes.
  | 'missing_signature'
  | 'missing_expiry'
  | 'signature_expired'
  | 'invalid_signature'
  | 'invalid_signature_format'
  | 'invalid_expiry_format'
  // A model batch ran past its time limit (ai/model-worker.ts).
  | 'model_timeout';

export class MedStreamError extends Error {
  readonly code: ErrorCode;
  /** Whether repeating the same operation may succeed (storage faults, throttling). */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/** The request itself is malformed (bad parameter, bad number, ...). */
export class BadRequest extends MedStreamError {
  constructor(message: string, code: ErrorCode = 'bad_request') {
    super(code, message);
  }
}

/** A slide/object id that is not a safe relative key (`..`, absolute, NUL, ...). */
export class InvalidId extends MedStreamError {
  constructor(message: string) {
    super('invalid_id', message);
  }
}

export class NotFound extends MedStreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('not_found', message, options);
  }
}

export class AccessDenied extends MedStreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('access_denied', message, options);
  }
}

/** The requested byte range lies outside the object (or the store answered 416). */
export class InvalidRange extends MedStreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid_range', message, options);
  }
}

/** An HTTP origin ignored `Range` (answered 200 with the whole body): never download silently. */
export class RangeNotSupported extends MedStreamError {
  constructor(message: string) {
    super('range_not_supported', message);
  }
}

/**
 * The object was replaced since it was opened (ETag / size / mtime differ). Callers drop what
 * they cached about it and open it again.
 */
export class ObjectChanged extends MedStreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('object_changed', message, options);
  }
}

/**
 * The store failed or could not be reached. `code` distinguishes a store-side failure
 * (`storage_error`: 5xx, throttling), a transport failure (`connection_error`: reset, refused,
 * truncated body) and a deadline (`storage_timeout`).
 */
export class StorageUnavailable extends MedStreamError {
  constructor(
    message: string,
    options?: {
      cause?: unknown;
      retryable?: boolean;
      code?: 'storage_error' | 'connection_error' | 'storage_timeout';
    },
  ) {
    super(options?.code ?? 'storage_error', message, {
      cause: options?.cause,
      retryable: options?.retryable ?? true,
    });
  }
}

export class UnsupportedFormat extends MedStreamError {
  constructor(message: string) {
    super('unsupported_format', message);
  }
}

export class CorruptFile extends MedStreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('corrupt_file', message, options);
  }
}

export class DecodeError extends MedStreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('decode_error', message, options);
  }
}

/** No representation the client accepts can be produced (406). */
export class NotAcceptable extends MedStreamError {
  constructor(message: string) {
    super('not_acceptable', message);
  }
}

export class NotImplemented extends MedStreamError {
  constructor(message: string) {
    super('not_implemented', message);
  }
}

/** The request is valid but the server's state refuses it (an engine not installed, a job not finished). */
export class Conflict extends MedStreamError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/** The operation was abandoned because its AbortSignal fired (client hung up). */
export class Cancelled extends MedStreamError {
  constructor(message = 'operation cancelled', options?: { cause?: unknown }) {
    super('cancelled', message, options);
  }
}

export class ConfigError extends MedStreamError {
  constructor(message: string) {
    super('config_error', message);
  }
}

/** A request refused by signed-URL / viewer-token authentication (401, or 400 for malformed parameters). */
export class AuthError extends MedStreamError {
  constructor(
    code:
      | 'missing_signature'
      | 'missing_expiry'
      | 'signature_expired'
      | 'invalid_signature'
      | 'invalid_signature_format'
      | 'invalid_expiry_format',
    message: string,
  ) {
    super(code, message);
  }
}

/** Throws `Cancelled` if the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new Cancelled(undefined, { cause: signal.reason });
}

export function isMedStreamError(e: unknown): e is MedStreamError {
  return e instanceof MedStreamError;
}
