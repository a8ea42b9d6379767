// Desired state as code: export the whole desired state as one document, and apply such a
// document in one transaction (or, as a dry run, in one that is rolled back) with the checks the
// API's own writes make. README.md says what this folder owns and its limits.
import { ZodError } from 'zod';
import { AppError, fieldError, zodFields } from '../errors.js';
import type { ApiDeps } from '../api/app.js';
import { bindRecord, resolveTarget, type TargetDevice } from '../api/devices.js';
import { assertNoClash, assertNotOwnEndpoint, reloads } from '../api/mutate.js';
import { assertListen } from '../api/listen.js';
import { valueKey } from '../mail/domains/domain.js';
import { generateDkimPrivateKey } from '../mail/credentials/keys.js';
import { hashPassword, verifyPassword } from '../mail/credentials/password.js';
import { providerConfig, publicConfig, type ProviderConfig, type RuleInput } from '../model/mail.js';
import { deviceAddresses, type Device } from '../model/device.js';
import { absolute } from '../model/name.js';
import { STATE_VERSION, type SoaSettings } from '../model/state.js';
import type { RecordWrite, StoredRecord } from '../model/record.js';
import { placeName, recordWrite } from '../model/write.js';
import { recordRouteId } from '../proxy/desired.js';
import { forwardDial, hashPasswords } from '../proxy/auth.js';
import { exportedAuth, missingSecrets, withStoredAuth } from '../model/route-auth.js';
import { compactBackends, type Backends } from '../model/route-backends.js';
import { planRoutes, type RoutePlan } from '../proxy/plan.js';
import type { Soa } from '../dns/soa.js';
import { stateFile, type StateFile } from './document.js';

/** What export and apply need of the controller: the API's dependencies. */
export type StateDeps = Pick<ApiDeps, 'zones' | 'nodeIp' | 'records' | 'routes' | 'proxy' | 'servedRecords' | 'transaction' | 'simulate' | 'views' | 'devices'> & {
  mail: Pick<ApiDeps['mail'], 'store' | 'domains'>;
};

/** Stored password hash of an account created by a state file without a password: matches no password (AUTH refused until one is set). */
export const NO_PASSWORD = '!';

/** Fields of a stored object that are bookkeeping, not desired state. */
const STORED_ONLY = new Set(['zone', 'created_at', 'updated_at', 'id']);

/** `o` without the keys whose value is null or undefined (an absent setting), top level only. */
function present(o: Record<string, unknown>, drop: ReadonlySet<string> = new Set()): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k, v]) => v !== null && v !== undefined && !drop.has(k)));
}

const setKey = (r: { name: string; type: string }) => `${r.name} ${r.type}`;

/**
 * A stored record set as the file has it: the values the mail domains publish left out (they make
 * them again), or null when nothing is left. A set bound to a tailnet device (its binding still
 * governs it) has `target_device` instead of its values: applied, the device gives them again.
 */
function recordEntryOf(deps: Pick<StateDeps, 'devices'>, r: StoredRecord, owned: ReadonlyMap<string, ReadonlySet<string>>): Record<string, unknown> | null {
  const device = deps.devices?.binder.deviceOf(r);
  if (device) return present({ ...r, values: undefined, target_device: device.name }, STORED_ONLY);
  const mine = owned.get(setKey(r));
  const values = mine ? (r.values as unknown[]).filter((v) => !mine.has(valueKey(v))) : r.values;
  if (values.length === 0) return null;
  return present({ ...r, values }, STORED_ONLY);
}

function soaOf(deps: StateDeps, zone: string): SoaSettings | undefined {
  const soa = deps.servedRecords(zone).find((r) => r.type === 'SOA')?.values[0] as Soa | undefined;
  if (!soa) return undefined;
  return { mname: soa.mname, rname: soa.rname, refresh: soa.refresh, retry: soa.retry, expire: soa.expire, minimum: soa.minimum, ttl: soa.ttl };
}

