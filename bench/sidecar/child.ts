// Processes of the sidecar benchmark that are not `node bin/modelwatch.js`, bundled by bench/sidecar.ts
// into one plain-JavaScript file (packages and dist/ stay external) and run on bare `node`:
//
//   child.mjs node-proxy PORT UPSTREAM            the plain `node:http` proxy baseline
//   child.mjs sidecar-inproc PORT UPSTREAM        `startSidecar` (dist/) with an in-process bus drained by a no-op consumer
//   child.mjs loadgen                             the open-loop load generator (jobs over IPC)
//
// The two servers log the same `diagnostics` JSON lines on stderr as `modelwatch sidecar` does with
// MODELWATCH_DIAGNOSTICS_INTERVAL_MS set (event-loop delay, GC pauses, CPU), through the shipped
// LoopDiagnostics, and stop on SIGTERM.
import { connect, type Socket } from 'node:net';
import { shipped } from '../shipped.js';

const INFER_PATH = '/v2/models/classifier/infer';

/** A job for the load generator. */
export interface LoadJob {
  port: number;
  /** The request body (base64). */
  body: string;
  rate: number;
  seconds: number;
  connections: number;
}

/** What the load generator measured. */
export interface LatencyResult {
  requests: number;
  /** Non-200 answers, socket errors and requests never answered. */
  errors: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  p999_ms: number;
  max_ms: number;
  mean_ms: number;
  /** Requests that found every connection busy and waited for one (the proxy fell behind). */
  queued: number;
}

async function diagnosticsLog(): Promise<{ stop(): void }> {
  const { startDiagnosticsLog, diagnosticsIntervalFromEnv } =
    await shipped<typeof import('../../src/sidecar/diagnostics.js')>('sidecar/diagnostics.js');
  const { createLogger } = await shipped<typeof import('../../src/common/logger.js')>('common/logger.js');
  const interval = diagnosticsIntervalFromEnv();
  return interval > 0 ? startDiagnosticsLog(createLogger('info', 'bench'), interval) : { stop() {} };
}

/** The plain `node:http` proxy baseline: keep-alive agent, bodies piped both ways, no capture. */
async function nodeProxy(port: number, upstream: string): Promise<void> {
  const http = await import('node:http');
  const u = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const server = http.createServer((req, res) => {
    const up = http.request(
      { host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers, agent },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const diag = await diagnosticsLog();
  process.once('SIGTERM', () => {
    diag.stop();
    server.closeAllConnections();
    agent.destroy();
    server.close(() => process.exit(0));
  });
}

/** `startSidecar` from dist/ with the tee on, into an in-process bus that a no-op consumer drains. */
async function sidecarInProcess(port: number, upstream: string): Promise<void> {
  // As an embedder should (and as `modelwatch sidecar` does): hold the young generation's growth before
  // loading the rest, so startSidecar can cap it.
  const { holdYoungGeneration } =
    await shipped<typeof import('../../src/sidecar/young-generation.js')>('sidecar/young-generation.js');
  holdYoungGeneration();
  const { InProcessBus } = await shipped<typeof import('../../src/bus/in-process.js')>('bus/in-process.js');
  const { createLogger } = await shipped<typeof import('../../src/common/logger.js')>('common/logger.js');
  const { configSchema } = await shipped<typeof import('../../src/config/schema.js')>('config/schema.js');
  const { startSidecar } = await shipped<typeof import('../../src/sidecar/sidecar.js')>('sidecar/sidecar.js');
  const { Registry } = await import('prom-client');
  const config = configSchema.parse({
    logLevel: 'info',
    sidecar: { listen: `127.0.0.1:${port}`, upstream },
  });
  const bus = new InProcessBus({ topic: config.kafka.topic });
  // Drained as fast as it fills (the consumer does nothing), so the tee never backs up.
  const consumer = await bus.consume({ groupId: 'bench', handler: () => Promise.resolve() });
  const logger = createLogger('info', 'bench');
  const sidecar = await startSidecar({ config, bus, store: undefined as never, logger, metrics: new Registry() });
  process.once('SIGTERM', () => {
    void (async () => {
      await sidecar.stop();
      logger.info('tee stats', { tee: sidecar.tee.stats() });
      await consumer.stop();
      await bus.close();
      process.exit(0);
    })();
  });
}

// ---------------------------------------------------------------- open-loop load generator

class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private sentAt = 0n;
  private readonly socket: Socket;
  constructor(
    port: number,
    private readonly done: (c: Conn, status: number, ns: bigint) => void,
    private readonly fail: (c: Conn) => void,
  ) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', () => this.fail(this));
  }
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
  }
  send(req: Buffer, at: bigint): void {
    this.sentAt = at;
    this.socket.write(req);
  }
  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    const end = this.buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const status = Number(head.slice(9, 12));
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let total: number;
    if (cl) total = end + 4 + Number(cl[1]);
    else {
      const term = this.buf.indexOf('\r\n0\r\n\r\n', end);
      if (term === -1) return;
      total = term + 7;
    }
    if (this.buf.length < total) return;
    const ns = process.hrtime.bigint() - this.sentAt;
    this.buf = this.buf.subarray(total);
    this.done(this, status, ns);
  }
  close(): void {
    this.socket.destroy();
  }
}

