// Split-horizon DNS: named views, each a list of client networks. A record set (A or AAAA) may
// give other values for clients in a view; clients in no view get the set's own values.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseCidr, type Cidr } from './cidr.js';

/** Networks in one view: enough for a tailnet and a few LANs, small enough to match per query cheaply. */
export const MAX_VIEW_CIDRS = 64;
/** Views defined at all: each query is matched against each one. */
export const MAX_VIEWS = 32;

export const viewName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$/, 'must be 1-32 lower-case letters, digits and "-", starting with a letter and not ending with "-"')
  .describe('View name, e.g. tailnet or lan');

const cidrText = z
  .string()
  .max(64)
  .superRefine((v, ctx) => {
    const c = parseCidr(v);
    if ('error' in c) ctx.addIssue({ code: 'custom', message: c.error });
  })
  .describe('A client network: a.b.c.d/n or x::/n (a bare address is its /32 or /128)');

export const viewBody = z
  .object({
    name: viewName,
    cidrs: z.array(cidrText).min(1, 'a view holds at least one network').max(MAX_VIEW_CIDRS),
  })
  .strict()
  .describe('A view: the client networks whose queries get its per-record values');
export type ViewBody = z.infer<typeof viewBody>;

export interface StoredView extends ViewBody {
  created_at: string;
  updated_at: string;
}

/** Per-view values of an A or AAAA set: `{"tailnet": {"values": ["100.64.0.5"]}}`. */
export const recordViews = <T extends z.ZodType>(value: T) =>
  z
    .record(viewName, z.object({ values: z.array(value).min(1, 'at least one value is required').max(100) }).strict())
    .refine((v) => Object.keys(v).length <= MAX_VIEWS, `at most ${MAX_VIEWS} views`)
    .describe('Values for clients in each named view (GET /api/v1/views); clients in no view get `values`');
export type RecordViews = Record<string, { values: string[] }>;

/** 32 or 128 bits of an address as a bigint (IPv4-mapped IPv6 stays IPv6: it matches IPv6 networks only). */
function bits(address: string): bigint {
  if (isIP(address) === 4) return address.split('.').reduce((n, p) => (n << 8n) | BigInt(Number(p)), 0n);
  const [head = '', tail] = address.split('::');
  const groups = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').flatMap((g) => {
          if (g.includes('.')) {
            const v4 = bits(g);
            return [Number(v4 >> 16n), Number(v4 & 0xffffn)];
          }
          return [parseInt(g, 16)];
        });
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
  return all.reduce((n, g) => (n << 16n) | BigInt(g), 0n);
}

/** True when the two networks share an address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const width = a.family === 'ipv4' ? 32 : 128;
  const prefix = BigInt(Math.min(a.prefix, b.prefix));
  const shift = BigInt(width) - prefix;
  return bits(a.address) >> shift === bits(b.address) >> shift;
}

/**
 * Field errors for `view` among the `others` (every other view): a network that overlaps one of
 * another view's (a client would be in two views) names both. Networks inside one view may overlap.
 */
export function viewOverlaps(view: ViewBody, others: readonly ViewBody[]): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  view.cidrs.forEach((text, i) => {
    const mine = parseCidr(text);
    if ('error' in mine) return;
    for (const other of others) {
      if (other.name === view.name) continue;
      const hit = other.cidrs.find((o) => {
        const theirs = parseCidr(o);
        return !('error' in theirs) && cidrsOverlap(mine, theirs);
      });
      if (hit !== undefined) {
        issues.push({ path: `cidrs.${i}`, message: `${text} overlaps ${hit} of view "${other.name}": a client must be in one view at most` });
        return;
      }
    }
  });
  return issues;
}
