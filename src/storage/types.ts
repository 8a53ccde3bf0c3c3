// The read interface every storage backend implements, and the per-object `ByteSource` that the
// layers above read from. Backends only stat, read ranges and list; caching, coalescing and
// statistics are added by wrapping a ByteSource in `io/`, never by growing this interface.
//
//   Storage (local | s3 | http) --open(key)--> ByteSource --io/ wrappers--> formats/

/** What a store knows about one object. */
export interface ObjectInfo {
  /** Key relative to the storage root/prefix, `/`-separated, never starting with `/`. */
  key: string;
  size: number;
  /** Strong or weak validator from the store, without quotes, when it has one. */
  etag?: string;
  lastModified?: Date;
}

/** `ObjectInfo` plus an identity string that changes whenever the object is replaced. */
export interface ObjectStat extends ObjectInfo {
  /**
   * Opaque, stable for one version of the object: size plus ETag (S3, HTTP) or size plus
   * mtime (local). Caches key everything they keep about an object by it, so a replaced
   * object never serves stale bytes.
   */
  identity: string;
}

export interface ReadOptions {
  signal?: AbortSignal;
  /**
   * What the bytes are for. `metadata` reads (TIFF headers, IFDs, tag arrays) are small and
   * scattered and go through the block cache; `data` reads (tiles) are fetched exactly as
   * asked, coalesced with neighbours issued at the same time. Backends ignore it.
   */
  purpose?: 'metadata' | 'data';
}

export interface ListOptions {
  /** Only keys starting with this (relative to the storage root). */
  prefix?: string;
  /**
   * With `/`, keys below the next `/` after the prefix are folded into `prefixes`
   * (folder navigation), like S3's ListObjectsV2 Delimiter.
   */
  delimiter?: '/';
  /** Opaque continuation token from a previous page's `nextCursor`. */
  cursor?: string;
  /** Page size, 1..1000. */
  limit?: number;
  signal?: AbortSignal;
}

export interface ListPage {
  objects: ObjectInfo[];
  /** Folder prefixes (ending in `/`) when `delimiter` was given. */
  prefixes: string[];
  /** Present when there are more results. */
  nextCursor?: string;
}

/** One configured store (a directory, a bucket + prefix, an HTTP base URL). */
export interface Storage {
  readonly kind: 'local' | 's3' | 'http';
  /** Human-readable location for logs and `medstream check`, without credentials. */
  readonly description: string;
  /** Size and identity of one object. Throws `NotFound`, `AccessDenied`, `StorageUnavailable`. */
  stat(key: string, options?: { signal?: AbortSignal }): Promise<ObjectStat>;
  /**
   * Opens one object for range reads. Reads of the returned source are bound to the version
   * that was stat'ed: if the object is replaced they fail with `ObjectChanged`.
   */
  open(key: string, options?: { signal?: AbortSignal }): Promise<ByteSource>;
  list(options?: ListOptions): Promise<ListPage>;
  /**
   * Opens an object as a listing described it, without another round trip where the listing
   * carries the version (S3's ETag). Optional: callers fall back to `open(info.key)`.
   */
  openListed?(info: ObjectInfo, options?: { signal?: AbortSignal }): Promise<ByteSource>;
  /**
   * Stores the contents of a local file under `key`, atomically: readers see the old object or
   * the whole new one, never a part (local: temporary name + rename; S3: one PUT). Optional:
   * read-only stores (HTTP) have none.
   */
  put?(
    key: string,
    file: string,
    options?: { signal?: AbortSignal; contentType?: string },
  ): Promise<ObjectStat>;
  /** Releases sockets and handles. */
  close(): Promise<void>;
}

/** Random access to the bytes of one version of one object. */
export interface ByteSource {
  readonly key: string;
  readonly size: number;
  readonly identity: string;
  /**
   * Exactly `length` bytes at `offset` (0 < length, offset + length <= size), or a typed error:
   * `InvalidRange` outside the object, `ObjectChanged`, `StorageUnavailable`, `Cancelled`.
   * Never returns fewer bytes than asked.
   */
  read(offset: number, length: number, options?: ReadOptions): Promise<Uint8Array>;
}

/** Statistics sink that backends report every request to (implemented in `io/stats.ts`). */
export interface RequestObserver {
  /** One request sent to the store: `bytes` received, `ms` from send to last byte. */
  onRequest(event: StorageRequestEvent): void;
}

export interface StorageRequestEvent {
  kind: 'read' | 'stat' | 'list' | 'write';
  key: string;
  bytes: number;
  ms: number;
  /** `ok`, or the error code when the attempt failed. */
  outcome: 'ok' | string;
  /** 1 for the first attempt, 2.. for retries. */
  attempt: number;
}
