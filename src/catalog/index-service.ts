// Indexing inside `serve`: a scan in the background at start (the server answers meanwhile),
// then every `--index-interval`, and on demand (POST /admin/reindex). One scan runs at a time;
// requests while one runs are coalesced into one more scan after it, so a burst of reindex
// calls costs at most two listings.

import type { Logger } from 'pino';
import type { IndexSummary, Indexer } from './indexer.js';

export interface IndexStatus {
  running: boolean;
  /** ISO time the running (or last) scan started. */
  startedAt?: string;
  last?: IndexSummary & { finishedAt: string };
  lastError?: string;
  scans: number;
}

export class IndexService {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<IndexSummary> | undefined;
  private queued: Promise<IndexSummary> | undefined;
  private abort = new AbortController();
  private closed = false;
  private readonly state: IndexStatus = { running: false, scans: 0 };

  constructor(
    private readonly indexer: Indexer,
    private readonly options: { intervalMs: number; concurrency: number; logger?: Logger },
  ) {}

  /** Starts the background schedule (and a first scan now when `atStart`). */
  start(atStart: boolean): void {
    if (atStart) void this.reindex().catch(() => undefined);
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.options.intervalMs <= 0) return;
    this.timer = setTimeout(() => {
      void this.reindex()
        .catch(() => undefined)
        .finally(() => this.schedule());
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** A scan that starts after any running one; concurrent callers share it. */
  reindex(): Promise<IndexSummary> {
    if (this.closed) return Promise.reject(new Error('the index service is closed'));
    if (!this.current) {
      this.current = this.run().finally(() => {
        this.current = this.queued;
        this.queued = undefined;
      });
      return this.current;
    }
    this.queued ??= this.current.catch(() => undefined).then(() => this.run());
    return this.queued;
  }

  private async run(): Promise<IndexSummary> {
    this.state.running = true;
    this.state.startedAt = new Date().toISOString();
    const log = this.options.logger;
    try {
      const summary = await this.indexer.scan({
        concurrency: this.options.concurrency,
        signal: this.abort.signal,
      });
      this.state.last = { ...summary, finishedAt: new Date().toISOString() };
      this.state.lastError = undefined;
      this.state.scans++;
      log?.info({ index: summary }, 'index scan finished');
      return summary;
    } catch (e) {
      this.state.lastError = e instanceof Error ? e.message : String(e);
      log?.error({ err: e }, 'index scan failed');
      throw e;
    } finally {
      this.state.running = false;
    }
  }

  status(): IndexStatus {
    return { ...this.state };
  }

  /** Stops the schedule and cancels a running scan (what it committed stays). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort.abort();
    await Promise.allSettled([this.current, this.queued]);
  }
}
