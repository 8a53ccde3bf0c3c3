// IIPImage (Debian `iipimage-server`, iipsrv 1.1) behind nginx, as the `compare` suite's tile
// server peer. iipsrv is a FastCGI program: the harness starts N of them itself with
// `iipsrv.fcgi --bind 127.0.0.1:PORT` (one per core; iipsrv answers one request at a time per
// process), writes its own nginx config into a temp dir (listening on 127.0.0.1 only,
// `least_conn` over the iipsrv ports) and runs nginx in the foreground; `close()` stops
// everything it started. IIIF requests reach iipsrv through `URI_MAP="iiif=>IIIF"`.
//
//   apt-get install -y iipimage-server nginx

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findExecutable, freePort, rssMiB, waitForPort } from './procs.js';

export const IIPSRV_CANDIDATES = ['/usr/lib/iipimage-server/iipsrv.fcgi', 'iipsrv.fcgi', 'iipsrv'];
export const IIPIMAGE_INSTALL = 'apt-get install -y iipimage-server nginx';

export interface IipBinaries {
  iipsrv: string;
  nginx: string;
}

/** The binaries IIPImage needs, or a line saying what is missing. */
export async function findIipImage(): Promise<IipBinaries | string> {
  const iipsrv = await findExecutable(...IIPSRV_CANDIDATES);
  const nginx = await findExecutable('nginx', '/usr/sbin/nginx');
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
    private readonly children: ChildProcess[],
    private readonly dir: string,
    readonly url: string,
    readonly iipsrvPids: number[],
    readonly nginxPid: number,
  ) {}

  static async start(bin: IipBinaries, options: IipOptions): Promise<IipImage> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-iip-'));
    const children: ChildProcess[] = [];
    const stopAll = async () => {
      await Promise.all(children.map((c) => stopChild(c)));
      await rm(dir, { recursive: true, force: true });
    };
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
      const port = await freePort();
      for (const sub of ['body', 'fastcgi', 'proxy', 'uwsgi', 'scgi', 'logs'])
        await mkdir(path.join(dir, sub));
      const conf = path.join(dir, 'nginx.conf');
      await writeFile(conf, nginxConfig(dir, port, ports));
      const nginx = spawn(bin.nginx, ['-e', path.join(dir, 'logs/error.log'), '-p', dir, '-c', conf], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.push(nginx);
      await waitForPort(port);
      return new IipImage(
        children,
        dir,
        `http://127.0.0.1:${port}`,
        children.slice(0, -1).map((c) => c.pid!),
        nginx.pid!,
      );
    } catch (e) {
      await stopAll();
      throw e;
    }
  }

  /** RSS of the iipsrv processes, summed (nginx not included). */
  async rssMiB(): Promise<number> {
    let sum = 0;
    for (const pid of this.iipsrvPids) sum += await rssMiB(pid);
    return sum;
  }

  async nginxRssMiB(): Promise<number> {
    return rssMiB(this.nginxPid);
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => stopChild(c)));
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function nginxConfig(dir: string, port: number, upstreams: number[]): string {
  return `# written by bench/peers/iipimage.ts
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  fastcgi_temp_path ${dir}/fastcgi;
  proxy_temp_path ${dir}/proxy;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream iipsrv {
    least_conn;
${upstreams.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      fastcgi_pass iipsrv;
      fastcgi_param PATH_INFO $fastcgi_script_name;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
      fastcgi_param SERVER_PROTOCOL $server_protocol;
      fastcgi_param REQUEST_URI $request_uri;
      fastcgi_param SERVER_NAME $host;
      fastcgi_param SERVER_PORT $server_port;
      fastcgi_param HTTPS $https if_not_empty;
    }
  }
}
`;
}
