// OpenSlide (Debian `python3-openslide`, with `python3-pil`) as the region-read peer: a
// long-lived Python worker (bench/peers/openslide_worker.py) driven over stdin/stdout, so its
// runs can be interleaved with MedStream's.
//
//   apt-get install -y python3-openslide python3-pil

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { findExecutable, pythonCan, rssMiB } from './procs.js';

export const OPENSLIDE_INSTALL = 'apt-get install -y python3-openslide python3-pil';
const WORKER = fileURLToPath(new URL('./openslide_worker.py', import.meta.url));

export interface OpenSlideRegions {
  seconds: number;
  latencies_ms: number[];
  bytes: number;
}

/** A Python that can import openslide and PIL (Debian's first), or a line saying why not. */
export async function findOpenSlide(): Promise<string | { missing: string }> {
  const candidates = ['/usr/bin/python3', 'python3'];
  for (const candidate of candidates) {
    const python = await findExecutable(candidate);
    if (python && pythonCan(python, 'import openslide, PIL')) return python;
  }
  return { missing: `python3 with openslide and PIL not found (install: ${OPENSLIDE_INSTALL})` };
}

export class OpenSlideWorker {
  private readonly waiting: ((line: string) => void)[] = [];

  private constructor(
    private readonly child: ChildProcess,
    private readonly lines: Interface,
  ) {
    lines.on('line', (line) => this.waiting.shift()?.(line));
  }

  static start(python: string): OpenSlideWorker {
    const child = spawn(python, [WORKER], { stdio: ['pipe', 'pipe', 'inherit'] });
    return new OpenSlideWorker(child, createInterface({ input: child.stdout! }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  rssMiB(): Promise<number> {
    return rssMiB(this.pid);
  }

  async info(): Promise<{ openslide: string; pil: string }> {
    return (await this.command({ op: 'info' })) as { openslide: string; pil: string };
  }

  async regions(
    slide: string,
    regions: [number, number, number, number][],
    format: 'png' | 'jpg' | 'none',
    threads: number,
    quality = 80,
  ): Promise<OpenSlideRegions> {
    return (await this.command({
      op: 'regions',
      slide,
      regions,
      format,
      threads,
      quality,
    })) as OpenSlideRegions;
  }

  /**
   * Starts the worker's minimal HTTP server (http.server, a thread per connection) and answers
   * its base URL: GET {base}/region?slide=PATH&x&y&width&height&format&quality.
   */
  async serve(): Promise<string> {
    const { port } = (await this.command({ op: 'serve' })) as { port: number };
    return `http://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGTERM'), 5000);
    await exited;
    clearTimeout(timer);
    this.lines.close();
  }

  private command(command: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onExit = () => reject(new Error('openslide worker exited'));
      this.child.once('exit', onExit);
      this.waiting.push((line) => {
        this.child.off('exit', onExit);
        const reply = JSON.parse(line) as { error?: string };
        if (reply.error !== undefined) reject(new Error(`openslide worker: ${reply.error}`));
        else resolve(reply);
      });
      this.child.stdin!.write(`${JSON.stringify(command)}\n`);
    });
  }
}
