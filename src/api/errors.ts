// Maps every error a request can meet onto the catalog in src/errors.ts. Client input never
// produces a 500: schema failures become 400 with field paths, framework 4xx keep their status.
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/index.js';

const CONTEXT_CODE: Record<string, ErrorCode> = { body: 'invalid_body', querystring: 'invalid_query', params: 'invalid_params' };

const FASTIFY_CODE: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
};

export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const code = CONTEXT_CODE[(err as { validationContext?: string }).validationContext ?? 'body'] ?? 'invalid_body';
    return new AppError(
      code,
      undefined,
      err.validation.map((v) => ({ path: v.instancePath.replace(/^\//, '').replace(/\//g, '.'), message: v.message ?? 'is invalid' })),
    );
  }
  const fe = err as Partial<FastifyError>;
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = FASTIFY_CODE[fe.code ?? ''] ?? (fe.statusCode === 404 ? 'not_found' : 'bad_request');
    return new AppError(code, fe.message);
  }
  return new AppError('internal');
}

export function installErrorHandling(app: FastifyInstance, log: Logger): void {
  app.setErrorHandler((err, req, reply) => {
    const e = toAppError(err);
    if (e.code === 'internal') log.error('request failed', { req_id: req.id, route: req.routeOptions.url, err: (err as Error).stack ?? String(err) });
    // A 400 from fastify for a bad-JSON body keeps our shape; the status of mapped framework errors is theirs.
    const status = e.code === 'bad_request' && (err as Partial<FastifyError>).statusCode ? (err as FastifyError).statusCode! : e.status;
    void reply.code(status).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new AppError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON());
  });
}
