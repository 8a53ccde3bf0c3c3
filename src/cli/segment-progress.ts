// Progress for long segmentation runs, on stderr so stdout stays machine-readable (--json): a
// redrawn bar on a terminal, one line per finished step otherwise (CI logs, pipes), nothing when quiet.

export class Progress {
  private lastDraw = 0;
  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
  ) {}

  /** Updates the current task's bar: `done` of `total` units. */
  update(label: string, done: number, total: number): void {
    if (this.quiet || !this.stream.isTTY) return;
    const now = Date.now();
    if (done < total && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = 24;
    const filled = Math.round((width * Math.min(done, total)) / Math.max(1, total));
    this.stream.write(
      `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}\x1b[K`,
    );
  }

  /** Prints a finished step on its own line. */
  line(text: string): void {
    if (this.quiet) return;
    this.stream.write(this.stream.isTTY ? `\r${text}\x1b[K\n` : `${text}\n`);
  }
}
