// `http` providers without sockets: the request each format makes from a real MIME message
// (built by nodemailer's composer, as a mail client would send it), what each HTTP status means
// for the message, and the MIME reader behind the rebuilt formats.
import { expect } from 'chai';
import MailComposer from 'nodemailer/lib/mail-composer';
import { authHeader, httpOutcome, httpRequest, retryAfterMs } from '../../src/mail/delivery/http.js';
import { decodeWords, parseMime } from '../../src/mail/delivery/mime.js';
import { providerConfig, publicConfig, type HttpProviderConfig } from '../../src/model/mail.js';

const envelope = { from: 'app@example.com', to: ['ann@example.org', 'bob@example.org'] };

async function composed(): Promise<Buffer> {
  return new MailComposer({
    from: '"Ünïcode Sender" <app@example.com>',
    to: 'ann@example.org',
    cc: 'carol@example.net',
    replyTo: 'help@example.com',
    subject: 'Grüße — quarterly report ✓',
    text: 'plain ✓\nsecond line',
    html: '<p>html ✓ <img src="cid:logo@example.com"></p>',
    headers: { 'X-Campaign': 'q3', 'List-Unsubscribe': '<mailto:unsubscribe@example.com>', 'X-Priority': '3' },
    attachments: [
      { filename: 'résumé.pdf', content: Buffer.from('%PDF-1.4 not really') },
      { filename: 'logo.png', content: Buffer.from([0x89, 0x50, 0x4e, 0x47]), cid: 'logo@example.com' },
    ],
  })
    .compile()
    .build();
}

const config = (format: HttpProviderConfig['format'], auth?: HttpProviderConfig['auth']): HttpProviderConfig => ({ type: 'http', format, url: 'https://api.example.net/send', ...(auth ? { auth } : {}) });

