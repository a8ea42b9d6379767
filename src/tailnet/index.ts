// Tailnet devices: the device list (devices.ts), records bound to devices (binder.ts), and the
// resolver that turns `device:<name>` upstreams into addresses.
import { deviceOfHost } from '../model/device.js';
import type { Resolver } from '../proxy/desired.js';
import type { DeviceBindingStore } from '../store/devices.js';
import type { DeviceBinder } from './binder.js';
import type { Devices } from './devices.js';
import { cliSource, localApiSource, type StatusSource } from './source.js';

export { Devices, type DeviceView, type DevicesChange } from './devices.js';
export { DeviceBinder, type RecordDevice } from './binder.js';
export { parseStatus } from './status.js';
export { cliSource, localApiSource, LOCALAPI_HOST, STATUS_PATH, type StatusSource } from './source.js';

/** What the API uses of the tailnet. */
export interface TailnetDeps {
  registry: Devices;
  binder: DeviceBinder;
  bindings: DeviceBindingStore;
}

/** `device:<name>` hosts resolve to the device's addresses (present, else last seen; [] never seen); other hosts as `zone` does. */
export function deviceResolver(zone: Resolver, devices: Devices): Resolver {
  return (host) => {
    const device = deviceOfHost(host);
    return device === null ? zone(host) : devices.addresses(device);
  };
}

/** The status source the settings name: `tailscale_cli status --json`, else the LocalAPI socket. */
export function statusSource(c: { tailscale_socket: string; tailscale_cli?: string | undefined }): StatusSource {
  return c.tailscale_cli ? cliSource(c.tailscale_cli) : localApiSource(c.tailscale_socket);
}
