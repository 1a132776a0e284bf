import { readFileSync } from 'node:fs';

/** Niceness of thread `tid` of this process (Linux), read from field 19 of `/proc/self/task/<tid>/stat`. */
export function niceOf(tid: number | string): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}
