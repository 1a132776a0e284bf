import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { parseTime } from '../common/time.js';
import type { Config } from '../config/schema.js';
import { Tables } from '../store/migrations.js';
import type { Store } from '../store/store.js';
import {
  createReference,
  defaultReferenceWindow,
  discoverFeatures,
  getReference,
  mergeFeatures,
  type ReferenceInfo,
} from './reference.js';
import { computeDrift } from './stats/engine.js';
import {
  referenceRowsSample,
  storedFeatureSpecs,
  trafficSample,
  type SampleFilter,
  type StoredFeature,
} from './stats/sample.js';
import type { DriftOverrides, DriftReport, Sample, SampleProfile } from './stats/types.js';

/** How to split the current window into segments. */
export type SegmentBy = 'version' | { feature: string };

/** Which reference to compare against. */
export type ReferenceChoice =
  /** A stored reference by id. */
  | { id: string }
  /** An ad hoc window of the model's own traffic (not stored). */
  | { from: string | number; to: string | number };

/** Options of {@link detectDrift}. */
export interface DetectDriftOptions {
  model: string;
  /** Current window start (ISO-8601 or epoch ms), inclusive. */
  from: string | number;
  /** Current window end, exclusive. */
  to: string | number;
  /**
   * The reference. Default: the model's newest stored reference; without one, the first hour of its
   * traffic (stored as the model's reference once that hour is complete).
   */
  reference?: ReferenceChoice | undefined;
  /** `detect` (dataset share, FDR) and `models` (per-model drift overrides) sections. */
  config: Pick<Config, 'detect' | 'models'>;
  /** Also report drift per model version or per value of a categorical feature. */
  segmentBy?: SegmentBy | undefined;
  /** Most segments reported, largest first. @default 20 */
  maxSegments?: number;
  /** Volume drop when current rows per hour fall below this share of the reference rate. @default 0.5 */
  volumeDropRatio?: number;
  /** Clock, epoch ms (tests). @default Date.now() */
  now?: number;
}

const defaults = { maxSegments: 20, volumeDropRatio: 0.5 } satisfies Pick<
  Required<DetectDriftOptions>,
  'maxSegments' | 'volumeDropRatio'
>;

/** Rows per window against the reference rate. */
export interface VolumeCheck {
  current_rows: number;
  /** Reference rows per hour × current window hours; null when the reference has no time window. */
  expected_rows: number | null;
  ratio: number | null;
  drop: boolean;
}

/** Window-level data quality. */
export interface WindowQuality {
  /** Records of the model quarantined by ingest in the window (shape/type violations), by error code. */
  quarantined: number;
  quarantined_by_code: Record<string, number>;
  volume: VolumeCheck;
}

/** One segment's result. */
export interface SegmentReport {
  by: 'version' | 'feature';
  feature?: string;
  value: string;
  report: DriftReport;
}

/** A drift report for a model's window, with its full context (DESIGN §2 shape plus context keys). */
export interface DriftDetection extends DriftReport {
  model: string;
  window: { from: string; to: string };
  quality: WindowQuality;
  segments?: SegmentReport[];
}

function rows<T>(store: Store, query: string, params: Record<string, unknown>): Promise<T[]> {
  return store.query<T>(query, { label: 'drift detection query', params });
}

interface ResolvedReference {
  sample: Sample;
  features: StoredFeature[];
  profile?: SampleProfile;
  info: Record<string, unknown>;
  /** Reference time span for the volume rate, ms; null for files. */
  spanMs: number | null;
}

