// Starts bench/peers/bare-node-server.mjs (the bare Node.js ceiling: a minimal node:http server
// answering fixed bytes from a Map, one process or N cluster workers) over a folder of files
// written at the URLs' decoded paths (the same folder nginx static serves). A reference row in
// the `compare` suite, not a product path.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { childPids, freePort, rssMiB, stopChild, untilListening } from './procs.js';

const SCRIPT = new URL('./bare-node-server.mjs', import.meta.url).pathname;

export class BareNode {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly url: string,
  ) {}

  /** Serves each of `urls` with the file at `root` + its decoded path, from memory. */
  static async start(root: string, urls: string[], workers: number): Promise<BareNode> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-bare-'));
    const manifest = path.join(dir, 'manifest.json');
    await writeFile(
      manifest,
      JSON.stringify(Object.fromEntries(urls.map((u) => [u, path.join(root, decodeURIComponent(u))]))),
    );
    const port = await freePort();
    const child = spawn(process.execPath, [SCRIPT, manifest, String(port), String(workers)], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    try {
      await untilListening(child, port, 'bare node:http server');
      return new BareNode(child, dir, `http://127.0.0.1:${port}`);
    } catch (e) {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** RSS of the process and its cluster workers, summed. */
  async rssMiB(): Promise<number> {
    let sum = await rssMiB(this.child.pid!);
    for (const pid of await childPids(this.child.pid!)) sum += await rssMiB(pid);
    return sum;
  }

  async close(): Promise<void> {
    await stopChild(this.child);
    await rm(this.dir, { recursive: true, force: true });
  }
}
