// Answers Caddy's questions about plain proxied names (src/proxy README, "Dynamic routes"). Every
// name lives under the reserved labels `_px._tcp.<host>` (the API refuses record names holding
// `_px`), with one leading label saying which of Caddy's dynamic routes asks:
//   `_px._tcp.<host>`        HTTP server, ordinary request
//   `_ws._px._tcp.<host>`    HTTP server, upgrade request (a websocket is being opened)
//   `_tls._px._tcp.<host>`   HTTPS server, ordinary request
//   `_tlsws._px._tcp.<host>` HTTPS server, upgrade request
// Each SRV lists backends, one target each (`u<i>.<that SRV name>`, holding the address). A
// `tls: off` name is served on HTTP only, a TLS name on HTTPS only; on HTTP a TLS name's SRV points
// at the redirect responder (ondemand.ts), so plain HTTP gets the same 308 an explicit TLS route
// gives. An upgrade question is reported (`onUpgrade`): the pipeline then knows the name may have
// open websockets, which only a Caddy load can close. Only this node's own addresses are answered
// (Caddy asks from one of them); everyone else gets what the zone holds there, which is nothing,
// so backend addresses never leave the node. Never cached by the server: the table changes
// without the zone index's generation moving.
import { RESERVED_PROXY_LABEL } from '../model/name.js';
import type { TlsMode } from '../model/route.js';
import { answers, simpleRRset, srvRRset } from './rrset.js';
import type { Rr } from './wire.js';

/** The reserved labels every name below lives under; the API refuses record names holding `_px`. */
export const PLAIN_SERVICE = RESERVED_PROXY_LABEL;
export const PLAIN_PROTO = '_tcp';
/** Seconds: Caddy re-asks every refresh anyway; a resolver in between must not hold an old backend. */
export const PLAIN_TTL = 1;

/** The leading label of each question kind (none: the HTTP server's ordinary request). */
export const PLAIN_KINDS = { http: '', httpUpgrade: '_ws', https: '_tls', httpsUpgrade: '_tlsws' } as const;
export type PlainKind = keyof typeof PLAIN_KINDS;
const KIND_OF_LABEL = new Map<string, PlainKind>(Object.entries(PLAIN_KINDS).map(([k, v]) => [v, k as PlainKind]));

/** One backend of a plain name: an IP literal (v4 or v6, no brackets) and a port. */
export interface PlainBackend {
  ip: string;
  port: number;
}

/** A plain name's entry: its backends and how it is served (`off`: HTTP; `internal`/`acme`: HTTPS, on-demand certificate). */
export interface PlainEntry {
  backends: readonly PlainBackend[];
  tls: TlsMode;
}

const MARK = `.${PLAIN_SERVICE}.${PLAIN_PROTO}.`;
const BASE = `${PLAIN_SERVICE}.${PLAIN_PROTO}.`;

/** Whether a lower-case absolute name is under the reserved labels (`…_px._tcp.<host>.`). */
export function isReservedName(lname: string): boolean {
  return lname.startsWith(BASE) || lname.includes(MARK);
}

/** `host:port` / `[v6]:port` → a backend. */
export function backendOf(dial: string): PlainBackend {
  const at = dial.lastIndexOf(':');
  return { ip: dial.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(dial.slice(at + 1)) };
}

/** The SRV owner Caddy asks for `host` (lower-case, no trailing dot) from the route of `kind`. */
export const srvName = (host: string, kind: PlainKind = 'http'): string => `${PLAIN_KINDS[kind] ? `${PLAIN_KINDS[kind]}.` : ''}${BASE}${host}.`;

/** The name a dynamic route asks for (no trailing dot), `host` being Caddy's placeholder: render puts it in the config. */
export const srvQuestion = (kind: PlainKind, host = '{http.request.host}'): string => srvName(host, kind).slice(0, -1);

