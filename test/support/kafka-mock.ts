import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'kafka-mock.c');
const binary = join(here, 'bin', 'kafka-mock');

/** Options of {@link startKafkaMock}. */
export interface KafkaMockOptions {
  /** Number of mock brokers (ids 1..N). @default 1 */
  brokers?: number;
  /** Topics to create, name → partition count. @default {} */
  topics?: Record<string, number>;
  /** Deadline for the launcher to print its bootstrap servers. @default 15000 */
  startTimeoutMs?: number;
}

/** A running librdkafka mock cluster with fault commands. */
export interface KafkaMock {
  /** Bootstrap servers, `host:port` each. */
  brokers: string[];
  /** Takes broker `id` (1-based) down: connections are closed and refused. */
  down(id: number): Promise<void>;
  up(id: number): Promise<void>;
  /** Adds `ms` round-trip time to every response of broker `id`. */
  rtt(id: number, ms: number): Promise<void>;
  /** The next `count` requests of Kafka API `apiKey` (0 = Produce, 8 = OffsetCommit, ...) fail with `errorCode`. */
  pushErrors(apiKey: number, errorCode: number, count: number): Promise<void>;
  stop(): Promise<void>;
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** Compiles the launcher once (again only when the C source is newer than the binary); returns its path. */
export function buildKafkaMock(): string {
  if (mtime(binary) > mtime(source)) return binary;
  mkdirSync(dirname(binary), { recursive: true });
  let libs = ['-lrdkafka'];
  try {
    libs = execFileSync('pkg-config', ['--cflags', '--libs', 'rdkafka'], { encoding: 'utf8' }).trim().split(/\s+/);
  } catch {
    // pkg-config absent: Debian's librdkafka-dev puts headers and library on the default paths.
  }
  execFileSync('gcc', ['-O1', '-Wall', '-o', binary, source, ...libs], { stdio: 'inherit' });
  return binary;
}

/** Starts a mock cluster with the given topics (created here: the mock reports no controller). */
export async function startKafkaMock(options: KafkaMockOptions = {}): Promise<KafkaMock> {
  const bin = buildKafkaMock();
  const args = [String(options.brokers ?? 1), ...Object.entries(options.topics ?? {}).map(([t, p]) => `${t}:${p}`)];
  const child: ChildProcessWithoutNullStreams = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  const queued: string[] = [];
  lines.on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else queued.push(line);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const nextLine = (timeoutMs: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const q = queued.shift();
      if (q !== undefined) return resolve(q);
      const t = setTimeout(
        () => reject(new Error(`kafka-mock did not answer in ${timeoutMs} ms: ${stderr}`)),
        timeoutMs,
      );
      waiting.push((line) => {
        clearTimeout(t);
        resolve(line);
      });
      void exited.then(() => {
        clearTimeout(t);
        reject(new Error(`kafka-mock exited: ${stderr}`));
      });
    });
  const bootstrap = await nextLine(options.startTimeoutMs ?? 15_000);
  let chain: Promise<unknown> = Promise.resolve();
  const command = (cmd: string): Promise<void> => {
    const run = chain.then(async () => {
      child.stdin.write(cmd + '\n');
      const answer = await nextLine(5_000);
      if (answer !== 'ok') throw new Error(`kafka-mock ${cmd}: ${answer}`);
    });
    chain = run.catch(() => undefined);
    return run;
  };
  return {
    brokers: bootstrap.split(','),
    down: (id) => command(`down ${id}`),
    up: (id) => command(`up ${id}`),
    rtt: (id, ms) => command(`rtt ${id} ${ms}`),
    pushErrors: (apiKey, errorCode, count) => command(`error ${apiKey} ${errorCode} ${count}`),
    stop: async () => {
      if (child.exitCode === null) {
        child.stdin.end('quit\n');
        const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
      lines.close();
    },
  };
}
