// The fast path's access-log line (server/access-log.ts, DirectAccessLog) is byte for byte the line
// pino writes for the same fields under the server's logger options (loggerOptions, as app.ts
// uses them), time aside: so a change of those options that changes the shape fails here. Also:
// nothing below the logger's level, the URL's credentials redacted, odd characters escaped as
// pino escapes them, and a line with a missing field (a closed socket) left to pino.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DirectAccessLog, loggerOptions, type FastAccess } from '../../src/server/access-log.js';

function capture(level = 'info') {
  const lines: string[] = [];
  const log = pino(loggerOptions(level), { write: (line: string) => void lines.push(line) });
  return { lines, log };
}

/** What pino writes for these fields, as the fast path used to log them. */
function viaPino(a: FastAccess): string {
  const { lines, log } = capture();
  const { reqId, method, url, host, remoteAddress, remotePort, statusCode, responseTime } = a;
  log.info(
    {
      reqId,
      req: { method, url, host, remoteAddress, remotePort },
      res: { statusCode },
      responseTime,
      fastPath: true,
    },
    'request completed',
  );
  return lines[0];
}

const withoutTime = (line: string) => line.replace(/"time":\d+/, '"time":0');

const base: FastAccess = {
  reqId: 'b42f5cdf-51e9-469b-86c3-7fa40889a08d',
  method: 'GET',
  url: '/iiif/3/CMU.svs/0,0,240,240/240,/0/default.jpg',
  host: '127.0.0.1:3000',
  remoteAddress: '127.0.0.1',
  remotePort: 51234,
  statusCode: 200,
  responseTime: 0.0123,
};

describe('DirectAccessLog', () => {
  it('writes the line pino writes for the same fields', () => {
    for (const a of [
      base,
      { ...base, statusCode: 304, method: 'HEAD', responseTime: 1.5e-7 },
      // A client's request id, host and URL may hold anything pino must escape.
      { ...base, reqId: 'id "quoted" \\ back\nslash \u0001 é 😀', host: 'h\u007f"x' },
      { ...base, url: '/tiles/caf%C3%A9.svs/0/1/1.jpg?x="y"&z=\t', remoteAddress: '::ffff:10.0.0.7' },
      // Credentials in the URL are redacted by the same rule as Fastify's lines.
      { ...base, url: '/tiles/a.svs/0/1/1.jpg?vt=0123abcd&exp=99&sig=ffee' },
    ]) {
      const { lines, log } = capture();
      new DirectAccessLog(log).write(a);
      expect(lines).toHaveLength(1);
      expect(withoutTime(lines[0])).toBe(withoutTime(viaPino(a)));
      const time = (JSON.parse(lines[0]) as { time: number }).time;
      expect(Math.abs(time - Date.now())).toBeLessThan(5_000);
    }
    const { lines, log } = capture();
    new DirectAccessLog(log).write({ ...base, url: '/tiles/a.svs/0/1/1.jpg?vt=0123abcd&exp=99' });
    expect(lines[0]).toContain('vt=[redacted]&exp=99');
    expect(lines[0]).not.toContain('0123abcd');
  });

  it("keeps a child logger's bindings", () => {
    const { lines, log } = capture();
    const child = log.child({ worker: 2 });
    new DirectAccessLog(child).write(base);
    expect(JSON.parse(lines[0])).toMatchObject({ pid: process.pid, worker: 2, reqId: base.reqId });
  });

  it('writes nothing below the logger level, and leaves a missing field to pino', () => {
    const quiet = capture('warn');
    new DirectAccessLog(quiet.log).write(base);
    expect(quiet.lines).toEqual([]);
    const missing = { ...base, remoteAddress: undefined, remotePort: undefined };
    const { lines, log } = capture();
    new DirectAccessLog(log).write(missing);
    expect(withoutTime(lines[0])).toBe(withoutTime(viaPino(missing)));
    expect(JSON.parse(lines[0]).req).toEqual({ method: 'GET', url: base.url, host: base.host });
  });
});
