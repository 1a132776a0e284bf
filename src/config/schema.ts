import { z } from 'zod';
import { modelSchemaSchema } from './model-schema.js';
import { LogLevels } from '../common/logger.js';
import { DefaultRoleLimits, type RoleLimits } from '../store/port.js';
import { alertingConfigShape } from '../alerts/config.js';

function roleLimits(d: RoleLimits) {
  return z
    .strictObject({
      timeoutMs: z.number().int().positive().default(d.timeoutMs),
      maxMemoryBytes: z.number().int().nonnegative().default(d.maxMemoryBytes),
    })
    .prefault({});
}

const listen = z.string().regex(/^(?:\[[^\]]+\]|[^:]+):\d{1,5}$/, 'expected HOST:PORT');

/** Drift method names (DESIGN §3). */
export const DriftMethods = ['ks', 'wasserstein_norm', 'psi', 'jensen_shannon', 'hellinger', 'chi_square'] as const;
/** One of {@link DriftMethods}. */
export type DriftMethod = (typeof DriftMethods)[number];

/** Per-feature or per-model drift override. */
export const driftOverrideSchema = z.strictObject({
  method: z.enum(DriftMethods).optional(),
  threshold: z.number().optional(),
});

/** `models.<m>.reference`: a window of the model's stored traffic, or a file (CSV, TSV, Parquet, JSONL). */
export const referenceConfigSchema = z.union([
  z.strictObject({
    /** ISO-8601 or epoch ms, inclusive. */
    from: z.union([z.string().min(1), z.number()]),
    /** ISO-8601 or epoch ms, exclusive. */
    to: z.union([z.string().min(1), z.number()]),
  }),
  z.strictObject({
    file: z.string().min(1),
    /** ClickHouse input format; from the extension when omitted. */
    format: z.enum(['CSVWithNames', 'TSVWithNames', 'Parquet', 'JSONEachRow']).optional(),
    /** Columns to keep (all when omitted). */
    columns: z.array(z.string()).optional(),
    /** Columns to treat as categorical although numeric. */
    categorical: z.array(z.string()).optional(),
  }),
]);
/** A configured reference. */
export type ReferenceConfig = z.output<typeof referenceConfigSchema>;

// --- multivariate and embedding drift (issue 13) ---
/** Multivariate methods on the model's numeric features taken together. */
export const MultivariateMethods = ['reconstruction', 'classifier'] as const;
/** Methods on an embedding (one vector per row). */
export const EmbeddingMethods = ['mmd', 'mean_distance', 'component_share', 'classifier'] as const;
/** One of {@link MultivariateMethods} or {@link EmbeddingMethods}. */
export type MultivariateMethod = (typeof MultivariateMethods)[number] | (typeof EmbeddingMethods)[number];

const share01 = z.number().gt(0).lte(1);
const alpha = z.number().gt(0).lt(1);

/**
 * The `multivariate` settings, every key optional: the top-level section fills the defaults and
 * `models.<m>.multivariate` overrides them key by key (docs/multivariate.md).
 */
