import type { Counter, Histogram, Registry } from 'prom-client';
import { counterOn, histogramOn, modelLabelsOn, type ModelLabels } from '../common/metrics.js';

/** Upstream error kinds counted by `modelwatch_sidecar_upstream_errors_total{reason}`. */
export const UpstreamErrorReasons = ['connect', 'timeout', 'reset', 'other'] as const;
/** One of {@link UpstreamErrorReasons}. */
export type UpstreamErrorReason = (typeof UpstreamErrorReasons)[number];

interface Children {
  requests: Counter.Internal;
  failures: Counter.Internal;
}

interface ModelChildren {
  duration: Histogram.Internal<'model' | 'version'>;
  bytesIn: Counter.Internal;
  bytesOut: Counter.Internal;
}

/**
 * The sidecar's request metrics (Triton-style labels `model`, `version`; `model=""` for non-model
 * routes). Model and version names come from request paths, so they pass through the registry's
 * {@link ModelLabels} bound: beyond `metrics.maxModels` new names count under `model="other"`.
 * Label children are cached per bounded label pair, so the hot path does one `Map` lookup per series
 * and the cache is as bounded as the series. Get-or-create on the registry: several sidecars on one
 * registry share the series.
 */
export class SidecarMetrics {
  private readonly requests: Counter<'model' | 'version' | 'status'>;
  private readonly failures: Counter<'model' | 'version' | 'status'>;
  private readonly duration: Histogram<'model' | 'version'>;
  private readonly bytesIn: Counter<'model' | 'version'>;
  private readonly bytesOut: Counter<'model' | 'version'>;
  private readonly upstreamErrors: Counter<'reason'>;
  private readonly clientAborts: Counter;
  private readonly byStatus = new Map<string, Children>();
  private readonly byModel = new Map<string, ModelChildren>();
  private readonly labels: ModelLabels;
  private last: { rawModel: string; rawVersion: string; status: number; s: Children; m: ModelChildren } | undefined;

  constructor(registry: Registry, labels: ModelLabels = modelLabelsOn(registry)) {
    this.labels = labels;
    const registers = [registry];
    this.requests = counterOn(registry, {
      name: 'modelwatch_sidecar_requests_total',
      help: 'Requests proxied by the sidecar, by model, version and response status.',
      labelNames: ['model', 'version', 'status'],
      registers,
    });
    this.failures = counterOn(registry, {
      name: 'modelwatch_sidecar_request_failures_total',
      help: 'Requests answered with status >= 400 (upstream or sidecar), by model, version and status.',
      labelNames: ['model', 'version', 'status'],
      registers,
    });
    this.duration = histogramOn(registry, {
      name: 'modelwatch_sidecar_request_duration_seconds',
      help: 'Time from request arrival to the end of the response, by model and version.',
      labelNames: ['model', 'version'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.bytesIn = counterOn(registry, {
      name: 'modelwatch_sidecar_request_bytes_total',
      help: 'Request body bytes received from clients (declared Content-Length, or counted when captured).',
      labelNames: ['model', 'version'],
      registers,
    });
    this.bytesOut = counterOn(registry, {
      name: 'modelwatch_sidecar_response_bytes_total',
      help: 'Response body bytes sent to clients.',
      labelNames: ['model', 'version'],
      registers,
    });
    this.upstreamErrors = counterOn(registry, {
      name: 'modelwatch_sidecar_upstream_errors_total',
      help: 'Upstream connection failures, by reason (connect, timeout, reset, other).',
      labelNames: ['reason'],
      registers,
    });
    for (const r of UpstreamErrorReasons) this.upstreamErrors.labels(r).inc(0);
    this.clientAborts = counterOn(registry, {
      name: 'modelwatch_sidecar_client_aborts_total',
      help: 'Requests whose client went away before the response was complete.',
      registers,
    });
  }

  /** Records one finished request. */
  observe(
    rawModel: string,
    rawVersion: string,
    status: number,
    seconds: number,
    bytesIn: number,
    bytesOut: number,
  ): void {
    // The common case, the same model, version and status as the previous request: no lookup, no key.
    const last = this.last;
    if (last !== undefined && last.rawModel === rawModel && last.rawVersion === rawVersion && last.status === status) {
      last.s.requests.inc();
      if (status >= 400) last.s.failures.inc();
      last.m.duration.observe(seconds);
      if (bytesIn > 0) last.m.bytesIn.inc(bytesIn);
      if (bytesOut > 0) last.m.bytesOut.inc(bytesOut);
      return;
    }
    const [model, version] = rawModel === '' ? ['', ''] : this.labels.of(rawModel, rawVersion);
    const mk = version === '' ? model : `${model}\u0000${version}`;
    let m = this.byModel.get(mk);
    if (m === undefined) {
      m = {
        duration: this.duration.labels(model, version),
        bytesIn: this.bytesIn.labels(model, version),
        bytesOut: this.bytesOut.labels(model, version),
      };
      this.byModel.set(mk, m);
    }
    const sk = `${mk}\u0000${status}`;
    let s = this.byStatus.get(sk);
    if (s === undefined) {
      const st = String(status);
      s = { requests: this.requests.labels(model, version, st), failures: this.failures.labels(model, version, st) };
      this.byStatus.set(sk, s);
    }
    this.last = { rawModel, rawVersion, status, s, m };
    s.requests.inc();
    if (status >= 400) s.failures.inc();
    m.duration.observe(seconds);
    if (bytesIn > 0) m.bytesIn.inc(bytesIn);
    if (bytesOut > 0) m.bytesOut.inc(bytesOut);
  }

  /** Counts an upstream failure. */
  upstreamError(reason: UpstreamErrorReason): void {
    this.upstreamErrors.labels(reason).inc();
  }

  /** Counts a client that went away mid-request. */
  clientAbort(): void {
    this.clientAborts.inc();
  }
}
