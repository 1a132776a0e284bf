import { z } from 'zod';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';

/**
 * Alert rules: a selector over stored detector results and service metrics, a comparison with a
 * threshold, a `for` (a duration or N consecutive detection runs), a severity, labels and annotations.
 * The defaults ({@link DefaultRules}) work with no configuration; a configured rule with the name of a
 * default replaces the keys it sets (so `{ name: performance_drop, threshold: 0.1 }` only moves the
 * margin) and `enabled: false` switches it off.
 */

/** Comparisons a rule may use. */
export const Comparisons = ['>', '>=', '<', '<=', '==', '!='] as const;
/** One of {@link Comparisons}. */
export type Comparison = (typeof Comparisons)[number];

/** Severities, as Alertmanager setups usually spell them. */
export const Severities = ['warning', 'critical'] as const;
/** One of {@link Severities}. */
export type Severity = (typeof Severities)[number];

/** Signals of `mw_drift_results`. */
export const DriftSignals = ['dataset_share', 'feature_score'] as const;

const names = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
  .transform((v) => (Array.isArray(v) ? v : [v]));

/** What a rule reads. Each source is one table, read once per evaluation cycle for every model. */
export const selectorSchema = z.discriminatedUnion('source', [
  z.strictObject({
    /** `mw_drift_results`: the dataset share of drifted features, or one feature's drift score. */
    source: z.literal('drift'),
    signal: z.enum(DriftSignals),
    /** Only these features (feature_score). @default every feature */
    features: z.array(z.string()).optional(),
    /** Only these models. @default every model */
    models: z.array(z.string()).optional(),
  }),
  z.strictObject({
    /** `mw_performance_results`: measured or estimated metrics, and `label_coverage` (from `labels`). */
    source: z.literal('performance'),
    metric: names,
    /** `measured`, `estimated`, `labels` or `any`. @default any */
    from: z.enum(['measured', 'estimated', 'labels', 'any']).default('any'),
    /**
     * `value`: the metric itself. `drop`: how much worse than the reference period (the mean of the
     * first runs against the model's current reference): `baseline − value` for metrics where higher is
     * better, `(value − baseline) / baseline` for error metrics (mae, mse, rmse, mape). @default value
     */
    mode: z.enum(['value', 'drop']).default('value'),
    models: z.array(z.string()).optional(),
  }),
  z.strictObject({
    /** `mw_metric_series`: any stored series (`traffic.error_rate`, `quality.missing_rate`, …). */
    source: z.literal('series'),
    series: names,
    features: z.array(z.string()).optional(),
    /** Only models whose series was above zero at some point in the lookback (“a model that had traffic”). @default false */
    hadHistory: z.boolean().default(false),
    models: z.array(z.string()).optional(),
  }),
  z.strictObject({
    /** `mw_detect_runs`: 1 when a run's status is one of `status`, else 0. */
    source: z.literal('runs'),
    status: z.array(z.string()).min(1).default(['failed', 'timed_out']),
    models: z.array(z.string()).optional(),
  }),
  z.strictObject({
    /**
     * `mw_multivariate_results`: a multivariate method's statistic per (model, method, feature group); with
     * `threshold: detector`, the verdict the method stored (band, AUC, p-value or share).
     */
    source: z.literal('multivariate'),
    /** Only these methods (`reconstruction`, `classifier`, `mmd`, `mean_distance`, `component_share`). @default every method */
    methods: z.array(z.string().min(1)).optional(),
    /** Only these feature groups: '' for the numeric feature set, else embedding names. @default every group */
    groups: z.array(z.string()).optional(),
    models: z.array(z.string()).optional(),
  }),
  z.strictObject({
    /** `mw_change_points`: change points raised per series within the lookback. */
    source: z.literal('change_points'),
    series: z.array(z.string()).optional(),
    models: z.array(z.string()).optional(),
  }),
]);

/** A rule's selector (parsed). */
export type Selector = z.output<typeof selectorSchema>;

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const RUNS = /^(\d+)\s*runs?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A parsed `for`: N consecutive detection runs, or a duration. */
export type ForSpec = { runs: number } | { ms: number };

