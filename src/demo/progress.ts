/**
 * The demo's terminal display: one line per phase and event, stamped with the time since the story
 * started, plus a status line. On a terminal the status line is redrawn in place; otherwise (a pipe, a
 * CI log) it is printed as a plain line every `statusEveryMs`.
 */

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** Where to write. @default process.stdout */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Redraw the status in place (ANSI). @default out.isTTY === true */
  tty?: boolean;
  /** Plain output: least time between two status lines. @default 10000 */
  statusEveryMs?: number;
  /** Clock, epoch ms. @default Date.now */
  clock?: () => number;
}

/** Writes the demo's progress. */
export class Progress {
  private readonly out: NodeJS.WritableStream;
  private readonly tty: boolean;
  private readonly statusEveryMs: number;
  private readonly clock: () => number;
  private t0: number;
  private lastStatus = '';
  private lastStatusAt = -Infinity;
  private drawn = false;

  constructor(options: ProgressOptions = {}) {
    const out = options.out ?? process.stdout;
    this.out = out;
    this.tty = options.tty ?? out.isTTY === true;
    this.statusEveryMs = options.statusEveryMs ?? 10_000;
    this.clock = options.clock ?? Date.now;
    this.t0 = this.clock();
  }

  /** Restarts the time stamps at 0 (when the story starts). */
  startClock(): void {
    this.t0 = this.clock();
  }

  private stamp(): string {
    const s = Math.max(0, Math.round((this.clock() - this.t0) / 1000));
    return `[${String(s).padStart(4)}s]`;
  }

  private clearStatus(): void {
    if (this.tty && this.drawn) {
      this.out.write('\r\x1b[2K');
      this.drawn = false;
    }
  }

  private drawStatus(): void {
    if (this.tty && this.lastStatus !== '') {
      this.out.write(`${this.stamp()} ${this.lastStatus}`);
      this.drawn = true;
    }
  }

  /** A line without a time stamp (the header). */
  raw(text: string): void {
    this.clearStatus();
    this.out.write(`${text}\n`);
    this.drawStatus();
  }

  /** A time-stamped event or phase line. */
  line(text: string): void {
    this.clearStatus();
    this.out.write(`${this.stamp()} ${text}\n`);
    this.drawStatus();
  }

  /** The current status: redrawn in place on a terminal, printed at most every `statusEveryMs` otherwise. */
  status(text: string): void {
    this.lastStatus = text;
    if (this.tty) {
      this.clearStatus();
      this.drawStatus();
      return;
    }
    const now = this.clock();
    if (now - this.lastStatusAt < this.statusEveryMs) return;
    this.lastStatusAt = now;
    this.out.write(`${this.stamp()} · ${text}\n`);
  }

  /** Ends the display (leaves the cursor on a fresh line). */
  end(): void {
    this.clearStatus();
    this.lastStatus = '';
  }
}
