// Builds the configured Storage from a storage URL: a directory path or file:// URL, an
// s3://bucket/prefix URL, or an http(s):// base URL. The scheme decides the backend; nothing
// else in the program knows which backend it talks to.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';
import { HttpStorage } from './http.js';
import { LocalStorage } from './local.js';
import type { RetryPolicy } from './retry.js';
import { parseS3Url, S3Storage } from './s3.js';
import type { RequestObserver, Storage } from './types.js';

export interface StorageOptions {
  s3Endpoint?: string;
  s3Region?: string;
  s3ForcePathStyle?: boolean;
  retry: RetryPolicy;
  observer?: RequestObserver;
}

/** The bundled sample slides, served when no storage URL is configured. */
export const SAMPLES_DIR = fileURLToPath(new URL('../../samples/', import.meta.url));

export async function createStorage(url: string | undefined, options: StorageOptions): Promise<Storage> {
  const target = url ?? SAMPLES_DIR;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(target)?.[1]?.toLowerCase();
  switch (scheme) {
    case undefined:
      return LocalStorage.create(path.resolve(target), { observer: options.observer });
    case 'file':
      return LocalStorage.create(fileURLToPath(target), { observer: options.observer });
    case 's3': {
      const { bucket, prefix } = parseS3Url(target);
      return new S3Storage({
        bucket,
        prefix,
        endpoint: options.s3Endpoint,
        region: options.s3Region,
        forcePathStyle: options.s3ForcePathStyle,
        retry: options.retry,
        observer: options.observer,
      });
    }
    case 'http':
    case 'https':
      return new HttpStorage({ baseUrl: target, retry: options.retry, observer: options.observer });
    default:
      throw new ConfigError(
        `unknown storage scheme '${scheme}:' (use a directory path, file://, s3:// or http(s)://)`,
      );
  }
}
