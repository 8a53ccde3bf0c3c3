// Runs a reference script in the system Python (/usr/bin/python3 with Debian's nibabel, pydicom
// and gdcm) and parses the JSON it prints: the references the volume tests compare against.
import { execFileSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

/** Runs `script` with `args` as sys.argv[1:], returns its stdout parsed as JSON. */
export function python<T>(script: string, args: string[] = []): T {
  const out = execFileSync(PYTHON, ['-c', script, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out) as T;
}
