// Finding which routes made Caddy reject a config, so the reconciler can leave them out and push
// the rest. Two ways, fast one first:
//   1. Position: Caddy 2.6 names where provisioning failed ("server S: setting up route handlers:
//      route 3: loading handler modules: position 0: loading module 'subroute': ... setting up
//      subroutes: route 1: ..."). We walk the rendered config to that route object and find the
//      desired routes whose own single-route render contains it verbatim (and the empty render
//      does not). Costs N in-process renders, no Caddy call.
//   2. Bisection with a validator that never touches the live config (`caddy validate`): routes
//      are ordered known-good first, then new/changed, and we look for the shortest failing
//      prefix; its last route is a culprit. 1 + log2(N) validations per bad route.
// With a validator, every guess is confirmed and the loop repeats until the remainder validates.
import { createHash } from 'node:crypto';
import { canonicalJson } from './render.js';
import type { DesiredProxy, DesiredRoute, ProxySettings, Rendered } from './types.js';

/** Caddy's error text for a config, or null when it is valid. Must not change what Caddy runs. */
export type Validate = (config: Record<string, unknown>) => Promise<string | null>;
export type Render = (desired: DesiredProxy) => Rendered;

/** Bounds one isolation (pushes wait meanwhile): `caddy validate` takes ~0.35 s at 5,000 routes, ~15 runs per bad route. */
export const ISOLATE_BUDGET_MS = 15_000;

/** Caddy's error text without the wrapper /load adds and `caddy validate` does not, so both read the same. */
export function caddyMessage(text: string): string {
  return text.replace(/^loading config: /, '').replace(/^loading new config: /, '');
}

const routeHashes = new WeakMap<DesiredRoute, string>();

/** Content hash of a desired route: a quarantined route is retried when this changes. Cached per route object (routes are never mutated). */
export function routeHash(route: DesiredRoute): string {
  let hash = routeHashes.get(route);
  if (hash === undefined) routeHashes.set(route, (hash = createHash('sha256').update(canonicalJson(route)).digest('hex')));
  return hash;
}

/** Where a Caddy 2.6 provisioning error points: server name, then route/position/route/... indexes. */
export interface RoutePosition {
  server: string;
  /** Alternating [route, handler position, route, ...]; starts and ends with a route index. */
  steps: number[];
}

const HEAD = /server (.+?): setting up route (?:handlers|matchers): /;
const ROUTE = /^route (\d+): /;
const INTO_SUBROUTE = /^loading handler modules: position (\d+): loading module 'subroute': provision http\.handlers\.subroute: setting up subroutes: /;

export function parseRoutePosition(error: string): RoutePosition | null {
  const head = HEAD.exec(error);
  if (!head) return null;
  let rest = error.slice(head.index + head[0].length);
  const steps: number[] = [];
  for (;;) {
    const r = ROUTE.exec(rest);
    if (!r) break;
    steps.push(Number(r[1]));
    rest = rest.slice(r[0].length);
    const s = INTO_SUBROUTE.exec(rest);
    if (!s) break;
    steps.push(Number(s[1]));
    rest = rest.slice(s[0].length);
  }
  return steps.length ? { server: head[1]!, steps } : null;
}

const obj = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
const at = (v: unknown, i: number): unknown => (Array.isArray(v) ? v[i] : undefined);

/** The route objects a position passes through in `config`, outermost first (may stop early). */
export function routesAt(config: Record<string, unknown>, pos: RoutePosition): Record<string, unknown>[] {
  const server = obj(obj(obj(obj(config.apps)?.http)?.servers)?.[pos.server]);
  const found: Record<string, unknown>[] = [];
  let routes: unknown = server?.routes;
  for (let i = 0; i < pos.steps.length; i += 2) {
    const route = obj(at(routes, pos.steps[i]!));
    if (!route) break;
    found.push(route);
    const next = pos.steps[i + 1];
    if (next === undefined) break;
    routes = obj(at(route.handle, next))?.routes;
  }
  return found;
}

/**
 * Fast path: the desired routes the error's position points at, innermost match first; empty
 * when the position cannot be mapped (then bisect). `config` is the render of `routes`.
 */
