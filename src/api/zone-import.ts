// Zone import (POST /api/v1/zones/{zone}/import) on a thread of its own, so the main thread goes
// on answering DNS: a 150,000-line file took 12 s of the main thread (parse and validation ~3.3 s,
// the write ~2.5 s, the rest the dry-run plan and the DNS index), and DNS stopped answering.
//
//   main                                   thread (zone-import-worker.ts)
//   spawn with the job ───────────────────▶ parse, validate, place the names (no lock held)
//                      ◀─────────────────── ready            (or invalid: the line errors)
//   records.lock(): the store's turn
//   go ───────────────────────────────────▶ one IMMEDIATE transaction on its own connection:
//                                            read the zone, put (merge/replace), or a dry run
//                      ◀─────────────────── done: committed, N parts (or failed: nothing written)
//   next ─────────────────────────────────▶ (one part of the change per next, N times)
//                      ◀─────────────────── part
//   release(change): listeners (DNS index, proxy) in commit order; the index swaps a big change in whole
//
// All or nothing as before: one transaction. While it runs, this process's other writes wait for
// the turn (they would otherwise block the main thread on SQLite's lock).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AppError, type ErrorCode, type FieldIssue } from '../errors.js';
import { throughputHeap } from '../heap.js';
import { logger } from '../log/index.js';
import type { RecordChange, RecordType, StoredRecord } from '../model/record.js';
import type { TokenScope } from '../model/token.js';
import type { ZoneSoa } from '../model/zone.js';
import type { RecordStore } from '../store/records.js';

export interface ImportJob {
  /** The SQLite file (RecordStore.file). */
  file: string;
  /** The served zone, absolute. */
  zone: string;
  /** Every served zone (the thread's RecordStore wants them). */
  zones: readonly string[];
  text: string;
  mode: 'merge' | 'replace';
  dryRun: boolean;
  /** JSON [name, type, values] of the record sets the server synthesises (apex NS, glue): they stay synthesised. */
  synthesised: string[];
  /**
   * A token below admin: the import must not make a proxy upstream reach this host or a metadata
   * service (reach.ts), checked before and after the write inside the thread's transaction.
   */
  guard: { scope: TokenScope; ownAddresses: string[] } | null;
}

export interface ImportResult {
  applied: number;
  created: number;
  removed: number;
  serial: number;
  /** Lines accepted with a change (duplicate records folded, RFC 2181 §5), as `{path: "line N", message}`. */
  warnings?: FieldIssue[];
}

export type FromImport =
  | { t: 'ready' }
  /** Committed (or simulated): `parts` parts of the change follow, one per 'next'. */
  | { t: 'done'; changed: boolean; serial: number; result: ImportResult | null; dry: { dnsJson: string; proxied: StoredRecord[] } | null; parts: number; soa?: ZoneSoa }
  | { t: 'part'; upserted: StoredRecord[]; removed: { name: string; type: RecordType }[] }
  | { t: 'failed'; code: ErrorCode; message: string; fields: FieldIssue[] };

export type ToImport = { t: 'go' } | { t: 'next' };

/** Zone text above this (~45,000 lines) is imported with speed-first GC (src/heap.ts); below, size-first stays. */
export const BULK_IMPORT_CHARS = 1 << 20;

/** Record sets per part of the change sent back (each ~5 ms to copy on the main thread). */
export const IMPORT_CHUNK = 2000;

const log = logger('api.import');

/** The thread running zone-import-worker beside this file (from the sources under tsx, the thread registers tsx first: Node 20 does not hand loaders to threads). */
function startThread(job: ImportJob): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./zone-import-worker.js', import.meta.url), { workerData: job });
  const entry = new URL('./zone-import-worker.ts', import.meta.url).href;
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  const api = pathToFileURL(join(dirname(pkg), (JSON.parse(readFileSync(pkg, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!.import.default)).href;
  const code = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(code, { eval: true, workerData: job });
}

export type ImportOutcome = { kind: 'applied'; result: ImportResult } | { kind: 'dry'; dnsJson: string; proxied: StoredRecord[] };

/**
 * Runs `job` on a thread. Resolves once the change is committed and the listeners of `records`
 * are done with it (the DNS index serves it), or with the dry run's plan. Rejects with an
 * AppError (invalid_zone_file, conflict, …) when nothing was written.
 */
export async function importOnThread(records: RecordStore, job: Omit<ImportJob, 'file'>): Promise<ImportOutcome> {
  // A big file: both threads allocate a zone's worth of objects, and size-first GC would double the
  // import's time and stop DNS on this thread with a full GC at each step of heap growth (src/heap.ts).
  // Smaller ones keep size-first: the heap they grow stays small afterwards.
  const heap = job.text.length > BULK_IMPORT_CHARS ? throughputHeap() : () => undefined;
  try {
    return await runThread(records, job);
  } finally {
    heap();
  }
}

function runThread(records: RecordStore, job: Omit<ImportJob, 'file'>): Promise<ImportOutcome> {
  const thread = startThread({ ...job, file: records.file });
  const upserted: StoredRecord[] = [];
  const removed: { name: string; type: RecordType }[] = [];
  let release: ((change: RecordChange | null) => Promise<void>) | null = null;
  let settled = false;
  let done: Extract<FromImport, { t: 'done' }> | null = null;
  let partsIn = 0;
  return new Promise<ImportOutcome>((resolve, reject) => {
    const finish = async (change: RecordChange | null, outcome: ImportOutcome | Error) => {
      if (settled) return;
      settled = true;
      try {
        await release?.(change);
      } finally {
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      }
    };
    thread.on('message', (msg: FromImport) => {
      switch (msg.t) {
        case 'ready':
          void records.lock().then((r) => {
            release = r;
            if (settled) return void r(null);
            thread.postMessage({ t: 'go' } satisfies ToImport);
          });
          return;
        case 'done':
          if (msg.dry) return void finish(null, { kind: 'dry', ...msg.dry });
          done = msg;
          break;
        case 'part':
          for (const r of msg.upserted) upserted.push(r);
          for (const r of msg.removed) removed.push(r);
          partsIn++;
          break;
        case 'failed':
          return void finish(null, new AppError(msg.code, msg.message, msg.fields));
      }
      if (!done) return;
      // One part at a time, each in a task of its own, so queries are answered in between.
      if (partsIn < done.parts) return void thread.postMessage({ t: 'next' } satisfies ToImport);
      const change: RecordChange | null = done.changed ? { zone: job.zone, serial: done.serial, upserted, removed, ...(done.soa ? { soa: done.soa } : {}) } : null;
      void finish(change, { kind: 'applied', result: done.result as ImportResult });
    });
    thread.once('error', (e: Error) => {
      log.error('zone import thread failed', { zone: job.zone, error: e.message });
      void finish(null, e);
    });
    thread.once('exit', (code) => {
      if (!settled) {
        log.error('zone import thread exited before it was done; if it had begun writing, restart to be sure DNS serves what is stored', { zone: job.zone, code, writing: release !== null });
        void finish(null, new Error(`zone import thread exited (${code})`));
      }
    });
  });
}
