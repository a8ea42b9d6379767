// The state file (`dnsproxy export`, `dnsproxy apply -f`, `serve --watch`): the whole desired state
// as one document. This module holds the envelope and the sections the model owns (zones, records,
// routes, certificates); sections of other domains (mail) are passed in by their owner
// (src/state), so the model imports nothing from them.
import { z } from 'zod';
import { recordInput } from './record.js';
import { routeBody, routeInput } from './route.js';
import { viewBody } from './view.js';
import { zoneSoa } from './zone.js';

/** The one state-file version this build reads and writes; another is a 400 naming `version`. */
export const STATE_VERSION = 1;

export const stateVersion = z.unknown().superRefine((v, ctx) => {
  if (v !== STATE_VERSION)
    ctx.addIssue({ code: 'custom', message: v === undefined ? `is required (this dnsproxy reads state files of version ${STATE_VERSION})` : `${JSON.stringify(v)} is not a state-file version this dnsproxy reads (it reads ${STATE_VERSION})` });
}).transform(() => STATE_VERSION as typeof STATE_VERSION);

/**
 * SOA fields of a served zone (the serial is ours to manage: never in the file). Exported as the
 * zone serves them; applied, fields that differ are stored as the zone's own, as a zone import
 * stores an imported file's (src/model/zone.ts).
 */
export const soaSettings = zoneSoa;
export type SoaSettings = z.infer<typeof soaSettings>;

export const zoneEntry = z.object({ name: z.string().min(1), soa: soaSettings.optional() }).strict();
export type ZoneEntry = z.infer<typeof zoneEntry>;

/** A split-horizon view in the file: the view API's body. Applied before the records that name it. */
export const viewEntry = viewBody;

/**
 * A record set in the file: the record API's body (new record fields come with it). A set bound to
 * a tailnet device has `target_device` instead of `values` (src/state resolves it before this
 * schema sees the entry, as the record API does).
 */
export const recordEntry = recordInput;

/** An explicit route in the file: the route API's body plus its id (`api:<label>`), which the file keeps. */
export const ROUTE_ID = /^api:[a-z0-9][a-z0-9._-]{0,62}$/;
export const routeEntry = z
  .object({ id: z.string().regex(ROUTE_ID, 'must be api:<id>, e.g. api:1a2b3c4d (letters, digits, . _ -)'), ...routeInput.shape })
  .strict()
  .superRefine(({ id: _id, ...route }, ctx) => {
    // The API's rules for hosts that get certificates (routeBody); its transforms are idempotent.
    const checked = routeBody.safeParse(route);
    if (!checked.success) for (const issue of checked.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  });
export type RouteEntry = z.infer<typeof routeEntry>;

/**
 * A certificate by reference: where its key and chain live, never the key itself. Nothing manages
 * certificates yet (Caddy gets them by itself), so a file that lists one is refused; the section
 * is here so its entries are typed once there is something to reference.
 */
export const CERTIFICATE_SOURCES = ['file', 'acme'] as const;
export const certificateRef = z.object({ name: z.string().min(1).max(253), source: z.enum(CERTIFICATE_SOURCES), ref: z.string().min(1).max(1024) }).strict();
export type CertificateRef = z.infer<typeof certificateRef>;

/** Largest number of entries of one section a file may hold (a 10,000-name zone fits many times). */
export const MAX_ENTRIES = 100_000;

const list = <T extends z.ZodType>(entry: T) => z.array(entry).max(MAX_ENTRIES).default([]);

/**
 * The state document: `version`, the model's sections, and `extra` sections their owners define
 * (`mail`). Every section may be left out (empty). Unknown keys are refused, naming them.
 */
export function stateDocument<S extends z.ZodRawShape>(extra: S) {
  return z
    .object({
      version: stateVersion,
      zones: list(zoneEntry),
      views: list(viewEntry),
      records: list(recordEntry),
      routes: list(routeEntry),
      certificates: list(certificateRef),
      ...extra,
    })
    .strict();
}

/** Keys a section's entries are written in first (in this order); the rest follow sorted. */
export const STATE_KEY_ORDER = ['version', 'zones', 'records', 'routes', 'certificates', 'mail', 'domains', 'accounts', 'providers', 'rules', 'id', 'name', 'domain', 'type', 'enabled', 'ttl', 'values', 'hosts', 'path', 'upstreams'] as const;
