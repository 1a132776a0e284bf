/**
 * The demo's traffic: V2 inference calls through the sidecar at a steady rate, and the ground truth of
 * part of them posted to `POST /api/v1/labels` a few seconds later, as a labelling process would.
 */
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { ModelTensorNames } from '../shadow/index.js';
import { answerError, type ApiClient } from './client.js';
import { DEMO_FEATURES, DemoData } from './scenario.js';

/** Options of {@link TrafficGenerator}. */
export interface TrafficOptions {
  /** Base URL of the sidecar. */
  sidecarUrl: string;
  /** The API (labels). */
  api: ApiClient;
  /** Model name in the V2 path. */
  model: string;
  /** Inference calls per second. @default 5 */
  requestsPerSecond?: number;
  /** Rows per call. @default 6 */
  rowsPerRequest?: number;
  /** Share of calls whose ground truth is posted. @default 0.6 */
  labelFraction?: number;
  /** Delay before a call's ground truth is posted. @default 3000 */
  labelDelayMs?: number;
  /** Calls in flight at most; a tick beyond it is skipped and counted. @default 16 */
  maxInFlight?: number;
  /** Row generator. @default new DemoData() */
  data?: DemoData;
  logger: Logger;
}

const defaults = {
  requestsPerSecond: 5,
  rowsPerRequest: 6,
  labelFraction: 0.6,
  labelDelayMs: 3_000,
  maxInFlight: 16,
} satisfies Partial<Required<TrafficOptions>>;

/** Counters of the traffic sent so far. */
export interface TrafficStats {
  requests: number;
  rows: number;
  /** Calls answered with a non-2xx status or not answered. */
  errors: number;
  /** Ticks skipped because `maxInFlight` calls were pending. */
  skipped: number;
  labelsPosted: number;
  labelErrors: number;
  /** Rows sent with the drift on. */
  driftedRows: number;
}

interface PendingLabel {
  due: number;
  request_id: string;
  row: number;
  label: number;
  /** Posts tried so far. */
  attempts: number;
}

/** Posts of one label before it is given up (the store may be busy on a loaded machine). */
const LABEL_ATTEMPTS = 3;

/** Sends the demo's traffic until stopped. */
export class TrafficGenerator {
  /** Counters (read them any time). */
  readonly stats: TrafficStats = {
    requests: 0,
    rows: 0,
    errors: 0,
    skipped: 0,
    labelsPosted: 0,
    labelErrors: 0,
    driftedRows: 0,
  };
  private readonly o: Required<Omit<TrafficOptions, 'data'>> & { data: DemoData };
  private drifted = false;
  private seq = 0;
  private inFlight = new Set<Promise<void>>();
  private labels: PendingLabel[] = [];
  private sendTimer: NodeJS.Timeout | undefined;
  private labelTimer: NodeJS.Timeout | undefined;
  private posting: Promise<void> | undefined;
  private lastError = '';
  private readonly halt = new AbortController();

  constructor(options: TrafficOptions) {
    this.o = { ...defaults, ...options, data: options.data ?? new DemoData() };
    for (const k of ['requestsPerSecond', 'rowsPerRequest', 'labelDelayMs', 'maxInFlight'] as const) {
      if (!(this.o[k] > 0)) throw new RangeError(`TrafficOptions.${k} must be positive`);
    }
  }

  /** Turns the drift (shifted features, flipped truth) on or off for the calls that follow. */
  setDrift(on: boolean): void {
    this.drifted = on;
  }

  /** Whether the drift is on. */
  get drift(): boolean {
    return this.drifted;
  }

  /** The last error a call met ('' when none), for the status line. */
  get lastCallError(): string {
    return this.lastError;
  }

  /** Starts sending. */
  start(): void {
    if (this.sendTimer !== undefined) return;
    this.sendTimer = setInterval(() => this.tick(), Math.max(1, Math.round(1000 / this.o.requestsPerSecond)));
    this.labelTimer = setInterval(() => void this.flushLabels(false), 1_000);
  }

  private tick(): void {
    if (this.inFlight.size >= this.o.maxInFlight) {
      this.stats.skipped++;
      return;
    }
    const p = this.send().finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async send(): Promise<void> {
    const rows = this.o.rowsPerRequest;
    const drifted = this.drifted;
    const batch = this.o.data.batch(rows, drifted);
    const requestId = `demo-${Date.now().toString(36)}-${(this.seq++).toString(36)}`;
    const body = JSON.stringify({
      id: requestId,
      inputs: [
        { name: ModelTensorNames.input, datatype: 'FP32', shape: [rows, DEMO_FEATURES.length], data: batch.values },
      ],
    });
    this.stats.requests++;
    try {
      const res = await fetch(`${this.o.sidecarUrl}/v2/models/${encodeURIComponent(this.o.model)}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': requestId },
        body,
        signal: AbortSignal.any([this.halt.signal, AbortSignal.timeout(10_000)]),
      });
      await res.arrayBuffer();
      if (!res.ok) {
        this.stats.errors++;
        this.lastError = `HTTP ${res.status}`;
        return;
      }
    } catch (err) {
      if (this.halt.signal.aborted) return;
      this.stats.errors++;
      this.lastError = errorMessage(err);
      return;
    }
    this.stats.rows += rows;
    if (drifted) this.stats.driftedRows += rows;
    if (this.o.data.uniform() < this.o.labelFraction) {
      const due = Date.now() + this.o.labelDelayMs;
      batch.labels.forEach((label, row) => this.labels.push({ due, request_id: requestId, row, label, attempts: 0 }));
    }
  }

  /** Posts the labels that are due (all of them with `all`). */
  private async flushLabels(all: boolean): Promise<void> {
    if (this.posting !== undefined) return this.posting;
    const now = Date.now();
    const due = all ? this.labels : this.labels.filter((l) => l.due <= now);
    if (due.length === 0) return;
    this.labels = all ? [] : this.labels.filter((l) => l.due > now);
    const labels = due.map(({ request_id, row, label }) => ({ request_id, row, label }));
    this.posting = (async () => {
      const a = await this.o.api.post('/api/v1/labels', { labels });
      if (a.status === 202 || a.status === 200) {
        this.stats.labelsPosted += labels.length;
        return;
      }
      // Stopping: the post was abandoned on purpose.
      if (this.halt.signal.aborted) return;
      // Not stored (timeout, 5xx): try again shortly, a few times.
      const retry = due.filter((l) => l.attempts + 1 < LABEL_ATTEMPTS && a.status !== 400);
      const at = Date.now() + 2_000;
      for (const l of retry) this.labels.push({ ...l, due: at, attempts: l.attempts + 1 });
      this.stats.labelErrors += labels.length - retry.length;
      this.o.logger.warn('demo: posting labels failed', {
        status: a.status,
        error: answerError(a),
        labels: labels.length,
        retried: retry.length,
      });
    })().finally(() => {
      this.posting = undefined;
    });
    return this.posting;
  }

  /** Stops sending and abandons the calls in flight; labels not yet posted are dropped. */
  async stop(): Promise<void> {
    this.halt.abort();
    if (this.sendTimer !== undefined) clearInterval(this.sendTimer);
    if (this.labelTimer !== undefined) clearInterval(this.labelTimer);
    this.sendTimer = undefined;
    this.labelTimer = undefined;
    await Promise.allSettled([...this.inFlight]);
    await this.posting;
    this.labels = [];
  }
}
