// Helpers for sidecar tests and the sidecar benchmark: a runtime context around a real bus and store,
// a bus decorator that records what was published, and HTTP calls that return raw bytes.
import { Registry } from 'prom-client';
import { request as undiciRequest, Agent } from 'undici';
import type { Bus, BusConsumer, BusMessage, ConsumeOptions } from '../../src/bus/index.js';
import { silentLogger } from '../../src/common/index.js';
import { configSchema, type Config, type ConfigInput } from '../../src/config/index.js';
import type { RuntimeContext } from '../../src/runtime/index.js';
import type { Store } from '../../src/store/index.js';

/** A validated config for sidecar tests. */
export function sidecarConfig(input: ConfigInput = {}): Config {
  return configSchema.parse({
    logLevel: 'silent',
    ...input,
    sidecar: { listen: '127.0.0.1:0', ...input.sidecar },
    ingest: { flushIntervalMs: 100, retryInitialMs: 50, retryMaxMs: 400, ...input.ingest },
  });
}

/** A runtime context with its own metrics registry. */
export function sidecarContext(config: Config, bus: Bus, store: Store): RuntimeContext {
  return { config, bus, store, logger: silentLogger, metrics: new Registry() };
}

/**
 * Wraps a real bus and keeps a copy of every message that `publish` accepted (after the inner bus
 * resolved), so a test can check the tee's output while ingest consumes the same bus.
 */
export class RecordingBus implements Bus {
  readonly published: BusMessage[] = [];
  constructor(private readonly inner: Bus) {}
  get kind(): Bus['kind'] {
    return this.inner.kind;
  }
  get topic(): string {
    return this.inner.topic;
  }
  async publish(messages: BusMessage[], topic?: string): Promise<void> {
    await this.inner.publish(messages, topic);
    this.published.push(...messages);
  }
  consume(options: ConsumeOptions): Promise<BusConsumer> {
    return this.inner.consume(options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The raw outcome of one HTTP call. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One keep-alive agent shared by a test file's calls. */
export const testAgent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

/** Makes one HTTP call and reads the whole body. */
export async function call(
  base: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<RawResponse> {
  const res = await undiciRequest(base + path, {
    method: (init.method ?? 'GET') as 'GET',
    headers: init.headers ?? {},
    body: init.body ?? null,
    dispatcher: testAgent,
  });
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
}

/** Current resident set size in MB. */
export function rssMb(): number {
  return process.memoryUsage().rss / (1024 * 1024);
}

/** Runs `n` calls of `fn` with `concurrency` workers; returns the statuses in call order. */
export async function runConcurrent(
  n: number,
  concurrency: number,
  fn: (i: number) => Promise<number>,
): Promise<number[]> {
  const out: number[] = new Array<number>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  return out;
}

/** Open TCP socket handles of this process (for leak checks). */
export function openTcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

/**
 * Wraps a real bus; while stalled, `publish` returns a promise that settles only when released (a
 * hung broker). Used to show that a stuck bus never slows the request path.
 */
export class StallableBus implements Bus {
  private stalled = false;
  private waiting: (() => void)[] = [];
  constructor(private readonly inner: Bus) {}
  get kind(): Bus['kind'] {
    return this.inner.kind;
  }
  get topic(): string {
    return this.inner.topic;
  }
  stall(): void {
    this.stalled = true;
  }
  release(): void {
    this.stalled = false;
    for (const w of this.waiting.splice(0)) w();
  }
  async publish(messages: BusMessage[], topic?: string): Promise<void> {
    if (this.stalled) await new Promise<void>((resolve) => this.waiting.push(resolve));
    await this.inner.publish(messages, topic);
  }
  consume(options: ConsumeOptions): Promise<BusConsumer> {
    return this.inner.consume(options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
