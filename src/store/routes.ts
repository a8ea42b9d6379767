// Explicit reverse-proxy routes (`api:<id>`). Routes implied by proxied records are not stored
// here: they are derived from the records each time (src/proxy/desired.ts).
// Contract: a write is checked by reading its row back through the model schema inside its
// transaction, so only rows that read back are ever committed; listeners hear of a write only
// after it committed. A stored row that no longer parses (a rule tightened since, a hand edit) is
// never served and never fails a list: scan() reports it apart, and it can be replaced or removed.
import { randomBytes } from 'node:crypto';
import { ZodError } from 'zod';
import { AppError, zodFields } from '../errors.js';
import { logger } from '../log/index.js';
import { forwardDial } from '../model/route-auth.js';
import { compactBackends } from '../model/route-backends.js';
import { TLS_MODES, routeInput, type BrokenRoute, type RouteInput, type StoredRoute, type TlsMode } from '../model/route.js';
import { prepared, type Db } from './db.js';
import { notify, type Notifying } from './simulate.js';


interface Row {
  id: string;
  hosts: string;
  path: string | null;
  upstreams: string;
  tls: string;
  health_path: string | null;
  auth: string | null;
  headers: string | null;
  limits: string | null;
  listen: string | null;
  /** JSON (model/route-balancing.ts) or NULL. */
  balancing: string | null;
  /** JSON (model/route-backends.ts) or NULL. */
  backends: string | null;
  /** JSON (model/route-health.ts) or NULL. */
  health: string | null;
  created_at: string;
  updated_at: string;
}

/** The backends column: only entries that say something (weight ≠ 1, dead), for upstreams still listed. */
function storedBackends(input: RouteInput): string | null {
  const listed = new Set(input.upstreams);
  const b = compactBackends(input.backends && Object.fromEntries(Object.entries(input.backends).filter(([k]) => listed.has(k))));
  return b ? JSON.stringify(b) : null;
}

const jsonOr = (text: string, fallback: unknown): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return fallback;
  }
};

/** The row as a route; throws a ZodError (or SyntaxError for bad JSON) when it does not parse. */
function fromRow(row: Row): StoredRoute {
  const parsed = routeInput.parse({
    hosts: JSON.parse(row.hosts) as unknown,
    upstreams: JSON.parse(row.upstreams) as unknown,
    tls: row.tls,
    ...(row.path !== null ? { path: row.path } : {}),
    ...(row.health_path !== null ? { health_path: row.health_path } : {}),
    ...(row.auth !== null ? { auth: JSON.parse(row.auth) as unknown } : {}),
    ...(row.headers !== null ? { headers: JSON.parse(row.headers) as unknown } : {}),
    ...(row.limits !== null ? { limits: JSON.parse(row.limits) as unknown } : {}),
    ...(row.listen !== null ? { listen: JSON.parse(row.listen) as unknown } : {}),
    ...(row.balancing !== null ? { balancing: JSON.parse(row.balancing) as unknown } : {}),
    ...(row.backends !== null ? { backends: JSON.parse(row.backends) as unknown } : {}),
    ...(row.health !== null ? { health: JSON.parse(row.health) as unknown } : {}),
  });
  const { balancing, backends, health, ...rest } = parsed;
  return { ...rest, ...(balancing ? { balancing } : {}), ...(backends ? { backends } : {}), ...(health ? { health } : {}), id: row.id, path: parsed.path ?? null, health_path: parsed.health_path ?? null, created_at: row.created_at, updated_at: row.updated_at };
}

const reasonOf = (e: unknown): string =>
  e instanceof ZodError ? zodFields(e.issues).map((f) => `${f.path || '(row)'}: ${f.message}`).join('; ') : `unreadable: ${(e as Error).message}`;

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function broken(row: Row, e: unknown): BrokenRoute {
  return {
    id: row.id,
    hosts: strings(jsonOr(row.hosts, [])),
    path: row.path,
    upstreams: strings(jsonOr(row.upstreams, [])),
    tls: (TLS_MODES as readonly string[]).includes(row.tls) ? (row.tls as TlsMode) : 'off',
    health_path: row.health_path,
    created_at: row.created_at,
    updated_at: row.updated_at,
    reason: `the stored route does not parse (${reasonOf(e)}); it is not served: replace it (PUT) or remove it`,
  };
}

export class RouteStore implements Notifying {
  private readonly listeners: (() => void)[] = [];
  muted = false;
  held: (() => void)[] | null = null;
  private readonly log = logger('store.routes');
  /** `id updated_at` of broken rows already logged: each is logged once, not at every list. */
  private readonly logged = new Set<string>();

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {}

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Every stored route, the ones that parse apart from the ones that do not (each logged once). */
  scan(): { routes: StoredRoute[]; broken: BrokenRoute[] } {
    const routes: StoredRoute[] = [];
    const bad: BrokenRoute[] = [];
    for (const row of this.db.prepare('SELECT * FROM routes ORDER BY id').all() as Row[]) {
      try {
        routes.push(fromRow(row));
      } catch (e) {
        const b = broken(row, e);
        bad.push(b);
        const key = `${row.id} ${row.updated_at}`;
        if (!this.logged.has(key)) {
          this.logged.add(key);
          this.log.error('stored route does not parse; not served', { id: row.id, reason: b.reason });
        }
      }
    }
    return { routes, broken: bad };
  }

