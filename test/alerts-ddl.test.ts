import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MW_ALERT_ANNOTATIONS_DDL,
  MW_NOTIFICATIONS_DDL,
  MW_NOTIFICATIONS_TABLE,
  notificationLogRow,
} from '../src/alerts/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { openTestStore } from './support/store.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
});
afterAll(async () => cleanup());

describe('alerts DDL on embedded ClickHouse', () => {
  it('mw_notifications is created idempotently and takes notification log rows', async () => {
    await store.command(MW_NOTIFICATIONS_DDL);
    await store.command(MW_NOTIFICATIONS_DDL);
    await store.command(MW_ALERT_ANNOTATIONS_DDL);
    // A recent time: the table's 90-day TTL lets a background merge drop an older row before the read.
    const ack = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000 + 250);
    await store.insert(MW_NOTIFICATIONS_TABLE, [
      notificationLogRow(
        {
          receiver: 'slack',
          groupKey: '{}:{model="fraud"}',
          attempt: 2,
          status: 'sent',
          httpStatus: 200,
          error: null,
          acknowledgedAt: ack,
          groupStatus: 'firing',
          alertsHash: 'abc',
          firing: 1,
          resolved: 0,
        },
        ack,
      ),
      notificationLogRow({
        receiver: 'alertmanager',
        groupKey: '{}:{model="fraud"}',
        attempt: 3,
        status: 'failed',
        httpStatus: null,
        error: 'attempt timed out after 400 ms',
        acknowledgedAt: null,
        groupStatus: 'firing',
        alertsHash: 'abc',
        firing: 1,
        resolved: 0,
      }),
    ]);
    const rows = await store.query<Record<string, unknown>>(
      `SELECT receiver, attempt, status, http_status, error, toUnixTimestamp64Milli(acknowledged_at) AS ack_ms
              FROM ${MW_NOTIFICATIONS_TABLE} ORDER BY receiver`,
    );
    expect(rows).toEqual([
      {
        receiver: 'alertmanager',
        attempt: 3,
        status: 'failed',
        http_status: null,
        error: 'attempt timed out after 400 ms',
        ack_ms: null,
      },
      { receiver: 'slack', attempt: 2, status: 'sent', http_status: 200, error: null, ack_ms: ack.getTime() },
    ]);
  });
});