const ruleEntryOf = (r: RuleInput) => present({ priority: r.priority, sender_domain: r.sender_domain, recipient_domain: r.recipient_domain, account: r.account, provider: r.provider, fallback_provider: r.fallback_provider });
const byKey = <T>(key: (x: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

/** The whole desired state, secrets left out, in a fixed order. */
export function exportState(deps: StateDeps): Record<string, unknown> {
  const owned = deps.mail.domains.ownedValues();
  const { store, domains } = deps.mail;
  // Two identical rules route like one (first match wins): written once, so the file applies again.
  const rules = [...new Map(store.rules().map((r) => [valueKey(ruleEntryOf(r)), ruleEntryOf(r)])).values()].sort((a, b) => (a.priority as number) - (b.priority as number) || byKey(valueKey)(a, b));
  return {
    version: STATE_VERSION,
    zones: deps.zones.map((name) => present({ name, soa: soaOf(deps, name) })),
    views: deps.views.list().map((v) => ({ name: v.name, cidrs: v.cidrs })),
    records: deps.records.list().flatMap((r) => recordEntryOf(deps, r, owned) ?? []),
    routes: deps.routes.list().map((r) => present({ ...r, id: r.id, auth: r.auth && exportedAuth(r.auth) }, new Set(['created_at', 'updated_at']))),
    certificates: [],
    mail: {
      domains: domains.list().map((d) => ({ domain: d.domain, settings: d.settings })),
      accounts: store.accounts().map((a) => ({ name: a.name, email: a.email, allowed_domains: a.allowed_domains })),
      providers: store.providers().map((p) => ({ name: p.name, config: publicConfig(p.config) })),
      rules,
    },
  };
}

/** The document parsed; a bad one is a 400 naming every bad field (`records.3.values.0`, `version`). */
export function parseState(raw: unknown): StateFile {
  try {
    return stateFile.parse(raw);
  } catch (e) {
    if (e instanceof ZodError) throw new AppError('invalid_body', `the state file is invalid: ${zodFields(e.issues).map((f) => `${f.path || '(file)'}: ${f.message}`).slice(0, 3).join('; ')}`, zodFields(e.issues));
    throw e;
  }
}

/**
 * What one area would gain, change and lose; `not_in_file` is what the file lacks: --prune removes
 * it when the file has the area's section (nothing is removed without --prune, or from a section
 * the file leaves out).
 */
export interface AreaPlan {
  added: string[];
  changed: string[];
  removed: string[];
  not_in_file: string[];
}

export const STATE_AREAS = ['zones', 'views', 'records', 'routes', 'mail_domains', 'mail_accounts', 'mail_providers', 'mail_rules'] as const;
export type StateArea = (typeof STATE_AREAS)[number];

export interface StatePlan {
  dry_run: boolean;
  prune: boolean;
  /** Whether anything was (or, in a dry run, would be) changed. */
  changed: boolean;
  plan: Record<StateArea, AreaPlan>;
  /** The proxy routes the change adds, changes and removes, and whether Caddy must load a new config. */
  proxy: { routes: RoutePlan; caddy_reload: boolean };
}

/** A parsed document with what must be made before the transaction (password hashes, DKIM keys: slow, async). */
export interface PreparedState {
  doc: StateFile;
  /** Account name → the new password's hash (only where the file's password differs from the stored one). */
  hashes: Map<string, string>;
  /** Mail domain → a DKIM private key for a domain that has none yet. */
  dkim: Map<string, string>;
  /** The sections the document has (`records`, `mail.rules`, …): prune touches only these. */
  sections: Set<string>;
  /** Index in `records` → the tailnet device the entry names (`target_device`), resolved. */
  targets: Map<number, TargetDevice>;
}

/** The sections `raw` names: a section left out of a file is never pruned (an export names them all). */
function sectionsOf(raw: unknown): Set<string> {
  const out = new Set<string>();
  if (!raw || typeof raw !== 'object') return out;
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    out.add(k);
    if (k === 'mail' && v && typeof v === 'object') for (const m of Object.keys(v)) out.add(`mail.${m}`);
  }
  return out;
}

/**
 * `raw` with each record entry's `target_device` replaced by the device's addresses, as the record
 * API does (takeTargetDevice): 400 naming `records.N.target_device` for a device not in the tailnet
 * now, `records.N.type` / `records.N.values` for an entry that cannot be bound. `raw` is not changed.
 */
function resolveTargets(deps: StateDeps, raw: unknown): { raw: unknown; targets: Map<number, TargetDevice> } {
  const targets = new Map<number, TargetDevice>();
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { raw, targets };
  const records = (raw as Record<string, unknown>).records;
  if (!Array.isArray(records)) return { raw, targets };
  const resolved = records.map((entry: unknown, i) => {
    if (!entry || typeof entry !== 'object' || Array.isArray(entry) || !('target_device' in entry)) return entry;
    const { target_device, ...rest } = entry as Record<string, unknown>;
    const type = typeof rest.type === 'string' ? rest.type.toUpperCase() : '';
    if (type !== 'A' && type !== 'AAAA') throw fieldError(`records.${i}.type`, 'must be A or AAAA with target_device (the device gives addresses)');
    if ('values' in rest) throw fieldError(`records.${i}.values`, 'leave values out with target_device: they come from the device');
    let target: TargetDevice;
    try {
      target = resolveTarget(deps, target_device, type, `records.${i}.target_device`);
    } catch (e) {
      const kept = keptBinding(deps, rest.name, type, target_device);
      if (!kept) throw e;
      targets.set(i, kept.target);
      return { ...rest, values: kept.values };
    }
    targets.set(i, target);
    return { ...rest, values: deviceAddresses(target.device, type) };
  });
  return { raw: { ...(raw as Record<string, unknown>), records: resolved }, targets };
}

/**
 * A device that left the tailnet (or a list not read yet) while a stored set is still bound to it
 * under this name: the set keeps its last addresses and its binding, as the binder keeps them, so
 * a file exported here applies here again. Null when there is no such binding.
 */
function keptBinding(deps: StateDeps, name: unknown, type: 'A' | 'AAAA', device: unknown): { target: TargetDevice; values: string[] } | null {
  if (typeof name !== 'string' || typeof device !== 'string' || !deps.devices) return null;
  let at: string;
  try {
    at = placeName(name, deps.zones, 'name').name;
  } catch {
    return null;
  }
  const rec = deps.records.get(at, type);
  const bound = rec && deps.devices.binder.deviceOf(rec);
  const binding = deps.devices.bindings.get(at, type);
  if (!rec || !bound || !binding || bound.name !== device.toLowerCase()) return null;
  const values = rec.values.map(String);
  const kept: Device = { name: binding.device, id: binding.device_id, dns_name: null, host_name: '', ipv4: type === 'A' ? values : [], ipv6: type === 'AAAA' ? values : [], online: false, last_seen: null, self: false };
  return { target: { device: kept, type }, values };
}

/** Parses `raw` and makes the secrets the apply will store; nothing is written. */
export async function prepareState(deps: StateDeps, given: unknown): Promise<PreparedState> {
  const { raw, targets } = resolveTargets(deps, given);
  const doc = parseState(raw);
  const hashes = new Map<string, string>();
  for (const a of doc.mail.accounts) {
    if (a.password === undefined) continue;
    const stored = deps.mail.store.login(a.name);
    if (stored?.account.name === a.name && (await verifyPassword(a.password, stored.hash))) continue;
    hashes.set(a.name, await hashPassword(a.password));
  }
  // Route passwords become bcrypt hashes here (slow, before the transaction); only hashes are stored.
  doc.routes = await Promise.all(doc.routes.map((r) => hashPasswords(r, deps.routes.get(r.id)?.auth)));
  const dkim = new Map<string, string>();
  for (const d of doc.mail.domains) if (!deps.mail.store.dkimKey(d.domain)) dkim.set(d.domain, await generateDkimPrivateKey());
  return { doc, hashes, dkim, sections: sectionsOf(raw), targets };
}

/** Secret fields of a provider's `auth`: kept from the stored config when the file leaves them out and the rest of `auth` is the same. */
const SECRET_KEYS = ['pass', 'token', 'value'] as const;

function withStoredSecrets(config: Record<string, unknown>, stored: ProviderConfig | undefined): Record<string, unknown> {
  const auth = config.auth as Record<string, unknown> | undefined;
  const had = (stored as { auth?: Record<string, unknown> } | undefined)?.auth;
  if (!auth || typeof auth !== 'object' || !had || stored?.type !== config.type) return config;
  const others = (o: Record<string, unknown>) => valueKey(Object.fromEntries(Object.entries(o).filter(([k]) => !(SECRET_KEYS as readonly string[]).includes(k))));
  if (others(auth) !== others(had)) return config;
  const merged = { ...auth };
  for (const k of SECRET_KEYS) if (merged[k] === undefined && had[k] !== undefined) merged[k] = had[k];
  return { ...config, auth: merged };
}

const emptyPlan = (): Record<StateArea, AreaPlan> => Object.fromEntries(STATE_AREAS.map((a) => [a, { added: [], changed: [], removed: [], not_in_file: [] }])) as unknown as Record<StateArea, AreaPlan>;

/**
 * Brings the stored state to the document: creates and replaces what differs, and with `prune`
 * removes what the document lacks. One transaction: on any refusal nothing is written. A dry run
 * does the same in a transaction that is rolled back and returns the plan.
 */
export function applyState(deps: StateDeps, prepared: PreparedState, opts: { dryRun: boolean; prune: boolean }): StatePlan {
  const run = (): StatePlan => {
    const before = deps.proxy.build(true).routes;
    const plan = write(deps, prepared, opts.prune);
    const after = deps.proxy.build(true).routes;
    const changed = STATE_AREAS.some((a) => plan[a].added.length + plan[a].changed.length + plan[a].removed.length > 0);
    return { dry_run: opts.dryRun, prune: opts.prune, changed, plan, proxy: { routes: planRoutes(before, after), caddy_reload: reloads(deps, before, after) } };
  };
  if (!opts.dryRun) return deps.transaction(run);
  try {
    return deps.simulate(run);
  } finally {
    // The relay settings cache may have read rows that were rolled back.
    deps.mail.store.forgetCache();
  }
}

/** The writes, inside the caller's transaction. Returns the plan of what they did. */
function write(deps: StateDeps, prepared: PreparedState, prune: boolean): Record<StateArea, AreaPlan> {
  const { doc, hashes, dkim, targets } = prepared;
  const { store, domains } = deps.mail;
  const plan = emptyPlan();
  const note = (area: StateArea, kind: keyof AreaPlan, what: string) => plan[area][kind].push(what);

  // Zones come from the config: the file may list only served ones. A zone's SOA fields that
  // differ from the ones it serves are stored as its own, as a zone import stores a file's.
  const seenZones = new Set<string>();
  doc.zones.forEach((z, i) => {
    const name = absolute(z.name.toLowerCase());
    if (!deps.zones.includes(name)) throw fieldError(`zones.${i}.name`, `${name} is not served (serving ${deps.zones.join(', ')}); zones come from the config`);
    if (seenZones.has(name)) throw fieldError(`zones.${i}.name`, `${name} is listed twice`);
    seenZones.add(name);
    const soa = soaOf(deps, name);
    if (!z.soa || (soa && valueKey(soa) === valueKey(z.soa))) return;
    deps.records.put([], { soa: { zone: name, fields: z.soa, serial: deps.records.serial(name) } });
    note('zones', 'changed', `${name} SOA`);
  });

  // Views before the record sets that give them values.
  const fileViews = new Set<string>();
  doc.views.forEach((v, i) => {
    if (fileViews.has(v.name)) throw fieldError(`views.${i}.name`, `view ${v.name} is listed twice`);
    fileViews.add(v.name);
    const stored = deps.views.get(v.name);
    if (stored && valueKey(stored.cidrs) === valueKey(v.cidrs)) return;
    try {
      deps.views.put(v, { create: false });
    } catch (e) {
      if (e instanceof AppError && e.fields.length) throw new AppError(e.code, e.message, e.fields.map((f) => ({ ...f, path: `views.${i}.${f.path}` })));
      throw e;
    }
    note('views', stored ? 'changed' : 'added', v.name);
  });

  // Certificates are a typed section with nothing behind it yet: refused rather than ignored.
  if (doc.certificates.length) throw fieldError('certificates.0', 'certificates are not managed by dnsproxy yet (Caddy gets its own): leave the list empty');

  // Providers first: rules name them.
  const providerNames = new Set<string>();
  doc.mail.providers.forEach((p, i) => {
    if (providerNames.has(p.name)) throw fieldError(`mail.providers.${i}.name`, `provider ${p.name} is listed twice`);
    providerNames.add(p.name);
    const stored = store.provider(p.name);
    const merged = withStoredSecrets(p.config, stored?.config);
    const auth = merged.auth as Record<string, unknown> | undefined;
    const needed = merged.type === 'smtp' ? ['pass'] : auth?.scheme === 'bearer' ? ['token'] : auth?.scheme === 'basic' ? ['pass'] : auth?.scheme === 'header' ? ['value'] : [];
    if (auth && typeof auth === 'object')
      for (const k of needed)
        if (auth[k] === undefined)
          throw fieldError(`mail.providers.${i}.config.auth.${k}`, `no secret is stored for provider ${p.name} with this auth: give it in the file (an export leaves secrets out, and apply keeps a stored one)`);
    const parsed = providerConfig.safeParse(merged);
    if (!parsed.success) throw new AppError('invalid_body', undefined, zodFields(parsed.error.issues).map((f) => ({ ...f, path: `mail.providers.${i}.config${f.path ? `.${f.path}` : ''}` })));
    if (stored && valueKey(stored.config) === valueKey(parsed.data)) return;
    try {
      store.putProvider({ name: p.name, config: parsed.data }, { ownAddresses: [deps.nodeIp] });
    } catch (e) {
      if (e instanceof AppError && e.code === 'invalid_body') throw new AppError('invalid_body', e.message, e.fields.map((f) => ({ ...f, path: `mail.providers.${i}.config.${f.path}` })));
      throw e;
    }
    note('mail_providers', stored ? 'changed' : 'added', p.name);
  });

  // Rules have no name: a rule is what it says. The file's are added when missing.
  const ruleKey = (r: RuleInput) => valueKey(ruleEntryOf(r));
  const storedRules = new Map<string, string[]>();
  for (const r of store.rules()) storedRules.set(ruleKey(r), [...(storedRules.get(ruleKey(r)) ?? []), r.id]);
  const fileRules = new Set<string>();
  doc.mail.rules.forEach((r, i) => {
    const k = ruleKey(r);
    if (fileRules.has(k)) throw fieldError(`mail.rules.${i}`, 'this rule is listed twice');
    fileRules.add(k);
    if (storedRules.has(k)) return;
    try {
      store.addRule(r);
    } catch (e) {
      if (e instanceof AppError && e.fields.length) throw new AppError(e.code, e.message, e.fields.map((f) => ({ ...f, path: `mail.rules.${i}.${f.path}` })));
      throw e;
    }
    note('mail_rules', 'added', describeRule(r));
  });

  // Accounts: a password left out is kept; a new account without one cannot log in until it is set.
  const accountNames = new Set<string>();
  doc.mail.accounts.forEach((a, i) => {
    if (accountNames.has(a.name)) throw fieldError(`mail.accounts.${i}.name`, `account ${a.name} is listed twice`);
    accountNames.add(a.name);
    const stored = store.account(a.name);
    const hash = hashes.get(a.name);
    const domainsOf = (l: readonly string[]) => [...new Set(l)].sort().join(',');
    const { password: _p, ...fields } = a;
    if (!stored) {
      store.insertAccount(fields, hash ?? NO_PASSWORD);
      note('mail_accounts', 'added', a.name);
    } else if (stored.email !== a.email || domainsOf(stored.allowed_domains) !== domainsOf(a.allowed_domains) || hash !== undefined) {
      store.updateAccount(a.name, { email: a.email, allowed_domains: a.allowed_domains }, hash);
      note('mail_accounts', 'changed', a.name);
    }
  });

  // Record sets, compared as the file writes them (the mail domains' own values left out).
  const viewNames = new Set(deps.views.list().map((v) => v.name));
  const owned = domains.ownedValues();
  const current = new Map<string, { record: StoredRecord; entry: string }>();
  for (const r of deps.records.list()) {
    const entry = recordEntryOf(deps, r, owned);
    if (entry) current.set(setKey(r), { record: r, entry: valueKey(entry) });
  }
  const fileRecords = new Set<string>();
  const puts: RecordWrite[] = [];
  const bound: (TargetDevice | undefined)[] = [];
  const proxied: { id: string; host: string; path: string }[] = [];
  doc.records.forEach((input, i) => {
    const w = recordWrite(input, deps.zones, `records.${i}.`);
    for (const v of Object.keys(w.views ?? {}))
      if (!viewNames.has(v)) throw fieldError(`records.${i}.views.${v}`, `no view "${v}": define it in the file's views (or with POST /api/v1/views)`);
    const key = `${w.name} ${w.data.type}`;
    if (fileRecords.has(key)) throw fieldError(`records.${i}.name`, `${key} is listed twice`);
    fileRecords.add(key);
    if (w.proxy) assertNotOwnEndpoint(deps, w.proxy.enabled ? [[`records.${i}.name`, w.name]] : [], w.proxy.upstreams.map((u, j) => [`records.${i}.proxy.upstreams.${j}`, u]));
    if (w.proxy?.enabled) proxied.push({ id: recordRouteId(w.name), host: w.name.replace(/\.$/, ''), path: `records.${i}` });
    // A value the file gives that a mail domain publishes counts as the domain's (export leaves it out).
    const mine = owned.get(key);
    const values = mine ? (w.data.values as unknown[]).filter((v) => !mine.has(valueKey(v))) : w.data.values;
    const target = targets.get(i);
    const entry = valueKey(present(target ? { ...input, name: w.name, values: undefined, target_device: target.device.name } : { ...input, name: w.name, values }, STORED_ONLY));
    const had = current.get(key);
    if (had?.entry === entry) return;
    puts.push(w);
    bound.push(target);
    note('records', had ? 'changed' : 'added', key);
  });
  // One store write for all of them: one serial bump per zone and one change for the DNS index.
  if (puts.length)
    deps.records.put(puts).forEach((put, j) => {
      const target = bound[j];
      if (target) bindRecord(deps, put.record, target);
    });

  // Explicit routes, by id.
  const fileRoutes = new Set<string>();
  doc.routes.forEach((r, i) => {
    const { id, ...given } = r;
    // Secrets the file leaves out (an export does) are kept from the stored route.
    const input = given.auth ? { ...given, auth: withStoredAuth(given.auth, deps.routes.get(id)?.auth) } : given;
    const missing = missingSecrets(input.auth, `routes.${i}.auth`);
    if (missing.length) throw fieldError(missing[0]![0], `${missing[0]![1]} (no secret is stored for route ${id})`);
    if (fileRoutes.has(id)) throw fieldError(`routes.${i}.id`, `route ${id} is listed twice`);
    // The extra port: none of ours, and one protocol per port (as the API checks).
    assertListen(deps, id, input, `routes.${i}.`);
    fileRoutes.add(id);
    assertNotOwnEndpoint(deps, input.hosts.map((h, j) => [`routes.${i}.hosts.${j}`, h]), [
      ...input.upstreams.map((u, j): [string, string] => [`routes.${i}.upstreams.${j}`, u]),
      ...(input.auth?.forward ? [[`routes.${i}.auth.forward.url`, forwardDial(new URL(input.auth.forward.url))] as [string, string]] : []),
    ]);
    const stored = deps.routes.get(id);
    const existed = deps.routes.has(id);
    const shape = (x: { hosts: string[]; path?: string | null | undefined; upstreams: string[]; tls: string; health_path?: string | null | undefined; auth?: unknown; headers?: unknown; limits?: unknown; listen?: { port: number } | undefined; balancing?: unknown; backends?: unknown; health?: unknown }) =>
      valueKey({ hosts: [...new Set(x.hosts)].sort(), path: x.path ?? null, upstreams: x.upstreams, tls: x.tls, health_path: x.health_path ?? null, auth: x.auth ?? null, headers: x.headers ?? null, limits: x.limits ?? null, listen: x.listen ?? null, balancing: x.balancing ?? null, backends: compactBackends(x.backends as Backends | undefined) ?? null, health: x.health ?? null });
    if (stored && shape(stored) === shape(input)) return;
    deps.routes.put(input, id);
    note('routes', existed ? 'changed' : 'added', id);
  });

  // What the file lacks: listed always, removed only with prune.
  const SECTION: Record<StateArea, string> = { zones: 'zones', views: 'views', records: 'records', routes: 'routes', mail_domains: 'mail.domains', mail_accounts: 'mail.accounts', mail_providers: 'mail.providers', mail_rules: 'mail.rules' };
  const gone = (area: StateArea, what: string, remove: () => void) => {
    note(area, 'not_in_file', what);
    if (prune && prepared.sections.has(SECTION[area])) {
      remove();
      note(area, 'removed', what);
    }
  };
  for (const r of store.rules()) if (!fileRules.has(ruleKey(r))) gone('mail_rules', describeRule(r), () => store.removeRule(r.id));
  for (const r of deps.routes.scan().routes) if (!fileRoutes.has(r.id)) gone('routes', r.id, () => deps.routes.remove(r.id));
  for (const [key, { record }] of current) if (!fileRecords.has(key)) gone('records', key, () => deps.records.remove(record.name, record.type));
  // After the record sets: a view a kept set still names is refused (409 naming the sets).
  for (const v of deps.views.list()) if (!fileViews.has(v.name)) gone('views', v.name, () => deps.views.remove(v.name));
  for (const a of store.accounts()) if (!accountNames.has(a.name)) gone('mail_accounts', a.name, () => store.removeAccount(a.name));
  const fileDomains = new Set(doc.mail.domains.map((d) => d.domain));
  for (const d of domains.list()) if (!fileDomains.has(d.domain)) gone('mail_domains', d.domain, () => domains.remove(d.domain));

  // Mail domains last but one: they merge their values into the record sets written above.
  const seenDomains = new Set<string>();
  doc.mail.domains.forEach((d, i) => {
    if (seenDomains.has(d.domain)) throw fieldError(`mail.domains.${i}.domain`, `${d.domain} is listed twice`);
    seenDomains.add(d.domain);
    const { zone } = placeName(`${d.domain}.`, deps.zones, `mail.domains.${i}.domain`);
    const stored = domains.get(d.domain);
    if (stored && valueKey(stored.settings) === valueKey(d.settings)) return;
    const key = dkim.get(d.domain);
    if (key !== undefined && !store.dkimKey(d.domain)) store.putDkimKey({ domain: d.domain, selector: d.settings.selector, private_key: key });
    domains.add(d.domain, zone, d.settings);
    note('mail_domains', stored ? 'changed' : 'added', d.domain);
  });
  // Providers go once no rule names them (a rule the file keeps still does: 409).
  for (const p of store.providers()) if (!providerNames.has(p.name)) gone('mail_providers', p.name, () => store.removeProvider(p.name));
  // The mail domains' records follow the rules and providers (SPF) and take back values a record write above replaced.
  domains.publishAll();

  // The end state must not serve one host+path twice (the API's check, on every route the file keeps).
  for (const p of proxied) assertNoClashAt(deps, { id: p.id, hosts: [p.host], path: null }, `${p.path}.name`);
  doc.routes.forEach((r, i) => assertNoClashAt(deps, { id: r.id, hosts: r.hosts, path: r.path ?? null }, `routes.${i}.hosts`));
  return plan;
}

function assertNoClashAt(deps: StateDeps, route: { id: string; hosts: string[]; path: string | null }, field: string): void {
  try {
    assertNoClash(deps, route);
  } catch (e) {
    if (e instanceof AppError) throw new AppError('conflict', e.message, [{ path: field, message: e.message }]);
    throw e;
  }
}

const describeRule = (r: RuleInput) =>
  `priority ${r.priority}: ${r.sender_domain ?? '*'} → ${r.recipient_domain ?? '*'}${r.account ? ` (account ${r.account})` : ''} via ${r.provider}${r.fallback_provider ? `, then ${r.fallback_provider}` : ''}`;

/**
 * The whole apply for a document as data (an API body, a watched file's text already parsed):
 * parse, make the secrets it needs, wait out a zone import's turn, then apply (applyState).
 */
export async function applyDocument(deps: StateDeps, raw: unknown, opts: { dryRun: boolean; prune: boolean }): Promise<StatePlan> {
  const prepared = await prepareState(deps, raw);
  while (deps.records.busy) await deps.records.busy;
  return applyState(deps, prepared, opts);
}
