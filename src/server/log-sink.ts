// The server log's default destination: lines written during one turn of the event loop leave
// together, in one write per 4 KiB, after the turn (setImmediate). A busy server answers many
// requests per turn, so its access log costs one system call per dozen lines instead of one per
// line; a quiet one writes each line as soon as its turn ends, as before.
//
// Writes are synchronous (as pino's default destination), so nothing is queued across turns and
// what is buffered is written on exit. Each write ends at a line boundary and holds at most
// PIPE_BUF (4096) bytes, the size POSIX keeps atomic on a pipe: with `--workers`, every process
// writes to the same stdout and their lines must not interleave mid-line.

import { writeSync } from 'node:fs';

/** The largest write a pipe keeps whole beside other writers' (PIPE_BUF on Linux). */
const ATOMIC_WRITE = 4096;
/** Written at once when a single turn queues this much (bounds the memory a burst holds). */
const MAX_QUEUED = 256 * 1024;

export class TurnBatchedSink {
  private queued: string[] = [];
  private queuedLength = 0;
  private scheduled = false;
  private readonly flushLater = () => {
    this.scheduled = false;
    this.writeQueued();
  };

  /** `writeBytes` is the system call: stdout's by default (`stdoutSink`), tests pass their own. */
  constructor(private readonly writeBytes: (bytes: Uint8Array) => void) {}

  write(line: string): void {
    this.queued.push(line);
    this.queuedLength += line.length;
    if (this.queuedLength >= MAX_QUEUED) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushLater).unref();
    }
  }

  /** Writes what is queued, synchronously (`done`: pino's `logger.flush(cb)` contract). */
  flush(done?: () => void): void {
    this.writeQueued();
    done?.();
  }

  private writeQueued(): void {
    if (this.queued.length === 0) return;
    const bytes = Buffer.from(this.queued.length === 1 ? this.queued[0] : this.queued.join(''));
    this.queued = [];
    this.queuedLength = 0;
    let start = 0;
    try {
      while (start < bytes.length) {
        const end = chunkEnd(bytes, start);
        this.writeBytes(bytes.subarray(start, end));
        start = end;
      }
    } catch {
      // Nowhere left to say it (stdout closed: EPIPE): the lines are dropped, the server goes on.
    }
  }
}

let stdout: TurnBatchedSink | undefined;

/** The process's one sink on stdout (every server built in it shares it), flushed on exit. */
export function stdoutSink(): TurnBatchedSink {
  if (!stdout) {
    const sink = new TurnBatchedSink((bytes) => writeFully(1, bytes));
    process.on('exit', () => sink.flush());
    stdout = sink;
  }
  return stdout;
}

/** Where the write from `start` ends: after the last newline within 4096 bytes, else the next. */
export function chunkEnd(bytes: Buffer, start: number): number {
  if (bytes.length - start <= ATOMIC_WRITE) return bytes.length;
  const last = bytes.lastIndexOf(0x0a, start + ATOMIC_WRITE - 1);
  if (last >= start) return last + 1;
  // One line longer than 4096 bytes goes alone (it may interleave, as it would unbatched).
  const next = bytes.indexOf(0x0a, start + ATOMIC_WRITE);
  return next === -1 ? bytes.length : next + 1;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes every byte to `fd`, waiting 1 ms whenever a non-blocking pipe is full (EAGAIN). */
function writeFully(fd: number, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) {
    try {
      written += writeSync(fd, bytes, written, bytes.length - written);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}
