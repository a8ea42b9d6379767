// Keeps record sets bound to a tailnet device (`target_device`) answering the device's current
// addresses. After every device change (a poll that saw one), each binding is checked:
// - its record was written since by someone else (updated_at differs) or is gone: the binding ends;
// - the device is present under its name: the record gets its addresses (A: IPv4, AAAA: IPv6);
// - the name is gone but the device (its stable id) is present under a new name: the binding
//   follows it (renamed in the admin console), and the record gets its addresses;
// - otherwise the device left: the record keeps its last addresses and shows `missing`.
// A change is an ordinary record write (one transaction: record + binding), so the serial moves,
// the DNS index and the proxy pipeline see it as any other write.
import type { Logger } from '../log/index.js';
import { deviceAddresses, type DeviceState } from '../model/device.js';
import type { StoredRecord } from '../model/record.js';
import type { DeviceBinding, DeviceBindingStore } from '../store/devices.js';
import type { RecordStore } from '../store/records.js';
import type { Devices } from './devices.js';

/** What a bound record shows of its device in the record listings. */
export interface RecordDevice {
  name: string;
  state: DeviceState;
}

export interface BinderDeps {
  devices: Devices;
  bindings: DeviceBindingStore;
  records: RecordStore;
  /** The API's unit of work (transact over the stores): listeners hear of the write after it commits. */
  transaction: <T>(fn: () => T) => T;
  log?: Logger;
}

const sameValues = (a: readonly unknown[], b: readonly string[]): boolean => a.length === b.length && [...a].map(String).sort().join() === [...b].sort().join();

export class DeviceBinder {
  /** Record sets rewritten so far (tests and logs). */
  rewrites = 0;

  constructor(private readonly d: BinderDeps) {}

  /** Whether `b` still governs its record: the record exists and was last written by the binding. */
  private live(b: DeviceBinding, rec: StoredRecord | undefined): rec is StoredRecord {
    return rec !== undefined && rec.updated_at === b.updated_at && (rec.type === 'A' || rec.type === 'AAAA');
  }

  /** Brings every binding up to date with the device list; returns the record sets rewritten. */
  sync(): string[] {
    const { devices, bindings, records } = this.d;
    if (!devices.known) return [];
    const out: string[] = [];
    for (const b of bindings.list()) {
      try {
        const done = this.d.transaction(() => {
          const rec = records.get(b.name, b.type);
          if (!this.live(b, rec)) {
            bindings.remove(b.name, b.type);
            return null;
          }
          // The name first (it is what the record asked for, even when another device took it), then the id.
          const device = devices.present(b.device) ?? devices.byId(b.device_id);
          if (!device) return null; // left: keep the last addresses (shown as missing)
          const want = deviceAddresses(device, b.type);
          const follow = device.name !== b.device || device.id !== b.device_id;
          if (want.length === 0 || sameValues(rec.values, want)) {
            if (follow) bindings.set({ ...b, device: device.name, device_id: device.id });
            return null;
          }
          const put = records.putOne({
            name: rec.name,
            zone: rec.zone,
            data: { type: b.type, values: want },
            ttl: rec.ttl,
            proxy: rec.proxy,
            service_name: rec.service_name,
          });
          bindings.set({ name: b.name, type: b.type, device: device.name, device_id: device.id, updated_at: put.record.updated_at });
          return `${b.name} ${b.type}`;
        });
        if (done) out.push(done);
      } catch (e) {
        this.d.log?.warn('cannot update a record bound to a tailnet device', { name: b.name, type: b.type, device: b.device, error: (e as Error).message });
      }
    }
    this.rewrites += out.length;
    if (out.length) this.d.log?.info('records follow their tailnet devices', { records: out.slice(0, 20), count: out.length });
    return out;
  }

  /** The device a listed record is bound to, with its state; undefined when not bound. */
  deviceOf(rec: Pick<StoredRecord, 'name' | 'type' | 'updated_at'>): RecordDevice | undefined {
    if (rec.type !== 'A' && rec.type !== 'AAAA') return undefined;
    const b = this.d.bindings.get(rec.name, rec.type);
    if (!b || b.updated_at !== rec.updated_at) return undefined;
    return { name: b.device, state: this.d.devices.state(b.device) };
  }
}
