import type { FeatureMapping, ModelSchema } from '../config/model-schema.js';
import type { DecodedTensor } from './tensor.js';
import { invalid } from './tensor.js';

/** The per-row values of one decoded call (names per the model schema, default `<tensor>_<j>`). */
export interface FlatRow {
  features_num: Record<string, number>;
  features_cat: Record<string, string>;
  outputs_num: Record<string, number>;
  outputs_cat: Record<string, string>;
}

/** How one tensor's per-row elements map to named columns. */
interface ColumnPlan {
  width: number;
  names: string[];
  categorical: boolean[];
  /** True when every column is numeric (the common case: one loop, no per-column branch). */
  allNumeric: boolean;
  /** A name the plan itself produces twice (a mapping onto a default name), else undefined. */
  duplicate: string | undefined;
  /**
   * Every name mapped to 0, in column order, made by `JSON.parse` so that it has fast (not dictionary)
   * properties: a row's map is a copy of it, filled in place. An object given 20 properties one at a time
   * turns into a dictionary, which is slower to fill, to read and to serialise. Built on first use.
   */
  template: Record<string, number> | undefined;
}

/** The plan last used per schema and side: steady traffic repeats one tensor layout. */
interface LastPlan {
  name: string;
  datatype: string;
  rank: number;
  width: number;
  plan: ColumnPlan;
}
const lastPlans = new WeakMap<ModelSchema, { in?: LastPlan; out?: LastPlan }>();

// Plans depend only on (schema, side, tensor name, datatype, row shape): cache them per schema so
// steady traffic does not rebuild column names for every call. Bounded per schema.
const planCache = new WeakMap<ModelSchema, Map<string, ColumnPlan>>();
const MAX_PLANS_PER_SCHEMA = 1024;

function planFor(schema: ModelSchema, side: 'in' | 'out', t: DecodedTensor, width: number): ColumnPlan {
  let last = lastPlans.get(schema);
  const l = last?.[side];
  if (
    l !== undefined &&
    l.name === t.name &&
    l.datatype === t.datatype &&
    l.rank === t.shape.length &&
    l.width === width
  ) {
    return l.plan;
  }
  const plan = lookupPlan(schema, side, t, width);
  if (last === undefined) {
    last = {};
    lastPlans.set(schema, last);
  }
  last[side] = { name: t.name, datatype: t.datatype, rank: t.shape.length, width, plan };
  return plan;
}

function lookupPlan(schema: ModelSchema, side: 'in' | 'out', t: DecodedTensor, width: number): ColumnPlan {
  const key = `${side}\u0000${t.name}\u0000${t.datatype}\u0000${t.shape.length}\u0000${width}`;
  let plans = planCache.get(schema);
  if (plans === undefined) {
    plans = new Map();
    planCache.set(schema, plans);
  }
  const hit = plans.get(key);
  if (hit !== undefined) return hit;
  const mapped = new Map<number, FeatureMapping>();
  if (side === 'in') {
    // A mapping without `index` names column 0 (the only column of a `[batch]` tensor).
    // An embedding entry names a vector, not a column: its elements keep their own names.
    for (const f of schema.features) if (f.tensor === t.name && f.kind !== 'embedding') mapped.set(f.index ?? 0, f);
  }
  const tensorCat = t.datatype === 'BYTES' || schema.categorical.includes(t.name);
  const plan: ColumnPlan = {
    width,
    names: new Array<string>(width),
    categorical: new Array<boolean>(width),
    allNumeric: true,
    duplicate: undefined,
    template: undefined,
  };
  const seen = new Set<string>();
  for (let j = 0; j < width; j++) {
    const m = mapped.get(j);
    const name = m?.name ?? (t.shape.length === 1 ? t.name : `${t.name}_${j}`);
    plan.names[j] = name;
    // BYTES elements are strings and stay categorical whatever the mapping says.
    const cat = t.datatype === 'BYTES' || (m?.kind === undefined ? tensorCat : m.kind === 'categorical');
    plan.categorical[j] = cat;
    if (cat) plan.allNumeric = false;
    if (seen.has(name)) plan.duplicate ??= name;
    seen.add(name);
  }
  if (plans.size >= MAX_PLANS_PER_SCHEMA) plans.clear();
  plans.set(key, plan);
  return plan;
}

/** The plan's {@link ColumnPlan.template} (names are unique: the plan has no duplicate). */
function templateOf(plan: ColumnPlan): Record<string, number> {
  if (plan.template !== undefined) return plan.template;
  let text = '{';
  for (let j = 0; j < plan.width; j++) text += `${j === 0 ? '' : ','}${JSON.stringify(plan.names[j])}:0`;
  plan.template = JSON.parse(`${text}}`) as Record<string, number>;
  return plan.template;
}

function batchOf(t: DecodedTensor, field: string): number {
  const b = t.shape[0];
  if (b === undefined) throw invalid(field, `tensor ${JSON.stringify(t.name)} has shape [] (no batch dimension)`);
  return b;
}

