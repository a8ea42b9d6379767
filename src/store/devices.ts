// Record sets bound to a tailnet device (`target_device`): which device, and the record's
// updated_at as last written with the device's addresses. A record written since by anyone else
// (a PUT with values, a zone import) has another updated_at: its binding is over (bound()).
import { prepared, type Db } from './db.js';

export interface DeviceBinding {
  name: string;
  type: 'A' | 'AAAA';
  device: string;
  /** Tailscale's stable node id when the binding was made or last followed ('' when not known). */
  device_id: string;
  updated_at: string;
}

export class DeviceBindingStore {
  constructor(private readonly db: Db) {}

  set(b: DeviceBinding): void {
    this.db
      .prepare(
        `INSERT INTO device_bindings (name, type, device, device_id, updated_at) VALUES (@name, @type, @device, @device_id, @updated_at)
         ON CONFLICT (name, type) DO UPDATE SET device = excluded.device, device_id = excluded.device_id, updated_at = excluded.updated_at`,
      )
      .run(b);
  }

  /** Ends the bindings at `name` (of one type, or every type). */
  remove(name: string, type?: string): void {
    if (type === undefined) this.db.prepare('DELETE FROM device_bindings WHERE name = ?').run(name);
    else this.db.prepare('DELETE FROM device_bindings WHERE name = ? AND type = ?').run(name, type);
  }

  get(name: string, type: string): DeviceBinding | undefined {
    // Parsed once per connection: GET /list-records asks this for every A record it lists.
    return prepared(this.db, 'SELECT name, type, device, device_id, updated_at FROM device_bindings WHERE name = ? AND type = ?').get(name, type) as DeviceBinding | undefined;
  }

  list(): DeviceBinding[] {
    return prepared(this.db, 'SELECT name, type, device, device_id, updated_at FROM device_bindings ORDER BY name, type').all() as DeviceBinding[];
  }
}
