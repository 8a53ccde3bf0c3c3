// A MedStream server as a user runs it, in its own process: `medstream serve <storage> ...` on
// 127.0.0.1 with a free port. Resolves once the server logs that it listens (its URL is taken
// from that line). For tests about separate replicas, which must share nothing but what they
// share in production.

import { runMedstream } from './cli.js';

export interface ServerProcess {
  url: string;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export async function startServerProcess(
  storage: string,
  flags: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<ServerProcess> {
  const run = await runMedstream(
    ['serve', storage, '--port', '0', '--host', '127.0.0.1', '--log-level', 'info', ...flags],
    { env, untilStdout: /"medstream listening".*\n/, timeoutMs: 30_000 },
  );
  const line = run.stdout.split('\n').find((l) => l.includes('"medstream listening"'));
  if (run.code !== null || line === undefined) {
    throw new Error(`medstream serve exited with ${run.code}:\n${run.stdout}${run.stderr}`);
  }
  return { url: (JSON.parse(line) as { url: string }).url, stop: run.stop };
}
