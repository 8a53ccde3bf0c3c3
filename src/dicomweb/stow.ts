// STOW-RS (PS3.18 §10.5) without HTTP: each part of a multipart/related body is streamed to a
// temporary file (bounded by --stow-max-bytes), checked (Part 10, whole pixel data, UIDs, the
// study of the URL), stored in the bucket under <stow-prefix><study>/<series>/<sop>.dcm with an
// atomic write, and indexed at once, so QIDO finds it in the same second. A rejected part never
// reaches the storage; the response lists what was stored and what failed, and why.

import { createWriteStream, promises as fs, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Catalog } from '../catalog/catalog.js';
import { listingVersion } from '../catalog/indexer.js';
import { instanceRecord } from '../catalog/record.js';
import type { DicomJson } from '../dicom/json.js';
import { checkPixelDataComplete } from '../dicom/integrity.js';
import { parseDicomHeader } from '../dicom/parser.js';
import { deflatedDataOffset, inflateToFile } from '../dicom/deflated.js';
import { Tag, TransferSyntax } from '../dicom/tags.js';
import { isMedStreamError, NotImplemented, StorageUnavailable, UnsupportedFormat } from '../errors.js';
import { LocalStorage } from '../storage/local.js';
import type { Storage } from '../storage/types.js';
import { multipartParameters, readMultipart, type PartSink } from './multipart.js';

/** Failure reasons (PS3.4 C-STORE status codes, as PS3.18 Table 10.5.3-2 uses them). */
export const FailureReason = {
  ProcessingFailure: 0x0110,
  OutOfResources: 0xa700,
  DataSetDoesNotMatch: 0xa900,
  CannotUnderstand: 0xc000,
} as const;

export interface StowOptions {
  storage: Storage;
  catalog: Catalog;
  /** Key prefix in the storage, ending in `/`. */
  prefix: string;
  maxBytes: number;
  /** Where parts are spooled while they arrive. */
  tmpDir: string;
  maxParts?: number;
}

interface Outcome {
  sopClassUid?: string;
  sopUid?: string;
  studyUid?: string;
  seriesUid?: string;
  failure?: { reason: number; comment: string };
}

export interface StowResponse {
  status: 200 | 202 | 409;
  body: DicomJson;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const valid = (uid: string | undefined): uid is string => !!uid && uid.length <= 64 && UID.test(uid);

export class StowService {
  constructor(private readonly options: StowOptions) {}

  /** Throws 415 / 400 for a request that is not a STOW-RS body at all. */
  static checkContentType(contentType: string | undefined): string {
    const params = multipartParameters(contentType ?? '');
    if (params.mediaType !== 'multipart/related') {
      throw new UnsupportedFormat(
        `STOW-RS takes multipart/related; type="application/dicom", not ${contentType ?? 'no body'}`,
      );
    }
    if (params.type !== undefined && params.type !== 'application/dicom') {
      throw new UnsupportedFormat(
        `only type="application/dicom" is supported (not ${params.type}: metadata + bulk data)`,
      );
    }
    if (!params.boundary) throw new UnsupportedFormat('multipart/related without a boundary parameter');
    return params.boundary;
  }

  async store(
    body: AsyncIterable<Buffer>,
    contentType: string | undefined,
    options: { studyUid?: string; baseUrl: string; signal?: AbortSignal },
  ): Promise<StowResponse> {
    const storage = this.options.storage;
    if (!storage.put)
      throw new NotImplemented(
        `the storage (${storage.description}) is read-only: STOW-RS needs S3 or a local directory`,
      );
    const boundary = StowService.checkContentType(contentType);
    await fs.mkdir(this.options.tmpDir, { recursive: true });
    const spool = await LocalStorage.create(this.options.tmpDir);
    const outcomes: Outcome[] = [];
    try {
      await readMultipart(body, boundary, (headers) => this.sink(headers, spool, options, outcomes), {
        maxParts: this.options.maxParts ?? 10_000,
        maxHeaderBytes: 16 * 1024,
      });
    } finally {
      await spool.close();
    }
    return this.response(outcomes, options);
  }