export const multivariateOverrideSchema = z.strictObject({
  /** Run the multivariate methods for the model at all. @default true */
  enabled: z.boolean().optional(),
  /**
   * Methods on the numeric feature set. @default `auto`: reconstruction and classifier when the model has
   * at least 2 numeric input features (embedding elements excluded)
   */
  methods: z.union([z.literal('auto'), z.array(z.enum(MultivariateMethods))]).optional(),
  /** Methods on each embedding feature. @default `auto`: mmd, mean_distance and component_share */
  embeddingMethods: z.union([z.literal('auto'), z.array(z.enum(EmbeddingMethods))]).optional(),
  /** Numeric features of the set. @default every numeric input feature of the reference */
  features: z.array(z.string().min(1)).min(2).optional(),
  /** Rows read from each side (reference, window) at most, drawn by a stable hash. @default 2000 */
  maxRows: z.number().int().min(20).optional(),
  reconstruction: z
    .strictObject({
      /** Share of variance the kept principal components explain. @default 0.65 */
      varianceShare: share01.optional(),
      /** Half-width of the alert band, in standard deviations of the reference chunk errors. @default 3 */
      bandStd: z.number().nonnegative().optional(),
      /** Reference chunks the band is estimated from. @default 10 */
      chunks: z.number().int().min(2).optional(),
    })
    .optional(),
  classifier: z
    .strictObject({
      /** Drift when the cross-validated ROC AUC exceeds this (and its interval excludes 0.5). @default 0.55 */
      threshold: z.number().gte(0.5).lt(1).optional(),
      /** Stratified cross-validation folds. @default 5 */
      folds: z.number().int().min(2).max(20).optional(),
      /** Rows per side the classifier trains on at most. @default 2000 */
      maxRowsPerSide: z.number().int().min(10).optional(),
      /** Boosting iterations (trees) per fold. @default 50 */
      trees: z.number().int().min(1).optional(),
      /** Maximum tree depth. @default 3 */
      maxDepth: z.number().int().min(1).optional(),
      /** The worker is stopped after this long. @default 30000 */
      timeoutMs: z.number().int().positive().optional(),
    })
    .optional(),
  mmd: z
    .strictObject({
      /** Permutations of the pooled sample for the p-value. @default 100 */
      permutations: z.number().int().min(10).optional(),
      /** Drift when the permutation p-value is below this. @default 0.05 */
      alpha: alpha.optional(),
      /** Rows per side in the kernel matrix at most. @default 300 */
      maxRowsPerSide: z.number().int().min(10).optional(),
    })
    .optional(),
  componentShare: z
    .strictObject({
      /** A component drifts when its KS p-value is below this. @default 0.05 */
      alpha: alpha.optional(),
      /** The embedding drifts when the share of drifted components exceeds this. @default 0.2 */
      threshold: z.number().gte(0).lt(1).optional(),
    })
    .optional(),
  meanDistance: z
    .strictObject({
      /** Which distance between the mean vectors decides. @default euclidean */
      metric: z.enum(['euclidean', 'cosine']).optional(),
      /** Drift when the Euclidean distance exceeds this. @default 0.2 */
      euclideanThreshold: z.number().nonnegative().optional(),
      /** Drift when the cosine distance exceeds this (metric cosine). @default 0.2 */
      cosineThreshold: z.number().nonnegative().optional(),
    })
    .optional(),
});
/** `multivariate` settings as parsed (every key optional). */
export type MultivariateOverride = z.output<typeof multivariateOverrideSchema>;

