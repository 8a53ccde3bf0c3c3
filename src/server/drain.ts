// Graceful shutdown that always ends: Node's `server.close()` waits for every open connection,
// and `closeIdleConnections()` skips connections that have not sent a request yet (a client's
// pre-connected or speculative socket), so a drain could wait for the 60 s headers timeout. This
// tracks each connection's requests in flight; on drain, connections with none are closed at
// once, the others as soon as their last response ends, and everything after the timeout.

import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionDrainer {
  /** Closes idle connections now, busy ones when their responses end, all of them at `timeoutMs`. */
  drain(timeoutMs: number): void;
  /** Stops the timeout once the server has closed. */
  done(): void;
}

export function trackConnections(server: Server): ConnectionDrainer {
  const active = new Map<Socket, number>();
  let draining = false;
  let timer: NodeJS.Timeout | undefined;
  server.on('connection', (socket: Socket) => {
    active.set(socket, 0);
    socket.once('close', () => active.delete(socket));
  });
  server.on('request', (req, res) => {
    const socket = req.socket;
    active.set(socket, (active.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const left = (active.get(socket) ?? 1) - 1;
      active.set(socket, left);
      if (draining && left === 0) socket.destroy();
    });
  });
  return {
    drain(timeoutMs) {
      draining = true;
      for (const [socket, requests] of active) if (requests === 0) socket.destroy();
      timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      timer.unref();
    },
    done() {
      if (timer) clearTimeout(timer);
    },
  };
}
