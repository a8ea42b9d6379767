// Extra ports another process holds. Caddy 2.6.2 refuses a whole load when one listener cannot
// bind ("listen tcp <ip>:<port>: bind: address already in use"), and `caddy validate` binds
// nothing, so the reconciler cannot blame a route for it. PortGuard reads that error from the
// statuses the reconciler reports, marks the port blocked (render then leaves out the routes on
// it, status `error` with the reason, and serves the rest), and re-checks a blocked port by
// binding it itself every RECHECK_MS; once it is free the routes are tried again.
import net from 'node:net';
import { systemTimers, type Timers } from '../timers.js';
import type { AppliedStatus } from '../model/route.js';
import type { DesiredProxy } from './types.js';

/** How often a blocked port is tried again (a bind and close on listen_ip: cheap). */
export const RECHECK_MS = 10_000;
/** Caddy 2.6.2's (Go's) text for a listener that could not bind. */
const IN_USE = /listen tcp (\S+):(\d{1,5}): bind: address already in use/;

/** Whether `ip:port` can be bound now (closed again at once). */
export function portFree(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: ip, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export class PortGuard {
  private readonly blockedPorts = new Map<number, string>();
  private timer: unknown = null;
  private readonly timers: Timers;
  private stopped = false;

  constructor(
    private readonly o: {
      /** listen_ip: where the extra ports are bound. */
      ip: string;
      /** The ports whose routes are served (to try only those). */
      listenPorts: () => ReadonlySet<number>;
      /** Something changed: push again (reconciler.trigger). */
      onChange: () => void;
      timers?: Timers;
      recheckMs?: number;
      probe?: (ip: string, port: number) => Promise<boolean>;
    },
  ) {
    this.timers = o.timers ?? systemTimers;
  }

  get blocked(): ReadonlyMap<number, string> {
    return this.blockedPorts;
  }

  /** `d` with the blocked ports in its settings (unchanged when none). */
  apply(d: DesiredProxy): DesiredProxy {
    return this.blockedPorts.size ? { ...d, settings: { ...d.settings, blockedPorts: new Map(this.blockedPorts) } } : d;
  }

  /** The reconciler's statuses: a route in error because an extra port is in use blocks that port. */
  saw(statuses: ReadonlyMap<string, AppliedStatus>): void {
    const ours = this.o.listenPorts();
    let changed = false;
    for (const s of statuses.values()) {
      const m = s.error ? IN_USE.exec(s.error) : null;
      const port = m ? Number(m[2]) : NaN;
      if (!ours.has(port) || this.blockedPorts.has(port)) continue;
      this.blockedPorts.set(port, `port ${port} is in use by another process (Caddy: listen tcp ${m![1]}:${port}: address already in use); retried every ${Math.round((this.o.recheckMs ?? RECHECK_MS) / 1000)} s`);
      changed = true;
    }
    if (!changed) return;
    this.schedule();
    this.o.onChange();
  }

  private schedule(): void {
    if (this.timer !== null || this.stopped || this.blockedPorts.size === 0) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      void this.recheck();
    }, this.o.recheckMs ?? RECHECK_MS);
  }

  /** Tries each blocked port; a free one (or one no route wants any more) is unblocked. */
  async recheck(): Promise<void> {
    const probe = this.o.probe ?? portFree;
    const ours = this.o.listenPorts();
    let changed = false;
    for (const port of [...this.blockedPorts.keys()])
      if (!ours.has(port) || (await probe(this.o.ip, port))) {
        this.blockedPorts.delete(port);
        changed = true;
      }
    if (this.stopped) return;
    this.schedule();
    if (changed) this.o.onChange();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }
}
