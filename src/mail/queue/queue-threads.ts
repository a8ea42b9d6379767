// The relay's delivery side on two threads of its own (queue-worker.ts), so the SMTP sessions on
// the main thread never wait for a commit's fsync or a delivery's work, and a commit never waits
// behind a delivery. The main thread's handle: ThreadedDelivery (delivery.ts Delivery).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { logger } from '../../log/index.js';
import type { Delivery, DeliverySetup } from './delivery.js';
import type { QueuedLine } from './queued.js';
import type { NewMessage } from './messages.js';
import { recordAttempt, type AttemptMetric } from '../relay-metrics.js';

/** Which half of the delivery side a queue thread runs (queue-worker.ts). */
export type Role = 'writer' | 'delivery';
/** Delivery thread → writer: a write of the queue (queue.ts QueueStore), answered with WriteReply. */
export type WriteCall = { id: number; method: 'claimSoon' | 'settleSoon' | 'renew'; args: unknown[] };
/** Writer → delivery thread: a WriteCall's answer, or `committed` accepted messages (the queue's wake). */
export type WriteReply = { id: number; value?: unknown; error?: string } | { committed: number };

/** Main thread → queue thread. */
export type ToWorker = { t: 'enqueue'; seq: number; batch: { m: NewMessage; nowMs: number; queued?: QueuedLine }[] } | { t: 'stop' } | { t: 'close' };
/** An enqueue's outcome: its message ids, or why it was not committed. */
export type Queued = { ids: string[] } | { error: string };
/** Queue thread → main thread. */
export type FromWorker =
  | { t: 'ready'; owner: string }
  | { t: 'queued'; seq: number; results: Queued[] }
  | { t: 'stopped' }
  | { t: 'closed' }
  | { t: 'failed'; error: string }
  | ({ t: 'attempt' } & AttemptMetric);

type Waiter = { resolve: (ids: string[]) => void; reject: (e: Error) => void };

