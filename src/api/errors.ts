// Maps every error a request can meet onto the catalog in src/errors.ts, so every answer that is
// not a success has the shape {"error":{"code","message","fields"}}: schema failures (400 with
// field paths, labelled by where the field is), framework errors (bad JSON, 413, 415, a bad or
// too-long URL, an unknown route or method), errors before routing (malformed HTTP, headers too
// large, timeouts) and requests that arrive while the server shuts down. Client input never
// produces a 500.
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/index.js';

const CONTEXT_CODE: Record<string, ErrorCode> = { body: 'invalid_body', querystring: 'invalid_query', params: 'invalid_params', headers: 'bad_request' };

const FASTIFY_CODE: Record<string, { code: ErrorCode; message?: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'unsupported_media_type' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'payload_too_large' },
  FST_ERR_BAD_URL: { code: 'bad_request', message: 'the URL holds an invalid percent-encoding' },
  FST_ERR_MAX_PARAM_LENGTH: { code: 'uri_too_long', message: 'a path segment of the URL is too long' },
};

/**
 * Longest path parameter: an owner name or a `record:<name>` route id (at most 260 characters)
 * still fits when percent-encoded; longer ones are 414 (Fastify's default of 100 refused valid names).
 */
export const MAX_PARAM_LENGTH = 1024;

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
  const known = FASTIFY_CODE[fe.code ?? ''];
  if (known) return new AppError(known.code, known.message ?? fe.message);
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) return new AppError(fe.statusCode === 404 ? 'not_found' : 'bad_request', fe.message);
  return new AppError('internal');
}

/** Registered routes as patterns, to tell an unknown path (404) from a known path with another method (405). */
function routeTable(app: FastifyInstance): (path: string) => string[] {
  const routes: { method: string; re: RegExp }[] = [];
  app.addHook('onRoute', (r) => {
    const re = new RegExp(`^${r.url.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}$`);
    for (const method of Array.isArray(r.method) ? r.method : [r.method]) routes.push({ method, re });
  });
  return (path) => [...new Set(routes.filter((r) => r.re.test(path)).map((r) => r.method))].sort();
}

/** Fastify server options that route framework errors through the catalog. */
export function errorOptions(log: Logger): Pick<FastifyServerOptions, 'routerOptions' | 'frameworkErrors' | 'clientErrorHandler' | 'return503OnClosing'> {
  return {
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      const e = toAppError(err);
      if (e.code === 'internal') log.error('request failed before routing', { err: err.stack ?? String(err) });
      void reply.code(e.status).send(e.toJSON());
    },
    // Before Fastify sees a request (malformed HTTP, headers over the size limit, a timeout): a raw answer in our shape.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const e =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? new AppError('headers_too_large', 'the request line and headers are too large')
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? new AppError('request_timeout', 'the request was not received in time')
            : new AppError('bad_request', 'the request is not valid HTTP');
      const body = JSON.stringify(e.toJSON());
      if (socket.writable)
        socket.write(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      socket.destroy(err);
    },
    // Fastify's own 503 while closing has its own shape; installErrorHandling() answers instead.
    return503OnClosing: false,
  };
}

export function installErrorHandling(app: FastifyInstance, log: Logger): void {
  const methodsFor = routeTable(app);
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (req, reply) => {
    if (!closing) return;
    void reply.header('connection', 'close');
    throw new AppError('unavailable', 'the server is shutting down; retry');
  });
  app.setErrorHandler((err, req, reply) => {
    const e = toAppError(err);
    if (e.code === 'internal') log.error('request failed', { req_id: req.id, route: req.routeOptions.url, err: (err as Error).stack ?? String(err) });
    // A framework 4xx we have no code of our own for keeps its status (e.g. 400 bad JSON, 411).
    const status = e.code === 'bad_request' && (err as Partial<FastifyError>).statusCode ? (err as FastifyError).statusCode! : e.status;
    void reply.code(status).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    const allowed = methodsFor(path);
    if (allowed.length) {
      void reply.code(405).header('allow', allowed.join(', ')).send(new AppError('method_not_allowed', `${req.method} is not allowed on ${path} (allowed: ${allowed.join(', ')})`).toJSON());
      return;
    }
    void reply.code(404).send(new AppError('not_found', `no route ${req.method} ${path}`).toJSON());
  });
}
