// Explicit reverse-proxy routes (`api:<id>`). Routes implied by proxied records are not stored
// here: they are derived from the records each time (src/proxy/desired.ts).
import { randomBytes } from 'node:crypto';
import { AppError } from '../errors.js';
import { routeInput, type RouteInput } from '../model/route.js';
import type { Db } from './db.js';

export interface StoredRoute extends Required<Omit<RouteInput, 'path' | 'health_path'>> {
  id: string;
  path: string | null;
  health_path: string | null;
  created_at: string;
  updated_at: string;
}

interface Row {
  id: string;
  hosts: string;
  path: string | null;
  upstreams: string;
  tls: string;
  health_path: string | null;
  created_at: string;
  updated_at: string;
}

function fromRow(row: Row): StoredRoute {
  const parsed = routeInput.parse({
    hosts: JSON.parse(row.hosts),
    upstreams: JSON.parse(row.upstreams),
    tls: row.tls,
    ...(row.path !== null ? { path: row.path } : {}),
    ...(row.health_path !== null ? { health_path: row.health_path } : {}),
  });
  return { ...parsed, id: row.id, path: parsed.path ?? null, health_path: parsed.health_path ?? null, created_at: row.created_at, updated_at: row.updated_at };
}

export class RouteStore {
  private readonly listeners: (() => void)[] = [];
  /** Set by Store.simulate(): writes happen inside a transaction that will be rolled back, so nobody is told. */
  muted = false;

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {}

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  list(): StoredRoute[] {
    return (this.db.prepare('SELECT * FROM routes ORDER BY id').all() as Row[]).map(fromRow);
  }

  get(id: string): StoredRoute | undefined {
    const row = this.db.prepare('SELECT * FROM routes WHERE id = ?').get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** Creates (no `id`) or replaces (`id`) a route. Returns it and whether it was new. */
  put(input: RouteInput, id?: string): { route: StoredRoute; created: boolean } {
    const at = this.now().toISOString();
    const existing = id === undefined ? undefined : this.get(id);
    const routeId = id ?? `api:${randomBytes(4).toString('hex')}`;
    const row: Row = {
      id: routeId,
      hosts: JSON.stringify([...new Set(input.hosts)].sort()),
      path: input.path ?? null,
      upstreams: JSON.stringify(input.upstreams),
      tls: input.tls,
      health_path: input.health_path ?? null,
      created_at: existing?.created_at ?? at,
      updated_at: at,
    };
    this.db
      .prepare(
        `INSERT INTO routes (id, hosts, path, upstreams, tls, health_path, created_at, updated_at)
         VALUES (@id, @hosts, @path, @upstreams, @tls, @health_path, @created_at, @updated_at)
         ON CONFLICT (id) DO UPDATE SET hosts = excluded.hosts, path = excluded.path, upstreams = excluded.upstreams,
           tls = excluded.tls, health_path = excluded.health_path, updated_at = excluded.updated_at`,
      )
      .run(row);
    this.changed();
    return { route: fromRow(row), created: !existing };
  }

  remove(id: string): StoredRoute {
    const route = this.get(id);
    if (!route) throw new AppError('not_found', `no route ${id}`);
    this.db.prepare('DELETE FROM routes WHERE id = ?').run(id);
    this.changed();
    return route;
  }

  private changed(): void {
    if (!this.muted) for (const l of this.listeners) l();
  }
}
