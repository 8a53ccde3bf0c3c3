// A fixed-bucket histogram (cumulative counts, sum, count) that the hot path bumps with plain
// numbers and /metrics renders in the Prometheus format.

export class BucketHistogram {
  readonly counts: number[];
  count = 0;
  sum = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.count++;
    this.sum += value;
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]) this.counts[i]++;
  }

  /** Cumulative count per bound (`le`), as Prometheus wants them. */
  cumulative(): number[] {
    return [...this.counts];
  }
}
