// The in-memory zone data the DNS server answers from. Mutated only through load()/apply();
// every mutation bumps `generation` so response caches know to drop what they hold.
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { absolute, inZone } from '../model/name.js';
import type { RecordChange, RecordType, StoredRecord } from '../model/record.js';
import type { ZoneSoa } from '../model/zone.js';
import { rrsetOf, simpleRRset, soaRRset, type RRset } from './rrset.js';
import { soaFor, type ServedRecord, type Soa, type ZoneSettings } from './soa.js';

/** The RRsets at one name, at most one per type. Names hold one or two types, so a short array
 * (a third of a Map's memory, ~1.5 MiB per 10,000 names) scanned by type is the better index. */
type Node = RRset[];

function setIn(node: Node | undefined, type: string): RRset | undefined {
  if (!node) return undefined;
  for (const set of node) if (set.type === type) return set;
  return undefined;
}

/** Adds `set` to `node`, replacing the RRset of the same type. */
function putIn(node: Node, set: RRset): void {
  const i = node.findIndex((s) => s.type === set.type);
  if (i >= 0) node[i] = set;
  else node.push(set);
}

/** Removes the RRset of `type`; false when there was none. */
function dropFrom(node: Node, type: string): boolean {
  const i = node.findIndex((s) => s.type === type);
  if (i < 0) return false;
  node.splice(i, 1);
  return true;
}

/** TTL of the synthesised apex NS and glue: they change only with the config, so an hour is safe. */
const SYNTH_TTL = 3600;
/** A change of more RRsets than this (a zone import) is applied in slices on copies swapped in at the end; ~6 ms of work per 1,000. */
export const STAGED_APPLY_RRSETS = 2_000;
/** Work of a staged apply between two turns of the event loop, so DNS keeps answering meanwhile. */
const SLICE_MS = 5;
/** Operations between two looks at the clock during a staged apply. */
const SLICE_CHECK = 256;

/** Gives the event loop a turn (I/O callbacks, so queries, run before this resolves). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface ZoneState {
  readonly settings: ZoneSettings;
  serial: number;
  /** SOA fields from an imported zone file (null: settings and SOA_TIMERS). */
  fields: ZoneSoa | null;
  soa: Soa;
  soaSet: RRset;
  /** Apex NS built from settings (used unless the user stores an apex NS RRset). */
  readonly nsSet: RRset;
  /** In-zone nameserver names → glue RRset (A or AAAA to nodeIp) used while the name has no address or CNAME of its own. */
  readonly glue: Map<string, RRset>;
  /** User RRsets by owner name. */
  user: Map<string, Node>;
  /**
   * For each name at or above a data-bearing name (up to the apex): how many data-bearing names
   * lie at or below it. A name exists (RFC 4592 §2.2) iff its count is > 0, which covers empty
   * non-terminals. Synthesised names (apex, glue names) hold one permanent count.
   */
  refs: Map<string, number>;
}

/** Parent of absolute `name` (`a.b.` → `b.`). */
function parent(name: string): string {
  return name.slice(name.indexOf('.') + 1);
}

/** Adds `delta` to the count of `name` and each ancestor up to `apex` in `refs`. */
function addRefs(refs: Map<string, number>, apex: string, name: string, delta: number): void {
  for (let n = name; ; n = parent(n)) {
    const count = (refs.get(n) ?? 0) + delta;
    if (count > 0) refs.set(n, count);
    else refs.delete(n);
    if (n === apex || n === '') return;
  }
}

/** Sorts lower-case names in canonical order (RFC 4034 §6.1): label by label from the right. */
function sortCanonical(names: string[]): string[] {
  const keyed = names.map((n) => [n.split('.').reverse().join('\x00'), n] as const);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return keyed.map(([, n]) => n);
}


export class ZoneIndex {
  private readonly zones = new Map<string, ZoneState>();
  private gen = 0;
  /** A staged apply under way (see apply()), and the changes that came in meanwhile, in order. */
  private staging: Promise<void> | null = null;
  private readonly queued: RecordChange[] = [];
  private readonly queuedWarnings: ((warnings: string[]) => void)[] = [];