/** `for` as written: `"2 runs"`, `"10m"`, `"90s"`, or milliseconds. */
export const forSchema = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx): ForSpec => {
  if (typeof v === 'number') return { ms: v };
  const s = v.trim();
  const runs = RUNS.exec(s);
  if (runs) return { runs: Math.max(1, Number(runs[1])) };
  const d = DURATION.exec(s);
  if (d) return { ms: Math.round(Number(d[1]) * (UNIT_MS[d[2] as string] ?? 1)) };
  ctx.addIssue({ code: 'custom', message: `expected "N runs" or a duration like "10m", got "${s}"` });
  return z.NEVER;
});

const annotationsSchema = z
  .strictObject({
    summary: z.string().optional(),
    description: z.string().optional(),
    runbook_url: z.string().optional(),
  })
  .catchall(z.string());

/** A complete rule. */
export const ruleSchema = z.strictObject({
  /** The rule name: the `alertname` label. */
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'letters, digits and _'),
  enabled: z.boolean().default(true),
  select: selectorSchema,
  /** Comparison of the value with `threshold`. Ignored with `threshold: detector`. @default '>' */
  op: z.enum(Comparisons).default('>'),
  /**
   * A number, or `detector`: the verdict the detector stored with each result (drift only; its own
   * threshold and direction, p-value methods firing below it).
   */
  threshold: z.union([z.number(), z.literal('detector')]),
  for: forSchema.prefault('2 runs'),
  severity: z.enum(Severities).default('warning'),
  labels: z.record(z.string(), z.string()).default({}),
  /** `summary`, `description`, `runbook_url`; `{{model}}`, `{{feature}}`, `{{value}}`, `{{threshold}}` and other labels are filled in. */
  annotations: annotationsSchema.default({}),
});

/** A rule (parsed). */
export type Rule = z.output<typeof ruleSchema>;
/** A rule as written. */
export type RuleInput = z.input<typeof ruleSchema>;

/** A rule in `alerts.rules`: every key but `name` optional (a default of that name supplies the rest). */
export const configRuleSchema = z.looseObject({ name: z.string().min(1) });
/** An `alerts.rules` entry. */
export type ConfigRule = z.input<typeof configRuleSchema>;

/** The default rules, all firing after two consecutive detection runs that meet them. */
export const DefaultRules: readonly RuleInput[] = [
  {
    name: 'dataset_drift',
    select: { source: 'drift', signal: 'dataset_share' },
    threshold: 'detector',
    severity: 'critical',
    annotations: {
      summary: 'Dataset drift on {{model}}: {{value}} of features drifted',
      description:
        'The share of drifted features reached the dataset threshold ({{threshold}}) in consecutive detection runs.',
    },
  },
  {
    name: 'feature_drift',
    select: { source: 'drift', signal: 'feature_score' },
    threshold: 'detector',
    severity: 'warning',
    annotations: {
      summary: 'Feature {{feature}} of {{model}} drifted',
      description: 'Drift score {{value}} crossed the detector threshold {{threshold}}.',
    },
  },
  {
    name: 'performance_drop',
    select: { source: 'performance', metric: ['accuracy', 'f1'], from: 'any', mode: 'drop' },
    op: '>',
    threshold: 0.05,
    severity: 'critical',
    annotations: {
      summary: '{{source}} {{metric}} of {{model}} fell by {{value}} against the reference period',
      description: 'Fires when the drop exceeds {{threshold}} (absolute).',
    },
  },
  {
    name: 'regression_error_rise',
    select: { source: 'performance', metric: ['mae'], from: 'any', mode: 'drop' },
    op: '>',
    threshold: 0.2,
    severity: 'critical',
    annotations: {
      summary: '{{source}} {{metric}} of {{model}} rose by {{value}} (relative) against the reference period',
      description: 'Fires when MAE exceeds the reference period by more than {{threshold}} (relative).',
    },
  },
  {
    name: 'data_quality',
    select: {
      source: 'series',
      series: [
        'quality.missing_rate',
        'quality.non_finite_rate',
        'quality.out_of_range_rate',
        'quality.unseen_rate',
        'quality.quarantine_rate',
      ],
    },
    op: '>',
    threshold: 0.1,
    severity: 'warning',
    annotations: {
      summary: 'Data-quality spike on {{model}}: {{series}} {{value}}',
      description: 'More than {{threshold}} of current values failed the check ({{series}}, feature "{{feature}}").',
    },
  },
  {
    name: 'no_data',
    select: { source: 'series', series: 'traffic.requests', hadHistory: true },
    op: '<=',
    threshold: 0,
    severity: 'critical',
    annotations: {
      summary: 'No data for {{model}}',
      description: 'The model had traffic but none arrived in consecutive detection intervals.',
    },
  },
  {
    name: 'error_rate',
    select: { source: 'series', series: 'traffic.error_rate' },
    op: '>',
    threshold: 0.05,
    severity: 'critical',
    annotations: {
      summary: 'Error rate of {{model}} at {{value}}',
      description: 'More than {{threshold}} of inference requests failed.',
    },
  },
  {
    name: 'detection_failing',
    select: { source: 'runs', status: ['failed', 'timed_out'] },
    op: '>=',
    threshold: 1,
    severity: 'warning',
    annotations: {
      summary: 'Detection failing for {{model}}',
      description: 'Consecutive detection runs ended failed or timed out.',
    },
  },
];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The rules to evaluate: the defaults (unless `includeDefaults` is false) with configured rules merged
 * over those of the same name, then the other configured rules. Every rule is validated; a bad one
 * throws `config_invalid` naming it. Disabled rules are left out.
 */