function rowWidth(t: DecodedTensor): number {
  let w = 1;
  for (let i = 1; i < t.shape.length; i++) w *= t.shape[i] ?? 0;
  return w;
}

function fill(
  rows: FlatRow[],
  tensors: DecodedTensor[],
  schema: ModelSchema,
  side: 'in' | 'out',
  batch: number,
  key: 'inputs' | 'outputs',
): void {
  const plans = new Array<ColumnPlan>(tensors.length);
  // Column name -> tensor index, so two tensors (or a mapping and a default name) never silently
  // write the same column (made only when there are two tensors or more).
  let owner: Map<string, number> | undefined;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i] as DecodedTensor;
    const b = batchOf(t, `${key}[${i}].shape`);
    if (b !== batch) {
      throw invalid(
        `${key}[${i}].shape`,
        `tensor ${JSON.stringify(t.name)} has batch size ${b} but inputs[0] has ${batch}; all tensors must agree on the first dimension`,
      );
    }
    const plan = planFor(schema, side, t, rowWidth(t));
    plans[i] = plan;
    if (tensors.length === 1) {
      // One tensor: only its own plan can repeat a name (checked once when the plan was built).
      if (plan.duplicate !== undefined) {
        throw invalid(
          `${key}[${i}].name`,
          `column ${JSON.stringify(plan.duplicate)} of tensor ${JSON.stringify(t.name)} is also produced by tensor ${JSON.stringify(t.name)}`,
        );
      }
      continue;
    }
    owner ??= new Map();
    for (const name of plan.names) {
      const prev = owner.get(name);
      if (prev !== undefined) {
        const other = tensors[prev]?.name ?? '';
        throw invalid(
          `${key}[${i}].name`,
          `column ${JSON.stringify(name)} of tensor ${JSON.stringify(t.name)} is also produced by tensor ${JSON.stringify(other)}`,
        );
      }
      owner.set(name, i);
    }
  }
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i] as DecodedTensor;
    const plan = plans[i] as ColumnPlan;
    const width = plan.width;
    const values = t.values;
    const isBool = t.datatype === 'BOOL';
    const names = plan.names;
    if (tensors.length === 1 && plan.allNumeric && plan.duplicate === undefined) {
      // The common case: one numeric tensor fills the side's map alone; each map starts as a copy of the template.
      const template = templateOf(plan);
      for (let r = 0; r < batch; r++) {
        const row = rows[r] as FlatRow;
        const num: Record<string, number> = { ...template };
        const base = r * width;
        for (let j = 0; j < width; j++) num[names[j] as string] = values[base + j] as number;
        if (side === 'in') row.features_num = num;
        else row.outputs_num = num;
      }
      continue;
    }
    for (let r = 0; r < batch; r++) {
      const row = rows[r] as FlatRow;
      const num = side === 'in' ? row.features_num : row.outputs_num;
      const base = r * width;
      if (plan.allNumeric) {
        for (let j = 0; j < width; j++) num[names[j] as string] = values[base + j] as number;
        continue;
      }
      const cat = side === 'in' ? row.features_cat : row.outputs_cat;
      for (let j = 0; j < width; j++) {
        const v = values[base + j] as number | string;
        const name = plan.names[j] as string;
        if (plan.categorical[j] === true) {
          cat[name] = typeof v === 'string' ? v : isBool ? (v === 1 ? 'true' : 'false') : String(v);
        } else {
          num[name] = v as number;
        }
      }
    }
  }
}

/**
 * Flattens decoded tensors into one {@link FlatRow} per batch element. The batch size is the first
 * dimension of every input (and output); a disagreement is `decode_invalid` naming the tensor.
 * A `[batch]` tensor gives a column `<tensor>`, `[batch, d1, …]` gives `<tensor>_<j>` (j = flat
 * index within the row), unless the schema maps (tensor, index) to a name. BYTES elements, tensors
 * in `schema.categorical` and columns mapped `kind: categorical` are categorical (strings; BOOL as
 * `true`/`false`); the rest is numeric (BOOL as 0/1). Pass `outputs` undefined for features only.
 */
export function flattenTensors(
  inputs: DecodedTensor[],
  outputs: DecodedTensor[] | undefined,
  schema: ModelSchema,
): FlatRow[] {
  const first = inputs[0];
  if (first === undefined) throw invalid('inputs', 'empty: a request needs at least one input tensor');
  const batch = batchOf(first, 'inputs[0].shape');
  const rows: FlatRow[] = new Array<FlatRow>(batch);
  for (let r = 0; r < batch; r++) rows[r] = { features_num: {}, features_cat: {}, outputs_num: {}, outputs_cat: {} };
  fill(rows, inputs, schema, 'in', batch, 'inputs');
  if (outputs !== undefined) fill(rows, outputs, schema, 'out', batch, 'outputs');
  return rows;
}
