import { readdirSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * The operating-system id of the calling thread (Linux: from `/proc/thread-self`), or `undefined` where
 * that is not available.
 */
export function currentThreadId(): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Makes every thread of this process but `keep` `nice` steps nicer than it is now (capped at 19), so that
 * thread wins a contended core. On Linux niceness is per thread, and a thread inherits its creator's, so
 * threads the others start later (the embedded engine's pools) are nicer too. Raising niceness needs no
 * privilege. Returns the ids of the threads changed: none where `/proc/self/task` is not available.
 */
export function yieldToThread(keep: number, nice: number): number[] {
  let tids: number[];
  try {
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    return [];
  }
  const changed: number[] = [];
  for (const tid of tids) {
    if (tid === keep || !Number.isInteger(tid)) continue;
    try {
      setPriority(tid, Math.min(19, getPriority(tid) + nice));
      changed.push(tid);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return changed;
}
