import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServedRecord } from '../../src/dns/soa.js';
import { exportZone, parseZoneFile, ZoneExportError } from '../../src/dns/zonefile.js';

// RFC 6761 home.arpa, RFC 5737 / RFC 3849 addresses, RFC 2606 example names.
const ZONE = 'home.arpa.';
const GOLDEN = fileURLToPath(new URL('./zonefile/home.arpa.zone', import.meta.url));
/** 300 bytes with quotes, backslashes and a `;`: crosses the 255-byte character-string limit. */
const LONG_TXT = `v=DKIM1; k=rsa; n="quoted \\ note"; p=${'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A'.repeat(10)}`.slice(0, 300);
const SOA = { mname: 'ns1.home.arpa.', rname: 'hostmaster.home.arpa.', serial: 2024060101, refresh: 3600, retry: 600, expire: 604800, minimum: 60 };

const served: ServedRecord[] = [
  { name: ZONE, type: 'SOA', ttl: 300, values: [SOA] },
  { name: ZONE, type: 'NS', ttl: 300, values: ['ns1.home.arpa.'] },
  { name: 'ns1.home.arpa.', type: 'A', ttl: 300, values: ['192.0.2.1'] },
  { name: ZONE, type: 'A', ttl: 300, values: ['192.0.2.10'] },
  { name: ZONE, type: 'MX', ttl: 3600, values: [{ preference: 10, exchange: 'mail.home.arpa.' }, { preference: 20, exchange: 'mx.example.net.' }] },
  { name: ZONE, type: 'TXT', ttl: 300, values: ['v=spf1 mx -all', 'say "hi"; then \\ leave'] },
  { name: ZONE, type: 'CAA', ttl: 300, values: [{ flags: 0, tag: 'issue', value: 'letsencrypt.org' }, { flags: 128, tag: 'iodef', value: 'mailto:"ops"@home.arpa' }] },
  { name: '*.home.arpa.', type: 'A', ttl: 60, values: ['192.0.2.20'] },
  { name: '_dmarc.home.arpa.', type: 'TXT', ttl: 300, values: ['v=DMARC1; p=none'] },
  { name: '_sip._tcp.home.arpa.', type: 'SRV', ttl: 300, values: [{ priority: 10, weight: 60, port: 5060, target: 'sip.home.arpa.' }] },
  { name: 'host.home.arpa.', type: 'PTR', ttl: 300, values: ['printer.example.'] },
  { name: 'mail.home.arpa.', type: 'A', ttl: 300, values: ['192.0.2.25'] },
  { name: 'mail.home.arpa.', type: 'AAAA', ttl: 300, values: ['2001:db8::25'] },
  { name: 'sel._domainkey.home.arpa.', type: 'TXT', ttl: 300, values: [LONG_TXT] },
  { name: 'sip.home.arpa.', type: 'A', ttl: 300, values: ['192.0.2.26'] },
  { name: 'sub.home.arpa.', type: 'NS', ttl: 300, values: ['ns.sub.home.arpa.'] },
  { name: 'ns.sub.home.arpa.', type: 'A', ttl: 300, values: ['192.0.2.53'] },
  { name: 'www.home.arpa.', type: 'CNAME', ttl: 300, values: ['mail.home.arpa.'] },
];

const hasNamedCheckzone = !spawnSync('named-checkzone', ['-v']).error;