/** The whole configuration file (YAML or JSON). Every section and key has a default. */
export const configSchema = z.strictObject({
  logLevel: z.enum(LogLevels).default('info'),
  /** Where data lives: `chdb:PATH` (embedded, default) or an `http(s)://` ClickHouse server URL. */
  clickhouse: z
    .strictObject({
      url: z.string().default('chdb:./.modelwatch/chdb'),
      database: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
        .default('default'),
      username: z.string().optional(),
      password: z.string().optional(),
      requestTimeoutMs: z.number().int().positive().default(30_000),
      /**
       * Cluster mode: the `remote_servers` cluster name. Migrations then create `ReplicatedMergeTree` `*_local`
       * tables and same-named `Distributed` tables `ON CLUSTER` (docs/scaling.md). Unset: one server.
       */
      cluster: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_-]*$/)
        .optional(),
      /**
       * Deadline and memory cap of every statement, per role: `max_execution_time` and `max_memory_usage`.
       * A statement past its deadline is cancelled in ClickHouse. `maxMemoryBytes: 0` leaves the server's limit.
       */
      roles: z
        .strictObject({
          api: roleLimits(DefaultRoleLimits.api),
          detect: roleLimits(DefaultRoleLimits.detect),
          ingest: roleLimits(DefaultRoleLimits.ingest),
          report: roleLimits(DefaultRoleLimits.report),
        })
        .prefault({}),
    })
    .prefault({}),
  kafka: z
    .strictObject({
      /** Broker list; empty = in-process bus. */
      brokers: z.array(z.string()).default([]),
      topic: z.string().min(1).default('modelwatch.inference'),
      clientId: z.string().default('modelwatch'),
      groupId: z.string().default('modelwatch-ingest'),
      /** Idempotent producer (needs a real broker with a controller; off by default). */
      idempotent: z.boolean().default(false),
      ssl: z.boolean().default(false),
      sasl: z
        .strictObject({
          mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
          username: z.string(),
          password: z.string(),
        })
        .optional(),
      /** Seldon Core 2 topics to consume, e.g. `seldon.default.model.iris` (issue 3). */
      seldonTopics: z.array(z.string()).default([]),
    })
    .prefault({}),
  bus: z
    .strictObject({
      /**
       * Bound of the in-process bus, in bytes (a queued message costs about what it counts: value, key, header
       * names and values). 16 MiB holds ~20,000 one-row captures, ~20 s of 1,000 req/s while the store stalls;
       * each queued byte costs about 3 bytes of RSS once the garbage collector's headroom is counted.
       */
      maxBufferedBytes: z
        .number()
        .int()
        .positive()
        .default(16 * 1024 * 1024),
    })
    .prefault({}),
  api: z
    .strictObject({
      listen: listen.default('127.0.0.1:9400'),
      /** When set, `/api/v1/*` requires `Authorization: Bearer <token>`. */
      token: z.string().optional(),
      maxBodyBytes: z
        .number()
        .int()
        .positive()
        .default(10 * 1024 * 1024),
      /** Widest `from`..`to` window (and reference window) an API request may ask for; wider → 400. @default 7 days */
      maxWindowMs: z
        .number()
        .int()
        .positive()
        .default(7 * 24 * 3_600_000),
    })
    .prefault({}),
  sidecar: z
    .strictObject({
      listen: listen.default('127.0.0.1:9401'),
      upstream: z.string().url().optional(),
      grpcUpstream: z.string().optional(),
      grpcListen: z.string().optional(),
      /** Cap of each captured body; beyond it the capture is marked truncated. */
      maxCaptureBytes: z
        .number()
        .int()
        .positive()
        .default(1024 * 1024),
      /**
       * Bound of the tee buffer in bytes (queued plus in flight); overflow drops and counts. Small on
       * purpose: what the tee holds it holds across garbage collections, so a large bound turns a
       * backlog into promoted memory and major collections on the request thread.
       */
      maxTeeBufferBytes: z
        .number()
        .int()
        .positive()
        .default(16 * 1024 * 1024),
      /**
       * After a publish fails retryably (bus down or full), the tee puts the batch back and publishes
       * nothing for this long, doubling with each further failure up to `teeMaxRetryBackoffMs`.
       */
      teeRetryBackoffMs: z.number().int().positive().default(200),
      /** Longest wait between the tee's publish attempts while the bus keeps failing. */
      teeMaxRetryBackoffMs: z.number().int().positive().default(5_000),
      /** Default capture sampling rate 0..1 (per-model rates live in `models.<name>.sampling`). */
      sampling: z.number().min(0).max(1).default(1),
      /** Request/response headers copied into the capture (lower-case). Authorization and cookies never are. */
      captureHeaders: z
        .array(z.string())
        .default(['content-type', 'content-encoding', 'inference-header-content-length', 'user-agent', 'traceparent']),
      upstreamConnectTimeoutMs: z.number().int().positive().default(5_000),
      upstreamTimeoutMs: z.number().int().positive().default(60_000),
      shutdownDeadlineMs: z.number().int().positive().default(10_000),
      /**
       * How much V8's old generation may grow between two full collections in a process that runs the
       * sidecar, % of what the last one left alive (0: V8's own factor). Ingest's bound wins in a process
       * that runs both (docs/sidecar.md, "Garbage collection").
       */
      heapGrowingPercent: z.number().int().min(0).max(1_000).default(100),
      /**
       * With a Kafka bus, run the tee's producer in a worker thread so record encoding and checksums do
       * not cost the event loop that serves requests (ingest still consumes with the normal Kafka bus).
       * @default true
       */
      publishInWorker: z.boolean().default(true),
      /** Largest gRPC message the proxy receives or sends, either way, in bytes (Triton's default). */
      grpcMaxMessageBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024 * 1024),
      /**
       * Query parameters kept in the captured route (`?name=value`); every other one is dropped before
       * the capture leaves the sidecar, so secrets such as `?api_key=` never reach the bus or the store.
       */
      captureQueryParams: z.array(z.string()).default([]),
    })
    .refine((s) => s.teeMaxRetryBackoffMs >= s.teeRetryBackoffMs, {
      message: 'must be at least sidecar.teeRetryBackoffMs',
      path: ['teeMaxRetryBackoffMs'],
    })
    .prefault({}),
  /** The KServe InferenceLogger receiver at `POST /ingest/kserve`. */
  kserve: z
    .strictObject({
      /** When set, events must carry `Authorization: Bearer <token>` (or `x-modelwatch-token: <token>`). */
      token: z.string().min(1).optional(),
      /** When non-empty, only these client IPs or CIDRs may post events. */
      allow: z.array(z.string()).default([]),
      /** Bound of the bytes held for events waiting for their other half or for the bus. */
      maxPendingBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024 * 1024),
    })
    .prefault({}),
  /** Prometheus metrics. */
  metrics: z
    .strictObject({
      /** `HOST:PORT` of a listener serving only `GET /metrics` and `/healthz` (for ingest and detect). Unset: none. */
      listen: listen.optional(),
      /** Distinct model names kept as `model` label values; later ones count under `model="other"`. */
      maxModels: z.number().int().min(1).default(100),
      /** Distinct version names kept as `version` label values; later ones count under `version="other"`. */
      maxVersions: z.number().int().min(1).default(100),
      /** Features per model exported as `modelwatch_feature_drift_score`, the most drifted first. */
      maxFeatures: z.number().int().nonnegative().default(20),
    })
    .prefault({}),
  ingest: z
    .strictObject({
      maxBatchRows: z.number().int().positive().default(10_000),
      maxBatchBytes: z
        .number()
        .int()
        .positive()
        .default(16 * 1024 * 1024),
      flushIntervalMs: z.number().int().positive().default(1_000),
      /**
       * With the in-process bus, ingest waits for this many captured calls before a store write, for at
       * most `flushIntervalMs` (fewer, larger inserts; 0 turns lingering off).
       */
      lingerRecords: z.number().int().min(0).default(5_000),
      /**
       * With the in-process bus, how long ingest keeps waiting for `lingerRecords` calls while captured calls
       * keep arriving (one less than 250 ms ago), counted from the first waiting call: a steady flow is
       * written in fewer, larger inserts; a pause in the flow ends the wait (after `flushIntervalMs` at the
       * earliest). At most `flushIntervalMs`: calls wait at most `flushIntervalMs`, steady or not.
       */
      steadyLingerMs: z.number().int().min(0).default(5_000),
      /**
       * With the in-process bus, decode the next bus batch while the last part of the previous one is
       * written (writes stay one at a time, in order). A backlog of one-row calls drains ~9 % faster, at
       * ~8 MB more peak memory (docs/ingest.md).
       */
      overlapBatches: z.boolean().default(false),
      retryInitialMs: z.number().int().positive().default(200),
      retryMaxMs: z.number().int().positive().default(10_000),
      /**
       * How much V8's old generation may grow between two full collections in a process that runs ingest, %
       * of what the last one left alive (0: V8's own factor, up to 300 % on a large heap). A backlog keeps a
       * steady live set while promoting short-lived data; 50 halved its JavaScript heap peak. A process
       * started with `--heap-growing-percent` keeps its own (docs/ingest.md, "The JavaScript heap").
       */
      heapGrowingPercent: z.number().int().min(0).max(1_000).default(50),
    })
    .prefault({}),
  detect: z
    .strictObject({
      intervalMs: z.number().int().positive().default(60_000),
      windowMs: z.number().int().positive().default(3_600_000),
      /** Default dataset-drift share (DESIGN §3). */
      datasetShare: z.number().min(0).max(1).default(0.5),
      /** Benjamini–Hochberg control across features for p-value methods. */
      fdr: z.boolean().default(false),
      timeoutMs: z.number().int().positive().default(120_000),
      /**
       * The default reference of a model without a pinned one: its first `rows` successful rows or its first
       * `spanMs` of successful traffic, whichever completes first; frozen once complete.
       */
      reference: z
        .strictObject({
          rows: z.number().int().positive().default(5_000),
          spanMs: z.number().int().positive().default(3_600_000),
        })
        .prefault({}),
      // --- detect runs and streaming detectors (issue 8, runs) ---
      /** Values a metric series is standardised over before its change detectors see it (0: raw values). */
      warmup: z.number().int().nonnegative().default(100),
      /** Values each change detector needs before it may alarm (its own warm-up). */
      minInstances: z
        .strictObject({
          pageHinkley: z.number().int().positive().default(30),
          adwin: z.number().int().nonnegative().default(30),
          cusum: z.number().int().positive().default(200),
        })
        .prefault({}),
      /** At start, stored series values replayed through fresh detectors, newest per series. */
      replayMaxValues: z.number().int().nonnegative().default(10_000),
    })
    .prefault({}),
  alerts: z
    .strictObject({
      slackWebhookUrl: z.string().optional(),
      smtpUrl: z.string().optional(),
      emailTo: z.array(z.string()).default([]),
      emailFrom: z.string().default('modelwatch@localhost'),
      grafanaUrl: z.string().optional(),
      grafanaToken: z.string().optional(),
      webhookUrls: z.array(z.string()).default([]),
      /** Hosts or CIDRs that outbound notifications may reach although loopback/private. */
      outboundAllow: z.array(z.string()).default([]),
      evaluateIntervalMs: z.number().int().positive().default(15_000),
      // Rules, routing, timing, inhibition and silences (issue 9): src/alerts/config.ts.
      ...alertingConfigShape,
    })
    .prefault({}),
  /** Defaults of the multivariate and embedding drift methods; `models.<m>.multivariate` overrides them. */
  multivariate: multivariateOverrideSchema.prefault({}),
  // --- shadow runner (issue 10) ---
  /** How long stored inputs are kept. */
  retention: z
    .strictObject({
      /** Days a captured request body stays in `mw_payloads` for replay (per-row TTL). @default 7 */
      payloadDays: z.number().int().positive().default(7),
    })
    .prefault({}),
  shadow: z
    .strictObject({
      /** Folder the API may load candidates from (a candidate given to the API is a file name inside it). */
      modelDir: z.string().default('./.modelwatch/models'),
      /** `auto` (CUDA when installed, else CPU) or providers in order of preference. */
      executionProviders: z
        .union([z.literal('auto'), z.array(z.enum(['cuda', 'tensorrt', 'cpu'])).min(1)])
        .default('auto'),
      /** ONNX Runtime intra-op threads per session. */
      intraOpNumThreads: z.number().int().positive().default(1),
      /** Worker threads, each with one session per candidate. Default: min(4, cores − 1). */
      sessions: z.number().int().positive().max(64).optional(),
      /** Rows per candidate batch in replay. */
      batchRows: z.number().int().positive().default(1024),
      /** Largest candidate uploaded through the API (base64-decoded bytes). */
      maxUploadBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024 * 1024),
      /** Verdict thresholds (see docs/shadow.md). */
      verdict: z
        .strictObject({
          minRows: z.number().int().positive().optional(),
          minAgreement: z.number().min(0).max(1).optional(),
          alpha: z.number().gt(0).lt(1).optional(),
          maxSkippedFraction: z.number().min(0).max(1).optional(),
          maxAbsDiffP95: z.number().nonnegative().optional(),
          maxLatencyP99Ms: z.number().positive().optional(),
        })
        .prefault({}),
      /** Candidates scored on live traffic by the `shadow` role (started by `modelwatch up` when non-empty). */
      candidates: z.array(z.strictObject({ model: z.string().min(1), file: z.string().min(1) })).default([]),
      /** Live shadow: length of one series interval. */
      intervalMs: z.number().int().positive().default(60_000),
      /** Live shadow: Kafka consumer group (its own, so ingest's offsets are untouched). */
      groupId: z.string().min(1).default('modelwatch-shadow'),
    })
    .prefault({}),
  /** Per-model schema, sampling and drift overrides, keyed by model name. */
  models: z
    .record(
      z.string(),
      modelSchemaSchema.extend({
        drift: z
          .strictObject({
            default: driftOverrideSchema.optional(),
            features: z.record(z.string(), driftOverrideSchema).default({}),
          })
          .optional(),
        /** The model's reference, applied (created and made active) once per distinct value. */
        reference: referenceConfigSchema.optional(),
        /** Store each call's request body in `mw_payloads` for faithful replay. */
        payloads: z.boolean().default(true),
        /** Shadow: request tensor name → candidate ONNX input name. */
        shadow: z.strictObject({ inputs: z.record(z.string(), z.string()).default({}) }).optional(),
        /** Multivariate and embedding drift of this model, over the top-level `multivariate` defaults. */
        multivariate: multivariateOverrideSchema.optional(),
        /** Also store drift per model version and/or per value of these categorical features (issue 8, runs). */
        segments: z
          .strictObject({
            version: z.boolean().default(false),
            features: z.array(z.string().min(1)).default([]),
            /** Most segments per split, largest first. */
            max: z.number().int().positive().default(20),
          })
          .optional(),
      }),
    )
    .default({}),
});

/** The validated configuration. */
export type Config = z.output<typeof configSchema>;
/** The configuration as written in a file (every key optional). */
export type ConfigInput = z.input<typeof configSchema>;
