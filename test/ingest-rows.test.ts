// The per-row maps ingest builds from a decoded call (src/protocol/flatten.ts): a side filled by one numeric
// tensor gets its maps as copies of a per-layout template, other layouts are filled name by name. Both must
// give the same own properties, values and order, whatever the names (schema mappings, integer-like names,
// `__proto__`), and the encoded prediction line must be the one the maps describe.
import { describe, expect, it } from 'vitest';
import { defaultModelSchema, type ModelSchema } from '../src/config/model-schema.js';
import { predictionLine } from '../src/ingest/encode.js';
import { flattenTensors } from '../src/protocol/flatten.js';
import { decodeCall } from '../src/protocol/index.js';
import type { DecodedTensor } from '../src/protocol/tensor.js';
import { makeCall } from './support/ingest.js';

function tensor(name: string, shape: number[], values: number[]): DecodedTensor {
  return { name, datatype: 'FP32', shape, values: Float64Array.from(values) };
}

describe('row maps of a decoded call', () => {
  it('gives each row its own map with every column, in column order, from one numeric tensor', () => {
    const rows = flattenTensors([tensor('x', [3, 2], [1, 2, 3, 4, 5, 6])], undefined, defaultModelSchema);
    expect(rows.map((r) => r.features_num)).toEqual([
      { x_0: 1, x_1: 2 },
      { x_0: 3, x_1: 4 },
      { x_0: 5, x_1: 6 },
    ]);
    // Separate objects: writing one row's map leaves the others (and the next call's) alone.
    (rows[0] as { features_num: Record<string, number> }).features_num.x_0 = 99;
    expect(rows[1]?.features_num.x_0).toBe(3);
    const again = flattenTensors([tensor('x', [1, 2], [7, 8])], undefined, defaultModelSchema);
    expect(again[0]?.features_num).toEqual({ x_0: 7, x_1: 8 });
  });

  it('keeps mapped, integer-like and __proto__ names as own properties, as the name-by-name path does', () => {
    const schema: ModelSchema = {
      features: [
        { name: '__proto__', tensor: 'x', index: 0 },
        { name: '10', tensor: 'x', index: 1 },
        { name: '2', tensor: 'x', index: 2 },
        { name: 'constructor', tensor: 'x', index: 3 },
      ],
      categorical: [],
    };
    const single = flattenTensors([tensor('x', [1, 4], [1.5, -2, 3, 4])], undefined, schema)[0]!;
    const m = single.features_num;
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
    expect(Object.hasOwn(m, '__proto__')).toBe(true);
    expect(Object.keys(m)).toEqual(['2', '10', '__proto__', 'constructor']);
    expect(Object.entries(m)).toEqual([
      ['2', 3],
      ['10', -2],
      ['__proto__', 1.5],
      ['constructor', 4],
    ]);
    // Two tensors on one side take the name-by-name path: same names, same values.
    const two = flattenTensors([tensor('x', [1, 4], [1.5, -2, 3, 4]), tensor('z', [1], [0.25])], undefined, schema)[0]!
      .features_num;
    expect(Object.entries(two).filter(([k]) => k !== 'z')).toEqual(
      Object.entries(m).filter(([k]) => k !== '__proto__'),
    );
  });

  it('encodes the decoded maps, non-finite values included, into the prediction line', () => {
    const call = makeCall(4, 2);
    const decoded = decodeCall(call, defaultModelSchema);
    expect(decoded.rows).toHaveLength(2);
    const row = decoded.rows[1]!;
    const line = predictionLine({
      model: 'm',
      version: '1',
      ts: call.startedAt,
      event_id: call.eventId,
      request_id: call.requestId,
      row: 1,
      ...row,
    });
    const parsed = JSON.parse(line) as unknown[];
    expect(parsed[6]).toEqual(row.features_num);
    expect(Object.keys(parsed[6] as object)).toEqual(['x_0', 'x_1', 'x_2']);
    expect(parsed[8]).toEqual({ y_0: 0.25 });
    const nonFinite = flattenTensors([tensor('x', [1, 2], [Number.NaN, -Infinity])], undefined, defaultModelSchema);
    const l2 = JSON.parse(
      predictionLine({ model: 'm', version: '', ts: 0, event_id: 'e', request_id: 'r', row: 0, ...nonFinite[0]! }),
    ) as unknown[];
    expect(l2[6]).toEqual({ x_0: 'nan', x_1: '-inf' });
  });
});
