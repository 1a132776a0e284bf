/**
 * Reads the numeric features of a model's stored traffic (`mw_predictions`) in one scan of each `Map` column:
 * every row's values (`mapValues`) are read once and split into one `Float64Array` per feature here, instead of
 * one key lookup per feature per row in ClickHouse (which decodes the map once per lookup and, across groups,
 * once per query). Rows nearly always share one key order: the query compares each row's keys with the order of
 * one row of the window and sends keys only for the rows whose order differs, which are split by name.
 *
 * Same values as the lookups: an absent key is missing (NaN), a key present twice in a row gives its first
 * value (as `arrayElementOrNull`), ±Inf and NaN pass through.
 */
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { Tables } from '../../store/migrations.js';
import type { SqlPort, StoreSettings } from '../../store/port.js';
import type { SampleFilter } from '../stats/sample.js';
import type { FeatureSpec } from '../stats/types.js';
import { queryNative, type NumericRead } from './read.js';

/** The rows of a traffic window (as `trafficSample` selects them). */
export interface TrafficWindow {
  model: string;
  /** Epoch ms, inclusive. */
  fromMs: number;
  /** Epoch ms, exclusive. */
  toMs: number;
  filter?: SampleFilter | undefined;
}

type MapName = 'features_num' | 'outputs_num';

const mapOf = (f: FeatureSpec): MapName => (f.output === true ? 'outputs_num' : 'features_num');

function whereSql(w: TrafficWindow, params: Record<string, unknown>): string {
  params.__mw_model = w.model;
  params.__mw_from = Math.floor(w.fromMs);
  params.__mw_to = Math.floor(w.toMs);
  let sql = `model = {__mw_model:String}
  AND ts >= fromUnixTimestamp64Milli({__mw_from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({__mw_to:Int64}, 'UTC')`;
  const filter = w.filter;
  if (filter !== undefined) {
    if ('version' in filter) {
      params.__mw_ver = filter.version;
      sql += ' AND version = {__mw_ver:String}';
    } else {
      params.__mw_sf = filter.feature;
      params.__mw_sv = filter.value;
      sql += ' AND features_cat[{__mw_sf:String}] = {__mw_sv:String}';
    }
  }
  return sql;
}

/**
 * Reads numeric `features` (FeatureSpecs of stored features: outputs flagged `output`) of the traffic window,
 * one scan per map they live in. The result holds every feature's values at once (8 bytes × rows × features,
 * plus the scan's own copy while it is split): callers bound the window's size.
 */
export async function readTrafficNumeric(
  store: SqlPort,
  window: TrafficWindow,
  features: readonly FeatureSpec[],
  settings: StoreSettings = {},
): Promise<NumericRead> {
  const maps = [...new Set(features.map(mapOf))];
  const params: Record<string, unknown> = {};
  const where = whereSql(window, params);
  // The key order of one row of the window (no FINAL: only a guess of the common order; every row is checked).
  const first = await store.query<Record<string, string[]>>(
    `SELECT ${maps.map((m, j) => `mapKeys(${m}) AS k${j}`).join(', ')} FROM ${Tables.predictions} WHERE ${where} LIMIT 1`,
    { label: 'drift key order', params, settings },
  );
  const orders = maps.map((_, j) => first[0]?.[`k${j}`] ?? []);
  maps.forEach((_, j) => (params[`__mw_o${j}`] = orders[j]));
  const cols = maps.map(
    (m, j) =>
      `mapKeys(${m}) = {__mw_o${j}:Array(String)} AS __mw_ok${j}, if(__mw_ok${j}, [], mapKeys(${m})) AS __mw_k${j}, mapValues(${m}) AS __mw_v${j}`,
  );
  const res = await queryNative(
    store,
    `SELECT ${cols.join(', ')} FROM ${Tables.predictions} FINAL WHERE ${where}`,
    params,
    settings,
    'drift read',
    { arraysInPlace: true },
  );
  const rows = res.rows;
  const values = new Map<string, Float64Array>();
  maps.forEach((m, j) => {
    const ok = res.columns.get(`__mw_ok${j}`);
    const keys = res.columns.get(`__mw_k${j}`);
    const vals = res.columns.get(`__mw_v${j}`);
    const mine = features.filter((f) => mapOf(f) === m);
    const outs = mine.map(() => new Float64Array(rows));
    mine.forEach((f, i) => values.set(f.column, outs[i]!));
    if (rows === 0) return;
    if (ok?.type !== 'UInt8' || keys?.type !== 'Array(String)' || vals?.type !== 'Array(Float64)')
      throw new ModelwatchError(ErrorCodes.internal, `drift read: unexpected result columns for ${m}`);
    splitRows(
      mine.map((f) => f.name),
      orders[j]!,
      ok.values,
      keys,
      vals,
      outs,
    );
  });
  return { rows, values };
}

/** Splits each row's map values into `outs` (one array per name), by key position (see the module comment). */
function splitRows(
  names: readonly string[],
  order: readonly string[],
  ok: Float64Array,
  keys: { values: string[]; offsets: Float64Array },
  vals: { offsets: Float64Array; inPlace?: { buffer: DataView; starts: Float64Array } | undefined },
  outs: Float64Array[],
): void {
  const pos = names.map((n) => order.indexOf(n));
  const k = keys.values;
  const rows = ok.length;
  const inPlace = vals.inPlace;
  if (inPlace === undefined) throw new ModelwatchError(ErrorCodes.internal, 'drift read: values not in place');
  const view = inPlace.buffer;
  const starts = inPlace.starts;
  for (let f = 0; f < names.length; f++) {
    const out = outs[f]!;
    const p = pos[f]!;
    const name = names[f]!;
    let kStart = 0;
    for (let r = 0; r < rows; r++) {
      const kEnd = keys.offsets[r]!;
      let at = p;
      if (ok[r] !== 1) {
        at = -1;
        for (let i = kStart; i < kEnd; i++) {
          if (k[i] === name) {
            at = i - kStart;
            break;
          }
        }
      }
      out[r] = at >= 0 ? view.getFloat64(starts[r]! + 8 * at, true) : Number.NaN;
      kStart = kEnd;
    }
  }
}
