/** Where one consumed record sits: topic, partition, offset (decimal string). */
export interface RecordPosition {
  topic: string;
  partition: number;
  offset: string;
}

interface PartitionState {
  /** Offset after the last record whose batch was handled; undefined before the first batch. */
  next: bigint | undefined;
  /** Records still held (unpaired, or paired but not yet safe to forget). */
  held: Set<bigint>;
  /** Last offset committed for the group. */
  committed: bigint | undefined;
  /** Records of other partitions released once this partition's commit passes `after`. */
  waiters: { after: bigint; release: RecordPosition }[];
}

/**
 * Commit low-water marks for a consumer that keeps records in memory past their batch (the Seldon
 * bridge's unpaired halves). Per partition, the offset safe to commit is the smallest offset still held,
 * or the offset after the last handled batch when nothing is held: a consumer restarted from it reads
 * every held record again and nothing else is lost. Fetching goes on past held records.
 */
export class OffsetLedger {
  private readonly parts = new Map<string, PartitionState>();

  private state(topic: string, partition: number): PartitionState {
    const id = `${topic}\u0000${partition}`;
    let s = this.parts.get(id);
    if (s === undefined) {
      s = { next: undefined, held: new Set(), committed: undefined, waiters: [] };
      this.parts.set(id, s);
    }
    return s;
  }

  /** Holds a record: no commit of its partition goes past it until {@link OffsetLedger.release}. */
  hold(pos: RecordPosition): void {
    this.state(pos.topic, pos.partition).held.add(BigInt(pos.offset));
  }

  /** Whether the record is held (a record read again after a rebalance is already in hand). */
  isHeld(pos: RecordPosition): boolean {
    return this.parts.get(`${pos.topic}\u0000${pos.partition}`)?.held.has(BigInt(pos.offset)) ?? false;
  }

  /** Releases a held record. */
  release(pos: RecordPosition): void {
    this.parts.get(`${pos.topic}\u0000${pos.partition}`)?.held.delete(BigInt(pos.offset));
  }

  /**
   * Releases `pos` once the commit of `after`'s partition has passed `after` (immediately if it has).
   * A paired request waits for its response this way, so a restart never reads the response again
   * without its request.
   */
  releaseAfterCommit(pos: RecordPosition, after: RecordPosition): void {
    const s = this.state(after.topic, after.partition);
    const at = BigInt(after.offset);
    if (s.committed !== undefined && s.committed > at) this.release(pos);
    else s.waiters.push({ after: at, release: pos });
  }

  /** Marks every record up to `lastOffset` of the partition as handled (its batch resolved). */
  handled(topic: string, partition: number, lastOffset: string): void {
    const s = this.state(topic, partition);
    const n = BigInt(lastOffset) + 1n;
    if (s.next === undefined || n > s.next) s.next = n;
  }

  /** Offsets of `topic` whose low-water mark moved past the last commit: what to commit now. */
  due(topic: string): { partition: number; offset: string }[] {
    const out: { partition: number; offset: string }[] = [];
    for (const [id, s] of this.parts) {
      if (!id.startsWith(`${topic}\u0000`) || s.next === undefined) continue;
      let low = s.next;
      for (const o of s.held) if (o < low) low = o;
      if (s.committed === undefined || low > s.committed) {
        out.push({ partition: Number(id.slice(topic.length + 1)), offset: low.toString() });
      }
    }
    return out;
  }

  /** Records a successful commit; releases the records that waited for it. */
  committed(topic: string, partition: number, offset: string): void {
    const s = this.state(topic, partition);
    const c = BigInt(offset);
    if (s.committed !== undefined && c <= s.committed) return;
    s.committed = c;
    const still: PartitionState['waiters'] = [];
    for (const w of s.waiters) {
      if (w.after < c) this.release(w.release);
      else still.push(w);
    }
    s.waiters = still;
  }

  /** Offsets held across all partitions. */
  get heldCount(): number {
    let n = 0;
    for (const s of this.parts.values()) n += s.held.size;
    return n;
  }
}
