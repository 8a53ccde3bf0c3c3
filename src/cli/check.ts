// `medstream check <storage-url>`: verifies that the configured storage is reachable with the
// configured credentials, lists what is there and, with --test-slide, reads an object's first
// bytes — printing each step, so an operator sees exactly which one fails and why.

import { MedStreamError } from '../errors.js';
import { createStorage } from '../storage/index.js';
import type { Config } from './config.js';
import { retryPolicyOf } from './serve.js';

export interface CheckOptions {
  listSlides: boolean;
  testSlide?: string;
  /** Where to print (stdout by default; tests capture it). */
  out?: (line: string) => void;
}

export async function runCheck(config: Config, options: CheckOptions): Promise<number> {
  const print = options.out ?? ((line: string) => process.stdout.write(line + '\n'));
  const storage = await createStorage(config.storage, {
    s3Endpoint: config.s3Endpoint,
    s3Region: config.s3Region,
    s3ForcePathStyle: config.s3ForcePathStyle,
    retry: retryPolicyOf(config),
  });
  print(`storage: ${storage.description} (${storage.kind})`);
  try {
    let cursor: string | undefined;
    let total = 0;
    do {
      const page = await storage.list({ cursor, limit: 1000 });
      total += page.objects.length;
      if (options.listSlides) for (const o of page.objects) print(`  ${o.key}\t${o.size} bytes`);
      cursor = options.listSlides ? page.nextCursor : undefined;
      if (!options.listSlides && page.nextCursor)
        print(`listing: ok, first page ${page.objects.length} objects (more exist)`);
      else if (!cursor) print(`listing: ok, ${total} objects`);
    } while (cursor);
  } catch (e) {
    if (!(e instanceof MedStreamError) || e.code !== 'not_implemented')
      return fail(print, 'listing', e, storage);
    print(`listing: not available (${e.message})`);
  }
  if (options.testSlide !== undefined) {
    try {
      const source = await storage.open(options.testSlide);
      print(`open ${options.testSlide}: ok, ${source.size} bytes, identity ${source.identity}`);
      const length = Math.min(source.size, 64 * 1024);
      const started = Date.now();
      if (length > 0) await source.read(0, length);
      print(`read first ${length} bytes: ok in ${Date.now() - started} ms`);
    } catch (e) {
      return fail(print, `open ${options.testSlide}`, e, storage);
    }
  }
  await storage.close();
  print('check: ok');
  return 0;
}

async function fail(
  print: (line: string) => void,
  step: string,
  e: unknown,
  storage: { close(): Promise<void> },
) {
  const what = e instanceof MedStreamError ? `${e.code}: ${e.message}` : String(e);
  print(`${step}: FAILED — ${what}`);
  await storage.close();
  return 1;
}
