// Orthanc (Debian `orthanc` 1.10 + `orthanc-dicomweb` 1.7) as the `dicomweb` suite's peer: started
// by the harness on 127.0.0.1 with its own storage in a temporary directory and the DICOMweb
// plugin at /dicom-web/; instances are imported through its REST API (POST /instances), the way
// Orthanc needs them (it serves only what it stored itself). `close()` stops it and removes all.
//
//   apt-get install -y orthanc orthanc-dicomweb

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findExecutable, freePort, stopChild, waitForPort } from './procs.js';

export const ORTHANC_INSTALL = 'apt-get install -y orthanc orthanc-dicomweb';
const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';

export async function findOrthanc(): Promise<string | undefined> {
  const binary = await findExecutable('/usr/sbin/Orthanc', 'Orthanc');
  const plugin = await readFile(DICOMWEB_PLUGIN).then(
    () => true,
    () => false,
  );
  return binary && plugin ? binary : undefined;
}

export class Orthanc {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly url: string,
  ) {}

  static async start(binary: string): Promise<Orthanc> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-orthanc-'));
    const [httpPort, dicomPort] = [await freePort(), await freePort()];
    const config = {
      Name: 'bench',
      HttpPort: httpPort,
      DicomPort: dicomPort,
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      StorageDirectory: path.join(dir, 'storage'),
      IndexDirectory: path.join(dir, 'index'),
      StorageCompression: false,
      HttpServerThreads: 50,
      LimitFindResults: 0,
      Plugins: [DICOMWEB_PLUGIN],
      DicomWeb: { Enable: true, Root: '/dicom-web/' },
    };
    const file = path.join(dir, 'orthanc.json');
    await writeFile(file, JSON.stringify(config));
    const child = spawn(binary, [file], { stdio: ['ignore', 'ignore', 'ignore'] });
    try {
      await waitForPort(httpPort, 30_000);
    } catch (e) {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    return new Orthanc(child, dir, `http://127.0.0.1:${httpPort}`);
  }

  /** Imports the files through POST /instances, `concurrency` at a time. */
  async importFiles(files: readonly string[], concurrency = 4): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const file = files[next++];
        const res = await fetch(`${this.url}/instances`, { method: 'POST', body: await readFile(file) });
        if (!res.ok) throw new Error(`Orthanc refused ${file}: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  async close(): Promise<void> {
    await stopChild(this.child);
    await rm(this.dir, { recursive: true, force: true });
  }
}
