// Entry of the relay's queue threads (queue-threads.ts ThreadedDelivery), each on its own SQLite
// connection. `writer`: the queue's writes, grouped per turn (MessageStore.soon()): the main
// thread's enqueue batches (one reply per batch, after its commit) and the delivery thread's
// claims and attempts (WriteCall over `writes`), and its lease renewals (their own transaction). `delivery`: the Queue, its
// writes sent to the writer, bodies read here; woken by the writer after each commit of accepted mail, and
// paced (pace.ts) while a burst of submissions keeps the machine busy.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { oneWritePerTurn, setLogLevel } from '../../log/index.js';
import { openDb } from '../../store/db.js';
import type { DeliverySetup } from './delivery.js';
import { logQueued } from './queued.js';
import type { FromWorker, Queued, Role, ToWorker, WriteCall, WriteReply } from './queue-threads.js';
import { MessageStore, type Settled } from './messages.js';
import { Pace } from './pace.js';
import type { QueueStore } from './queue.js';
import type { AttemptMetric } from '../relay-metrics.js';

const port = parentPort!;
const setup = workerData as DeliverySetup & { role: Role; writes: MessagePort };
const send = (msg: FromWorker) => port.postMessage(msg);
/** A Buffer crosses threads as a plain Uint8Array; SQLite binds Buffers as blobs. */
const buffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const withBuffer = <T extends Settled>(p: T): T => (p.dsn ? { ...p, dsn: buffer(p.dsn) } : p);

/** The writer's side of WriteCall. */
function write(messages: MessageStore, call: WriteCall): Promise<unknown> {
  if (call.method === 'claimSoon') return messages.claimSoon(...(call.args as Parameters<MessageStore['claimSoon']>));
  if (call.method === 'settleSoon') {
    const [id, owner, self, splits, nowMs] = call.args as Parameters<MessageStore['settleSoon']>;
    return messages.settleSoon(id, owner, withBuffer(self), splits.map(withBuffer), nowMs);
  }
  return Promise.resolve(messages.renew(...(call.args as Parameters<MessageStore['renew']>)));
}

/** The delivery thread's QueueStore: writes asked of the writer, reads on its own connection; `onCommitted`: the writer committed that many accepted messages. */
function writerStore(writes: MessagePort, local: MessageStore, onCommitted: (n: number) => void): QueueStore {
  let seq = 0;
  const waiting = new Map<number, { resolve: (v: never) => void; reject: (e: Error) => void }>();
  writes.on('message', (r: WriteReply) => {
    if ('committed' in r) return onCommitted(r.committed);
    const w = waiting.get(r.id);
    waiting.delete(r.id);
    if (r.error === undefined) w?.resolve(r.value as never);
    else w?.reject(new Error(r.error));
  });
  const call = <T,>(method: WriteCall['method'], args: unknown[]) =>
    new Promise<T>((resolve, reject) => {
      waiting.set(++seq, { resolve, reject });
      writes.postMessage({ id: seq, method, args } satisfies WriteCall);
    });
  return {
    claimSoon: (...args) => call('claimSoon', args),
    settleSoon: (...args) => call('settleSoon', args),
    renew: (...args) => call('renew', args),
    body: (id) => local.body(id),
    releaseLeases: (gone, nowMs) => local.releaseLeases(gone, nowMs),
  };
}

try {
  setLogLevel(setup.logLevel);
  oneWritePerTurn(); // this thread's lines reach stdout through the main thread: one message per turn, not per line
  const db = openDb(setup.dataDir);
  const messages = new MessageStore(db);
  let stop: () => Promise<void> = async () => undefined;
  if (setup.role === 'writer') {
    setup.writes.on('message', (call: WriteCall) =>
      void write(messages, call).then(
        (value) => setup.writes.postMessage({ id: call.id, value } satisfies WriteReply),
        (e: unknown) => setup.writes.postMessage({ id: call.id, error: (e as Error).message } satisfies WriteReply),
      ),
    );
  } else {
    // Loaded here only: the writer never needs the transports (nodemailer, mailauth, …), nor their memory.
    const { startQueue } = await import('./delivery.js');
    const pace = new Pace();
    const wake = (committed: number) => {
      pace.accepted(Date.now(), committed);
      started.queue.wake();
    };
    const onAttempt = (a: AttemptMetric) => send({ t: 'attempt', ...a }); // counted on the main thread, which serves the metrics
    const started = startQueue(db, writerStore(setup.writes, messages, wake), setup, { pace, onAttempt });
    stop = () => started.stop();
    send({ t: 'ready', owner: started.queue.owner });
  }
  port.on('message', (msg: ToWorker) => {
    if (msg.t === 'enqueue') {
      // Each message of the batch has its own outcome: one whose write failed is undone alone (its savepoint).
      const all = msg.batch.map(({ m, nowMs }) => messages.enqueueSoon({ ...m, raw: buffer(m.raw) }, nowMs));
      void Promise.allSettled(all).then((settled) => {
        const results = settled.map((r): Queued => (r.status === 'fulfilled' ? { ids: r.value } : { error: (r.reason as Error).message }));
        send({ t: 'queued', seq: msg.seq, results });
        const committed = results.filter((r) => 'ids' in r).length;
        if (committed) setup.writes.postMessage({ committed } satisfies WriteReply); // the delivery thread's wake
        msg.batch.forEach(({ queued }, i) => {
          const r = results[i]!;
          if (queued && 'ids' in r) logQueued(queued, r.ids);
        });
      });
    } else if (msg.t === 'stop') void stop().then(() => send({ t: 'stopped' }));
    else {
      setup.writes.close();
      db.close();
      send({ t: 'closed' });
      port.close();
    }
  });
  if (setup.role === 'writer') send({ t: 'ready', owner: '' });
} catch (e) {
  send({ t: 'failed', error: (e as Error).message });
}
