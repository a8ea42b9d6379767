// /api/v1/records: record sets of every type, keyed by owner name + type.
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { RECORD_TYPES, recordFilter, recordInput, type RecordType } from '../model/record.js';
import { placeName, recordWrite } from '../model/write.js';
import type { ApiDeps } from './app.js';
import { assertRecordsNoClash, dnsPlan, dryRunQuery, mutate, putRecord } from './mutate.js';

const nameParam = z.object({ name: z.string().describe('Owner name, relative or absolute') });
const nameTypeParams = nameParam.extend({ type: z.enum(RECORD_TYPES) });

export const recordRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (plain) => {
    const app = plain.withTypeProvider<ZodTypeProvider>();
    const at = (name: string) => placeName(name, deps.zones, 'name').name;
    const tags = ['records'];

    app.get('/api/v1/records', { schema: { tags, querystring: recordFilter } }, async (req) => {
      const q = req.query;
      return {
        records: deps.records.list({
          zone: q.zone !== undefined ? placeName(q.zone, deps.zones, 'zone').zone : undefined,
          name: q.name !== undefined ? at(q.name) : undefined,
          type: q.type,
          service_name: q.service_name,
          proxied: q.proxied === undefined ? undefined : q.proxied === 'true',
        }),
      };
    });

    app.get('/api/v1/records/:name/:type', { schema: { tags, params: nameTypeParams } }, async (req) => {
      const record = deps.records.get(at(req.params.name), req.params.type);
      if (!record) throw new AppError('not_found', `no ${req.params.type} record at ${at(req.params.name)}`);
      return { record };
    });

    app.post('/api/v1/records', { schema: { tags, body: recordInput, querystring: dryRunQuery } }, async (req, reply) => {
      const write = recordWrite(req.body, deps.zones);
      if (deps.records.get(write.name, write.data.type))
        throw new AppError('conflict', `${write.name} ${write.data.type} already exists; use PUT /api/v1/records/${write.name}/${write.data.type} to replace it`);
      assertRecordsNoClash(deps, [write]);
      const out = mutate(deps, req.query.dry_run === 'true', () => {
        const put = putRecord(deps, write);
        return { result: put, dns: dnsPlan([put]) };
      });
      return 'dry_run' in out ? out : reply.code(201).send({ record: out.record, ...(out.removed_route ? { removed_route: out.removed_route } : {}) });
    });

    app.put('/api/v1/records/:name/:type', { schema: { tags, params: nameTypeParams, body: recordInput, querystring: dryRunQuery } }, async (req, reply) => {
      const write = recordWrite(req.body, deps.zones);
      if (write.name !== at(req.params.name) || write.data.type !== req.params.type)
        throw new AppError('invalid_body', undefined, [{ path: write.name !== at(req.params.name) ? 'name' : 'type', message: 'must match the URL' }]);
      assertRecordsNoClash(deps, [write]);
      const out = mutate(deps, req.query.dry_run === 'true', () => {
        const put = putRecord(deps, write);
        return { result: put, dns: dnsPlan([put]) };
      });
      return 'dry_run' in out ? out : reply.code(out.created ? 201 : 200).send({ record: out.record, ...(out.removed_route ? { removed_route: out.removed_route } : {}) });
    });

    app.delete('/api/v1/records/:name/:type', { schema: { tags, params: nameTypeParams, querystring: dryRunQuery } }, async (req, reply) => {
      const out = mutate(deps, req.query.dry_run === 'true', () => {
        const removed = deps.records.remove(at(req.params.name), req.params.type as RecordType);
        return { result: removed, dns: dnsPlan([], removed) };
      });
      return 'dry_run' in out ? out : reply.code(204).send();
    });

    app.delete('/api/v1/records/:name', { schema: { tags, params: nameParam, querystring: dryRunQuery, description: 'Removes every record set at the name' } }, async (req) => {
      const out = mutate(deps, req.query.dry_run === 'true', () => {
        const removed = deps.records.remove(at(req.params.name));
        return { result: removed, dns: dnsPlan([], removed) };
      });
      return 'dry_run' in out ? out : { removed: out };
    });
  };