describe('dns/zonefile export', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('matches the golden file (regenerate with UPDATE_GOLDEN=1)', () => {
    const text = exportZone(ZONE, served);
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, text);
    expect(text).to.equal(readFileSync(GOLDEN, 'utf8'));
  });

  it('passes named-checkzone', function () {
    if (!hasNamedCheckzone) this.skip();
    dir = mkdtempSync(join(tmpdir(), 'zonefile-'));
    const file = join(dir, 'home.arpa.zone');
    writeFileSync(file, exportZone(ZONE, served));
    const run = spawnSync('named-checkzone', ['-k', 'fail', '-i', 'full', ZONE, file], { encoding: 'utf8' });
    expect(run.stdout + run.stderr).to.match(/loaded serial 2024060101\s+OK/);
    expect(run.status).to.equal(0);
  });

  it('splits TXT values at 255 bytes and escapes quotes and backslashes', () => {
    const line = exportZone(ZONE, served).split('\n').find((l) => l.startsWith('sel._domainkey.'));
    const chunks = [...(line ?? '').matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => (m[1] ?? '').replace(/\\(.)/g, '$1'));
    expect(chunks.map((c) => c.length)).to.deep.equal([255, 45]);
    expect(chunks.join('')).to.equal(LONG_TXT);
    expect(line).to.include('n=\\"quoted \\\\ note\\"');
  });

  it('keeps hostile text inside its quotes: no new line, no extra record', () => {
    const hostile = 'x" ; evil.home.arpa. 60 IN A 192.0.2.66 ( $INCLUDE /etc/passwd';
    const text = exportZone(ZONE, [...served.slice(0, 3), { name: 't.home.arpa.', type: 'TXT', ttl: 60, values: [hostile, 'a\nb\u00e9'] }]);
    expect(text.split('\n')).to.have.length(exportZone(ZONE, served.slice(0, 3)).split('\n').length + 2);
    expect(text).to.include('"a\\010b\\195\\169"');
    const back = parseZoneFile(text, ZONE);
    expect(back.errors).to.deep.equal([]);
    expect(back.records.map((r) => `${r.name} ${r.type}`)).to.deep.equal(['home.arpa. NS', 'ns1.home.arpa. A', 't.home.arpa. TXT']);
    expect(back.records[2]?.values).to.deep.equal([hostile, 'a\nb\u00e9']);
  });

  const refused: [string, ServedRecord][] = [
    ['owner with a newline', { name: 'evil\nwww.home.arpa.', type: 'A', ttl: 60, values: ['192.0.2.1'] }],
    ['owner outside the zone', { name: 'www.example.org.', type: 'A', ttl: 60, values: ['192.0.2.1'] }],
    ['relative target', { name: 'a.home.arpa.', type: 'CNAME', ttl: 60, values: ['www'] }],
    ['target with a brace', { name: 'a.home.arpa.', type: 'NS', ttl: 60, values: ['ns{1}.home.arpa.'] }],
    ['bad address', { name: 'a.home.arpa.', type: 'A', ttl: 60, values: ['192.0.2.1\n@ A 192.0.2.2'] }],
    ['bad number', { name: 'a.home.arpa.', type: 'MX', ttl: 60, values: [{ preference: '10\n', exchange: 'mail.home.arpa.' }] }],
    ['missing field', { name: 'a.home.arpa.', type: 'SRV', ttl: 60, values: [{ priority: 1, weight: 1, target: 'sip.home.arpa.' }] }],
    ['bad CAA tag', { name: 'a.home.arpa.', type: 'CAA', ttl: 60, values: [{ flags: 0, tag: 'issue "x"', value: 'x' }] }],
  ];
  for (const [title, record] of refused) {
    it(`refuses to write ${title}`, () => {
      expect(() => exportZone(ZONE, [...served.slice(0, 3), record])).to.throw(ZoneExportError);
    });
  }

  it('requires the SOA first', () => {
    expect(() => exportZone(ZONE, served.slice(1))).to.throw(ZoneExportError, 'first record must be its SOA');
  });
});

describe('dns/zonefile round trip', () => {
  it('export → parse gives back every record set (values and TTLs) and the SOA', () => {
    const parsed = parseZoneFile(exportZone(ZONE, served), ZONE);
    expect(parsed.errors).to.deep.equal([]);
    expect(parsed.soa).to.deep.equal({ ...SOA, ttl: 300 });
    expect(parsed.records.map(({ name, type, ttl, values }) => ({ name, type, ttl, values }))).to.deep.equal(served.slice(1));
  });
});