describe('mail http: requests per format', () => {
  it('sendgrid: envelope recipients, From/Reply-To/Subject decoded, text and html, attachments, kept headers, bearer key', async () => {
    const req = httpRequest(config('sendgrid', { scheme: 'bearer', token: 'SG.key-123' }), envelope, await composed());
    expect(req.headers).to.deep.equal({ accept: 'application/json', authorization: 'Bearer SG.key-123', 'content-type': 'application/json' });
    const body = JSON.parse(req.body as string);
    expect(body.personalizations).to.deep.equal([{ to: [{ email: 'ann@example.org' }, { email: 'bob@example.org' }] }]); // not the Cc: another message carries it
    expect(body.from).to.deep.equal({ email: 'app@example.com', name: 'Ünïcode Sender' });
    expect(body.reply_to).to.deep.equal({ email: 'help@example.com' });
    expect(body.subject).to.equal('Grüße — quarterly report ✓');
    expect(body.content).to.deep.equal([
      { type: 'text/plain', value: 'plain ✓\nsecond line' },
      { type: 'text/html', value: '<p>html ✓ <img src="cid:logo@example.com"></p>' },
    ]);
    expect(body.attachments).to.deep.equal([
      { content: Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString('base64'), filename: 'logo.png', type: 'image/png', disposition: 'inline', content_id: 'logo@example.com' },
      { content: Buffer.from('%PDF-1.4 not really').toString('base64'), filename: 'résumé.pdf', type: 'application/pdf', disposition: 'attachment' },
    ]);
    expect(body.headers).to.deep.equal({ 'X-Campaign': 'q3', 'List-Unsubscribe': '<mailto:unsubscribe@example.com>', 'X-Priority': '3' });
  });

  it('postmark: its field names, "Name" <address>, ContentID as cid:, key in X-Postmark-Server-Token', async () => {
    const req = httpRequest(config('postmark', { scheme: 'header', name: 'X-Postmark-Server-Token', value: 'pm-token' }), envelope, await composed());
    expect(req.headers['x-postmark-server-token']).to.equal('pm-token');
    expect(req.headers).not.to.have.property('authorization');
    const body = JSON.parse(req.body as string);
    expect(body).to.deep.include({ From: '"Ünïcode Sender" <app@example.com>', To: 'ann@example.org, bob@example.org', ReplyTo: 'help@example.com', Subject: 'Grüße — quarterly report ✓', TextBody: 'plain ✓\nsecond line' });
    expect(body.HtmlBody).to.include('cid:logo@example.com');
    expect(body.Headers).to.deep.equal([
      { Name: 'X-Campaign', Value: 'q3' },
      { Name: 'List-Unsubscribe', Value: '<mailto:unsubscribe@example.com>' },
      { Name: 'X-Priority', Value: '3' },
    ]);
    expect(body.Attachments.map((a: { Name: string; ContentType: string; ContentID?: string }) => [a.Name, a.ContentType, a.ContentID])).to.deep.equal([
      ['logo.png', 'image/png', 'cid:logo@example.com'],
      ['résumé.pdf', 'application/pdf', undefined],
    ]);
  });

  it('mailgun: a form with each recipient and the message as accepted, basic auth', async () => {
    const raw = await composed();
    const req = httpRequest(config('mailgun', { scheme: 'basic', user: 'api', pass: 'key-abc' }), envelope, raw);
    expect(req.headers).to.deep.equal({ accept: 'application/json', authorization: `Basic ${Buffer.from('api:key-abc').toString('base64')}` });
    const form = req.body as FormData;
    expect(form.getAll('to')).to.deep.equal(envelope.to);
    const file = form.get('message') as File;
    expect(file.name).to.equal('message.eml');
    expect(Buffer.from(await file.arrayBuffer()).equals(raw)).to.equal(true);
  });

  it('raw: the envelope and the message as accepted (base64), no auth unless configured', async () => {
    const raw = await composed();
    const req = httpRequest(config('raw'), envelope, raw);
    expect(req.headers).to.deep.equal({ accept: 'application/json', 'content-type': 'application/json' });
    expect(JSON.parse(req.body as string)).to.deep.equal({ from: 'app@example.com', to: envelope.to, raw: raw.toString('base64') });
  });

  it('a message without text or subject still makes a valid SendGrid request; a DSN (null sender) keeps its From header', () => {
    const raw = Buffer.from('From: Mail Delivery System <MAILER-DAEMON@example.com>\r\nContent-Type: text/html\r\n\r\n<p>only html</p>\r\n');
    const body = JSON.parse(httpRequest(config('sendgrid'), { from: '', to: ['app@example.com'] }, raw).body as string);
    expect(body.from).to.deep.equal({ email: 'MAILER-DAEMON@example.com', name: 'Mail Delivery System' });
    expect(body.subject).to.equal('(no subject)');
    expect(body.content).to.deep.equal([{ type: 'text/html', value: '<p>only html</p>\n' }]);
  });

  it('auth headers: bearer, basic, a header of its own, none', () => {
    expect(authHeader({ scheme: 'bearer', token: 't' })).to.deep.equal({ authorization: 'Bearer t' });
    expect(authHeader({ scheme: 'basic', user: 'api', pass: 'p' })).to.deep.equal({ authorization: 'Basic YXBpOnA=' });
    expect(authHeader({ scheme: 'header', name: 'X-Api-Key', value: 'v' })).to.deep.equal({ 'x-api-key': 'v' });
    expect(authHeader(undefined)).to.deep.equal({});
  });
});

