import { z } from 'zod';

/** Feature kinds: numeric features are binned by reference deciles, categorical by category. */
export const FeatureKinds = ['numeric', 'categorical'] as const;
/** One of {@link FeatureKinds}. */
export type FeatureKind = (typeof FeatureKinds)[number];

/** Task types a model schema can declare. */
export const TaskTypes = ['binary', 'multiclass', 'regression'] as const;
/** One of {@link TaskTypes}. */
export type TaskType = (typeof TaskTypes)[number];

/**
 * Maps one column of a tensor to a named feature. `index` is the flat element index within one row
 * (row-major over the non-batch dimensions); omit it for 1-D tensors (`shape = [batch]`).
 */
export const featureMappingSchema = z.strictObject({
  name: z.string().min(1),
  tensor: z.string().min(1),
  index: z.number().int().min(0).optional(),
  kind: z.enum(FeatureKinds).optional(),
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

/** The schema used for a model that has none configured: default names, numeric unless BYTES. */
export const defaultModelSchema: ModelSchema = { features: [], categorical: [] };
