// ?dry_run=true for the routes that change neither records nor proxy routes (mail settings, the
// queue, API tokens): the change runs in a transaction that is rolled back, and the answer says
// what it would have added, changed and removed. Secrets a real call would mint (API keys, token
// secrets, DKIM private keys) are never made or shown by a dry run.
import { z } from 'zod';
import type { ApiDeps } from './app.js';
import { dryRunQuery } from './mutate.js';

export { dryRunQuery };

/** What a write would do, by the things it names (`account app`, `rule 1a2b3c4d`, …). */
export interface Plan {
  added: string[];
  changed: string[];
  removed: string[];
}

/** A dry run's answer: `plan.<area>` (mail, tokens) lists what the call would change. */
export interface PlannedDryRun {
  dry_run: true;
  plan: Partial<Record<PlanArea, Plan>>;
}

export type PlanArea = 'mail' | 'tokens' | 'views' | 'certificates';

/** A route's plan, with the lists it left out empty. */
export const plan = (p: Partial<Plan>): Plan => ({ added: p.added ?? [], changed: p.changed ?? [], removed: p.removed ?? [] });

export const isDryRun = (req: { query: unknown }): boolean => (req.query as { dry_run?: string } | undefined)?.dry_run === 'true';

/**
 * Applies `run` in one transaction, or (dry run) in one rolled back and returns its plan. `run`
 * does every check a real call does, so a dry run fails exactly where the call would.
 */
export function applyOrPlan<T>(deps: ApiDeps, req: { query: unknown }, area: PlanArea, run: (dry: boolean) => { result: T; plan: Partial<Plan> }): T | PlannedDryRun {
  if (!isDryRun(req)) return deps.transaction(() => run(false).result);
  try {
    return deps.simulate(() => ({ dry_run: true as const, plan: { [area]: plan(run(true).plan) } }));
  } finally {
    // The settings cache may have read rows that were rolled back.
    deps.mail.store.forgetCache();
  }
}

/** A querystring of `dry_run` and `extra`, unknown parameters refused (400 naming them). */
export const withDryRun = <S extends z.ZodRawShape>(extra: S) => dryRunQuery.extend(extra).strict();

export const DRY_RUN_ONLY = dryRunQuery.strict();
