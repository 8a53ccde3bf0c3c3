// Graceful shutdown that always ends: Node's `server.close()` waits for every open connection,
// and `closeIdleConnections()` skips connections that have not sent a request yet (a client's
// pre-connected or speculative socket), so a drain could wait for the 60 s headers timeout. This
// tracks each connection's requests in flight; on drain, connections with none are closed at
// once, the others as soon as their last response ends, and everything after the timeout.
// Requests are counted through node:http's diagnostics channels: a function call per request
// and response, no listener added to each response on the hot path.

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionDrainer {
  /** Closes idle connections now, busy ones when their responses end, all of them at `timeoutMs`. */
  drain(timeoutMs: number): void;
  /** Stops the timeout once the server has closed. */
  done(): void;
}

const REQUEST_START = 'http.server.request.start';
const RESPONSE_FINISH = 'http.server.response.finish';

/** What node:http publishes on both channels. */
interface ServerMessage {
  request: IncomingMessage;
  response: ServerResponse;
  socket: Socket;
  server: Server;
}

export function trackConnections(server: Server): ConnectionDrainer {
  const active = new Map<Socket, number>();
  let draining = false;
  let timer: NodeJS.Timeout | undefined;
  server.on('connection', (socket: Socket) => {
    active.set(socket, 0);
    socket.once('close', () => active.delete(socket));
  });
  // Every http server of the process publishes here: only this one's messages count.
  const started = (message: unknown) => {
    const { socket, server: from } = message as ServerMessage;
    if (from === server) active.set(socket, (active.get(socket) ?? 0) + 1);
  };
  // Published when a response has been written (not for one whose client left first: that
  // socket closes, which forgets it).
  const finished = (message: unknown) => {
    const { socket, server: from } = message as ServerMessage;
    if (from !== server || !active.has(socket)) return;
    const left = active.get(socket)! - 1;
    active.set(socket, left);
    if (draining && left === 0) socket.destroy();
  };
  subscribe(REQUEST_START, started);
  subscribe(RESPONSE_FINISH, finished);
  return {
    drain(timeoutMs) {
      draining = true;
      for (const [socket, requests] of active) if (requests === 0) socket.destroy();
      timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      timer.unref();
    },
    done() {
      if (timer) clearTimeout(timer);
      unsubscribe(REQUEST_START, started);
      unsubscribe(RESPONSE_FINISH, finished);
    },
  };
}