async function resolveReference(
  store: Store,
  o: DetectDriftOptions,
  currentFeatures: StoredFeature[],
  now: number,
): Promise<ResolvedReference> {
  const stored = (ref: ReferenceInfo): ResolvedReference => {
    const features = mergeFeatures(ref.features, currentFeatures);
    const sameFeatures = features.length === ref.features.length;
    return {
      sample: referenceRowsSample(ref.id, features, 'r_'),
      features,
      // The stored profile covers the stored features; with extra current-only features, re-profile.
      ...(sameFeatures ? { profile: reorderProfile(ref.profile, features) } : {}),
      info: {
        id: ref.id,
        source: ref.source,
        from: ref.from,
        to: ref.to,
        ...(ref.file !== null ? { file: ref.file } : {}),
      },
      spanMs: ref.from !== null && ref.to !== null ? Date.parse(ref.to) - Date.parse(ref.from) : null,
    };
  };
  const window = async (fromMs: number, toMs: number, source: string): Promise<ResolvedReference> => {
    const refFeatures = await discoverFeatures(store, o.model, fromMs, toMs);
    const features = mergeFeatures(refFeatures, currentFeatures);
    return {
      sample: trafficSample({ model: o.model, fromMs, toMs, features, paramPrefix: 'r_' }),
      features,
      info: { source, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
      spanMs: toMs - fromMs,
    };
  };
  const choice = o.reference;
  if (choice !== undefined && 'id' in choice) {
    const ref = await getReference(store, { id: choice.id });
    if (ref === null)
      throw new ModelwatchError(ErrorCodes.notFound, `reference not found: ${choice.id}`, { field: 'reference' });
    return stored(ref);
  }
  if (choice !== undefined) {
    const fromMs = parseTime(choice.from, 'reference_from');
    const toMs = parseTime(choice.to, 'reference_to');
    if (fromMs >= toMs)
      throw new ModelwatchError(ErrorCodes.badRequest, 'reference_from: must be before reference_to', {
        field: 'reference_from',
      });
    return window(fromMs, toMs, 'traffic');
  }
  const latest = await getReference(store, { model: o.model });
  if (latest !== null) return stored(latest);
  const first = await defaultReferenceWindow(store, o.model);
  if (first === null)
    throw new ModelwatchError(ErrorCodes.notFound, `model has no stored traffic: ${o.model}`, { field: 'name' });
  // Store the default only once its hour is over, so a reference is never frozen from a partial hour.
  if (now >= first.toMs) {
    const ref = await createReference(store, { model: o.model, from: first.fromMs, to: first.toMs });
    return stored(ref);
  }
  return window(first.fromMs, Math.min(first.toMs, now + 1), 'traffic_first_hour');
}

function reorderProfile(profile: SampleProfile, features: StoredFeature[]): SampleProfile {
  const specs = storedFeatureSpecs(features);
  const byColumn = new Map(profile.features.map((p) => [p.column, p]));
  return { rows: profile.rows, features: specs.flatMap((s) => byColumn.get(s.column) ?? []) };
}

function overridesFor(config: DetectDriftOptions['config'], model: string): DriftOverrides | undefined {
  const d = config.models[model]?.drift;
  if (d === undefined) return undefined;
  return { default: d.default, features: d.features };
}

async function windowQuality(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
  currentRows: number,
  ref: ResolvedReference,
  dropRatio: number,
): Promise<WindowQuality> {
  const q = await rows<{ code: string; n: number }>(
    store,
    `SELECT code, count() AS n FROM ${Tables.quarantine}
     WHERE model = {model:String}
       AND received_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND received_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     GROUP BY code ORDER BY code`,
    { model, from: Math.floor(fromMs), to: Math.floor(toMs) },
  );
  const byCode = Object.fromEntries(q.map((r) => [r.code, Number(r.n)]));
  const quarantined = q.reduce((s, r) => s + Number(r.n), 0);
  const refRows = Number((ref.info.rows as number | undefined) ?? 0);
  let expected: number | null = null;
  if (ref.spanMs !== null && ref.spanMs > 0) expected = (refRows / ref.spanMs) * (toMs - fromMs);
  const ratio = expected !== null && expected > 0 ? currentRows / expected : null;
  return {
    quarantined,
    quarantined_by_code: byCode,
    volume: { current_rows: currentRows, expected_rows: expected, ratio, drop: ratio !== null && ratio < dropRatio },
  };
}

async function segmentValues(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
  by: SegmentBy,
  limit: number,
): Promise<string[]> {
  const expr = by === 'version' ? 'toString(version)' : 'features_cat[{sf:String}]';
  const r = await rows<{ v: string }>(
    store,
    `SELECT ${expr} AS v, count() AS n FROM ${Tables.predictions}
     WHERE model = {model:String}
       AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     GROUP BY v ORDER BY n DESC, v LIMIT {limit:UInt32}`,
    { model, from: Math.floor(fromMs), to: Math.floor(toMs), limit, ...(by === 'version' ? {} : { sf: by.feature }) },
  );
  return r.map((x) => x.v);
}

/**
 * Drift of a model's traffic in `[from, to)` against its reference: every input feature and every output
 * (prediction drift, flagged `"output": true`), per DESIGN §3 with the model's overrides, plus window data
 * quality (quarantined records, volume against the reference rate) and optional per-segment reports.
 */
export async function detectDrift(store: Store, options: DetectDriftOptions): Promise<DriftDetection> {
  const o = { ...defaults, ...options };
  if (!Number.isInteger(o.maxSegments) || o.maxSegments < 1) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'maxSegments: must be a positive integer', {
      field: 'maxSegments',
    });
  }
  const now = o.now ?? Date.now();
  const fromMs = parseTime(o.from, 'from');
  const toMs = parseTime(o.to, 'to');
  if (fromMs > toMs) throw new ModelwatchError(ErrorCodes.badRequest, 'from: must not be after to', { field: 'from' });
  const currentFeatures = await discoverFeatures(store, o.model, fromMs, toMs);
  const ref = await resolveReference(store, o, currentFeatures, now);
  const specs = storedFeatureSpecs(ref.features);
  const common = {
    reference: ref.sample,
    features: specs,
    overrides: overridesFor(o.config, o.model),
    datasetShare: o.config.detect.datasetShare,
    fdr: o.config.detect.fdr,
  };
  const current = (filter?: SampleFilter): Sample =>
    trafficSample({ model: o.model, fromMs, toMs, features: ref.features, paramPrefix: 'c_', filter });
  const report = await computeDrift(store, { ...common, current: current(), referenceProfile: ref.profile });
  ref.info.rows = report.reference.rows;
  const quality = await windowQuality(store, o.model, fromMs, toMs, report.current.rows, ref, o.volumeDropRatio);
  const out: DriftDetection = {
    ...report,
    reference: { ...ref.info, rows: report.reference.rows },
    current: { rows: report.current.rows, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    model: o.model,
    window: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    quality,
  };
  if (o.segmentBy !== undefined) {
    const by = o.segmentBy;
    const values = await segmentValues(store, o.model, fromMs, toMs, by, o.maxSegments);
    // Reuse the reference profile computed above so each segment costs one pass over its own rows.
    const profile = ref.profile ?? undefined;
    out.segments = [];
    for (const value of values) {
      const filter: SampleFilter = by === 'version' ? { version: value } : { feature: by.feature, value };
      const seg = await computeDrift(store, { ...common, current: current(filter), referenceProfile: profile });
      out.segments.push({
        by: by === 'version' ? 'version' : 'feature',
        ...(by === 'version' ? {} : { feature: by.feature }),
        value,
        report: seg,
      });
    }
  }
  return out;
}