  /**
   * Stores one instance made by the server itself (a segmentation's SEG) through the same checks,
   * key layout and indexing as a STOW-RS part. Throws `unsupported_format` for a failed check and
   * `storage_error` when it could not be stored.
   */
  async storeInstance(
    bytes: Uint8Array,
    options: { studyUid?: string; signal?: AbortSignal } = {},
  ): Promise<{ studyUid: string; seriesUid: string; sopUid: string }> {
    const storage = this.options.storage;
    if (!storage.put)
      throw new NotImplemented(`the storage (${storage.description}) is read-only: cannot store a SEG`);
    await fs.mkdir(this.options.tmpDir, { recursive: true });
    const name = `stow-${randomUUID()}.dcm`;
    const path = join(this.options.tmpDir, name);
    const spool = await LocalStorage.create(this.options.tmpDir);
    try {
      await fs.writeFile(path, bytes);
      const outcome = await this.accept(spool, name, path, options);
      if (outcome.failure) {
        const message = `the instance was not stored: ${outcome.failure.comment}`;
        if (outcome.failure.reason === FailureReason.ProcessingFailure) throw new StorageUnavailable(message);
        throw new UnsupportedFormat(message);
      }
      return { studyUid: outcome.studyUid!, seriesUid: outcome.seriesUid!, sopUid: outcome.sopUid! };
    } finally {
      await spool.close();
      await fs.rm(path, { force: true });
    }
  }

  private sink(
    headers: Record<string, string>,
    spool: LocalStorage,
    options: { studyUid?: string; signal?: AbortSignal },
    outcomes: Outcome[],
  ): PartSink {
    const name = `stow-${randomUUID()}.dcm`;
    const path = join(this.options.tmpDir, name);
    const type = (headers['content-type'] ?? 'application/dicom').split(';')[0].trim().toLowerCase();
    let out: WriteStream | undefined = createWriteStream(path);
    let bytes = 0;
    let failure: Outcome['failure'] =
      type === 'application/dicom'
        ? undefined
        : { reason: FailureReason.CannotUnderstand, comment: `part of type ${type}` };
    const close = () =>
      new Promise<void>((resolve, reject) => {
        if (!out) return resolve();
        out.end((e?: Error | null) => (e ? reject(e) : resolve()));
        out = undefined;
      });
    return {
      write: async (chunk) => {
        if (failure || !out) return;
        bytes += chunk.length;
        if (bytes > this.options.maxBytes) {
          failure = {
            reason: FailureReason.OutOfResources,
            comment: `instance larger than ${this.options.maxBytes} bytes`,
          };
          await close();
          return;
        }
        if (!out.write(chunk)) await new Promise<void>((resolve) => out!.once('drain', () => resolve()));
      },
      end: async () => {
        await close();
        try {
          outcomes.push(failure ? { failure } : await this.accept(spool, name, path, options));
        } finally {
          await fs.rm(path, { force: true });
        }
      },
      abort: async () => {
        await close();
        await fs.rm(path, { force: true });
        outcomes.push({
          failure: {
            reason: FailureReason.CannotUnderstand,
            comment: 'the request body ended inside this part',
          },
        });
      },
    };
  }

