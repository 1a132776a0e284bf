// Direction-only: what this process's resident memory is made of, from /proc/self (Linux).
import { readFileSync, readdirSync } from 'node:fs';

/** Resident kB per kind of mapping, from /proc/self/smaps. */
export interface ResidentSplit {
  /** The embedded engine's library (code and read-only data touched so far). */
  libchdbKb: number;
  /** Node's own binary. */
  nodeKb: number;
  /** The main thread's `brk` heap (glibc's main arena). */
  brkKb: number;
  /** Anonymous mappings of 1 MiB or more (glibc's thread arenas, large Buffers, V8 large objects). */
  anonLargeKb: number;
  /** Anonymous mappings under 1 MiB (mostly V8 heap pages). */
  anonSmallKb: number;
  otherKb: number;
  /** Threads by name (trailing digits removed). */
  threads: Record<string, number>;
}

/** Reads /proc/self/smaps and /proc/self/task (a few ms; call it rarely). */
export function residentSplit(): ResidentSplit {
  const out: ResidentSplit = {
    libchdbKb: 0,
    nodeKb: 0,
    brkKb: 0,
    anonLargeKb: 0,
    anonSmallKb: 0,
    otherKb: 0,
    threads: {},
  };
  let kind: keyof Omit<ResidentSplit, 'threads'> = 'otherKb';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const kb = (parseInt(head[2]!, 16) - parseInt(head[1]!, 16)) / 1024;
      const path = head[3]!.trim();
      kind = path.endsWith('libchdb.so')
        ? 'libchdbKb'
        : path.endsWith('/node')
          ? 'nodeKb'
          : path === '[heap]'
            ? 'brkKb'
            : path === ''
              ? kb >= 1024
                ? 'anonLargeKb'
                : 'anonSmallKb'
              : 'otherKb';
      continue;
    }
    if (line.startsWith('Rss:')) out[kind] += Number(/(\d+)/.exec(line)?.[1] ?? 0);
  }
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const n = readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim().replace(/\d+$/, '');
      out.threads[n] = (out.threads[n] ?? 0) + 1;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/** One line: MB per kind and the thread counts. */
export function formatSplit(s: ResidentSplit): string {
  const mb = (kb: number): string => (kb / 1024).toFixed(0);
  return `libchdb ${mb(s.libchdbKb)}, node ${mb(s.nodeKb)}, brk heap ${mb(s.brkKb)}, anon ≥1 MiB ${mb(s.anonLargeKb)}, anon <1 MiB ${mb(s.anonSmallKb)}, other ${mb(s.otherKb)} MB; threads ${Object.entries(
    s.threads,
  )
    .sort((a, b) => b[1] - a[1])
    .map(([n, c]) => `${n}×${c}`)
    .join(' ')}`;
}
