import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCapture, InProcessBus } from '../src/bus/index.js';
import { silentLogger } from '../src/common/index.js';
import { ingestLabels, queryLabelledRows, startIngest } from '../src/ingest/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { counterValue, makeCall, newRegistry, testConfig, waitFor } from './support/ingest.js';
import { openTestStore } from './support/store.js';
import { selectRows } from './support/store.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
});

afterAll(async () => {
  await cleanup();
});

const window = { model: 'm', fromMs: 1_600_000_000_000, toMs: 1_800_000_000_000 };

describe('labels', () => {
  it('join predictions whether they arrive before or after them, newest label winning', async () => {
    // Before: labels for requests not stored yet (unknown ids are kept).
    expect(
      await ingestLabels(store, [
        { request_id: 'req-1', label: 'cat' },
        { request_id: 'req-2', row: 1, label: 1 },
      ]),
    ).toBe(2);

    const bus = new InProcessBus();
    const registry = newRegistry();
    const role = await startIngest({ config: testConfig(), store, bus, logger: silentLogger, metrics: registry });
    await role.ready;
    await bus.publish([1, 2, 3].map((i) => encodeCapture(makeCall(i))));
    await waitFor(
      async () => (await counterValue(registry, 'modelwatch_ingest_rows_inserted_total')) === 6,
      30_000,
      'rows',
    );
    await role.stop();

    // After: labels for stored predictions, a boolean label, and a correction of an earlier label.
    expect(
      await ingestLabels(store, [
        { request_id: 'req-3', row: 0, label: true },
        { request_id: 'req-1', row: 1, label: 'dog' },
      ]),
    ).toBe(2);
    expect(await ingestLabels(store, [{ request_id: 'req-2', row: 1, label: 0.5 }])).toBe(1);

    const rows = await queryLabelledRows(store, window);
    const byKey = new Map(rows.map((r) => [`${r.request_id}/${r.row}`, r.label]));
    expect(Object.fromEntries(byKey)).toEqual({
      'req-1/0': 'cat',
      'req-1/1': 'dog',
      'req-2/0': null,
      'req-2/1': '0.5',
      'req-3/0': 'true',
      'req-3/1': null,
    });
    const r10 = rows.find((r) => r.request_id === 'req-1' && r.row === 0);
    expect(r10?.features_num).toEqual({ x_0: 100, x_1: 101, x_2: 102 });
    expect(r10?.ts).toBe(makeCall(1).startedAt);
    // Newest first.
    expect(rows[0]?.request_id).toBe('req-3');

    const labelled = await queryLabelledRows(store, { ...window, labelledOnly: true });
    expect(labelled.map((r) => `${r.request_id}/${r.row}`).sort()).toEqual([
      'req-1/0',
      'req-1/1',
      'req-2/1',
      'req-3/0',
    ]);
    expect(await queryLabelledRows(store, { ...window, version: 'nope' })).toEqual([]);
    expect(await queryLabelledRows(store, { ...window, limit: 2 })).toHaveLength(2);
  });

  it('rejects bad labels naming the field, storing none of the batch', async () => {
    const cases: [unknown, string][] = [
      [[{ label: 'x' }], 'labels.0.request_id'],
      [
        [
          { request_id: 'a', label: 'x' },
          { request_id: 'b', row: -1, label: 'x' },
        ],
        'labels.1.row',
      ],
      [[{ request_id: 'a', row: 1.5, label: 'x' }], 'labels.0.row'],
      [[{ request_id: 'a', label: { nested: 1 } }], 'labels.0.label'],
      [[{ request_id: 'a', label: Number.NaN }], 'labels.0.label'],
      [[{ request_id: 'a', label: 'x', extra: 1 }], 'labels.0'],
      [{ request_id: 'a', label: 'x' }, 'labels'],
    ];
    for (const [input, field] of cases) {
      await expect(ingestLabels(store, input)).rejects.toMatchObject({ code: 'bad_request', field });
    }
    const rs = selectRows(store, {
      query: `SELECT count() AS n FROM mw_labels WHERE request_id IN ('a','b')`,
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toEqual([{ n: 0 }]);
  });
});
