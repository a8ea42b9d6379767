// Upstream names inside our zones resolve through our own records (CNAMEs followed in-zone).
import { lookup } from '../dns/lookup.js';
import type { ZoneIndex } from '../dns/zone.js';
import type { Resolver } from './desired.js';

export function zoneResolver(index: ZoneIndex): Resolver {
  return (host) => {
    const name = host.endsWith('.') ? host : `${host}.`;
    if (!index.zoneFor(name)) return undefined;
    const out: string[] = [];
    for (const type of ['A', 'AAAA'] as const)
      for (const a of lookup(index, name, type).answer) if (a.type === type && typeof a.data === 'string') out.push(a.data);
    return out;
  };
}