export function suspectsByPosition(
  render: Render,
  settings: ProxySettings,
  routes: readonly DesiredRoute[],
  config: Record<string, unknown>,
  error: string,
): DesiredRoute[] {
  const pos = parseRoutePosition(error);
  if (!pos) return [];
  const objects = routesAt(config, pos).reverse();
  if (!objects.length) return [];
  const baseline = JSON.stringify(render({ settings, routes: [] }).config);
  const single = new Map<string, string>();
  const singleText = (r: DesiredRoute) => {
    let t = single.get(r.id);
    if (t === undefined) single.set(r.id, (t = JSON.stringify(render({ settings, routes: [r] }).config)));
    return t;
  };
  for (const o of objects) {
    const text = JSON.stringify(o);
    if (baseline.includes(text)) continue;
    const hits = routes.filter((r) => singleText(r).includes(text));
    if (hits.length) return hits;
  }
  return [];
}

const byId = (a: DesiredRoute, b: DesiredRoute) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Bisection: `ordered` = known-good routes first (`goodCount` of them), then the rest. Returns
 * the last route of the shortest failing prefix with the validator's error for it, or null when
 * the whole set validates, the empty set fails (a global problem), or `deadline` passes.
 * Validate calls: 1 (all) + 1 (good part) + log2(N − good).
 */
export async function bisect(
  render: Render,
  validate: Validate,
  settings: ProxySettings,
  ordered: readonly DesiredRoute[],
  goodCount: number,
  deadline: number,
  now: () => number,
): Promise<{ route: DesiredRoute; error: string } | null> {
  const check = (n: number) => validate(render({ settings, routes: ordered.slice(0, n).sort(byId) }).config);
  let hiErr = await check(ordered.length);
  if (hiErr === null) return null;
  let lo = 0;
  if (goodCount > 0 && goodCount < ordered.length && (await check(goodCount)) === null) lo = goodCount;
  else if ((await check(0)) !== null) return null;
  let hi = ordered.length;
  while (hi - lo > 1) {
    if (now() > deadline) return null;
    const mid = (lo + hi) >> 1;
    const err = await check(mid);
    if (err === null) lo = mid;
    else [hi, hiErr] = [mid, err];
  }
  return { route: ordered[hi - 1]!, error: hiErr };
}

export interface IsolateInput {
  render: Render;
  /** Absent (or failing to run): position parsing only. */
  validate?: Validate;
  settings: ProxySettings;
  /** The routes whose render Caddy rejected, sorted by id. */
  routes: readonly DesiredRoute[];
  /** Their render, exactly as sent. */
  config: Record<string, unknown>;
  /** Caddy's error text for it. */
  error: string;
  /** Ids whose exact content Caddy ran before: blamed last. */
  knownGood: ReadonlySet<string>;
  deadline: number;
  now: () => number;
  /** Checked between validations, to end early on stop(). */
  cancelled: () => boolean;
}

export interface IsolateResult {
  /** Route id → Caddy's error text that condemned it. */
  bad: Map<string, string>;
  /** Set when the validator could not run (it was then not used further). */
  validatorError?: string;
}

/**
 * Finds the routes to quarantine. Never touches the live config. Without a validator it returns
 * only what the position fast path maps (possibly nothing); with one, it keeps going until the
 * remaining routes validate, or the deadline, or nothing more can be attributed.
 */
export async function isolate(input: IsolateInput): Promise<IsolateResult> {
  const { render, settings, now } = input;
  const result: IsolateResult = { bad: new Map() };
  let validate = input.validate;
  const guard = async (config: Record<string, unknown>): Promise<string | null | undefined> => {
    if (!validate) return undefined;
    try {
      return await validate(config);
    } catch (err) {
      result.validatorError = (err as Error).message;
      validate = undefined;
      return undefined;
    }
  };

  let current = [...input.routes];
  let config = input.config;
  let error: string | null = input.error;
  while (error !== null && current.length && !input.cancelled() && now() <= input.deadline) {
    let hits: { route: DesiredRoute; error: string }[] = suspectsByPosition(render, settings, current, config, error).map((route) => ({ route, error: error! }));
    if (!hits.length && validate) {
      const ordered = [...current.filter((r) => input.knownGood.has(r.id)), ...current.filter((r) => !input.knownGood.has(r.id))];
      const goodCount = current.filter((r) => input.knownGood.has(r.id)).length;
      try {
        const hit = await bisect(render, validate, settings, ordered, goodCount, input.deadline, now);
        if (hit) hits = [hit];
      } catch (err) {
        result.validatorError = (err as Error).message;
        validate = undefined;
      }
    }
    if (!hits.length) break;
    for (const h of hits) result.bad.set(h.route.id, caddyMessage(h.error));
    current = current.filter((r) => !result.bad.has(r.id));
    if (!validate) break;
    config = render({ settings, routes: current }).config;
    const verdict = await guard(config);
    if (verdict === undefined) break;
    error = verdict;
  }
  return result;
}
