import { collectDefaultMetrics, type Registry } from 'prom-client';

// prom-client's `nodejs_active_{handles,requests,resources}_total` are gauges with a `_total` suffix,
// which `promtool check metrics` rejects; the same numbers stay available per type without the suffix.
const lintFailing = ['active_handles_total', 'active_requests_total', 'active_resources_total'];

/**
 * Registers prom-client's default process and Node.js metrics on `registry` with the `modelwatch_`
 * prefix, minus the few whose names break Prometheus naming conventions.
 */
export function registerDefaultMetrics(registry: Registry, prefix = 'modelwatch_'): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of lintFailing) registry.removeSingleMetric(`${prefix}nodejs_${name}`);
}