  constructor(zones: readonly ZoneSettings[]) {
    for (const given of zones) {
      const name = absolute(given.name);
      const nameservers = (given.nameservers.length ? given.nameservers : [`ns1.${name}`]).map(absolute);
      const settings = { ...given, name, nameservers };
      const soa = soaFor(settings, 0);
      this.zones.set(name, { settings, serial: 0, fields: null, soa, soaSet: soaRRset(soa), nsSet: simpleRRset('NS', SYNTH_TTL, nameservers), glue: new Map(), user: new Map(), refs: new Map() });
    }
    // Glue for every nameserver name that falls in a served zone, in the most specific one.
    for (const { settings } of this.zones.values()) {
      const family = isIP(settings.nodeIp);
      if (family === 0) continue;
      for (const ns of settings.nameservers) {
        const home = this.zones.get(this.zoneFor(ns) ?? '');
        if (home && !home.glue.has(ns)) home.glue.set(ns, simpleRRset(family === 6 ? 'AAAA' : 'A', SYNTH_TTL, [settings.nodeIp]));
      }
    }
    for (const state of this.zones.values()) this.resetRefs(state);
  }

  /** Increases on every load() and apply(); equal generations mean identical answers. */
  get generation(): number {
    return this.gen;
  }

  /** The most specific served zone containing lower-case absolute `name`, or undefined. O(labels). */
  zoneFor(name: string): string | undefined {
    for (let n = name; ; n = parent(n)) {
      if (this.zones.has(n)) return n;
      if (n === '' || n === '.') return undefined;
    }
  }

  serial(zone: string): number {
    return this.state(zone).serial;
  }

  soa(zone: string): Soa {
    return this.state(zone).soa;
  }

  /**
   * Replaces a zone's content, serial and SOA fields (`soa`: an imported file's; null or absent:
   * the settings'). Records outside `zone` (or an unserved `zone`) are skipped and reported in the
   * returned warnings; nothing is thrown for bad data.
   */
  load(zone: string, serial: number, records: readonly StoredRecord[], soa: ZoneSoa | null = null): string[] {
    const state = this.zones.get(zone);
    if (!state) return [`zone ${zone} is not served; ${records.length} record sets ignored`];
    const warnings: string[] = [];
    const user = new Map<string, Node>();
    for (const r of records) {
      const name = absolute(r.name);
      if (!this.belongs(state, name)) {
        warnings.push(`${r.name} ${r.type}: outside zone ${zone}; skipped`);
        continue;
      }
      let node = user.get(name);
      if (!node) user.set(name, (node = []));
      putIn(node, rrsetOf(r));
    }
    state.user = user;
    this.resetRefs(state);
    state.fields = soa;
    this.setSerial(state, serial);
    this.gen++;
    return warnings;
  }

  /**
   * Applies one committed change: removals first, then upserts (each replaces the RRset for
   * its name+type). Cost is O(labels) per RRset, independent of zone size. Like load(), it
   * reports what it skipped instead of throwing (it runs inside the store's change listener).
   *
   * A change of more than STAGED_APPLY_RRSETS RRsets (a zone import) is not applied at once: it
   * is built in slices of SLICE_MS on copies of the zone's maps and swapped in whole, so queries
   * in between are answered from the zone as it was, never from half of the change. Changes that
   * come meanwhile wait for it, in order. `settled()` says when all of that is done; warnings of
   * a staged or queued change go to `onWarnings`.
   */
  apply(change: RecordChange, onWarnings: (warnings: string[]) => void = () => undefined): string[] {
    if (this.staging) {
      this.queued.push(change);
      this.queuedWarnings.push(onWarnings);
      return [];
    }
    if (change.upserted.length + change.removed.length <= STAGED_APPLY_RRSETS) {
      const warnings = this.applyNow(change);
      onWarnings(warnings);
      return warnings;
    }
    this.staging = this.staged(change, onWarnings);
    return [];
  }

  /** Resolves once every change handed to apply() is served (at once when none is being staged). */
  settled(): Promise<void> {
    return this.staging ?? Promise.resolve();
  }

