// Where one image's time went, for the `Server-Timing` response header: waiting for storage,
// decoding stored tiles, encoding the answer. Storage is wall time until the last tile read
// arrived (reads run in parallel); decode is summed over tiles (decodes overlap on a pool).

export type TimingPhase = 'storage' | 'decode' | 'encode';

export class RequestTimings {
  private readonly ms: Record<TimingPhase, number> = { storage: 0, decode: 0, encode: 0 };

  add(phase: TimingPhase, ms: number): void {
    this.ms[phase] += ms;
  }

  /** Runs `fn`, adding its duration to `phase`. */
  async time<T>(phase: TimingPhase, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      this.add(phase, performance.now() - started);
    }
  }

  /** `storage;dur=1.2, decode;dur=3.4, encode;dur=0.5` (phases that took no time are left out). */
  header(): string {
    return (Object.entries(this.ms) as [TimingPhase, number][])
      .filter(([, ms]) => ms > 0)
      .map(([phase, ms]) => `${phase};dur=${ms.toFixed(1)}`)
      .join(', ');
  }
}
