// /api/v1/records: record sets of every type, keyed by owner name + type.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError, type ErrorCode } from '../errors.js';
import { recordFilter, recordInput, recordType } from '../model/record.js';
import { placeName, recordWrite } from '../model/write.js';
import type { ApiDeps } from './app.js';
import { assertRecordsNoClash, assertRecordsNotOwnEndpoint, dnsPlan, dryRunQuery, mutate, putRecord } from './mutate.js';
import { DRY_RUN, successes } from './openapi.js';
import { bindRecord, takeTargetDevice, targetOf, withDevice } from './devices.js';

const nameParam = z.object({ name: z.string().describe('Owner name, relative or absolute') });
const nameTypeParams = nameParam.extend({ type: recordType });

const DEVICE_DESC = 'With `target_device` (type A or AAAA, no `values`) the values are the tailnet device\'s addresses, and follow the device when it moves (GET /api/v1/devices); an unknown device is 400 naming target_device.';

export const recordRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    // Names in the path (the default) or the query: a bad one is labelled where it is.
    const at = (name: string, code: ErrorCode = 'invalid_params') => placeName(name, deps.zones, 'name', code).name;
    const tags = ['records'];

    app.get('/api/v1/records', { schema: { summary: 'List record sets (filter by zone, type, name)', response: successes({ 200: 'the record sets' }), tags, querystring: recordFilter } }, async (req) => {
      const q = req.query;
      // Stored sets that no longer parse are not served; they are listed apart (only when there are any).
      const { records, invalid } = deps.records.scan({
        zone: q.zone !== undefined ? placeName(q.zone, deps.zones, 'zone', 'invalid_query').zone : undefined,
        name: q.name !== undefined ? at(q.name, 'invalid_query') : undefined,
        type: q.type,
        service_name: q.service_name,
        proxied: q.proxied === undefined ? undefined : q.proxied === 'true',
      });
      return { records: deps.devices ? records.map((r) => withDevice(deps, r)) : records, ...(invalid.length ? { invalid } : {}) };
    });

    app.get('/api/v1/records/:name/:type', { schema: { summary: 'Get one record set', response: successes({ 200: 'the record set' }), tags, params: nameTypeParams } }, async (req) => {
      const record = deps.records.get(at(req.params.name), req.params.type);
      if (!record) throw new AppError('not_found', `no ${req.params.type} record at ${at(req.params.name)}`);
      return { record: withDevice(deps, record) };
    });

    app.post('/api/v1/records', { preValidation: takeTargetDevice(deps), schema: { summary: 'Create a record set', description: DEVICE_DESC, response: successes({ 201: 'created', 200: DRY_RUN }), tags, body: recordInput, querystring: dryRunQuery } }, async (req, reply) => {
      const write = recordWrite(req.body, deps.zones);
      const target = targetOf(req);
      const out = await mutate(deps, req, () => {
        if (deps.records.get(write.name, write.data.type))
          throw new AppError('conflict', `${write.name} ${write.data.type} already exists; use PUT /api/v1/records/${write.name}/${write.data.type} to replace it`);
        assertRecordsNotOwnEndpoint(deps, [write]);
        assertRecordsNoClash(deps, [write]);
        const put = putRecord(deps, write);
        if (target) bindRecord(deps, put.record, target);
        return { result: put, dns: dnsPlan([put]) };
      });
      return 'dry_run' in out ? out : reply.code(201).send({ record: withDevice(deps, out.record), ...(out.removed_route ? { removed_route: out.removed_route } : {}), ...(write.notes ? { warnings: write.notes } : {}) });
    });

    app.put('/api/v1/records/:name/:type', { preValidation: takeTargetDevice(deps), schema: { summary: 'Create or replace a record set', description: DEVICE_DESC, response: successes({ 201: 'created', 200: `replaced, or ${DRY_RUN}` }), tags, params: nameTypeParams, body: recordInput, querystring: dryRunQuery } }, async (req, reply) => {
      const write = recordWrite(req.body, deps.zones);
      const target = targetOf(req);
      if (write.name !== at(req.params.name) || write.data.type !== req.params.type)
        throw new AppError('invalid_body', undefined, [{ path: write.name !== at(req.params.name) ? 'name' : 'type', message: 'must match the URL' }]);
      const out = await mutate(deps, req, () => {
        assertRecordsNotOwnEndpoint(deps, [write]);
        assertRecordsNoClash(deps, [write]);
        const put = putRecord(deps, write);
        if (target) bindRecord(deps, put.record, target);
        return { result: put, dns: dnsPlan([put]) };
      });
      return 'dry_run' in out ? out : reply.code(out.created ? 201 : 200).send({ record: withDevice(deps, out.record), ...(out.removed_route ? { removed_route: out.removed_route } : {}), ...(write.notes ? { warnings: write.notes } : {}) });
    });

    app.delete('/api/v1/records/:name/:type', { schema: { summary: 'Delete a record set', response: successes({ 204: 'deleted', 200: DRY_RUN }), tags, params: nameTypeParams, querystring: dryRunQuery } }, async (req, reply) => {
      const out = await mutate(deps, req, () => {
        const removed = deps.records.remove(at(req.params.name), req.params.type);
        return { result: removed, dns: dnsPlan([], removed) };
      });
      return 'dry_run' in out ? out : reply.code(204).send();
    });

    app.delete('/api/v1/records/:name', { schema: { summary: 'Delete every record set at a name', response: successes({ 200: `the record sets removed, or ${DRY_RUN}` }), tags, params: nameParam, querystring: dryRunQuery, description: 'Removes every record set at the name' } }, async (req) => {
      const out = await mutate(deps, req, () => {
        const removed = deps.records.remove(at(req.params.name));
        return { result: removed, dns: dnsPlan([], removed) };
      });
      return 'dry_run' in out ? out : { removed: out };
    });
  };