  /** Checks one spooled instance, stores and indexes it. */
  private async accept(
    spool: LocalStorage,
    name: string,
    path: string,
    options: { studyUid?: string; signal?: AbortSignal },
  ): Promise<Outcome> {
    let header;
    const source = await spool.open(name);
    try {
      // Deflated objects: the header is read from the inflating stream, the pixel data checked in
      // an inflated copy (offsets are the inflated object's, as the catalog records them).
      header = await parseDicomHeader(source, { signal: options.signal, inflate: true });
      if (header.transferSyntax === TransferSyntax.DeflatedExplicitVrLittleEndian) {
        const inflated = `${name}.inflated`;
        try {
          const from = await deflatedDataOffset(source, options.signal);
          await inflateToFile(source, from, `${path}.inflated`, this.options.maxBytes, options.signal);
          await checkPixelDataComplete(await spool.open(inflated), header, options.signal);
        } finally {
          await fs.rm(`${path}.inflated`, { force: true });
        }
      } else await checkPixelDataComplete(source, header, options.signal);
    } catch (e) {
      const message = isMedStreamError(e)
        ? e.message.replace(`${name}.inflated: `, '').replace(`${name}: `, '')
        : 'unreadable';
      const tooLarge = e instanceof UnsupportedFormat && /inflates past/.test(e.message);
      return {
        failure: {
          reason: tooLarge ? FailureReason.OutOfResources : FailureReason.CannotUnderstand,
          comment: message,
        },
      };
    }
    const d = header.dataset;
    const outcome: Outcome = {
      sopClassUid: d.string(Tag.SopClassUid) ?? header.meta.string(Tag.MediaStorageSopClassUid),
      sopUid: d.string(Tag.SopInstanceUid),
      studyUid: d.string(Tag.StudyInstanceUid),
      seriesUid: d.string(Tag.SeriesInstanceUid),
    };
    const missing = (['studyUid', 'seriesUid', 'sopUid', 'sopClassUid'] as const).filter(
      (k) => !valid(outcome[k]),
    );
    if (missing.length) {
      return {
        ...outcome,
        failure: {
          reason: FailureReason.DataSetDoesNotMatch,
          comment: `missing or invalid ${missing.join(', ')}`,
        },
      };
    }
    if (options.studyUid !== undefined && outcome.studyUid !== options.studyUid) {
      return {
        ...outcome,
        failure: {
          reason: FailureReason.DataSetDoesNotMatch,
          comment: 'StudyInstanceUID is not the study of the request URL',
        },
      };
    }
    const key = `${this.options.prefix}${outcome.studyUid}/${outcome.seriesUid}/${outcome.sopUid}.dcm`;
    try {
      const stat = await this.options.storage.put!(key, path, {
        signal: options.signal,
        contentType: 'application/dicom',
      });
      const record = instanceRecord(
        { key, version: listingVersion(stat), size: stat.size },
        header,
        this.options.storage.description,
      );
      await this.options.catalog.applyBatch(
        { seen: [], instances: [record], others: [] },
        await this.options.catalog.currentScan(),
      );
    } catch (e) {
      const message = isMedStreamError(e) ? `${e.code}: ${e.message}` : 'internal error';
      return {
        ...outcome,
        failure: { reason: FailureReason.ProcessingFailure, comment: `not stored: ${message}` },
      };
    }
    return outcome;
  }

  private response(outcomes: Outcome[], options: { studyUid?: string; baseUrl: string }): StowResponse {
    const stored = outcomes.filter((o) => !o.failure);
    const failed = outcomes.filter((o) => o.failure);
    const uidValue = (v: string | undefined) => (valid(v) ? { vr: 'UI', Value: [v] } : { vr: 'UI' });
    const body: DicomJson = {};
    if (options.studyUid !== undefined) {
      body['00081190'] = { vr: 'UR', Value: [`${options.baseUrl}/studies/${options.studyUid}`] };
    }
    if (failed.length) {
      body['00081198'] = {
        vr: 'SQ',
        Value: failed.map((o) => ({
          '00081150': uidValue(o.sopClassUid),
          '00081155': uidValue(o.sopUid),
          '00081197': { vr: 'US', Value: [o.failure!.reason] },
          // ErrorComment is an LO: 64 characters.
          '00000902': { vr: 'LO', Value: [o.failure!.comment.slice(0, 64)] },
        })),
      };
    }
    if (stored.length) {
      body['00081199'] = {
        vr: 'SQ',
        Value: stored.map((o) => ({
          '00081150': uidValue(o.sopClassUid),
          '00081155': uidValue(o.sopUid),
          '00081190': {
            vr: 'UR',
            Value: [`${options.baseUrl}/studies/${o.studyUid}/series/${o.seriesUid}/instances/${o.sopUid}`],
          },
        })),
      };
    }
    const status = failed.length === 0 && stored.length > 0 ? 200 : stored.length > 0 ? 202 : 409;
    return { status, body };
  }
}