/** `[<kind label>.]_px._tcp.<host>.` → its kind and host, or null. */
function parseSrv(lname: string): { kind: PlainKind; host: string } | null {
  const at = lname.indexOf(BASE);
  if (at < 0 || (at > 0 && lname[at - 1] !== '.')) return null;
  const kind = KIND_OF_LABEL.get(at === 0 ? '' : lname.slice(0, at - 1));
  return kind ? { kind, host: lname.slice(at + BASE.length, -1) } : null;
}

export class PlainUpstreams {
  /** host (lower-case, no trailing dot) → its entry. */
  private byHost = new Map<string, PlainEntry>();
  /** Where an HTTP request for a TLS name is sent for its 308 (ondemand.ts); none: TLS names are not served on HTTP. */
  private redirect: PlainBackend | null = null;
  /** Called with the host when Caddy asks an upgrade question for a name we serve (a websocket is being opened). */
  onUpgrade: ((host: string) => void) | null = null;

  /** Replaces the whole table (the proxy pipeline passes every plain name after each change). */
  replace(table: ReadonlyMap<string, PlainEntry>): void {
    this.byHost = new Map(table);
  }

  /** The redirect responder's address (ondemand.ts), or null. */
  redirectTo(target: PlainBackend | null): void {
    this.redirect = target;
  }

  /** Changes some names: `removed` hosts first, then `set` ones (the pipeline passes what changed since its last run). */
  patch(set: ReadonlyMap<string, PlainEntry>, removed: readonly string[]): void {
    for (const host of removed) this.byHost.delete(host);
    for (const [host, backends] of set) this.byHost.set(host, backends);
  }

  /** Every published name and its entry. */
  entries(): IterableIterator<[string, PlainEntry]> {
    return this.byHost.entries();
  }

  get size(): number {
    return this.byHost.size;
  }

  has(host: string): boolean {
    return this.byHost.has(host.toLowerCase().replace(/\.$/, ''));
  }

  /** The entry of a plain name (lower-case, no trailing dot), or undefined. */
  get(host: string): PlainEntry | undefined {
    return this.byHost.get(host);
  }

  /** The backends a question of `kind` gets for `host`, or undefined when that route does not serve it. */
  private backends(host: string, kind: PlainKind): readonly PlainBackend[] | undefined {
    const entry = this.byHost.get(host);
    if (!entry) return undefined;
    const secure = kind === 'https' || kind === 'httpsUpgrade';
    if (secure) return entry.tls === 'off' ? undefined : entry.backends;
    if (entry.tls === 'off') return entry.backends;
    return this.redirect ? [this.redirect] : undefined;
  }

  /**
   * The answer section for a query under the reserved labels, or null when the name is not one
   * of ours (the caller then answers from the zone). `qname` is the name as asked (owner echoed).
   */
  answer(lname: string, qname: string, qtype: string): Rr[] | null {
    const srv = parseSrv(lname);
    if (srv) {
      const backends = this.backends(srv.host, srv.kind);
      if (!backends) return null;
      if (qtype !== 'SRV' && qtype !== 'ANY') return [];
      if (srv.kind === 'httpUpgrade' || srv.kind === 'httpsUpgrade') this.onUpgrade?.(srv.host);
      return answers(qname, srvRRset(PLAIN_TTL, backends.map((b, i) => ({ priority: 10, weight: 10, port: b.port, target: `u${i}.${lname.slice(0, -1)}` }))));
    }
    const m = /^u(\d{1,3})\.(.+)$/.exec(lname);
    const owner = m ? parseSrv(m[2]!) : null;
    if (!owner) return null;
    const backend = this.backends(owner.host, owner.kind)?.[Number(m![1])];
    if (!backend) return null;
    const type = backend.ip.includes(':') ? 'AAAA' : 'A';
    if (qtype !== type && qtype !== 'ANY') return [];
    return answers(qname, simpleRRset(type, PLAIN_TTL, [backend.ip]));
  }
}
