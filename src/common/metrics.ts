import {
  Counter,
  Gauge,
  Histogram,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
  type Registry,
} from 'prom-client';

// Get-or-create on one registry: a role restarted in-process (tests, `modelwatch up`) re-uses its
// metrics instead of throwing "already registered".

/** The counter named `config.name` on `registry`, created there when absent. */
export function counterOn<L extends string = string>(registry: Registry, config: CounterConfiguration<L>): Counter<L> {
  return (
    (registry.getSingleMetric(config.name) as Counter<L> | undefined) ??
    new Counter({ ...config, registers: [registry] })
  );
}

/** The histogram named `config.name` on `registry`, created there when absent. */
export function histogramOn<L extends string = string>(
  registry: Registry,
  config: HistogramConfiguration<L>,
): Histogram<L> {
  return (
    (registry.getSingleMetric(config.name) as Histogram<L> | undefined) ??
    new Histogram({ ...config, registers: [registry] })
  );
}

/** The gauge named `config.name` on `registry`, created there when absent. */
export function gaugeOn<L extends string = string>(registry: Registry, config: GaugeConfiguration<L>): Gauge<L> {
  return (
    (registry.getSingleMetric(config.name) as Gauge<L> | undefined) ?? new Gauge({ ...config, registers: [registry] })
  );
}

/** Options of {@link summedGaugeOn}. */
export interface SummedGaugeConfig {
  name: string;
  help: string;
}

/** A reader added to a {@link summedGaugeOn} gauge; `release()` takes it out again. */
export interface GaugeReader {
  release(): void;
}

const readersByRegistry = new WeakMap<Registry, Map<string, Set<() => number>>>();

/**
 * Adds `read` to the gauge named `config.name` on `registry`, created there when absent. At scrape
 * time the gauge reports the sum of every reader still added: two components of one kind on one
 * registry (two sidecars in a test, a role restarted in-process) report their total instead of
 * throwing "already registered" or leaving the first one's closure behind. Release the reader when
 * the component stops.
 */
export function summedGaugeOn(registry: Registry, config: SummedGaugeConfig, read: () => number): GaugeReader {
  let byName = readersByRegistry.get(registry);
  if (byName === undefined) {
    byName = new Map();
    readersByRegistry.set(registry, byName);
  }
  let readers = byName.get(config.name);
  if (readers === undefined || registry.getSingleMetric(config.name) === undefined) {
    const live = new Set<() => number>();
    readers = live;
    byName.set(config.name, live);
    registry.removeSingleMetric(config.name);
    new Gauge({
      name: config.name,
      help: config.help,
      registers: [registry],
      collect() {
        let n = 0;
        for (const r of live) n += r();
        this.set(n);
      },
    });
  }
  const set = readers;
  // A distinct function per call, so the same `read` added twice is released once per add.
  const entry = (): number => read();
  set.add(entry);
  return { release: () => void set.delete(entry) };
}

/** The label value that stands for every name beyond a {@link LabelBound}'s limit. */
export const OTHER_LABEL = 'other';

/**
 * Bounds the distinct values one label takes when the values come from the network (model and
 * version names): the first `max` values seen are kept, every later new value is reported as
 * {@link OTHER_LABEL}. Prometheus keeps one series per label combination, so an unbounded label lets
 * any client grow the scrape and the server's memory.
 */
export class LabelBound {
  private readonly seen = new Set<string>();

  constructor(readonly max: number) {
    if (!(Number.isInteger(max) && max >= 0))
      throw new RangeError(`LabelBound max must be an integer >= 0, got ${max}`);
  }

  /** `value` itself while it is one of the first `max` distinct values (or ''), else `other`. */
  of(value: string): string {
    if (value === '' || this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return OTHER_LABEL;
    this.seen.add(value);
    return value;
  }

  /** Distinct values admitted so far. */
  get size(): number {
    return this.seen.size;
  }
}

/** Limits of {@link modelLabelsOn}. */
export interface ModelLabelLimits {
  /** Distinct model names kept as labels. @default 100 */
  maxModels?: number;
  /** Distinct version names kept as labels. @default 100 */
  maxVersions?: number;
}

/** Maps a network-supplied model and version to bounded label values. */
export interface ModelLabels {
  /** `[model, version]` label values: beyond the limits `other`; the version of an `other` model is `other`. */
  of(model: string, version: string): [string, string];
  readonly models: LabelBound;
  readonly versions: LabelBound;
}

const modelLabelsByRegistry = new WeakMap<Registry, ModelLabels>();

/**
 * The model/version label bound of `registry`, created with `limits` on first use: every metric of
 * one registry that carries `model` (and `version`) labels shares one bound, so they agree on which
 * names are kept and which count under `other`.
 */
export function modelLabelsOn(registry: Registry, limits: ModelLabelLimits = {}): ModelLabels {
  let m = modelLabelsByRegistry.get(registry);
  if (m === undefined) {
    const models = new LabelBound(limits.maxModels ?? 100);
    const versions = new LabelBound(limits.maxVersions ?? 100);
    const made: ModelLabels = {
      models,
      versions,
      of(model, version) {
        const mm = models.of(model);
        if (mm === OTHER_LABEL && model !== OTHER_LABEL) return [OTHER_LABEL, version === '' ? '' : OTHER_LABEL];
        return [mm, versions.of(version)];
      },
    };
    modelLabelsByRegistry.set(registry, made);
    m = made;
  }
  return m;
}
