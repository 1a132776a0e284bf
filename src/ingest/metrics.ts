import type { Counter, Registry } from 'prom-client';
import { counterOn, summedGaugeOn } from '../common/metrics.js';

/** The ingest accounting metrics (DESIGN §4), registered on the process registry. */
export interface IngestMetrics {
  recordsConsumed: Counter;
  rowsInserted: Counter;
  recordsQuarantined: Counter<'reason'>;
  duplicatesDropped: Counter;
  insertRetries: Counter;
  batches: Counter;
  /** Records behind, per `topic/partition`, summed by the lag gauge at scrape time. */
  backlog: Map<string, number>;
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[] = []): Counter<L> {
  return counterOn(registry, { name, help, labelNames });
}

/** Creates (or re-uses) the ingest metrics on `registry`. */
export function createIngestMetrics(registry: Registry): IngestMetrics {
  const backlog = new Map<string, number>();
  // Summed over every pipeline on the registry (get-or-create, like the counters).
  summedGaugeOn(
    registry,
    {
      name: 'modelwatch_ingest_lag_records',
      help: 'Records not yet ingested: Kafka high watermark minus committed offset (sampled per batch), or the in-process queue length.',
    },
    () => {
      let n = 0;
      for (const v of backlog.values()) n += v;
      return n;
    },
  );
  return {
    recordsConsumed: counter(
      registry,
      'modelwatch_ingest_records_consumed_total',
      'Bus records handed to ingest (redeliveries included).',
    ),
    rowsInserted: counter(
      registry,
      'modelwatch_ingest_rows_inserted_total',
      'Prediction rows inserted into the store.',
    ),
    recordsQuarantined: counter(
      registry,
      'modelwatch_ingest_records_quarantined_total',
      'Records written to the quarantine table, by reason (envelope, body).',
      ['reason'],
    ),
    duplicatesDropped: counter(
      registry,
      'modelwatch_ingest_duplicates_dropped_total',
      'Records dropped because their event_id was already stored or repeated within a batch.',
    ),
    insertRetries: counter(registry, 'modelwatch_ingest_insert_retries_total', 'Store writes retried after a failure.'),
    batches: counter(registry, 'modelwatch_ingest_batches_total', 'Bus batches fully stored (and so committed).'),
    backlog,
  };
}
