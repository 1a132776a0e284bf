// queryBinaryView: on the embedded engine a binary result is written by the engine to a file and read back
// into a reused buffer; the connection path (a server, or `resultDir: false`) gives the same bytes. Every
// path (success, engine error, cancellation, a throwing consumer) leaves no file behind. queryBinaryFile hands
// the result file itself to its consumer: decodeNativeFile reads Float64 columns from it straight into arrays.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStoreClient } from '../src/store/client.js';
import { ClickHouseStore, queryMarker, type BinaryResultFile } from '../src/store/index.js';
import { decodeNative, decodeNativeFile, numberColumn, stringColumn } from '../src/drift/exact/native.js';
import { queryNative } from '../src/drift/exact/read.js';
import { waitFor } from './support/ingest.js';
import { openTestStore } from './support/store.js';

let store: ClickHouseStore;
/** A store on the same engine whose binary results go through files in `resultDir`. */
let viaFiles: ClickHouseStore;
/** The same engine, results through the connection (what a server store does). */
let viaConnection: ClickHouseStore;
let resultDir: string;
let dataDir: string;
let cleanup: () => Promise<void>;

/** Rows of every type the drift engine decodes, with NaN, ±Inf and text; `{n}` rows. */
const SQL = `SELECT toFloat64(number) / 7 AS x, if(number % 5 = 0, nan, if(number % 11 = 0, -inf, toFloat64(number))) AS y,
  toUInt64(number * 3) AS k, concat('v', toString(number % 13)) AS s FROM numbers({n:UInt64})`;

beforeAll(async () => {
  let dir: string;
  ({ store, dir, cleanup } = await openTestStore());
  dataDir = dir;
  resultDir = mkdtempSync(join(tmpdir(), 'mw-results-'));
  viaFiles = new ClickHouseStore(createStoreClient({ url: `chdb:${dir}` }), { resultDir });
  viaConnection = new ClickHouseStore(createStoreClient({ url: `chdb:${dir}` }), { resultDir: false });
});

afterAll(async () => {
  await viaFiles?.close();
  await viaConnection?.close();
  await cleanup?.();
  rmSync(resultDir, { recursive: true, force: true });
});

const copy = (b: Uint8Array): Uint8Array => Uint8Array.from(b);

