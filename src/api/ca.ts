// GET /api/v1/ca: the root (and current intermediate) certificate of Caddy's internal CA, the one
// `tls internal` names are issued from, so clients can be told to trust it (`dnsproxy ca export`).
// Read from Caddy through its admin API (owner-only socket), which only the controller reaches.
// Certificates are public: any valid token may read them; the CA's keys never leave Caddy.
import { X509Certificate } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { AppError } from '../errors.js';
import type { LocalCaInfo } from '../proxy/caddy.js';
import type { ApiDeps } from './app.js';
import { successes } from './openapi.js';

export interface CaView extends LocalCaInfo {
  /** SHA-256 of the root's DER, colon-separated hex (what browsers and openssl show). */
  root_fingerprint_sha256: string;
  root_not_after: string;
}

/** The API's view of Caddy's answer: its fields plus the root's fingerprint and expiry. */
export function caView(info: LocalCaInfo): CaView {
  const root = new X509Certificate(info.root_certificate);
  return { ...info, root_fingerprint_sha256: root.fingerprint256, root_not_after: new Date(root.validTo).toISOString() };
}

export const caRoutes =
  (deps: ApiDeps): FastifyPluginAsync =>
  async (app) => {
    app.get(
      '/api/v1/ca',
      {
        schema: {
          summary: "Caddy's internal CA (tls internal): root and intermediate certificate",
          response: successes({ 200: 'the CA: `root_certificate` (PEM) is what clients should trust' }),
          tags: ['certificates'],
          description:
            "The root certificate of the CA Caddy issues `tls internal` certificates from (valid ten years; the intermediate renews itself). Install it on the devices that should trust those sites (README, \"Trusting the internal CA\"). Read from Caddy's admin API: 503 while Caddy does not answer. Public certificates only.",
        },
      },
      async () => {
        if (!deps.localCa) throw new AppError('unavailable', "this controller has no Caddy admin API to read the internal CA from");
        return { ca: caView(await deps.localCa()) };
      },
    );
  };