describe('mail http: what a reply means', () => {
  // The status line only: a body (an API's error text, or whatever a URL's server says) is never kept.
  const table: [number, string, { outcome: string; response: string }][] = [
    [202, 'Accepted', { outcome: 'delivered', response: 'HTTP 202 Accepted' }],
    [200, 'OK', { outcome: 'delivered', response: 'HTTP 200 OK' }],
    [400, 'Bad Request', { outcome: 'permanent', response: '5.0.0 HTTP 400 Bad Request' }],
    [422, '', { outcome: 'permanent', response: '5.0.0 HTTP 422' }],
    [413, 'Payload Too Large', { outcome: 'permanent', response: '5.3.4 HTTP 413 Payload Too Large' }],
    [401, 'Unauthorized', { outcome: 'transient', response: '4.7.0 HTTP 401 Unauthorized' }],
    [403, 'Forbidden', { outcome: 'transient', response: '4.7.0 HTTP 403 Forbidden' }],
    [429, 'Too Many Requests', { outcome: 'transient', response: '4.4.5 HTTP 429 Too Many Requests' }],
    [408, 'Request Timeout', { outcome: 'transient', response: '4.4.5 HTTP 408 Request Timeout' }],
    [500, 'Internal Server Error', { outcome: 'transient', response: '4.0.0 HTTP 500 Internal Server Error' }],
    [503, 'Service Unavailable', { outcome: 'transient', response: '4.0.0 HTTP 503 Service Unavailable' }],
    [301, 'Moved Permanently', { outcome: 'transient', response: '4.0.0 HTTP 301 Moved Permanently' }],
  ];
  for (const [status, text, want] of table)
    it(`${status} → ${want.outcome}`, () => expect(httpOutcome(status, text)).to.deep.equal({ ...want, code: null }));

  it('Retry-After on a transient reply: seconds or an HTTP date, shown in the reply text; ignored on a permanent one or when unreadable', () => {
    const now = Date.parse('2026-11-23T12:00:00Z');
    expect(retryAfterMs('120', now)).to.equal(120_000);
    expect(retryAfterMs('Mon, 23 Nov 2026 12:05:00 GMT', now)).to.equal(300_000);
    expect(retryAfterMs('Mon, 23 Nov 2026 11:00:00 GMT', now), 'a date already past').to.equal(0);
    for (const bad of [null, undefined, '', 'soon', '-5', '1.5']) expect(retryAfterMs(bad, now), String(bad)).to.equal(undefined);
    expect(httpOutcome(429, 'Too Many Requests', '30', now)).to.deep.equal({ outcome: 'transient', code: null, response: '4.4.5 HTTP 429 Too Many Requests (Retry-After: 30 s)', retry_after_ms: 30_000 });
    expect(httpOutcome(503, 'Service Unavailable', 'Mon, 23 Nov 2026 13:00:00 GMT', now)).to.include({ outcome: 'transient', retry_after_ms: 3_600_000 });
    expect(httpOutcome(400, 'Bad Request', '30', now)).to.deep.equal({ outcome: 'permanent', code: null, response: '5.0.0 HTTP 400 Bad Request' });
    expect(httpOutcome(429, 'Too Many Requests', 'soon', now)).to.not.have.property('retry_after_ms');
  });
});

