// An account's API key as a bearer token for the mail API: it reaches only the routes marked
// `config: { account: true }` and, there, only its own account (another account's things are 404,
// as if they did not exist). Which key is whose and its rate limit: src/mail/credentials/account-keys.ts
// and src/limit.ts; past the limit, 429 with Retry-After (auth.ts).
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';

/** 404 unless the request may see account `name`'s things (the admin token sees all). */
export function requireOwn(req: FastifyRequest, name: string, what = `no account ${name}`): void {
  if (req.mailAccount !== null && req.mailAccount !== name) throw new AppError('not_found', what);
}