/** A thread running queue-worker beside this file as `role`. */
function workerFor(role: Role, s: DeliverySetup, writes: MessagePort): Worker {
  const options = { workerData: { ...s, role, writes }, transferList: [writes] };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./queue-worker.js', import.meta.url), options);
  // From the sources under tsx (the tests): Node 20 does not hand the loader on to worker threads,
  // so the thread registers tsx before it loads the .ts entry.
  const entry = new URL('./queue-worker.ts', import.meta.url).href;
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  const api = pathToFileURL(join(dirname(pkg), (JSON.parse(readFileSync(pkg, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!.import.default)).href;
  const code = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(code, { eval: true, ...options });
}

/** One started queue thread. */
class QueueWorker {
  private readonly replies = new Map<'stopped' | 'closed', () => void>();
  private gone = false;

  private constructor(
    private readonly worker: Worker,
    role: Role,
    readonly owner: string,
    onMessage: (msg: FromWorker) => void,
    onGone: (e: Error) => void,
  ) {
    worker.on('message', (msg: FromWorker) => {
      if (msg.t === 'stopped' || msg.t === 'closed') this.replies.get(msg.t)?.();
      else onMessage(msg);
    });
    const gone = (e: Error) => {
      if (this.gone) return;
      this.gone = true;
      for (const done of this.replies.values()) done();
      onGone(e);
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`the mail ${role} thread exited (code ${code})`)));
  }

  /** Resolves once the thread runs; `onGone`: it died later. */
  static start(role: Role, s: DeliverySetup, writes: MessagePort, onMessage: (msg: FromWorker) => void, onGone: (e: Error) => void): Promise<QueueWorker> {
    const worker = workerFor(role, s, writes);
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the mail ${role} thread exited (code ${code}) before starting`)));
      worker.once('message', (msg: FromWorker) => {
        worker.removeAllListeners('error').removeAllListeners('exit');
        if (msg.t !== 'ready') {
          void worker.terminate();
          return reject(new Error(msg.t === 'failed' ? msg.error : `unexpected first message ${msg.t}`));
        }
        resolve(new QueueWorker(worker, role, msg.owner, onMessage, onGone));
      });
    });
  }

  post(msg: ToWorker): void {
    if (!this.gone) this.worker.postMessage(msg);
  }

  /** Posts `msg` and waits for `reply` (or the thread's end). */
  ask(msg: ToWorker & { t: 'stop' | 'close' }, reply: 'stopped' | 'closed'): Promise<void> {
    if (this.gone) return Promise.resolve();
    return new Promise((resolve) => {
      this.replies.set(reply, resolve);
      this.worker.postMessage(msg);
    });
  }

  terminate(): Promise<number> {
    this.gone = true;
    return this.worker.terminate();
  }
}

/**
 * The delivery side on two threads of its own (queue-worker.ts). The writer makes every write of
 * the queue, grouped per turn (MessageStore.soon()): accepted messages, and the delivery thread's
 * claims and attempts, which it asks for over a MessageChannel. So a 250 never waits behind a
 * delivery's work, and one connection writes: two writing connections made each wait on the
 * other's lock (SQLite's busy handler sleeps 1, 2, 5 … ms; p99 250 ms). The delivery thread
 * reads bodies and settings on its own connection and delivers.
 */
export class ThreadedDelivery implements Delivery {
  private readonly log = logger('mail.queue');
  private seq = 0;
  /** Batches posted and not yet committed, by seq. */
  private readonly posted = new Map<number, Waiter[]>();
  /** Enqueues of this event-loop turn, posted as one batch. */
  private batch: { m: NewMessage; nowMs: number; queued?: QueuedLine; waiter: Waiter }[] = [];
  private dead?: Error;
  private closing = false;
  private writer!: QueueWorker;
  private delivery!: QueueWorker;

  private constructor(private readonly onFatal: (e: Error) => void) {}

  get owner(): string {
    return this.delivery.owner;
  }

  /** Starts both threads; resolves once they run. `onFatal`: one died (the relay can no longer queue or deliver). */
  static async start(s: DeliverySetup, onFatal: (e: Error) => void): Promise<ThreadedDelivery> {
    const d = new ThreadedDelivery(onFatal);
    const fail = (e: Error) => d.fail(e);
    const { port1, port2 } = new MessageChannel(); // the delivery thread's writes, to the writer
    const started = await Promise.allSettled([QueueWorker.start('writer', s, port1, (msg) => d.receive(msg), fail), QueueWorker.start('delivery', s, port2, (msg) => {
      if (msg.t === 'attempt') recordAttempt(msg);
    }, fail)]);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      d.closing = true;
      await Promise.all(started.flatMap((r) => (r.status === 'fulfilled' ? [r.value.terminate()] : [])));
      throw failed.reason;
    }
    [d.writer, d.delivery] = started.map((r) => (r as PromiseFulfilledResult<QueueWorker>).value) as [QueueWorker, QueueWorker];
    return d;
  }

  enqueueSoon(m: NewMessage, nowMs: number, queued?: QueuedLine): Promise<string[]> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.batch.push({ m, nowMs, ...(queued ? { queued } : {}), waiter: { resolve, reject } });
      if (this.batch.length === 1) setImmediate(() => this.post());
    });
  }

  private post(): void {
    const batch = this.batch;
    this.batch = [];
    if (this.dead) return batch.forEach((b) => b.waiter.reject(this.dead!));
    const seq = ++this.seq;
    this.posted.set(
      seq,
      batch.map((b) => b.waiter),
    );
    this.writer.post({ t: 'enqueue', seq, batch: batch.map(({ waiter: _, ...entry }) => entry) });
  }

  private receive(msg: FromWorker): void {
    if (msg.t !== 'queued') return;
    const waiters = this.posted.get(msg.seq) ?? [];
    this.posted.delete(msg.seq);
    waiters.forEach((w, i) => {
      const r = msg.results[i] ?? { error: 'queueing failed' };
      if ('ids' in r) w.resolve(r.ids);
      else w.reject(new Error(r.error));
    });
  }

  /** A thread is gone: every pending and later enqueue fails (451), and the relay is told. */
  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const waiters of this.posted.values()) for (const w of waiters) w.reject(e);
    this.posted.clear();
    if (this.closing) return;
    this.log.error('a mail queue thread failed', { error: e.message });
    this.onFatal(e);
  }

  stop(): Promise<void> {
    return this.delivery.ask({ t: 'stop' }, 'stopped');
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([this.writer.ask({ t: 'close' }, 'closed'), this.delivery.ask({ t: 'close' }, 'closed')]);
    await Promise.all([this.writer.terminate(), this.delivery.terminate()]);
  }
}
