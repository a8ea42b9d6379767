// Split-horizon views (src/model/view.ts): name → client networks. Contract: each write is one
// IMMEDIATE transaction that checks the new state whole (no two views share an address, no
// record set names a view that is gone) and commits or throws having changed nothing; listeners
// (the DNS server's view table) hear of the full list after the commit.
import { ZodError } from 'zod';
import { AppError, zodFields } from '../errors.js';
import { logger } from '../log/index.js';
import { MAX_VIEWS, viewBody, viewOverlaps, type StoredView, type ViewBody } from '../model/view.js';
import type { Db } from './db.js';
import { notify, type Notifying } from './simulate.js';

interface Row {
  name: string;
  cidrs: string;
  created_at: string;
  updated_at: string;
}

export type ViewListener = (views: StoredView[]) => void;

export class ViewStore implements Notifying {
  muted = false;
  held: (() => void)[] | null = null;
  private readonly listeners: ViewListener[] = [];
  private readonly log = logger('store.views');

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {}

  onChange(listener: ViewListener): void {
    this.listeners.push(listener);
  }

  /** Every view that parses, by name (a row that does not is logged and left out: it matches no client). */
  list(): StoredView[] {
    const out: StoredView[] = [];
    for (const row of this.db.prepare('SELECT * FROM views ORDER BY name').all() as Row[]) {
      try {
        const v = viewBody.parse({ name: row.name, cidrs: JSON.parse(row.cidrs) as unknown });
        out.push({ ...v, created_at: row.created_at, updated_at: row.updated_at });
      } catch (e) {
        this.log.error('stored view does not parse; it matches no client', { view: row.name, reason: e instanceof ZodError ? zodFields(e.issues) : (e as Error).message });
      }
    }
    return out;
  }

  get(name: string): StoredView | undefined {
    return this.list().find((v) => v.name === name);
  }

  /** Creates (`create`: 409 when it exists) or replaces a view; 400 naming `cidrs.N` when a network overlaps another view's. */
  put(body: ViewBody, opts: { create: boolean }): { view: StoredView; created: boolean } {
    return this.write(() => {
      const all = this.list();
      const old = all.find((v) => v.name === body.name);
      if (old && opts.create) throw new AppError('conflict', `view ${body.name} already exists; use PUT /api/v1/views/${body.name} to replace it`);
      if (!old && all.length >= MAX_VIEWS) throw new AppError('conflict', `at most ${MAX_VIEWS} views can be defined (each query is matched against each)`);
      const overlaps = viewOverlaps(body, all);
      if (overlaps.length) throw new AppError('invalid_body', undefined, overlaps);
      const at = this.now().toISOString();
      this.db
        .prepare('INSERT INTO views (name, cidrs, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET cidrs = excluded.cidrs, updated_at = excluded.updated_at')
        .run(body.name, JSON.stringify(body.cidrs), at, at);
      return { view: { ...body, created_at: old?.created_at ?? at, updated_at: at }, created: !old };
    });
  }

  /** Removes a view; 404 when there is none, 409 naming the record sets that still give it values. */
  remove(name: string): void {
    this.write(() => {
      const users = this.db.prepare(`SELECT name, type FROM records WHERE views IS NOT NULL AND json_type(views, '$."' || ? || '"') IS NOT NULL ORDER BY name, type`).all(name) as { name: string; type: string }[];
      if (users.length) {
        const shown = users.slice(0, 10).map((r) => `${r.name} ${r.type}`).join(', ');
        throw new AppError('conflict', `view ${name} still gives values to ${users.length} record set(s): ${shown}${users.length > 10 ? ', …' : ''}; remove its entry from them first`);
      }
      if (this.db.prepare('DELETE FROM views WHERE name = ?').run(name).changes === 0) throw new AppError('not_found', `no view ${name}`);
    });
  }

  private write<T>(body: () => T): T {
    const out = this.db.transaction(body).immediate();
    notify(this, () => {
      const views = this.list();
      for (const l of this.listeners) l(views);
    });
    return out;
  }
}
