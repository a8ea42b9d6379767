// The zone import's thread (zone-import.ts has the protocol): parses and validates the text,
// then — once the main thread hands it the store's turn — writes it in one transaction on a
// connection of its own and sends the committed change back in parts.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { dirname } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { dnsPlan } from './mutate.js';
import { parseZoneFile } from '../dns/zonefile.js';
import { AppError } from '../errors.js';
import type { Proxy, RecordChange, RecordType, RecordWrite } from '../model/record.js';
import { recordWrite } from '../model/write.js';
import type { ZoneSoa } from '../model/zone.js';
import type { RecordViews } from '../model/view.js';
import { openDb, type Db } from '../store/db.js';
import { RecordStore } from '../store/records.js';
import { RouteStore } from '../store/routes.js';
import { forbidden } from './auth.js';
import { reachChecker } from './reach.js';
import { simulate } from '../store/simulate.js';
import { IMPORT_CHUNK, type FromImport, type ImportJob, type ToImport } from './zone-import.js';

const job = workerData as ImportJob;
const port = parentPort!;

/** How much lower this thread's CPU priority is than the process's (nice steps): the main thread answers DNS. */
export const IMPORT_NICE = 10;

/**
 * Lowers this thread's CPU priority (Linux: setpriority on a thread id applies to that thread
 * only), so on a busy machine the kernel runs the main thread, which answers DNS, before the
 * import. Elsewhere, or when refused, the import runs at the process's priority.
 */
function yieldCpu(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + IMPORT_NICE));
  } catch {
    // not Linux, or not allowed: no harm
  }
}
yieldCpu();
const post = (msg: FromImport) => port.postMessage(msg);

/** Parsed, checked and placed in the zone; throws invalid_zone_file (every line's error) or a field error. */
let warnings: { path: string; message: string }[] = [];
/** The file's SOA, when it has one: its fields are kept, its serial is the zone's lowest from now on. */
let soa: { zone: string; fields: ZoneSoa; serial: number } | undefined;

function parse(): RecordWrite[] {
  const parsed = parseZoneFile(job.text, job.zone);
  warnings = parsed.warnings.map((w) => ({ path: `line ${w.line}`, message: w.message }));
  if (parsed.errors.length)
    throw new AppError('invalid_zone_file', `${parsed.errors.length} line(s) have errors; nothing was applied`, parsed.errors.map((e) => ({ path: `line ${e.line}`, message: e.message })));
  if (parsed.soa) {
    const { serial, ...fields } = parsed.soa;
    soa = { zone: job.zone, fields: { ...fields, mname: fields.mname.toLowerCase(), rname: fields.rname.toLowerCase() }, serial };
  }
  const synthesised = new Set(job.synthesised);
  // Records the server synthesises (apex NS, glue) come back in our own exports: leave them synthesised.
  return parsed.records.map((r, i) => recordWrite(r, [job.zone], `records.${i}.`)).filter((w) => !synthesised.has(JSON.stringify([w.name, w.data.type, w.data.values])));
}

/** The zone's stored sets: the proxy settings and service name each keeps (a zone file carries neither). */
function current(db: Db): Map<string, { name: string; type: RecordType; proxy: Proxy | null; service_name: string | null; views: RecordViews | null }> {
  const rows = db.prepare('SELECT name, type, proxy, service_name, views FROM records WHERE zone = ?').all(job.zone) as { name: string; type: RecordType; proxy: string | null; service_name: string | null; views: string | null }[];
  return new Map(rows.map((r) => [`${r.name} ${r.type}`, { ...r, proxy: r.proxy === null ? null : (JSON.parse(r.proxy) as Proxy), views: r.views === null ? null : (JSON.parse(r.views) as RecordViews) }]));
}

/**
 * Below admin (job.guard): throws 403 when the import makes a proxy upstream reach this host or a
 * metadata service that did not before — the check mutate() runs for every other write. Names
 * resolve through the stored records (this transaction's view) and the synthesised glue.
 */
