// `dnsproxy devices`: the tailnet devices the controller sees (GET /api/v1/devices).
import type { Command } from 'commander';
import { call } from './client.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';

interface DeviceRow {
  name: string;
  ipv4: string[];
  ipv6: string[];
  online: boolean;
  last_seen: string | null;
  present: boolean;
  state: string;
  self: boolean;
}

export function deviceRows(devices: DeviceRow[]): string {
  return table(
    ['NAME', 'ADDRESSES', 'ONLINE', 'LAST SEEN', 'STATE'],
    devices.map((d) => [`${d.name}${d.self ? ' (this node)' : ''}`, [...d.ipv4, ...d.ipv6].join(', ') || '-', d.online ? 'yes' : 'no', d.online ? 'now' : (d.last_seen ?? 'never'), d.state]),
  );
}

export function deviceCommands(program: Command, g: Globals): void {
  program
    .command('devices')
    .description('list the tailnet devices (name, addresses, online, last seen); a record or upstream may name one (add-record NAME --device DEVICE, --proxy device:DEVICE:PORT)')
    .action(async () => {
      const res = (await call(g.target(), 'GET', '/api/v1/devices')) as { devices: DeviceRow[]; source: { known: boolean; last_error: string | null } };
      if (g.json()) return printJson(res);
      console.log(deviceRows(res.devices));
      if (!res.source.known || res.source.last_error) console.error(`dnsproxy: the device list ${res.source.known ? 'may be stale' : 'has not been read yet'}${res.source.last_error ? `: ${res.source.last_error}` : ''}`);
    });
}
