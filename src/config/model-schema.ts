import { z } from 'zod';

/** Feature kinds: numeric features are binned by reference deciles, categorical by category. */
export const FeatureKinds = ['numeric', 'categorical'] as const;
/** One of {@link FeatureKinds}. */
export type FeatureKind = (typeof FeatureKinds)[number];

/** Task types a model schema can declare. */
export const TaskTypes = ['binary', 'multiclass', 'regression'] as const;
/** One of {@link TaskTypes}. */
export type TaskType = (typeof TaskTypes)[number];

/** Kinds a configured feature may declare: a column kind, or `embedding` (a vector per row). */
export const FeatureMappingKinds = [...FeatureKinds, 'embedding'] as const;

/**
 * Maps one column of a tensor to a named feature. `index` is the flat element index within one row
 * (row-major over the non-batch dimensions); omit it for 1-D tensors (`shape = [batch]`).
 *
 * With `kind: embedding` the entry names a vector instead: the `dim` consecutive elements of each row
 * starting at `index` (default 0), i.e. the stored columns `<tensor>_<index>` … `<tensor>_<index+dim−1>`
 * (or the names other feature entries give those elements). Ingest stores the elements unchanged; the
 * multivariate methods read them back as one vector per row, and per-feature drift skips them unless
 * `univariate: true`.
 */
export const featureMappingSchema = z
  .strictObject({
    name: z.string().min(1),
    tensor: z.string().min(1),
    index: z.number().int().min(0).optional(),
    kind: z.enum(FeatureMappingKinds).optional(),
    /** `kind: embedding` only: number of elements of the vector (required there). */
    dim: z.number().int().min(2).optional(),
    /** `kind: embedding` only: also run per-feature drift on each element. @default false */
    univariate: z.boolean().optional(),
  })
  .superRefine((f, ctx) => {
    if (f.kind === 'embedding' && f.dim === undefined) {
      ctx.addIssue({ code: 'custom', path: ['dim'], message: 'an embedding needs dim (its number of elements)' });
    }
    if (f.kind !== 'embedding') {
      for (const k of ['dim', 'univariate'] as const) {
        if (f[k] !== undefined)
          ctx.addIssue({ code: 'custom', path: [k], message: `only allowed with kind: embedding` });
      }
    }
  });

/** Which output tensor is the prediction and how to read it. */
export const predictionSchema = z.strictObject({
  /** Output tensor name. */
  tensor: z.string().min(1),
  /**
   * `probabilities`: one column per class (binary may have a single column = P(positive));
   * `label`: the predicted class; `value`: a regression value.
   */
  kind: z.enum(['probabilities', 'label', 'value']).default('probabilities'),
});

/** Per-model schema config (DESIGN §2, issue 2 item 4). */
export const modelSchemaSchema = z.strictObject({
  task: z.enum(TaskTypes).optional(),
  /** Named features; tensors not listed keep default `<tensor>_<j>` names. */
  features: z.array(featureMappingSchema).default([]),
  /** Tensor names whose elements are categorical (strings) when no explicit feature says otherwise. */
  categorical: z.array(z.string()).default([]),
  prediction: predictionSchema.optional(),
  /** Class labels in output column order (probabilities) — label values are matched against these. */
  classes: z.array(z.string()).optional(),
  /** Fraction of inference calls captured by the sidecar for this model, 0..1. */
  sampling: z.number().min(0).max(1).optional(),
});

/** Parsed per-model schema. */
export type ModelSchema = z.output<typeof modelSchemaSchema>;
/** One feature mapping. */
export type FeatureMapping = z.output<typeof featureMappingSchema>;

/** An embedding feature resolved to the stored columns it covers. */
export interface EmbeddingFeature {
  name: string;
  tensor: string;
  /** First element index and number of elements. */
  start: number;
  dim: number;
  /** Stored `features_num` keys of its elements, in element order. */
  columns: string[];
  /** Whether per-feature drift also runs on its elements. */
  univariate: boolean;
}

/**
 * The embedding features of a schema with the `features_num` columns each covers: element j of tensor
 * `t` is stored as `t_j` (the ingest default for a tensor with a non-batch dimension), or under the name
 * a non-embedding feature entry gives `(t, j)`.
 */
export function embeddingFeatures(schema: Pick<ModelSchema, 'features'> | undefined): EmbeddingFeature[] {
  if (schema === undefined) return [];
  const named = new Map<string, string>();
  for (const f of schema.features) if (f.kind !== 'embedding') named.set(`${f.tensor}\u0000${f.index ?? 0}`, f.name);
  return schema.features.flatMap((f) => {
    if (f.kind !== 'embedding' || f.dim === undefined) return [];
    const start = f.index ?? 0;
    const columns = Array.from(
      { length: f.dim },
      (_, k) => named.get(`${f.tensor}\u0000${start + k}`) ?? `${f.tensor}_${start + k}`,
    );
    return [{ name: f.name, tensor: f.tensor, start, dim: f.dim, columns, univariate: f.univariate === true }];
  });
}

/** The stored columns per-feature drift skips: elements of embeddings without `univariate: true`. */
export function embeddingColumnsSkipped(schema: Pick<ModelSchema, 'features'> | undefined): Set<string> {
  return new Set(embeddingFeatures(schema).flatMap((e) => (e.univariate ? [] : e.columns)));
}

/** The schema used for a model that has none configured: default names, numeric unless BYTES. */
export const defaultModelSchema: ModelSchema = { features: [], categorical: [] };
