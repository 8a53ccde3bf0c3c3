// The log's default destination (server/log-sink.ts): the lines of one event-loop turn leave in
// one write after the turn, each write at most 4096 bytes and ending at a line boundary, so that
// workers sharing a stdout pipe never interleave mid-line.
import { describe, expect, it } from 'vitest';
import { TurnBatchedSink, chunkEnd } from '../../src/server/log-sink.js';

function recorder(): { writes: string[]; sink: TurnBatchedSink } {
  const writes: string[] = [];
  return { writes, sink: new TurnBatchedSink((bytes) => void writes.push(Buffer.from(bytes).toString())) };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('TurnBatchedSink', () => {
  it('writes the lines of one turn together, after it', async () => {
    const { writes, sink } = recorder();
    sink.write('{"a":1}\n');
    sink.write('{"b":2}\n');
    expect(writes).toEqual([]);
    await turn();
    expect(writes).toEqual(['{"a":1}\n{"b":2}\n']);
    sink.write('{"c":3}\n');
    await turn();
    expect(writes).toEqual(['{"a":1}\n{"b":2}\n', '{"c":3}\n']);
  });

  it('cuts a large turn into writes of at most 4096 bytes at line ends, in order', async () => {
    const { writes, sink } = recorder();
    const lines = Array.from(
      { length: 300 },
      (_, i) => `${JSON.stringify({ i, pad: 'é'.repeat(i % 97) })}\n`,
    );
    for (const line of lines) sink.write(line);
    await turn();
    expect(writes.length).toBeGreaterThan(5);
    for (const w of writes) {
      expect(Buffer.byteLength(w)).toBeLessThanOrEqual(4096);
      expect(w.endsWith('\n')).toBe(true);
    }
    expect(writes.join('')).toBe(lines.join(''));
  });

  it('sends a line longer than 4096 bytes alone, whole', async () => {
    const { writes, sink } = recorder();
    const long = `${'x'.repeat(5000)}\n`;
    sink.write('short\n');
    sink.write(long);
    sink.write('after\n');
    await turn();
    expect(writes).toEqual(['short\n', long, 'after\n']);
  });

  it('writes at once when one turn queues 256 KiB', () => {
    const { writes, sink } = recorder();
    const line = `${'y'.repeat(1023)}\n`;
    for (let i = 0; i < 256; i++) sink.write(line);
    expect(writes.join('')).toBe(line.repeat(256));
  });

  it('drops the lines, without throwing, when the write fails (stdout closed)', async () => {
    let calls = 0;
    const sink = new TurnBatchedSink(() => {
      calls++;
      throw Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    });
    sink.write('lost\n');
    expect(() => sink.flush()).not.toThrow();
    expect(calls).toBe(1);
    sink.flush(); // nothing queued any more
    expect(calls).toBe(1);
  });

  it("flush writes at once and calls pino's callback", () => {
    const { writes, sink } = recorder();
    sink.write('now\n');
    let called = false;
    sink.flush(() => (called = true));
    expect([writes, called]).toEqual([['now\n'], true]);
  });

  it('chunkEnd finds the last newline within 4096 bytes', () => {
    const bytes = Buffer.from(`${'a'.repeat(4000)}\n${'b'.repeat(200)}\n`);
    expect(chunkEnd(bytes, 0)).toBe(4001);
    expect(chunkEnd(bytes, 4001)).toBe(bytes.length);
  });
});
