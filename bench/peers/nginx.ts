// nginx (Debian package `nginx`) as the load balancer the benchmarks put in front of a set of
// servers on 127.0.0.1: the FastCGI front of IIPImage's iipsrv processes (`compare` suite,
// `least_conn`) and the HTTP front of MedStream replicas (`replicas` suite, nginx's default
// round-robin, keepalive connections to the upstreams). It runs in the foreground with one
// worker from its own config in a temp dir (temp paths, pid file and error log there too),
// listens on 127.0.0.1 only and logs no requests; `close()` stops it and removes the dir.
// `Nginx.startStatic` runs it instead as a static file server over a folder, one worker per
// core (the `compare` suite's ceiling for a cached tile: the same bytes as plain files), with no
// access log or, for the rows that compare MedStream's own access log, nginx's default one
// (the combined format, one unbuffered write per request, to a file in the temp dir).
//
//   apt-get install -y nginx

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  childPids,
  cpuSeconds,
  findExecutable,
  freePort,
  rssMiB,
  stopChild,
  untilListening,
} from './procs.js';

export const NGINX_INSTALL = 'apt-get install -y nginx';

export async function findNginx(): Promise<string | undefined> {
  return findExecutable('nginx', '/usr/sbin/nginx');
}

export interface NginxOptions {
  /** Ports (on 127.0.0.1) of the upstream servers. */
  upstreams: number[];
  /** Serve this folder as static files instead of proxying (upstreams then unused). */
  root?: string;
  /** `fastcgi`: FastCGI servers (iipsrv), a connection per request; `http`: HTTP/1.1 servers over keepalive connections. */
  protocol: 'fastcgi' | 'http';
  /** nginx's default (weighted) round-robin, or `least_conn`. */
  balance: 'round-robin' | 'least_conn';
}

export class Nginx {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly url: string,
  ) {}

  /** A static file server over `root` (sendfile, open-file cache, `worker_processes auto`). */
  static async startStatic(
    binary: string,
    root: string,
    options: { accessLog?: boolean } = {},
  ): Promise<Nginx> {
    return Nginx.launch(binary, (dir, port) => staticConfig(dir, port, root, options.accessLog === true));
  }

  static async start(binary: string, options: NginxOptions): Promise<Nginx> {
    return Nginx.launch(binary, (dir, port) => nginxConfig(dir, port, options));
  }

  private static async launch(binary: string, config: (dir: string, port: number) => string): Promise<Nginx> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-nginx-'));
    let child: ChildProcess | undefined;
    try {
      const port = await freePort();
      for (const sub of ['body', 'fastcgi', 'proxy', 'uwsgi', 'scgi', 'logs'])
        await mkdir(path.join(dir, sub));
      const conf = path.join(dir, 'nginx.conf');
      await writeFile(conf, config(dir, port));
      child = spawn(binary, ['-e', path.join(dir, 'logs/error.log'), '-p', dir, '-c', conf], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      await untilListening(child, port, 'nginx');
      return new Nginx(child, dir, `http://127.0.0.1:${port}`);
    } catch (e) {
      if (child) await stopChild(child);
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** The master and its workers. */
  private async pids(): Promise<number[]> {
    return [this.child.pid!, ...(await childPids(this.child.pid!))];
  }

  /** RSS of the master and the workers, summed. */
  async rssMiB(): Promise<number> {
    let sum = 0;
    for (const pid of await this.pids()) sum += await rssMiB(pid);
    return sum;
  }

  /** CPU seconds of the master and the workers so far. */
  async cpuSeconds(): Promise<number> {
    let sum = 0;
    for (const pid of await this.pids()) sum += await cpuSeconds(pid);
    return sum;
  }

  async close(): Promise<void> {
    await stopChild(this.child);
    await rm(this.dir, { recursive: true, force: true });
  }
}

const FASTCGI_LOCATION = `      fastcgi_pass upstreams;
      fastcgi_param PATH_INFO $fastcgi_script_name;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
      fastcgi_param SERVER_PROTOCOL $server_protocol;
      fastcgi_param REQUEST_URI $request_uri;
      fastcgi_param SERVER_NAME $host;
      fastcgi_param SERVER_PORT $server_port;
      fastcgi_param HTTPS $https if_not_empty;`;

// Buffers large enough for a 256-px PNG tile (~80-200 KiB) in memory, never a temp file.
const HTTP_LOCATION = `      proxy_pass http://upstreams;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
      proxy_max_temp_file_size 0;`;

function upstreamBlock(options: NginxOptions): string {
  const http = options.protocol === 'http';
  return `  upstream upstreams {
${options.balance === 'least_conn' ? '    least_conn;\n' : ''}${options.upstreams.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
${http ? '    keepalive 128;\n    keepalive_requests 1000000;\n' : ''}  }
`;
}

/** The start every config shares: one process in the foreground, its files under `dir`. */
function head(dir: string, note: string, workers: string): string {
  return `# written by bench/peers/nginx.ts${note}
worker_processes ${workers};
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
  keepalive_requests 1000000;`;
}

function nginxConfig(dir: string, port: number, options: NginxOptions): string {
  const http = options.protocol === 'http';
  return `${head(dir, '', '1')}
${options.root ? '' : upstreamBlock(options)}  server {
    listen 127.0.0.1:${port};
    location / {
${options.root ? `      root ${options.root};` : http ? HTTP_LOCATION : FASTCGI_LOCATION}
    }
  }
}
`;
}

function staticConfig(dir: string, port: number, root: string, accessLog: boolean): string {
  return `${head(dir, ' (static)', 'auto')}
${accessLog ? `  access_log ${dir}/logs/access.log;\n` : ''}  sendfile on;
  tcp_nopush on;
  open_file_cache max=10000 inactive=60s;
  types { image/jpeg jpg; }
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
}