  /** Each stored route's upstreams as written, without parsing the rest (the API's upstream checks read them per write). */
  upstreams(): { id: string; upstreams: string[] }[] {
    // A forward-auth service is dialled by Caddy for every request, like an upstream: the reach check sees it too.
    const rows = this.db.prepare("SELECT id, upstreams, json_extract(auth, '$.forward.url') AS forward FROM routes").all() as { id: string; upstreams: string; forward: unknown }[];
    return rows.map((r) => ({ id: r.id, upstreams: [...strings(jsonOr(r.upstreams, [])), ...forwardOf(r.forward)] }));
  }

  /** The routes that can be served (broken rows left out: see scan()). */
  list(): StoredRoute[] {
    return this.scan().routes;
  }

  /**
   * The routes serving one of `hosts` (exactly as written; broken rows left out), for a write's
   * clash check: rows are matched in SQLite and only those are parsed, not every route.
   */
  withHosts(hosts: readonly string[]): StoredRoute[] {
    const out: StoredRoute[] = [];
    const seen = new Set<string>();
    const stmt = prepared(this.db, 'SELECT * FROM routes WHERE instr(hosts, ?) > 0');
    for (const host of hosts)
      for (const row of stmt.all(JSON.stringify(host)) as Row[]) {
        if (seen.has(row.id)) continue;
        seen.add(row.id);
        try {
          const route = fromRow(row);
          if (route.hosts.includes(host)) out.push(route);
        } catch {
          // not served (scan() reports it); it claims nothing
        }
      }
    return out;
  }

  /** The route, or undefined when there is none or its row does not parse. */
  get(id: string): StoredRoute | undefined {
    const row = this.db.prepare('SELECT * FROM routes WHERE id = ?').get(id) as Row | undefined;
    if (!row) return undefined;
    try {
      return fromRow(row);
    } catch {
      return undefined;
    }
  }

  /** Whether a row with this id is stored (parsing or not). */
  has(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM routes WHERE id = ?').get(id) !== undefined;
  }

  /**
   * Creates (no `id`) or replaces (`id`) a route. Returns it and whether it was new. Throws
   * invalid_body (and stores nothing) when the row would not read back as a route.
   */
  put(input: RouteInput, id?: string): { route: StoredRoute; created: boolean } {
    const at = this.now().toISOString();
    const out = this.db
      .transaction(() => {
        const since = id === undefined ? undefined : (this.db.prepare('SELECT created_at FROM routes WHERE id = ?').pluck().get(id) as string | undefined);
        const row: Row = {
          id: id ?? `api:${randomBytes(4).toString('hex')}`,
          hosts: JSON.stringify([...new Set(input.hosts)].sort()),
          path: input.path ?? null,
          upstreams: JSON.stringify(input.upstreams),
          tls: input.tls,
          health_path: input.health_path ?? null,
          auth: input.auth ? JSON.stringify(input.auth) : null,
          headers: input.headers ? JSON.stringify(input.headers) : null,
          limits: input.limits ? JSON.stringify(input.limits) : null,
          listen: input.listen ? JSON.stringify(input.listen) : null,
          balancing: input.balancing ? JSON.stringify(input.balancing) : null,
          backends: storedBackends(input),
          health: input.health ? JSON.stringify(input.health) : null,
          created_at: since ?? at,
          updated_at: at,
        };
        if (input.auth?.basic?.accounts.some((a) => a.password !== undefined)) throw new Error('route auth: passwords must be hashed before they are stored');
        let route: StoredRoute;
        try {
          route = fromRow(row);
        } catch (e) {
          if (e instanceof ZodError) throw new AppError('invalid_body', undefined, zodFields(e.issues));
          throw e;
        }
        this.db
          .prepare(
            `INSERT INTO routes (id, hosts, path, upstreams, tls, health_path, auth, headers, limits, listen, balancing, backends, health, created_at, updated_at)
             VALUES (@id, @hosts, @path, @upstreams, @tls, @health_path, @auth, @headers, @limits, @listen, @balancing, @backends, @health, @created_at, @updated_at)
             ON CONFLICT (id) DO UPDATE SET hosts = excluded.hosts, path = excluded.path, upstreams = excluded.upstreams,
               tls = excluded.tls, health_path = excluded.health_path, auth = excluded.auth, headers = excluded.headers,
               limits = excluded.limits, listen = excluded.listen, balancing = excluded.balancing, backends = excluded.backends,
               health = excluded.health, updated_at = excluded.updated_at`,
          )
          .run(row);
        return { route, created: since === undefined };
      })
      .immediate();
    this.changed();
    return out;
  }

  /** Removes the route (a broken row too); not_found when there is none. Returns its id. */
  remove(id: string): { id: string } {
    if (this.db.prepare('DELETE FROM routes WHERE id = ?').run(id).changes === 0) throw new AppError('not_found', `no route ${id}`);
    this.changed();
    return { id };
  }

  private changed(): void {
    notify(this, () => {
      for (const l of this.listeners) l();
    });
  }
}

/** The dial of a stored forward-auth URL, or nothing (none, or one that does not parse). */
function forwardOf(url: unknown): string[] {
  if (typeof url !== 'string') return [];
  try {
    return [forwardDial(new URL(url))];
  } catch {
    return [];
  }
}