  private applyNow(change: RecordChange): string[] {
    const state = this.zones.get(change.zone);
    if (!state) return [`zone ${change.zone} is not served; change ignored`];
    const warnings: string[] = [];
    for (const _ of this.edit(state, state.user, state.refs, change, null, warnings));
    if (change.soa) state.fields = change.soa;
    this.setSerial(state, change.serial);
    this.gen++;
    return warnings;
  }

  private async staged(first: RecordChange, firstWarnings: (warnings: string[]) => void): Promise<void> {
    let change: RecordChange | undefined = first;
    let report = firstWarnings;
    while (change) {
      try {
        await this.stagedOne(change, report);
      } catch (e) {
        // Not swapped in: the zone is served as it was before this change.
        report([`change of zone ${change.zone} (serial ${change.serial}) not applied: ${(e as Error).message}`]);
      }
      change = this.queued.shift();
      report = this.queuedWarnings.shift() ?? (() => undefined);
    }
    this.staging = null;
  }

  /** One change of a staged apply: a small one (queued behind a big one) at once, a big one in slices on copies, then swapped in. */
  private async stagedOne(change: RecordChange, report: (warnings: string[]) => void): Promise<void> {
    const state = this.zones.get(change.zone);
    if (!state || change.upserted.length + change.removed.length <= STAGED_APPLY_RRSETS) return report(this.applyNow(change));
    const warnings: string[] = [];
    const user = new Map<string, Node>();
    const refs = new Map<string, number>();
    function* steps(index: ZoneIndex, s: ZoneState): Generator<void> {
      for (const [name, node] of s.user) {
        user.set(name, node);
        yield;
      }
      for (const [name, count] of s.refs) {
        refs.set(name, count);
        yield;
      }
      // Nodes are shared with the zone being served until copied on their first edit.
      yield* index.edit(s, user, refs, change, new Set(), warnings);
    }
    let t0 = performance.now();
    let n = 0;
    for (const _ of steps(this, state))
      if (++n % SLICE_CHECK === 0 && performance.now() - t0 > SLICE_MS) {
        await nextTurn();
        t0 = performance.now();
      }
    state.user = user;
    state.refs = refs;
    if (change.soa) state.fields = change.soa;
    this.setSerial(state, change.serial);
    this.gen++;
    report(warnings);
  }

  /**
   * Removals, then upserts of `change` on `user` and `refs` (the zone's own maps, or copies).
   * With `copied`, a node is copied before its first edit (it may still be served); yields after each RRset.
   */
  private *edit(state: ZoneState, user: Map<string, Node>, refs: Map<string, number>, change: RecordChange, copied: Set<Node> | null, warnings: string[]): Generator<void> {
    const own = (name: string, node: Node): Node => {
      if (!copied || copied.has(node)) return node;
      const copy = [...node];
      copied.add(copy);
      user.set(name, copy);
      return copy;
    };
    for (const { name: raw, type } of change.removed) {
      const name = absolute(raw);
      const found = user.get(name);
      if (found && setIn(found, type)) {
        const node = own(name, found);
        dropFrom(node, type);
        if (node.length === 0) {
          user.delete(name);
          if (!this.synthesised(state, name)) addRefs(refs, state.settings.name, name, -1);
        }
      }
      yield;
    }
    for (const r of change.upserted) {
      const name = absolute(r.name);
      if (!this.belongs(state, name)) {
        warnings.push(`${r.name} ${r.type}: outside zone ${change.zone}; skipped`);
        continue;
      }
      const found = user.get(name);
      let node: Node;
      if (found) node = own(name, found);
      else {
        user.set(name, (node = []));
        copied?.add(node);
        if (!this.synthesised(state, name)) addRefs(refs, state.settings.name, name, 1);
      }
      putIn(node, rrsetOf(r));
      yield;
    }
  }

  /** True when lower-case absolute `name` exists in `zone` (holds data or has descendants that do). */
  exists(zone: string, name: string): boolean {
    return (this.state(zone).refs.get(name) ?? 0) > 0;
  }

