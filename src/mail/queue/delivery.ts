// The relay's delivery side: the queue's writes (enqueue with group commit, claims, attempts) and
// the deliveries. In production it runs on two threads of its own (queue-threads.ts); a relay
// given an in-memory MX resolver (tests) runs it in-process on one connection (localDelivery): a
// function cannot cross to another thread. Contract: enqueueSoon() settles only after the commit
// (the 250 follows it); stop() stops claiming and waits for deliveries in flight while enqueues
// still commit; close() ends it.
import type { LogLevel } from '../../log/index.js';
import type { Db } from '../../store/db.js';
import { Deliverer } from '../delivery/deliver.js';
import { MessageStore, type NewMessage } from './messages.js';
import type { MxResolver } from '../delivery/mx.js';
import type { Pace } from './pace.js';
import { logQueued, type QueuedLine } from './queued.js';
import { Queue, type QueueDeps, type QueueOptions, type QueueStore } from './queue.js';
import { systemResolver } from '../resolver.js';
import { MailStore } from '../store.js';

export interface DeliverySetup {
  dataDir: string;
  hostname: string;
  queue: QueueOptions;
  /** DNS servers for `mx` providers; none: the system's. */
  mxDnsServers?: readonly string[];
  /** This node's own addresses (node_ip, listen_ip): providers without allow_private never connect there. */
  ownAddresses?: readonly string[];
  /** The main thread's (logLevel()): the thread logs at the same level. */
  logLevel: LogLevel;
}

export interface Delivery {
  /** Who holds this relay's leases (Queue.owner). */
  readonly owner: string;
  /**
   * Commits `m` (grouped with the others of the moment), then resolves with its message ids and
   * wakes the queue. `queued`: the fields of the `queued` log line, written once it is committed
   * (by the thread that committed it, not the SMTP thread).
   */
  enqueueSoon(m: NewMessage, nowMs: number, queued?: QueuedLine): Promise<string[]>;
  /** Claims nothing more; resolves once deliveries in flight finished (or drainMs passed). Enqueues still commit. */
  stop(): Promise<void>;
  /** After stop(), once nothing enqueues any more. */
  close(): Promise<void>;
}

/** The Queue and its Deliverer on `messages`, started (in this thread, or on the delivery thread with `messages` sending its writes to the writer). */
export function startQueue(db: Db, messages: QueueStore, s: DeliverySetup, extra: { mxResolver?: MxResolver; pace?: Pace; onAttempt?: QueueDeps['onAttempt'] } = {}): { queue: Queue; stop(): Promise<void> } {
  const deliverer = new Deliverer(s.hostname, { resolver: extra.mxResolver ?? systemResolver(s.mxDnsServers), ...(s.ownAddresses ? { ownAddresses: s.ownAddresses } : {}) });
  const queue = new Queue({ messages, store: new MailStore(db), deliverer, ...(extra.pace ? { pace: extra.pace } : {}), ...(extra.onAttempt ? { onAttempt: extra.onAttempt } : {}) }, s.queue);
  queue.start();
  return {
    queue,
    async stop() {
      await queue.stop();
      deliverer.close();
    },
  };
}

/** The delivery side on `db`, in this thread; started. `onAttempt`: each recorded attempt (the relay's metrics). */
export function localDelivery(db: Db, s: DeliverySetup, mxResolver: MxResolver, onAttempt?: QueueDeps['onAttempt']): Delivery {
  const messages = new MessageStore(db);
  const started = startQueue(db, messages, s, { mxResolver, ...(onAttempt ? { onAttempt } : {}) });
  const { queue } = started;
  const stop = () => started.stop();
  return {
    owner: queue.owner,
    async enqueueSoon(m, nowMs, queued) {
      const ids = await messages.enqueueSoon(m, nowMs);
      if (queued) logQueued(queued, ids);
      queue.wake();
      return ids;
    },
    stop,
    close: async () => undefined,
  };
}