describe('mail http: provider config (schema) and what is shown of it', () => {
  it('valid configs parse; secrets are never shown', () => {
    const c = providerConfig.parse({ type: 'http', format: 'postmark', url: 'https://api.postmarkapp.com/email', auth: { scheme: 'header', name: 'X-Postmark-Server-Token', value: 'pm-secret' } });
    expect(JSON.stringify(publicConfig(c))).not.to.include('pm-secret');
    expect(publicConfig(c)).to.deep.equal({ type: 'http', format: 'postmark', url: 'https://api.postmarkapp.com/email', auth: { scheme: 'header', name: 'X-Postmark-Server-Token' } });
    expect(publicConfig(providerConfig.parse({ type: 'http', format: 'sendgrid', url: 'https://api.sendgrid.com/v3/mail/send', auth: { scheme: 'bearer', token: 'SG.x' } }))).to.deep.equal({
      type: 'http',
      format: 'sendgrid',
      url: 'https://api.sendgrid.com/v3/mail/send',
      auth: { scheme: 'bearer' },
    });
    expect(publicConfig(providerConfig.parse({ type: 'mx' }))).to.deep.equal({ type: 'mx', port: 25 });
  });

  const bad: [string, unknown, string[]][] = [
    ['unknown format', { type: 'http', format: 'ses', url: 'https://x.example' }, ['format']],
    ['not http(s)', { type: 'http', format: 'raw', url: 'ftp://x.example/' }, ['url']],
    ['credentials in the URL', { type: 'http', format: 'raw', url: 'https://api:key@x.example/' }, ['url']],
    ['basic without a user (a format with no default user: mailgun gets api, HTTP_AUTH_DEFAULTS)', { type: 'http', format: 'raw', url: 'https://x.example/', auth: { scheme: 'basic', pass: 'k' } }, ['auth.user']],
    ['a key with a line break (header injection)', { type: 'http', format: 'raw', url: 'https://x.example/', auth: { scheme: 'bearer', token: 'a\r\nX-Evil: 1' } }, ['auth.token']],
    ['mx port out of range', { type: 'mx', port: 70000 }, ['port']],
    ['mx with a host', { type: 'mx', host: 'mx.example.org' }, ['']],
  ];
  for (const [what, input, paths] of bad)
    it(`refused: ${what}`, () => {
      const r = providerConfig.safeParse(input);
      expect(r.success).to.equal(false);
      expect(r.error!.issues.map((i) => i.path.join('.'))).to.deep.equal(paths);
    });
});

describe('mail mime: the reader behind sendgrid/postmark', () => {
  it('encoded words: B and Q, adjacent words joined, charsets', () => {
    expect(decodeWords('=?ISO-8859-1?Q?Andr=E9?= Pirard')).to.equal('André Pirard');
    expect(decodeWords('=?UTF-8?B?4pyT?= done')).to.equal('✓ done');
    expect(decodeWords('=?UTF-8?Q?a?= =?UTF-8?Q?_b?=')).to.equal('a b');
    // One character split over two words of the same charset.
    expect(decodeWords('=?UTF-8?B?4g==?= =?UTF-8?B?nJM=?=')).to.equal('✓');
    expect(decodeWords('no words here =?bogus')).to.equal('no words here =?bogus');
  });

  it('a plain message: its body is the text; quoted-printable and latin-1 decoded', () => {
    const raw = Buffer.from('Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 soft=\r\nbreak\r\n');
    expect(parseMime(raw)).to.deep.include({ text: 'Café softbreak\n', attachments: [] });
  });

  it('no Content-Type at all: text/plain (RFC 2045 default)', () => {
    expect(parseMime(Buffer.from('Subject: x\r\n\r\nhello\r\n')).text).to.equal('hello\n');
  });

  it('an attached text file and a second text part are attachments; a nested message/rfc822 too', () => {
    const raw = Buffer.from(
      [
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain',
        '',
        'body',
        '--b1',
        'Content-Type: text/plain; name="notes.txt"',
        'Content-Disposition: attachment',
        '',
        'notes',
        '--b1',
        'Content-Type: text/plain',
        '',
        'second',
        '--b1',
        'Content-Type: message/rfc822',
        '',
        'Subject: inner',
        '',
        'inner body',
        '--b1--',
        '',
      ].join('\r\n'),
    );
    const p = parseMime(raw);
    expect(p.text).to.equal('body');
    expect(p.attachments.map((a) => [a.filename, a.contentType, a.content.toString()])).to.deep.equal([
      ['notes.txt', 'text/plain', 'notes'],
      ['part-2.txt', 'text/plain', 'second'],
      ['part-3.eml', 'message/rfc822', 'Subject: inner\r\n\r\ninner body'],
    ]);
  });

  it('a multipart without its closing delimiter keeps the parts it has', () => {
    const p = parseMime(Buffer.from('Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\ncut off'));
    expect(p.text).to.equal('cut off');
  });
});
