// Answers Caddy's questions about plain proxied names (src/proxy README, "Dynamic routes"): for a
// name the proxy serves through DNS, `_px._tcp.<name>` SRV lists its backends, one target each,
// and each target `u<i>._px._tcp.<name>` has the backend's address. Only this node's own
// addresses are answered (Caddy asks from one of them); everyone else gets what the zone holds
// there, which is nothing, so backend addresses never leave the node. Never cached by the server:
// the table changes without the zone index's generation moving.
import { RESERVED_PROXY_LABEL } from '../model/name.js';
import { answers, simpleRRset, srvRRset } from './rrset.js';
import type { Rr } from './wire.js';

/** The reserved labels every name below lives under; the API refuses record names holding `_px`. */
export const PLAIN_SERVICE = RESERVED_PROXY_LABEL;
export const PLAIN_PROTO = '_tcp';
/** Seconds: Caddy re-asks every refresh anyway; a resolver in between must not hold an old backend. */
export const PLAIN_TTL = 1;

/** One backend of a plain name: an IP literal (v4 or v6, no brackets) and a port. */
export interface PlainBackend {
  ip: string;
  port: number;
}

const MARK = `.${PLAIN_SERVICE}.${PLAIN_PROTO}.`;

/** Whether a lower-case absolute name is under the reserved labels (`…_px._tcp.<host>.`). */
export function isReservedName(lname: string): boolean {
  return lname.startsWith(`${PLAIN_SERVICE}.${PLAIN_PROTO}.`) || lname.includes(MARK);
}

/** `host:port` / `[v6]:port` → a backend. */
export function backendOf(dial: string): PlainBackend {
  const at = dial.lastIndexOf(':');
  return { ip: dial.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(dial.slice(at + 1)) };
}

/** The SRV owner Caddy asks for `host` (lower-case, no trailing dot). */
export const srvName = (host: string): string => `${PLAIN_SERVICE}.${PLAIN_PROTO}.${host}.`;
const targetName = (host: string, i: number): string => `u${i}.${srvName(host)}`;

export class PlainUpstreams {
  /** host (lower-case, no trailing dot) → its backends, in the order given. */
  private byHost = new Map<string, readonly PlainBackend[]>();

  /** Replaces the whole table (the proxy pipeline passes every plain name after each change). */
  replace(table: ReadonlyMap<string, readonly PlainBackend[]>): void {
    this.byHost = new Map(table);
  }

  /** Changes some names: `removed` hosts first, then `set` ones (the pipeline passes what changed since its last run). */
  patch(set: ReadonlyMap<string, readonly PlainBackend[]>, removed: readonly string[]): void {
    for (const host of removed) this.byHost.delete(host);
    for (const [host, backends] of set) this.byHost.set(host, backends);
  }

  get size(): number {
    return this.byHost.size;
  }

  has(host: string): boolean {
    return this.byHost.has(host.toLowerCase().replace(/\.$/, ''));
  }

  /**
   * The answer section for a query under the reserved labels, or null when the name is not one
   * of ours (the caller then answers from the zone). `qname` is the name as asked (owner echoed).
   */
  answer(lname: string, qname: string, qtype: string): Rr[] | null {
    if (lname.startsWith(`${PLAIN_SERVICE}.${PLAIN_PROTO}.`)) {
      const backends = this.byHost.get(lname.slice(PLAIN_SERVICE.length + PLAIN_PROTO.length + 2, -1));
      if (!backends) return null;
      if (qtype !== 'SRV' && qtype !== 'ANY') return [];
      const host = lname.slice(PLAIN_SERVICE.length + PLAIN_PROTO.length + 2, -1);
      return answers(qname, srvRRset(PLAIN_TTL, backends.map((b, i) => ({ priority: 10, weight: 10, port: b.port, target: targetName(host, i).slice(0, -1) }))));
    }
    const m = /^u(\d{1,3})\._px\._tcp\.(.+)\.$/.exec(lname);
    if (!m) return null;
    const backend = this.byHost.get(m[2]!)?.[Number(m[1])];
    if (!backend) return null;
    const type = backend.ip.includes(':') ? 'AAAA' : 'A';
    if (qtype !== type && qtype !== 'ANY') return [];
    return answers(qname, simpleRRset(type, PLAIN_TTL, [backend.ip]));
  }
}
