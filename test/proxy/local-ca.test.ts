// CaddyAdmin.localCa(): Caddy's /pki/ca/local answer, and what an answer without a root becomes.
// A loopback HTTP server speaks the admin API's shape here; the real Caddy is test/e2e/ca.test.ts.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CaddyAdmin, CaddyUnavailable } from '../../src/proxy/caddy.js';

describe('proxy/caddy: localCa()', () => {
  let server: http.Server;
  let answer = '';
  const paths: string[] = [];
  before(async () => {
    server = http.createServer((req, res) => {
      paths.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const admin = () => new CaddyAdmin(`127.0.0.1:${(server.address() as AddressInfo).port}`);

  it('asks GET /pki/ca/local and returns the certificates as strings', async () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    answer = JSON.stringify({ id: 'local', name: 'Caddy Local Authority', root_common_name: 'Caddy Local Authority - 2026 ECC Root', intermediate_common_name: 'x', root_certificate: pem, intermediate_certificate: pem, extra: 1 });
    expect(await admin().localCa()).to.deep.equal({ id: 'local', name: 'Caddy Local Authority', root_common_name: 'Caddy Local Authority - 2026 ECC Root', intermediate_common_name: 'x', root_certificate: pem, intermediate_certificate: pem });
    expect(paths.at(-1)).to.equal('GET /pki/ca/local');
  });

  it('an answer without a PEM root is CaddyUnavailable naming the path, not a half-empty CA', async () => {
    answer = JSON.stringify({ id: 'local', root_certificate: 42 });
    const err = await admin().localCa().then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(CaddyUnavailable);
    expect((err as Error).message).to.equal('Caddy admin API unavailable: GET /pki/ca/local: no root certificate in the answer');
  });
});