export function resolveRules(configured: readonly ConfigRule[] = [], includeDefaults = true): Rule[] {
  const byName = new Map<string, Record<string, unknown>>();
  if (includeDefaults) for (const r of DefaultRules) byName.set(r.name, { ...r });
  for (const c of configured) {
    const base = byName.get(c.name);
    const merged: Record<string, unknown> = { ...(base ?? {}), ...c };
    // A partial override of labels/annotations keeps the default's other keys.
    for (const k of ['labels', 'annotations'] as const) {
      if (base && isPlainObject(base[k]) && isPlainObject(c[k])) merged[k] = { ...base[k], ...c[k] };
    }
    byName.set(c.name, merged);
  }
  const out: Rule[] = [];
  for (const [name, raw] of byName) {
    const parsed = ruleSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? `.${issue.path.join('.')}` : '';
      throw new ModelwatchError(
        ErrorCodes.configInvalid,
        `alerts.rules ${name}${where}: ${issue?.message ?? 'invalid'}`,
        {
          field: 'alerts.rules',
        },
      );
    }
    const rule = parsed.data;
    if (rule.threshold === 'detector' && rule.select.source !== 'drift' && rule.select.source !== 'multivariate') {
      throw new ModelwatchError(
        ErrorCodes.configInvalid,
        `alerts.rules ${name}: threshold "detector" needs a drift or multivariate selector`,
        {
          field: 'alerts.rules',
        },
      );
    }
    if (rule.enabled) out.push(rule);
  }
  return out;
}

/** `value op threshold`. NaN never meets a rule. */
export function compare(value: number, op: Comparison, threshold: number): boolean {
  if (Number.isNaN(value)) return false;
  switch (op) {
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
    case '==':
      return value === threshold;
    case '!=':
      return value !== threshold;
  }
}

/** Metrics where lower is better: their drop is the relative rise over the baseline. */
export const ErrorMetrics: ReadonlySet<string> = new Set(['mae', 'mse', 'rmse', 'mape', 'log_loss', 'brier']);

/** Fills `{{name}}` placeholders from `vars`; unknown ones become empty. */
export function fillTemplate(template: string, vars: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, k: string) => vars[k] ?? '');
}

/** Number of past runs the evaluator reads per signal: enough for every rule's `for`. */
export function runsNeeded(rules: readonly Rule[]): number {
  let k = 1;
  for (const r of rules) if ('runs' in r.for) k = Math.max(k, r.for.runs);
  return Math.min(k, 50);
}
