// Mail-aware domains: the records our DNS publishes for a domain (domain.ts says which), written
// through the RecordStore, and the DKIM key rotation that keeps them right. Every value published
// is listed in mail_domain_records (migration 12), so removing the domain takes away exactly what it
// published; a user's own values at the same names (another MX, a verification TXT) are kept.
// Callers run each method inside the API's transaction (mutate()), so a dry run rolls it all back.
import { AppError } from '../../errors.js';
import type { MailDomain, PublishedSelector } from '../../model/mail.js';
import { DEFAULT_TTL, type RecordData, type StoredRecord } from '../../model/record.js';
import { prepared, type Db } from '../../store/db.js';
import type { RecordStore } from '../../store/records.js';
import { mailDomainSettings, mergeSet, mtaStsPolicy, providersFor, spfValue, valueKey, wantedSets, type DomainFacts, type MailDomainSettings, type WantedSet } from './domain.js';
import { dkimTxt } from '../credentials/keys.js';
import type { MailStore } from '../store.js';

export type { MailDomain, PublishedSelector };

/** What a publish did to the DNS: the sets written (created or replaced) and removed. */
export interface PublishResult {
  put: { record: StoredRecord; created: boolean }[];
  removed: { name: string; type: string }[];
  /** Providers whose sending addresses SPF cannot name (give spf_include). */
  warnings: string[];
}

interface DomainRow {
  domain: string;
  zone: string;
  settings: string;
  created_at: string;
  updated_at: string;
}

const row = (r: DomainRow): MailDomain => ({ domain: r.domain, zone: r.zone, settings: mailDomainSettings.parse(JSON.parse(r.settings)), created_at: r.created_at, updated_at: r.updated_at });
const abs = (d: string) => (d.endsWith('.') ? d : `${d}.`);
const bare = (d: string) => d.replace(/\.$/, '');

export interface DomainsOptions {
  /** The relay's host name: the MX target and the MTA-STS policy's mx. */
  hostname: string;
  nodeIp: string;
  now?: () => number;
}

export class MailDomains {
  /** The clock rotations and timestamps use (injected in tests). */
  readonly now: () => number;
  constructor(
    private readonly db: Db,
    private readonly records: RecordStore,
    private readonly mail: MailStore,
    private readonly opts: DomainsOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  list(): MailDomain[] {
    return (prepared(this.db, 'SELECT * FROM mail_published_domains ORDER BY domain').all() as DomainRow[]).map(row);
  }

  get(domain: string): MailDomain | undefined {
    const r = prepared(this.db, 'SELECT * FROM mail_published_domains WHERE domain = ?').get(bare(domain).toLowerCase()) as DomainRow | undefined;
    return r && row(r);
  }

  /**
   * Every value the mail domains published, as `name type` → the values' canonical keys
   * (domain.ts valueKey): what a state export leaves out of the record sets, as the domains make it.
   */
  ownedValues(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const o of prepared(this.db, 'SELECT name, type, value FROM mail_domain_records').all() as { name: string; type: string; value: string }[]) {
      const k = `${o.name} ${o.type}`;
      if (!out.has(k)) out.set(k, new Set());
      out.get(k)!.add(o.value);
    }
    return out;
  }

  /** The selectors published beside the signing one (rotation). */
  selectors(domain: string): PublishedSelector[] {
    return prepared(this.db, 'SELECT selector, at_ms, state FROM mail_dkim_published WHERE domain = ? ORDER BY at_ms, selector').all(bare(domain)) as PublishedSelector[];
  }

  /**
   * Makes `domain` (bare, in `zone`) mail-aware with `settings` (created or replaced) and publishes
   * its records. It needs a DKIM key (the caller makes one first when there is none).
   */
  add(domain: string, zone: string, settings: MailDomainSettings): { domain: MailDomain; created: boolean } & PublishResult {
    const d = bare(domain).toLowerCase();
    if (!this.mail.dkimKey(d)) throw new AppError('conflict', `${d} has no DKIM key; make one first`);
    const at = new Date(this.now()).toISOString();
    const created = !this.get(d);
    prepared(
      this.db,
      `INSERT INTO mail_published_domains (domain, zone, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (domain) DO UPDATE SET zone = excluded.zone, settings = excluded.settings, updated_at = excluded.updated_at`,
    ).run(d, zone, JSON.stringify(settings), at, at);
    return { domain: this.get(d)!, created, ...this.publish(d) };
  }