/**
 * Open loop: request i is due at t0 + i/rate and is sent at the first timer tick after that on an idle
 * keep-alive connection. Its latency is measured from that tick, not from when a connection became
 * free, so a proxy that falls behind shows it (no coordinated omission); `queued` counts the requests
 * that found every connection busy and waited.
 */
async function openLoop(job: LoadJob): Promise<LatencyResult> {
  const body = Buffer.from(job.body, 'base64');
  const head = `POST ${INFER_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${job.port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
  const req = Buffer.concat([Buffer.from(head, 'latin1'), body]);
  const total = Math.round(job.rate * job.seconds);
  const intervalNs = BigInt(Math.round(1e9 / job.rate));
  const lat = new Float64Array(total);
  let recorded = 0;
  let errors = 0;
  let sent = 0;
  let queued = 0;
  const backlog: bigint[] = [];
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const idle: Conn[] = [];
  let t0 = 0n;
  const onDone = (c: Conn, status: number, ns: bigint): void => {
    lat[recorded++] = Number(ns) / 1e6;
    if (status !== 200) errors++;
    const due = backlog.shift();
    if (due !== undefined) c.send(req, due);
    else idle.push(c);
    if (recorded === total) finish();
  };
  const onFail = (): void => {
    errors++;
    recorded++;
    if (recorded === total) finish();
  };
  const conns = Array.from({ length: job.connections }, () => new Conn(job.port, onDone, onFail));
  await Promise.all(conns.map((c) => c.ready()));
  idle.push(...conns);
  t0 = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = process.hrtime.bigint();
      const due = Math.min(total, Number((now - t0) / intervalNs) + 1);
      while (sent < due) {
        // From the tick that found it due (the timer's own lateness is the generator's, not the proxy's).
        const at = now;
        sent++;
        const c = idle.pop();
        if (c) c.send(req, at);
        else {
          queued++;
          backlog.push(at);
        }
      }
      if (sent >= total) resolve();
      // A 1 ms timer, not a spin: the generator shares its core with the upstream.
      else setTimeout(tick, 1);
    };
    tick();
  });
  const timeout = setTimeout(finish, 30_000);
  await finished;
  clearTimeout(timeout);
  for (const c of conns) c.close();
  const sorted = lat.subarray(0, recorded).sort();
  const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    requests: recorded,
    errors: errors + (total - recorded),
    p50_ms: r3(q(0.5)),
    p90_ms: r3(q(0.9)),
    p99_ms: r3(q(0.99)),
    p999_ms: r3(q(0.999)),
    max_ms: r3(sorted[sorted.length - 1] ?? NaN),
    mean_ms: r3(mean),
    queued,
  };
}

function loadgen(): void {
  process.on('message', (job: LoadJob | 'exit') => {
    if (job === 'exit') process.exit(0);
    void openLoop(job).then((r) => process.send?.(r));
  });
  process.send?.('ready');
}

const [mode, port, upstream] = process.argv.slice(2);
if (mode === 'node-proxy') await nodeProxy(Number(port), String(upstream));
else if (mode === 'sidecar-inproc') await sidecarInProcess(Number(port), String(upstream));
else if (mode === 'loadgen') loadgen();
else throw new Error(`bench/sidecar/child: unknown mode ${mode}`);
