// Response cache for authoritative answers: encoded responses keyed by the query bytes after the
// 2-byte ID (flags, EDNS and the exact-case question all take part). Entries are valid for one
// index generation only; any change to the zones empties the cache on the next read.

/**
 * Two generations of at most `maxEntries / 2` each: when the young map fills it becomes the old
 * one and the previous old one is dropped, so a full cache sheds its least recently used half
 * instead of emptying. A hit in the old map moves the entry back to the young one.
 */
export class ResponseCache<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();
  private generation = -1;
  private readonly half: number;

  constructor(maxEntries: number) {
    this.half = Math.max(1, Math.floor(maxEntries / 2));
  }

  /** The entry for `key` cached under `generation`, or undefined. */
  get(key: string, generation: number): V | undefined {
    if (generation !== this.generation) {
      this.reset(generation);
      return undefined;
    }
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) {
      this.old.delete(key);
      this.put(key, o);
    }
    return o;
  }

  /** Stores `value`, computed from the index at `generation`. */
  set(key: string, value: V, generation: number): void {
    if (generation !== this.generation) this.reset(generation);
    this.put(key, value);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private put(key: string, value: V): void {
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  private reset(generation: number): void {
    this.generation = generation;
    if (this.young.size) this.young = new Map();
    if (this.old.size) this.old = new Map();
  }
}
