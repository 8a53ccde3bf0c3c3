// The one place where typed errors become HTTP: status code plus the JSON body
// `{error, message, status}` (WSIStreamer's error shape). Unknown errors become a 500 whose body
// never carries a stack trace or internal detail; the full error is logged instead.

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { MedStreamError, type ErrorCode } from '../errors.js';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_id: 400,
  invalid_level: 400,
  tile_out_of_bounds: 400,
  invalid_quality: 400,
  invalid_format: 400,
  not_found: 404,
  access_denied: 403,
  invalid_range: 416,
  range_not_supported: 502,
  object_changed: 503,
  storage_error: 503,
  connection_error: 502,
  storage_timeout: 504,
  unsupported_format: 415,
  corrupt_file: 422,
  decode_error: 500,
  not_implemented: 501,
  not_acceptable: 406,
  conflict: 409,
  overloaded: 503,
  // nginx's "client closed request": nobody reads it, but logs and metrics should not say 5xx.
  cancelled: 499,
  config_error: 500,
  internal_error: 500,
  missing_signature: 401,
  missing_expiry: 401,
  signature_expired: 401,
  invalid_signature: 401,
  invalid_signature_format: 400,
  invalid_expiry_format: 400,
  model_timeout: 504,
};

/** Seconds a client should wait before retrying a 503 caused by a passing condition. */
const RETRY_AFTER_SECONDS = 1;

export interface ErrorBody {
  error: string;
  message: string;
  status: number;
}

/** Maps any thrown value to a status and a body safe to show a client. */
export function toHttpError(err: unknown): ErrorBody {
  if (err instanceof MedStreamError) {
    const status = STATUS[err.code] ?? 500;
    return { error: err.code, message: err.message, status };
  }
  const fe = err as Partial<FastifyError> | undefined;
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own client errors: bad JSON, validation, body too large, bad URL encoding.
    const status = fe.statusCode;
    const error = status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : 'bad_request';
    return { error, message: fe.message ?? 'bad request', status };
  }
  return { error: 'internal_error', message: 'internal server error', status: 500 };
}

/** Fastify error handler: logs server-side failures with the request id, answers JSON. */
export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const body = toHttpError(err);
  if (body.status >= 500 && body.status !== 499) request.log.error({ err }, body.message);
  else request.log.info({ code: body.error }, body.message);
  if (body.status === 503) reply.header('Retry-After', String(RETRY_AFTER_SECONDS));
  void reply.code(body.status).type('application/json; charset=utf-8').send(body);
}

/** Fastify not-found handler: unknown routes answer the same JSON shape. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply
    .code(404)
    .type('application/json; charset=utf-8')
    .send({
      error: 'not_found',
      message: `no route ${request.method} ${request.url.split('?')[0]}`,
      status: 404,
    });
}
