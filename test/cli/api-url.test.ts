// The CLI's default API URL follows the settings `dnsproxy serve` listens on (issue: `docker exec …
// dnsproxy status` asked 127.0.0.1:8080 under --network host with other ports).
import { expect } from 'chai';
import { defaultApiUrl } from '../../src/cli/api-url.js';

describe('cli: default API URL', () => {
  const table: [NodeJS.ProcessEnv, string][] = [
    [{}, 'http://127.0.0.1:8080'],
    [{ DNSPROXY_API_PORT: '18080' }, 'http://127.0.0.1:18080'],
    [{ DNSPROXY_LISTEN_IP: '0.0.0.0', DNSPROXY_API_PORT: '8080' }, 'http://127.0.0.1:8080'],
    [{ DNSPROXY_LISTEN_IP: '100.64.0.5', DNSPROXY_API_PORT: '28080' }, 'http://100.64.0.5:28080'],
    [{ DNSPROXY_LISTEN_IP: '::' }, 'http://[::1]:8080'],
    [{ DNSPROXY_LISTEN_IP: 'fd7a:115c:a1e0::5', DNSPROXY_API_PORT: '9000' }, 'http://[fd7a:115c:a1e0::5]:9000'],
    [{ DNSPROXY_LISTEN_IP: '', DNSPROXY_API_PORT: ' ' }, 'http://127.0.0.1:8080'],
    [{ DNSPROXY_API_URL: 'http://10.0.0.1:1', DNSPROXY_LISTEN_IP: '100.64.0.5', DNSPROXY_API_PORT: '28080' }, 'http://10.0.0.1:1'],
  ];
  for (const [env, url] of table) it(`${JSON.stringify(env)} → ${url}`, () => expect(defaultApiUrl(env)).to.equal(url));
});
