import { z } from 'zod';
import { matcherSchema } from './matchers.js';
import { configRuleSchema } from './rules.js';

// The `alerts` keys of the config file that shape rules, routing and silences (the channel keys sit
// next to them in src/config/schema.ts).

/** A route in `alerts.routes`. */
export const routeSchema = z.strictObject({
  matchers: z.array(matcherSchema).default([]),
  /** Receiver names: `slack`, `email`, `grafana`, `webhook` (`webhook-N`), `alertmanager`, `log`. */
  receivers: z.array(z.string().min(1)).min(1),
  /** Also try the routes after this one. @default false */
  continue: z.boolean().default(false),
  groupBy: z.array(z.string()).optional(),
  groupWaitMs: z.number().int().nonnegative().optional(),
  groupIntervalMs: z.number().int().positive().optional(),
  repeatIntervalMs: z.number().int().positive().optional(),
});
/** A route (parsed). */
export type Route = z.output<typeof routeSchema>;

/** An inhibition rule in `alerts.inhibit`: firing `source` alerts mute `target` alerts with equal `equal` labels. */
export const inhibitSchema = z.strictObject({
  source: z.array(matcherSchema).min(1),
  target: z.array(matcherSchema).min(1),
  equal: z.array(z.string()).default(['model']),
});
/** An inhibition rule (parsed). */
export type InhibitRule = z.output<typeof inhibitSchema>;

/** The default inhibition: a firing `no_data` alert of a model mutes that model's drift and quality alerts. */
export const DefaultInhibitRules: readonly z.input<typeof inhibitSchema>[] = [
  {
    source: [{ name: 'alertname', value: 'no_data' }],
    target: [
      {
        name: 'alertname',
        value: 'dataset_drift|feature_drift|data_quality|performance_drop|regression_error_rise',
        isRegex: true,
      },
    ],
    equal: ['model'],
  },
];

/** A silence in the config file: in force between `startsAt` (default: always) and `endsAt` (default: never). */
export const configSilenceSchema = z.strictObject({
  matchers: z.array(matcherSchema).min(1),
  startsAt: z.string().optional(),
  endsAt: z.string().optional(),
  comment: z.string().default(''),
});
/** A configured silence (parsed). */
export type ConfigSilence = z.output<typeof configSilenceSchema>;

/** The alerting keys of `alerts` with their defaults (spread into the config schema's `alerts` object). */
export const alertingConfigShape = {
  /** Rules; one named like a default replaces the keys it sets. */
  rules: z.array(configRuleSchema).default([]),
  /** Evaluate the default rules. @default true */
  defaultRules: z.boolean().default(true),
  routes: z.array(routeSchema).default([]),
  groupBy: z.array(z.string()).default(['model']),
  groupWaitMs: z.number().int().nonnegative().default(30_000),
  groupIntervalMs: z.number().int().positive().default(300_000),
  repeatIntervalMs: z.number().int().positive().default(14_400_000),
  /** A resolved alert firing again within this long re-opens the same incident. */
  flapWindowMs: z.number().int().nonnegative().default(3_600_000),
  /** Inhibition rules. @default a firing no_data alert mutes the model's drift, quality and performance alerts */
  inhibit: z.array(inhibitSchema).optional(),
  silences: z.array(configSilenceSchema).default([]),
  /** Push alerts to an existing Alertmanager (`POST /api/v2/alerts`). */
  alertmanagerUrl: z.string().optional(),
  /** Base URL of the API in links of notifications. @default http://<api.listen> */
  externalUrl: z.string().optional(),
  /** Runs that make the reference period of a performance metric (drop rules). */
  baselineRuns: z.number().int().positive().default(3),
  /** Oldest stored result the evaluator reads. @default max(1 h, 10 × detect.intervalMs) */
  lookbackMs: z.number().int().positive().optional(),
};