  /** Takes away every value the domain published and forgets it (404 when it is not mail-aware). */
  remove(domain: string): PublishResult {
    const d = bare(domain).toLowerCase();
    if (!this.get(d)) throw new AppError('not_found', `${d} is not a mail domain`);
    const out = this.apply(d, []);
    prepared(this.db, 'DELETE FROM mail_published_domains WHERE domain = ?').run(d);
    prepared(this.db, 'DELETE FROM mail_dkim_published WHERE domain = ?').run(d);
    return out;
  }

  /** What the domain wants published now (its settings, the rules' providers, the DKIM keys). */
  facts(d: string): DomainFacts {
    const md = this.get(d);
    if (!md) throw new AppError('not_found', `${d} is not a mail domain`);
    const signing = this.mail.dkimKey(d);
    const dkim = [
      ...(signing ? [{ selector: signing.selector, txt: dkimTxt(signing.private_key) }] : []),
      ...(prepared(this.db, 'SELECT selector, txt FROM mail_dkim_published WHERE domain = ? ORDER BY selector').all(d) as { selector: string; txt: string }[]),
    ];
    return {
      domain: abs(d),
      hostname: this.opts.hostname,
      nodeIp: this.opts.nodeIp,
      settings: md.settings,
      providers: providersFor(d, this.mail.rules(), (n) => this.mail.provider(n)),
      dkim: dkim.filter((k, i) => dkim.findIndex((o) => o.selector === k.selector) === i),
    };
  }

  /** Brings the published records of `d` in line with facts(d). */
  publish(d: string): PublishResult {
    const f = this.facts(d);
    const out = this.apply(d, wantedSets(f));
    out.warnings.push(...spfValue(f).unknown.map((p) => `provider ${p}: SPF cannot name the addresses it sends from; add its SPF domain with spf_include`));
    return out;
  }

  /** Republishes every mail domain (after a change to rules, providers or DKIM keys); returns what changed. */
  publishAll(): PublishResult {
    const all: PublishResult = { put: [], removed: [], warnings: [] };
    for (const md of this.list()) {
      const r = this.publish(md.domain);
      all.put.push(...r.put);
      all.removed.push(...r.removed);
    }
    return all;
  }

  /** The MTA-STS policy file of a mail domain, null when it is none or its mode is none. */
  policy(domain: string): string | null {
    const md = this.get(domain);
    if (!md || md.settings.mta_sts_mode === 'none') return null;
    return mtaStsPolicy({ hostname: this.opts.hostname, settings: md.settings });
  }

  /**
   * Rotation, step one: `privateKey` under `selector` is published now and signs from `signFromMs`
   * (the DNS has had time to carry it); the signing key then stays published for `graceMs` more.
   */
  startRotation(d: string, selector: string, privateKey: string, signFromMs: number, graceMs: number): PublishResult {
    const current = this.mail.dkimKey(d);
    if (!this.get(d)) throw new AppError('not_found', `${d} is not a mail domain`);
    if (current?.selector === selector || this.selectors(d).some((s) => s.selector === selector))
      throw new AppError('conflict', `selector ${selector} of ${d} is published already; choose another`);
    if (this.selectors(d).some((s) => s.state === 'pending')) throw new AppError('conflict', `a rotation of ${d} is in progress; it finishes first`);
    prepared(this.db, 'INSERT INTO mail_dkim_published (domain, selector, txt, private_key, at_ms, grace_ms, state) VALUES (?, ?, ?, ?, ?, ?, ?)').run(d, selector, dkimTxt(privateKey), privateKey, signFromMs, graceMs, 'pending');
    return this.publish(d);
  }