describe('queryBinaryView', () => {
  it('gives the bytes the connection gives, through a result file it deletes', async () => {
    const params = { n: 200_000 };
    const streamed = await viaConnection.queryBinary(SQL, { params });
    const seen: string[][] = [];
    const bytes = await viaFiles.queryBinaryView(SQL, { params }, (b) => {
      // While the consumer runs the file is still there (the engine wrote it); after, it is gone.
      seen.push(readdirSync(resultDir));
      return copy(b);
    });
    expect(seen[0]).toHaveLength(1);
    expect(Buffer.compare(Buffer.from(bytes), Buffer.from(streamed))).toBe(0);
    expect(readdirSync(resultDir)).toEqual([]);
    const r = decodeNative(bytes);
    expect(r.rows).toBe(200_000);
    expect(numberColumn(r, 'x')[14]).toBe(2);
    expect(Number.isNaN(numberColumn(r, 'y')[5])).toBe(true);
    expect(numberColumn(r, 'y')[11]).toBe(-Infinity);
    expect(numberColumn(r, 'k')[199_999]).toBe(599_997);
    expect(stringColumn(r, 's')[27]).toBe('v1');
  });

  it('reuses its read buffer from one result to the next', async () => {
    const buffers: ArrayBufferLike[] = [];
    for (let i = 0; i < 3; i++) {
      await viaFiles.queryBinaryView(SQL, { params: { n: 50_000 } }, (b) => buffers.push(b.buffer));
    }
    expect(buffers[1]).toBe(buffers[0]);
    expect(buffers[2]).toBe(buffers[0]);
    // The connection's results are fresh memory each time.
    const a = await viaConnection.queryBinaryView(SQL, { params: { n: 50_000 } }, (b) => b.buffer);
    const b = await viaConnection.queryBinaryView(SQL, { params: { n: 50_000 } }, (x) => x.buffer);
    expect(a).not.toBe(b);
  });

  it('decodes to the same columns through queryNative on both paths, empty results included', async () => {
    for (const n of [0, 1, 70_000]) {
      const a = await queryNative(viaFiles, SQL, { n }, {}, 'test read');
      const b = await queryNative(viaConnection, SQL, { n }, {}, 'test read');
      expect(a.rows).toBe(n);
      expect(b.rows).toBe(n);
      expect([...numberColumn(a, 'y')]).toEqual([...numberColumn(b, 'y')]);
      expect(stringColumn(a, 's')).toEqual(stringColumn(b, 's'));
    }
    expect(readdirSync(resultDir)).toEqual([]);
  });

  it('an engine error rejects as the connection path does and leaves no file', async () => {
    const bad = 'SELECT no_such_column FROM numbers(3)';
    const viaFile = await viaFiles.queryBinaryView(bad, {}, () => 'read').catch((e: unknown) => e);
    const viaConn = await viaConnection.queryBinaryView(bad, {}, () => 'read').catch((e: unknown) => e);
    expect(viaFile).toMatchObject({ code: 'store_error' });
    expect((viaFile as Error).constructor).toBe((viaConn as Error).constructor);
    expect(readdirSync(resultDir)).toEqual([]);
  });

  it('a consumer that throws rejects the call; the file is deleted and the next call works', async () => {
    const err = await viaFiles
      .queryBinaryView(SQL, { params: { n: 10 } }, () => {
        throw new Error('consumer failed');
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe('consumer failed');
    expect(readdirSync(resultDir)).toEqual([]);
    expect(await viaFiles.queryBinaryView(SQL, { params: { n: 10 } }, (b) => decodeNative(b).rows)).toBe(10);
  });

  it('cancelling a statement rejects with cancelled, kills it and leaves no file', async () => {
    const ac = new AbortController();
    const queryId = 'binary-view-abort-1';
    const slow = `SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = {x:UInt8}`;
    const failed = viaFiles
      .queryBinaryView(slow, { params: { x: 3 }, queryId, signal: ac.signal }, () => 'done')
      .catch((e: unknown) => e);
    const running = async (): Promise<number> => {
      const rows = await store.query<{ n: number }>(
        `SELECT count() AS n FROM system.processes WHERE Settings['log_comment'] = '${queryMarker(queryId)}'`,
      );
      return Number(rows[0]?.n ?? 0);
    };
    await waitFor(async () => (await running()) === 1, 5_000, 'slow query listed');
    ac.abort();
    expect(await failed).toMatchObject({ code: 'cancelled' });
    await waitFor(async () => (await running()) === 0, 5_000, 'killed query gone');
    expect(readdirSync(resultDir)).toEqual([]);
  });

  it('takes its directory from MODELWATCH_RESULT_DIR when no option names one; 0 or off turns files off', async () => {
    const envDir = mkdtempSync(join(tmpdir(), 'mw-results-env-'));
    const before = process.env.MODELWATCH_RESULT_DIR;
    const seen = async (value: string): Promise<number> => {
      process.env.MODELWATCH_RESULT_DIR = value;
      const s = new ClickHouseStore(createStoreClient({ url: `chdb:${dataDir}` }));
      try {
        return await s.queryBinaryView(SQL, { params: { n: 10 } }, () => readdirSync(envDir).length);
      } finally {
        await s.close();
      }
    };
    try {
      expect(await seen(envDir)).toBe(1);
      expect(await seen('off')).toBe(0);
      expect(await seen('0')).toBe(0);
      expect(readdirSync(envDir)).toEqual([]);
    } finally {
      if (before === undefined) delete process.env.MODELWATCH_RESULT_DIR;
      else process.env.MODELWATCH_RESULT_DIR = before;
      rmSync(envDir, { recursive: true, force: true });
    }
  });

  it('falls back to the connection for good when the engine cannot write the result file', async () => {
    const missing = join(resultDir, 'not-yet');
    const noDir = new ClickHouseStore(createStoreClient({ url: `chdb:${dataDir}` }), { resultDir: missing });
    try {
      const streamed = await viaConnection.queryBinary(SQL, { params: { n: 1000 } });
      const first = await noDir.queryBinaryView(SQL, { params: { n: 1000 } }, copy);
      expect(Buffer.compare(Buffer.from(first), Buffer.from(streamed))).toBe(0);
      // Once the directory exists, the store still uses the connection: nothing is written there.
      mkdirSync(missing);
      const during: string[][] = [];
      const second = await noDir.queryBinaryView(SQL, { params: { n: 1000 } }, (b) => {
        during.push(readdirSync(missing));
        return copy(b);
      });
      expect(during).toEqual([[]]);
      expect(Buffer.compare(Buffer.from(second), Buffer.from(streamed))).toBe(0);
    } finally {
      await noDir.close();
    }
  });
});

/** Only Float64 columns (what the drift engine's numeric reads give): x = number / 7, y with NaN and -Inf. */
const FLOATS = `SELECT toFloat64(number) / 7 AS x, if(number % 5 = 0, nan, if(number % 11 = 0, -inf, toFloat64(number))) AS y
  FROM numbers({n:UInt64})`;

/** The x and y of FLOATS at row i, computed here. */
const floatsAt = (i: number): [number, number] => [i / 7, i % 5 === 0 ? NaN : i % 11 === 0 ? -Infinity : i];

/** The result files in `resultDir` (an earlier test leaves a directory there). */
const resultFiles = (): string[] => readdirSync(resultDir).filter((f) => f.startsWith('modelwatch-result-'));

/** A result file that counts how it is read. */
function counted(file: BinaryResultFile): { file: BinaryResultFile; reads: number; wholes: number } {
  const c = { file, reads: 0, wholes: 0 };
  c.file = {
    size: file.size,
    read: (into, position) => {
      c.reads++;
      return file.read(into, position);
    },
    readSync: (into, position) => file.readSync(into, position),
    bytes: () => {
      c.wholes++;
      return file.bytes();
    },
  };
  return c;
}

describe('queryBinaryFile and decodeNativeFile', () => {
  // Small blocks: the result has many, each column's values read block by block.
  const settings = { max_block_size: '7000' };

  it('reads Float64 columns straight into their arrays, block by block, never the whole result', async () => {
    const n = 100_003;
    for (const s of [viaFiles, viaConnection]) {
      const seen: string[][] = [];
      const c = await s.queryBinaryFile(FLOATS, { params: { n }, settings }, async (file) => {
        seen.push(resultFiles());
        const k = counted(file);
        const r = await decodeNativeFile(k.file);
        return { ...k, r };
      });
      expect(seen[0]).toHaveLength(s === viaFiles ? 1 : 0);
      expect(c.wholes).toBe(0);
      expect(c.reads).toBeGreaterThanOrEqual(2 * Math.ceil(n / 7000));
      expect(c.r.rows).toBe(n);
      const x = numberColumn(c.r, 'x');
      const y = numberColumn(c.r, 'y');
      for (let i = 0; i < n; i++) {
        const [ex, ey] = floatsAt(i);
        if (x[i] !== ex || !Object.is(y[i], ey)) throw new Error(`row ${i}: ${x[i]}, ${y[i]} != ${ex}, ${ey}`);
      }
      expect(resultFiles()).toEqual([]);
    }
  });

  it('decodes every other column type without the whole result, and an empty result as no rows', async () => {
    const r = await viaFiles.queryBinaryFile(SQL, { params: { n: 30_000 }, settings }, async (file) => {
      const k = counted(file);
      const decoded = await decodeNativeFile(k.file);
      return { ...k, r: decoded };
    });
    expect(r.wholes).toBe(0);
    expect(r.r.rows).toBe(30_000);
    expect(numberColumn(r.r, 'k')[29_999]).toBe(89_997);
    expect(stringColumn(r.r, 's')[27]).toBe('v1');
    expect(numberColumn(r.r, 'x')[14]).toBe(2);
    const empty = await viaFiles.queryBinaryFile(FLOATS, { params: { n: 0 } }, (file) => decodeNativeFile(file));
    expect(empty.rows).toBe(0);
  });

  it('reads Array(Float64) values straight into shared memory: the same columns as decodeNative gives', async () => {
    // Rows of arrays over many blocks (the sorted reference's shape: a name, counts, one long array per row),
    // with an empty array, NaN and -Inf, and strings long enough to span the decoder's chunks.
    const sql = `SELECT concat('col_', toString(number), repeat('x', number % 3 = 0 ? 70000 : 1)) AS column,
        toUInt64(number * 1000) AS n, toUInt8(number % 7) AS small,
        arrayMap(i -> if(i % 97 = 0, nan, if(i % 89 = 0, -inf, i / 3)), range(toUInt64((number * 7919) % 20000))) AS values,
        arrayMap(i -> toString(i), range(number % 4)) AS names
      FROM numbers({n:UInt64})`;
    const params = { n: 23 };
    const small = { max_block_size: '4' };
    const expected = decodeNative(await viaConnection.queryBinary(sql, { params, settings: small }));
    const r = await viaFiles.queryBinaryFile(sql, { params, settings: small }, async (file) => {
      const k = counted(file);
      return { ...k, r: await decodeNativeFile(k.file, { sharedArrays: true }) };
    });
    expect(r.wholes).toBe(0);
    expect(r.r.rows).toBe(23);
    const got = r.r.columns.get('values');
    const want = expected.columns.get('values');
    if (got?.type !== 'Array(Float64)' || want?.type !== 'Array(Float64)') throw new Error('not Array(Float64)');
    expect(got.values.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(Array.from(got.offsets)).toEqual(Array.from(want.offsets));
    expect(got.values.length).toBe(want.values.length);
    expect(Buffer.compare(Buffer.from(got.values.buffer), Buffer.from(want.values.buffer))).toBe(0);
    expect(stringColumn(r.r, 'column')).toEqual(stringColumn(expected, 'column'));
    expect(Array.from(numberColumn(r.r, 'n'))).toEqual(Array.from(numberColumn(expected, 'n')));
    expect(Array.from(numberColumn(r.r, 'small'))).toEqual(Array.from(numberColumn(expected, 'small')));
    expect(r.r.columns.get('names')).toEqual(expected.columns.get('names'));
  });

  it('queryNative reads through result files: the same values', async () => {
    const r = await queryNative(viaFiles, FLOATS, { n: 20_000 }, settings, 'test');
    expect(r.rows).toBe(20_000);
    expect(numberColumn(r, 'x')[20]).toBe(20 / 7);
    expect(numberColumn(r, 'y')[22]).toBe(-Infinity);
  });

  it('deletes the result file when the consumer throws', async () => {
    const err = await viaFiles
      .queryBinaryFile(FLOATS, { params: { n: 10 } }, () => Promise.reject(new Error('consumer failed')))
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe('consumer failed');
    expect(resultFiles()).toEqual([]);
  });
});
