// Which view a client is in, by its source address (split horizon: src/model/view.ts). Replaced
// whole when the views change; views never overlap (the store refuses it), so the first match is
// the only one.
import type { BlockList } from 'node:net';
import { cidrList, inCidrList } from '../model/cidr.js';

export interface ViewNetworks {
  name: string;
  cidrs: readonly string[];
}

export class ViewTable {
  private views: { name: string; list: BlockList }[] = [];
  private gen = 0;

  /** Throws on a network that does not parse (the store only holds ones that do). */
  replace(views: readonly ViewNetworks[]): void {
    this.views = views.map((v) => ({ name: v.name, list: cidrList(v.cidrs) }));
    this.gen++;
  }

  /** Increases on every replace(): response caches keyed by view start afresh. */
  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.views.length;
  }

  /** The view of a client at `address` (as the socket reports it; IPv4-mapped IPv6 matches IPv4 networks), or null. */
  viewOf(address: string): string | null {
    for (const v of this.views) if (inCidrList(v.list, address)) return v.name;
    return null;
  }
}