  /**
   * Rotation, the later steps (the controller runs this every minute): a pending key whose time
   * came becomes the signing key and the old one is kept published for the rotation's grace; a
   * retired key past its grace is unpublished. Returns the domains it changed.
   */
  settle(): string[] {
    const now = this.now();
    const due = prepared(this.db, 'SELECT domain, selector, txt, private_key, at_ms, grace_ms, state FROM mail_dkim_published WHERE at_ms <= ? ORDER BY domain').all(now) as {
      domain: string;
      grace_ms: number;
      selector: string;
      txt: string;
      private_key: string | null;
      state: 'pending' | 'retired';
    }[];
    const changed = new Set<string>();
    for (const k of due) {
      prepared(this.db, 'DELETE FROM mail_dkim_published WHERE domain = ? AND selector = ?').run(k.domain, k.selector);
      if (k.state === 'pending' && k.private_key) {
        const old = this.mail.dkimKey(k.domain);
        this.mail.putDkimKey({ domain: k.domain, selector: k.selector, private_key: k.private_key });
        if (old && old.selector !== k.selector)
          prepared(this.db, 'INSERT OR REPLACE INTO mail_dkim_published (domain, selector, txt, private_key, at_ms, state) VALUES (?, ?, ?, NULL, ?, ?)').run(k.domain, old.selector, dkimTxt(old.private_key), now + k.grace_ms, 'retired');
      }
      changed.add(k.domain);
    }
    for (const d of changed) if (this.get(d)) this.publish(d);
    return [...changed];
  }

  /**
   * Writes the sets `wanted` and takes away what `d` published before and no longer wants, keeping
   * every value it does not own. 409 (nothing written: the caller's transaction rolls back) when a
   * user value would make a second policy of the same kind, or a set cannot be written.
   */
  private apply(d: string, wanted: readonly WantedSet[]): PublishResult {
    const owned = prepared(this.db, 'SELECT name, type, value FROM mail_domain_records WHERE domain = ?').all(d) as { name: string; type: string; value: string }[];
    const setKey = (s: { name: string; type: string }) => `${s.name} ${s.type}`;
    const ownedBySet = new Map<string, Set<string>>();
    for (const o of owned) {
      const k = setKey(o);
      if (!ownedBySet.has(k)) ownedBySet.set(k, new Set());
      ownedBySet.get(k)!.add(o.value);
    }
    const wantedBySet = new Map(wanted.map((w) => [setKey(w), w]));
    const keys = [...new Set([...wantedBySet.keys(), ...ownedBySet.keys()])];
    const out: PublishResult = { put: [], removed: [], warnings: [] };
    const zone = this.get(d)?.zone;
    if (!zone) throw new AppError('not_found', `${d} is not a mail domain`);
    const del = prepared(this.db, 'DELETE FROM mail_domain_records WHERE domain = ? AND name = ? AND type = ?');
    const ins = prepared(this.db, 'INSERT INTO mail_domain_records (domain, name, type, value) VALUES (?, ?, ?, ?)');
    for (const k of keys) {
      const [name, type] = k.split(' ') as [string, WantedSet['type']];
      const want = wantedBySet.get(k)?.values ?? [];
      const mine = ownedBySet.get(k) ?? new Set<string>();
      const existing = this.records.get(name, type);
      const { values, conflict } = mergeSet(existing?.values ?? [], mine, want);
      if (conflict !== null) throw new AppError('conflict', `${name} ${type} holds a value of its own (${JSON.stringify(conflict)}) where ${bare(d)} would publish ${JSON.stringify(want[0])}; remove it or merge it by hand`);
      const same = existing && valueKey(existing.values) === valueKey(values);
      if (values.length === 0) {
        if (existing) {
          this.records.remove(name, type);
          out.removed.push({ name, type });
        }
      } else if (!same) {
        const data = { type, values } as RecordData;
        out.put.push(this.records.putOne({ name, zone: existing?.zone ?? zone, data, ttl: existing?.ttl ?? DEFAULT_TTL, proxy: existing?.proxy ?? null, service_name: existing?.service_name ?? null }));
      }
      del.run(d, name, type);
      for (const v of want) ins.run(d, name, type, valueKey(v));
    }
    return out;
  }
}
