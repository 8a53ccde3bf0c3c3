// Turns "the client hung up" into an AbortSignal, so a viewer that pans away cancels the storage
// reads its tile requests started (cancellation flows down through every layer).

import type { FastifyReply } from 'fastify';

/** Fires when the response's connection closes before the response was fully written. */
export function clientAbortSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) controller.abort(new Error('client closed the connection'));
  });
  return controller.signal;
}
