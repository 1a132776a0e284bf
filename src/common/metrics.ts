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
