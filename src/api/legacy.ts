// The original service's endpoints, kept so existing scripts keep working.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { fieldError } from '../errors.js';
import { addRecordBody } from '../model/legacy.js';
import { ownerNameInput } from '../model/name.js';
import type { StoredRecord } from '../model/record.js';
import { legacyWrite, placeName } from '../model/write.js';
import type { ApiDeps } from './app.js';
import { assertRecordsNoClash, assertRecordsNotOwnEndpoint, dnsPlan, dryRunQuery, mutate, putRecord } from './mutate.js';
import { DRY_RUN, successes } from './openapi.js';
import { bindRecord, resolveTarget } from './devices.js';

/** An A record in the original service's list shape, with the full record beside it. */
function legacyView(r: StoredRecord) {
  const upstream = r.proxy?.upstreams[0];
  const m = upstream ? /^\[?(.*?)\]?:(\d+)$/.exec(upstream) : null;
  return {
    service_name: r.service_name,
    name: r.name.slice(0, -1),
    ip: r.type === 'A' ? r.values[0] : undefined,
    port: m ? Number(m[2]) : undefined,
    forward_to_ip: m?.[1],
    proxy_enabled: r.proxy?.enabled ?? false,
    record: r,
  };
}

export const legacyRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const tags = ['compat'];

    app.post(
      '/add-record',
      { schema: { summary: "Add or replace a service's A record (and proxy route)", response: successes({ 201: 'created', 200: `updated, or ${DRY_RUN}` }), tags, body: addRecordBody, querystring: dryRunQuery, description: 'Create or replace the A record (and proxy route) for a service; `removed_route` names the proxy route a replacement without proxy_enabled took away' } },
      async (req, reply) => {
        // target_device: the A record answers the device's IPv4 and the upstream defaults to the device (both follow it).
        const target = req.body.target_device !== undefined ? resolveTarget(deps, req.body.target_device, 'A') : undefined;
        const body = target ? { ...req.body, ip: target.device.ipv4[0], forward_to_ip: req.body.forward_to_ip ?? `device:${target.device.name}` } : req.body;
        const write = legacyWrite(body, deps.zones, deps.nodeIp);
        // The upstream is forward_to_ip:port (forward_to_ip defaults to ip, then to the node IP).
        const upstreamField = req.body.forward_to_ip !== undefined ? 'forward_to_ip' : req.body.ip !== undefined ? 'ip' : target ? 'target_device' : 'port';
        const out = await mutate(deps, req, () => {
          assertRecordsNotOwnEndpoint(deps, [write], () => upstreamField);
          assertRecordsNoClash(deps, [write]);
          const put = putRecord(deps, write);
          if (target) bindRecord(deps, put.record, target);
          return { result: put, dns: dnsPlan([put]) };
        });
        if ('dry_run' in out) return out;
        const device = deps.devices?.binder.deviceOf(out.record);
        return reply.code(out.created ? 201 : 200).send({ status: out.created ? 'created' : 'updated', ...legacyView(out.record), ...(device ? { device } : {}), ...(out.removed_route ? { removed_route: out.removed_route } : {}) });
      },
    );

    app.get('/list-records', { schema: { summary: 'List the A records (original format)', response: successes({ 200: 'the A records' }), tags } }, async () => {
      // One read of the bindings, not a query (two, before) per listed record: this list is read often.
      const bound = deps.devices ? new Set(deps.devices.bindings.list().map((b) => `${b.name} ${b.type}`)) : null;
      return {
        records: deps.records.list({ type: 'A' }).map((r) => {
          const device = bound?.has(`${r.name} ${r.type}`) ? deps.devices?.binder.deviceOf(r) : undefined;
          return { ...legacyView(r), ...(device ? { device } : {}) };
        }),
      };
    });

    // The name may come as JSON body {"name"} or as ?name=.
    app.delete(
      '/remove-record',
      { schema: { summary: 'Remove every record at a name', response: successes({ 200: `removed (the records removed), or ${DRY_RUN}` }), tags, querystring: dryRunQuery.extend({ name: ownerNameInput.optional() }), body: z.object({ name: ownerNameInput }).strict().nullish() } },
      async (req) => {
        const name = req.body?.name ?? req.query.name;
        if (!name) throw fieldError('name', 'is required (JSON body {"name": …} or ?name=)');
        const placed = placeName(name, deps.zones, 'name', req.body?.name !== undefined ? 'invalid_body' : 'invalid_query');
        const out = await mutate(deps, req, () => {
          const removed = deps.records.remove(placed.name);
          return { result: removed, dns: dnsPlan([], removed) };
        });
        return 'dry_run' in out ? out : { status: 'removed', removed: out };
      },
    );
  };