function guarded<T>(db: Db, store: RecordStore, run: () => T): T {
  const guard = job.guard;
  if (!guard) return run();
  const glue = new Map<string, string[]>();
  for (const json of job.synthesised) {
    const [name, type, values] = JSON.parse(json) as [string, string, unknown[]];
    if (type !== 'A' && type !== 'AAAA') continue;
    const key = name.replace(/\.$/, '').toLowerCase();
    glue.set(key, [...(glue.get(key) ?? []), ...values.filter((v): v is string => typeof v === 'string')]);
  }
  const reach = reachChecker({ zones: job.zones, ownAddresses: guard.ownAddresses, routes: new RouteStore(db), records: store, resolve: (host) => glue.get(host.replace(/\.$/, '')) });
  const before = reach();
  const out = run();
  for (const [key, why] of reach()) if (!before.has(key)) throw forbidden('admin', guard.scope, why);
  return out;
}

/** Inside the transaction: the writes with their kept settings, put (and for replace the others removed). */
function apply(db: Db, store: RecordStore, parsed: RecordWrite[]) {
  return guarded(db, store, () => applyUnguarded(db, store, parsed));
}

function applyUnguarded(db: Db, store: RecordStore, parsed: RecordWrite[]) {
  const had = current(db);
  const writes = parsed.map((w) => {
    const old = had.get(`${w.name} ${w.data.type}`);
    // A zone file carries none of these: a set it replaces keeps them (per-view values too).
    return old ? { ...w, proxy: old.proxy, service_name: old.service_name, ...(old.views ? { views: old.views } : {}) } : w;
  });
  const replace = job.mode === 'replace';
  const results = store.put(writes, { ...(replace ? { replaceZone: job.zone } : {}), ...(soa ? { soa } : {}) });
  const kept = new Set(results.map((r) => `${r.record.name} ${r.record.type}`));
  const removed = replace ? [...had].filter(([k]) => !kept.has(k)).map(([, r]) => r) : [];
  return { results, removed, dns: dnsPlan(results, removed) };
}

/**
 * The committed change in parts of IMPORT_CHUNK sets, one per 'next' from the main thread: sent
 * all at once, they would be taken in one go there (Node drains a port's queue in one task) and
 * stop DNS for as long as copying all of them takes (1.6 s for 150,000 sets).
 */
function parts(change: RecordChange): FromImport[] {
  const out: FromImport[] = [];
  for (let i = 0; i < change.upserted.length; i += IMPORT_CHUNK) out.push({ t: 'part', upserted: change.upserted.slice(i, i + IMPORT_CHUNK), removed: [] });
  for (let i = 0; i < change.removed.length; i += IMPORT_CHUNK) out.push({ t: 'part', upserted: [], removed: change.removed.slice(i, i + IMPORT_CHUNK) });
  return out;
}

/** Writes (or for a dry run, simulates) the import; returns the change's parts still to send. */
function run(parsed: RecordWrite[]): FromImport[] {
  const db = openDb(dirname(job.file));
  try {
    const store = new RecordStore(db, job.zones);
    if (job.dryRun) {
      const out = simulate(db, [store], () => {
        const { dns } = apply(db, store, parsed);
        return { dnsJson: JSON.stringify(dns), proxied: store.list({ proxied: true }) };
      });
      post({ t: 'done', changed: false, serial: store.serial(job.zone), result: null, dry: out, parts: 0 });
      return [];
    }
    let change: RecordChange | null = null;
    store.onChange((c) => void (change = c));
    // One transaction (put()'s own becomes a savepoint in it), the zone's current sets read inside.
    const result = db
      .transaction(() => {
        const { results, removed, dns } = apply(db, store, parsed);
        return { applied: results.length, created: dns.added.length, removed: removed.length, serial: store.serial(job.zone), ...(warnings.length ? { warnings } : {}) };
      })
      .immediate();
    const rest = change ? parts(change) : [];
    const fields = (change as RecordChange | null)?.soa;
    post({ t: 'done', changed: change !== null, serial: result.serial, result, dry: null, parts: rest.length, ...(fields ? { soa: fields } : {}) });
    return rest;
  } finally {
    db.close();
  }
}

function fail(e: unknown): void {
  if (e instanceof AppError) post({ t: 'failed', code: e.code, message: e.message, fields: e.fields });
  else post({ t: 'failed', code: 'internal', message: `zone import failed: ${(e as Error).message}`, fields: [] });
}

try {
  const parsed = parse();
  let rest: FromImport[] = [];
  port.on('message', (msg: ToImport) => {
    if (msg.t === 'go') {
      try {
        rest = run(parsed);
      } catch (e) {
        fail(e);
      }
    } else {
      const next = rest.shift();
      if (next) post(next);
    }
    if (rest.length === 0) port.close();
  });
  post({ t: 'ready' });
} catch (e) {
  fail(e);
  port.close();
}
