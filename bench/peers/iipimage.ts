// IIPImage (Debian `iipimage-server`, iipsrv 1.1) behind nginx, as the `compare` suite's tile
// server peer. iipsrv is a FastCGI program: the harness starts N of them itself with
// `iipsrv.fcgi --bind 127.0.0.1:PORT` (one per core; iipsrv answers one request at a time per
// process) and puts nginx in front of them (bench/peers/nginx.ts: 127.0.0.1 only, `least_conn`
// over the iipsrv ports); `close()` stops everything it started. IIIF requests reach iipsrv
// through `URI_MAP="iiif=>IIIF"`.
//
//   apt-get install -y iipimage-server nginx

import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { findNginx, Nginx } from './nginx.js';
import { findExecutable, freePort, rssMiB, stopChild, waitForPort } from './procs.js';

export const IIPSRV_CANDIDATES = ['/usr/lib/iipimage-server/iipsrv.fcgi', 'iipsrv.fcgi', 'iipsrv'];
export const IIPIMAGE_INSTALL = 'apt-get install -y iipimage-server nginx';

export interface IipBinaries {
  iipsrv: string;
  nginx: string;
}

/** The binaries IIPImage needs, or a line saying what is missing. */
export async function findIipImage(): Promise<IipBinaries | string> {
  const iipsrv = await findExecutable(...IIPSRV_CANDIDATES);
  const nginx = await findNginx();
  if (iipsrv && nginx) return { iipsrv, nginx };
  const missing = [iipsrv ? null : 'iipsrv.fcgi', nginx ? null : 'nginx'].filter(Boolean).join(' and ');
  return `${missing} not found (install: ${IIPIMAGE_INSTALL})`;
}

export interface IipOptions {
  /** Directory holding the slides (iipsrv's FILESYSTEM_PREFIX). */
  root: string;
  /** iipsrv's MAX_IMAGE_CACHE_SIZE in MB (its encoded-tile cache; 0 = off). */
  cacheMB: number;
  /** iipsrv processes (default: one per CPU). */
  processes?: number;
  /** iipsrv's JPEG_QUALITY (its default is 75). */
  jpegQuality?: number;
}

export class IipImage {
  private constructor(
    private readonly iipsrv: ChildProcess[],
    private readonly nginx: Nginx,
  ) {}

  static async start(bin: IipBinaries, options: IipOptions): Promise<IipImage> {
    const children: ChildProcess[] = [];
    try {
      const processes = options.processes ?? os.cpus().length;
      const ports = await Promise.all(Array.from({ length: processes }, () => freePort()));
      const root = options.root.endsWith('/') ? options.root : `${options.root}/`;
      for (const port of ports) {
        const child = spawn(bin.iipsrv, ['--bind', `127.0.0.1:${port}`], {
          stdio: ['ignore', 'ignore', 'inherit'],
          env: {
            ...process.env,
            FILESYSTEM_PREFIX: root,
            URI_MAP: 'iiif=>IIIF',
            MAX_IMAGE_CACHE_SIZE: String(options.cacheMB),
            JPEG_QUALITY: String(options.jpegQuality ?? 75),
            VERBOSITY: '0',
            CORS: '*',
          },
        });
        children.push(child);
      }
      await Promise.all(ports.map((p) => waitForPort(p)));
      const nginx = await Nginx.start(bin.nginx, {
        upstreams: ports,
        protocol: 'fastcgi',
        balance: 'least_conn',
      });
      return new IipImage(children, nginx);
    } catch (e) {
      await Promise.all(children.map((c) => stopChild(c)));
      throw e;
    }
  }

  get url(): string {
    return this.nginx.url;
  }

  get iipsrvPids(): number[] {
    return this.iipsrv.map((c) => c.pid!);
  }

  /** RSS of the iipsrv processes, summed (nginx not included). */
  async rssMiB(): Promise<number> {
    let sum = 0;
    for (const pid of this.iipsrvPids) sum += await rssMiB(pid);
    return sum;
  }

  async nginxRssMiB(): Promise<number> {
    return this.nginx.rssMiB();
  }

  async close(): Promise<void> {
    await Promise.all([...this.iipsrv.map((c) => stopChild(c)), this.nginx.close()]);
  }
}
