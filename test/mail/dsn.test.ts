// renderDsn(): golden DSNs (test/mail/golden/dsn-*.eml, LF line ends on disk; the DSN itself
// uses CRLF), and the status each provider reply becomes. UPDATE_GOLDEN=1 rewrites the files.
import { readFileSync, writeFileSync } from 'node:fs';
import { expect } from 'chai';
import { enhancedStatus, headerBlock, MAX_RETURNED_HEADERS, renderDsn, span, type DsnInput } from '../../src/mail/delivery/dsn.js';

const GOLDEN = new URL('./golden/', import.meta.url);
const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);
const ORIGINAL = Buffer.from(
  'Received: from app.example.com ([192.0.2.7])\r\n\tby relay.example.net (dnsproxy) with ESMTPSA id abc;\r\n\tTue, 02 Jan 2024 03:04:05 +0000\r\n' +
    'From: app@example.com\r\nTo: gone@example.org, müller@example.org\r\nSubject: quarterly\r\n report\r\nMessage-ID: <m1@example.com>\r\n\r\nthe body, never returned\r\n',
);

const cases: [string, DsnInput][] = [
  [
    'dsn-bounced',
    {
      reportingMta: 'relay.example.net',
      queueId: '0123456789abcdef',
      sender: 'app@example.com',
      arrivalMs: T0,
      nowMs: T0 + 2000,
      reason: 'bounced',
      attempts: 1,
      recipients: [
        { rcpt: 'gone@example.org', code: 550, response: '550 5.1.1 <gone@example.org>: Recipient address rejected:\r\n550 5.1.1 User unknown' },
        { rcpt: 'müller@example.org', code: 553, response: '553 mailbox name not allowed' },
      ],
      provider: 'isp',
      original: ORIGINAL,
      token: '00112233445566778899aabb',
    },
  ],
  [
    'dsn-failed',
    {
      reportingMta: 'relay.example.net',
      queueId: 'fedcba9876543210',
      sender: 'app@example.com',
      arrivalMs: T0,
      nowMs: T0 + 2 * 86_400_000 + 60_000,
      reason: 'failed',
      attempts: 52,
      recipients: [{ rcpt: 'far@example.org', code: null, response: 'connect ECONNREFUSED 192.0.2.25:587' }],
      provider: 'isp',
      original: ORIGINAL,
      token: 'ccddeeff0011223344556677',
    },
  ],
];

describe('mail: DSN rendering (RFC 3464)', () => {
  for (const [name, input] of cases)
    it(`${name}: matches test/mail/golden/${name}.eml, CRLF only, no line over 998 bytes, no body`, () => {
      const dsn = renderDsn(input).toString('utf8');
      expect(dsn).not.to.match(/[^\r]\n/);
      expect(dsn.split('\r\n').every((l) => Buffer.byteLength(l) <= 998)).to.equal(true);
      expect(dsn).not.to.include('never returned');
      const file = new URL(`${name}.eml`, GOLDEN);
      if (process.env.UPDATE_GOLDEN) writeFileSync(file, dsn.replace(/\r\n/g, '\n'));
      expect(dsn).to.equal(readFileSync(file, 'utf8').replace(/\n/g, '\r\n'));
    });

  const statuses: [number | null, string, string | null, string][] = [
    // code, reply, provider → Status
    [550, '550 5.1.1 no such user', 'isp', '5.1.1'],
    [550, '550-5.7.1 policy\r\n550 5.7.1 more', 'isp', '5.7.1'],
    [550, '550 mailbox unavailable', 'isp', '5.0.0'],
    [554, '554 6.0.0 not a status class', 'isp', '5.0.0'],
    [451, '451 try later', 'isp', '4.0.0'],
    [421, '421 4.7.0 too many connections', 'isp', '4.7.0'],
    [null, 'connect ECONNREFUSED', 'isp', '4.4.1'],
    [null, 'no routing rule matches', null, '4.3.5'],
  ];
  for (const [code, reply, provider, want] of statuses)
    it(`Status for ${JSON.stringify(reply)} (provider ${provider ?? 'none'}): ${want}`, () => expect(enhancedStatus(code, reply, provider)).to.equal(want));

  it('returns at most MAX_RETURNED_HEADERS of headers, cut at a line end', () => {
    const big = Buffer.from(`${Array.from({ length: 5000 }, (_, i) => `X-Filler-${i}: ${'x'.repeat(20)}`).join('\r\n')}\r\n\r\nbody`);
    const head = headerBlock(big);
    expect(head.length).to.be.at.most(MAX_RETURNED_HEADERS);
    expect(head).to.match(/^X-Filler-0: /).and.match(/x$/);
  });

  it('retry span in words', () => {
    expect([999, 45_000, 60_000, 7_200_000, 2 * 86_400_000 + 5].map(span)).to.deep.equal(['0 seconds', '45 seconds', '1 minute', '2 hours', '2 days']);
  });
});