  /** The RRset served for name+type, user data first, then SOA/NS/glue synthesis. */
  rrset(zone: string, name: string, type: string): RRset | undefined {
    const state = this.state(zone);
    const node = state.user.get(name);
    const own = setIn(node, type);
    if (own) return own;
    if (name === state.settings.name) {
      if (type === 'SOA') return state.soaSet;
      if (type === 'NS') return state.nsSet;
    }
    const glue = state.glue.get(name);
    if (glue && glue.type === type && !node?.some((s) => s.type === 'A' || s.type === 'AAAA' || s.type === 'CNAME')) return glue;
    return undefined;
  }

  /** The user's own RRset (no synthesis); used to find delegations. */
  userRRset(zone: string, name: string, type: RecordType): RRset | undefined {
    return setIn(this.state(zone).user.get(name), type);
  }

  /** Every RRset served at `name` (synthesised ones included), in type order. */
  rrsets(zone: string, name: string): RRset[] {
    const out: RRset[] = [];
    for (const type of ['SOA', 'NS', 'A', 'AAAA'] as const) {
      const set = this.rrset(zone, name, type);
      if (set) out.push(set);
    }
    for (const set of this.state(zone).user.get(name) ?? []) if (!out.includes(set)) out.push(set);
    return out.sort((a, b) => a.code - b.code);
  }

  /**
   * Everything the zone serves, for AXFR and zone-file export. Order: SOA; apex NS (ours unless
   * the user stored one); synthesised glue still in effect; then user RRsets in canonical name
   * order (RFC 4034 §6.1), by type code. SOA values are `[Soa]`; other values are as stored.
   */
  servedRecords(zone: string): ServedRecord[] {
    return this.servedRRsets(zone).map(({ name, set }) => ({ name, type: set.type, ttl: set.ttl, values: [...set.values] }));
  }

  /** The records served that nobody stored: apex NS (unless the user stored one) and glue still in effect; no SOA. O(nameservers). */
  synthesisedRecords(zone: string): ServedRecord[] {
    return this.synthesisedRRsets(zone).map(({ name, set }) => ({ name, type: set.type, ttl: set.ttl, values: [...set.values] }));
  }

  /** servedRecords() with RDATA, for zone transfers. */
  servedRRsets(zone: string): { name: string; set: RRset }[] {
    const state = this.state(zone);
    const out: { name: string; set: RRset }[] = [{ name: state.settings.name, set: state.soaSet }, ...this.synthesisedRRsets(zone)];
    for (const name of sortCanonical([...state.user.keys()])) {
      const sets = [...(state.user.get(name) ?? [])].sort((a, b) => a.code - b.code);
      for (const set of sets) out.push({ name, set });
    }
    return out;
  }

  private synthesisedRRsets(zone: string): { name: string; set: RRset }[] {
    const state = this.state(zone);
    const apex = state.settings.name;
    const out: { name: string; set: RRset }[] = [];
    if (!setIn(state.user.get(apex), 'NS')) out.push({ name: apex, set: state.nsSet });
    for (const name of sortCanonical([...state.glue.keys()])) {
      const glue = state.glue.get(name);
      if (glue && this.rrset(zone, name, glue.type) === glue) out.push({ name, set: glue });
    }
    return out;
  }

  private state(zone: string): ZoneState {
    const state = this.zones.get(zone);
    if (!state) throw new Error(`zone ${zone} is not served`);
    return state;
  }

  /** In `state`'s zone and not inside a more specific served zone (whose data would never be read). */
  private belongs(state: ZoneState, name: string): boolean {
    return inZone(name, state.settings.name) && this.zoneFor(name) === state.settings.name;
  }

  private synthesised(state: ZoneState, name: string): boolean {
    return name === state.settings.name || state.glue.has(name);
  }

  private setSerial(state: ZoneState, serial: number): void {
    state.serial = serial;
    state.soa = soaFor(state.settings, serial, state.fields);
    state.soaSet = soaRRset(state.soa);
  }

  private resetRefs(state: ZoneState): void {
    state.refs = new Map();
    const holders = new Set<string>([state.settings.name, ...state.glue.keys(), ...state.user.keys()]);
    for (const name of holders) addRefs(state.refs, state.settings.name, name, 1);
  }
}
