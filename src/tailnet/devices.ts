// The tailnet's devices as tailscaled reports them, polled on an injected timer. Remembers the
// last sight of a device that left, so records and routes naming it keep its last address.
import { EventEmitter } from 'node:events';
import type { Logger } from '../log/index.js';
import type { Device, DeviceState } from '../model/device.js';
import { parseStatus } from './status.js';
import type { StatusSource } from './source.js';
import { systemTimers, type Timers } from '../timers.js';

/** Node's timers, unref'd: a pending poll must not keep the process alive. */
const realTimers: Timers = { setTimeout: (fn, ms) => setTimeout(fn, ms).unref(), clearTimeout: (h) => systemTimers.clearTimeout(h) };

/** A device as listed: present in the last status, or remembered from an earlier one (`present: false`). */
export interface DeviceView extends Device {
  present: boolean;
  state: DeviceState;
}

export interface DevicesOptions {
  /** Where the status comes from (LocalAPI or the CLI); null: no tailnet (every lookup is unknown). */
  source: StatusSource | null;
  /** Time between the end of one poll and the start of the next. */
  pollMs: number;
  timers?: Timers;
  log?: Logger;
}

/** What one poll changed: names whose addresses or presence changed (appeared, left, re-addressed). */
export interface DevicesChange {
  changed: string[];
}

const sameDevice = (a: Device, b: Device): boolean => a.id === b.id && a.ipv4.join() === b.ipv4.join() && a.ipv6.join() === b.ipv6.join();

/** Events: `change` (DevicesChange) after a poll that changed addresses or presence; `polled` after every poll ({ ok, error? }). */
export class Devices extends EventEmitter {
  private current = new Map<string, Device>();
  private readonly gone = new Map<string, Device>();
  private loaded = false;
  private timer: unknown = null;
  private inFlight: Promise<void> | null = null;
  private stopped = true;
  private readonly timers: Timers;
  /** The last poll's failure, or null; shown by GET /api/v1/devices. */
  lastError: string | null = null;
  polls = 0;

  constructor(private readonly o: DevicesOptions) {
    super();
    this.timers = o.timers ?? realTimers;
  }

  /** Whether a status has been read (until then every device is `unknown`). */
  get known(): boolean {
    return this.loaded;
  }

  get enabled(): boolean {
    return this.o.source !== null;
  }

  /** Polls now, then every pollMs after each poll ends. */
  start(): void {
    if (!this.o.source || !this.stopped) return;
    this.stopped = false;
    void this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight;
  }

  private async tick(): Promise<void> {
    this.timer = null;
    await this.poll();
    if (!this.stopped) this.timer = this.timers.setTimeout(() => void this.tick(), this.o.pollMs);
  }

  /** One poll now (a poll already running is joined). */
  poll(): Promise<void> {
    this.inFlight ??= this.pollOnce().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async pollOnce(): Promise<void> {
    if (!this.o.source) return;
    this.polls++;
    let devices: Device[];
    try {
      const parsed = parseStatus(await this.o.source());
      devices = parsed.devices;
      if (parsed.skipped.length) this.o.log?.warn('tailnet devices left out', { skipped: parsed.skipped.slice(0, 20) });
    } catch (e) {
      const error = (e as Error).message;
      // Never read (a node without tailscaled, the socket not mounted): info, once; a list that was readable and is not: warn.
      if (error !== this.lastError)
        if (this.loaded) this.o.log?.warn('cannot read the tailnet device list; records and routes naming devices keep their addresses', { error });
        else this.o.log?.info('no tailnet device list (device names cannot be used until it is readable)', { error });
      this.lastError = error;
      this.emit('polled', { ok: false, error });
      return;
    }
    if (this.lastError) this.o.log?.info('tailnet device list readable again');
    this.lastError = null;
    const next = new Map(devices.map((d) => [d.name, d]));
    const changed: string[] = [];
    for (const [name, d] of next) {
      const before = this.current.get(name);
      if (!before || !sameDevice(before, d)) changed.push(name);
      this.gone.delete(name);
    }
    for (const [name, d] of this.current)
      if (!next.has(name)) {
        this.gone.set(name, d);
        changed.push(name);
      }
    this.current = next;
    const first = !this.loaded;
    this.loaded = true;
    if (changed.length || first) this.emit('change', { changed: changed.sort() } satisfies DevicesChange);
    this.emit('polled', { ok: true });
  }

  private stateOf(d: Device, present: boolean): DeviceState {
    return !present ? 'missing' : d.online ? 'ok' : 'offline';
  }

  /** A device present in the last status. */
  present(name: string): Device | undefined {
    return this.current.get(name.toLowerCase());
  }

  /** A present device by Tailscale's stable node id (a renamed device keeps it). */
  byId(id: string): Device | undefined {
    if (!id) return undefined;
    for (const d of this.current.values()) if (d.id === id) return d;
    return undefined;
  }

  /** A device present or remembered, with its state. */
  get(name: string): DeviceView | undefined {
    const n = name.toLowerCase();
    const d = this.current.get(n);
    if (d) return { ...d, present: true, state: this.stateOf(d, true) };
    const g = this.gone.get(n);
    return g ? { ...g, present: false, state: 'missing' } : undefined;
  }

  /** The state a record bound to `name` shows. */
  state(name: string): DeviceState {
    if (!this.loaded) return 'unknown';
    return this.get(name)?.state ?? 'missing';
  }

  /** Every device, present ones and remembered ones, sorted by name. */
  list(): DeviceView[] {
    const out: DeviceView[] = [];
    for (const d of this.current.values()) out.push({ ...d, present: true, state: this.stateOf(d, true) });
    for (const d of this.gone.values()) out.push({ ...d, present: false, state: 'missing' });
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /**
   * Addresses of `name` for an upstream `device:<name>:<port>`: the device present under that
   * name; else, for a name that left, the same device (node id) under its new name, else its last
   * addresses; [] when never seen.
   */
  addresses(name: string): string[] {
    const n = name.toLowerCase();
    const gone = this.gone.get(n);
    const d = this.current.get(n) ?? (gone ? (this.byId(gone.id) ?? gone) : undefined);
    return d ? [...d.ipv4, ...d.ipv6] : [];
  }
}
