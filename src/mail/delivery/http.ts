// `http` providers: one POST per attempt to an e-mail API. The request is built by a pure function
// (httpRequest), the reply mapped by another (httpOutcome); HttpSender only does the I/O
// (node:http/https, to addresses destination.ts allows). The API key goes into one request header
// and nowhere else: not in logs, the delivery log, errors or API responses. The delivery log keeps
// the reply's status line, never its body.
//
// Formats (the recipients are always the envelope's: the queue splits messages per recipient
// domain, so a header's To/Cc may name people another message goes to):
//
//   format    request                                                  the message
//   raw       JSON {"from","to":[…],"raw":"<base64>"}                   as accepted (DKIM-signed)
//   mailgun   multipart/form-data: to (each recipient), message (file)   as accepted (DKIM-signed)
//   sendgrid  JSON v3: personalizations[0].to, from, reply_to, subject,  rebuilt by the provider from
//             content (text, html), attachments, headers (X-*, List-*,   its parts (mime.ts); our
//             In-Reply-To, References)                                   DKIM signature is dropped
//   postmark  JSON: From, To, ReplyTo, Subject, TextBody, HtmlBody,      the same
//             Headers, Attachments
//
// Replies (codes we make up carry null: no SMTP server spoke; the response starts with the RFC
// 3463 status a DSN reports):
//
// A transient reply's Retry-After (seconds or an HTTP date) delays the next attempt at least that
// long (policy.ts afterAttempt()); the delivery log's reply text shows it.
//
//   HTTP                       outcome      why
//   2xx                        delivered
//   401, 403                   transient    our API key or account: the operator fixes it, the mail waits (as EAUTH for smtp)
//   408, 429                   transient    the API asks us to slow down or come back
//   413                        permanent    too large for this provider (5.3.4)
//   other 4xx                  permanent    the API refused this message (5.0.0)
//   5xx, 1xx, 3xx              transient    the API failed, or redirects (not followed: check the url)
//   no reply (refused, DNS,    transient    the API is unreachable; after HTTP_TIMEOUT_MS
//     TLS, timeout)
//   host refused (loopback,    permanent    the relay does not go there without allow_private (5.3.5,
//     metadata, …)                          destination.ts)
import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupFunction } from 'node:net';
import addressparser from 'nodemailer/lib/addressparser';
import { destinationError, guardedLookup, isDestinationError, refusedHost, urlHost } from './destination.js';
import { decodeWords, header, parseMime, type ParsedMessage } from './mime.js';
import type { HttpAuth, HttpProviderConfig } from '../../model/mail.js';
import type { Outcome } from './smtp.js';

/** An API that has not answered after this is a transient failure (the lease, renewed, outlives it). */
export const HTTP_TIMEOUT_MS = 60_000;

export interface HttpEnvelope {
  from: string;
  to: readonly string[];
}

export interface HttpRequest {
  url: string;
  headers: Record<string, string>;
  /** JSON text, or the form for `mailgun` (fetch sets its multipart Content-Type). */
  body: string | FormData;
}

/** The request header carrying the credentials, if any. */
export function authHeader(auth: HttpAuth | undefined): Record<string, string> {
  if (!auth) return {};
  if (auth.scheme === 'bearer') return { authorization: `Bearer ${auth.token}` };
  if (auth.scheme === 'basic') return { authorization: `Basic ${Buffer.from(`${auth.user}:${auth.pass}`).toString('base64')}` };
  return { [auth.name.toLowerCase()]: auth.value };
}

/** Headers a rebuilt message keeps: the provider writes the rest (From, To, Date, Message-ID, MIME, DKIM) itself. */
const KEPT_HEADER = /^(?:x-.+|list-.+|in-reply-to|references)$/i;

interface Mailbox {
  name: string;
  address: string;
}

function mailbox(value: string | undefined): Mailbox | undefined {
  const first = value ? addressparser(value, { flatten: true })[0] : undefined;
  return first?.address ? { name: decodeWords(first.name), address: first.address } : undefined;
}

/** The parts a rebuilt message is made of, read once. */
function parts(envelope: HttpEnvelope, message: Buffer) {
  const mime: ParsedMessage = parseMime(message);
  const from = mailbox(header(mime.headers, 'from')) ?? { name: '', address: envelope.from };
  const replyTo = mailbox(header(mime.headers, 'reply-to'));
  const subject = decodeWords(header(mime.headers, 'subject') ?? '');
  const kept = mime.headers.filter(([name]) => KEPT_HEADER.test(name));
  return { mime, from, replyTo, subject, kept };
}

/** `"Name" <address>` (or the bare address), as Postmark takes addresses. */
const display = (m: Mailbox) => (m.name ? `"${m.name.replace(/["\\]/g, '\\$&')}" <${m.address}>` : m.address);

function sendgrid(envelope: HttpEnvelope, message: Buffer): string {
  const { mime, from, replyTo, subject, kept } = parts(envelope, message);
  const who = (m: Mailbox) => ({ email: m.address, ...(m.name ? { name: m.name } : {}) });
  // SendGrid wants a subject and at least one content of one character or more.
  const content = [
    ...(mime.text !== undefined || mime.html === undefined ? [{ type: 'text/plain', value: mime.text || ' ' }] : []),
    ...(mime.html !== undefined ? [{ type: 'text/html', value: mime.html }] : []),
  ];
  return JSON.stringify({
    personalizations: [{ to: envelope.to.map((email) => ({ email })) }],
    from: who(from),
    ...(replyTo ? { reply_to: who(replyTo) } : {}),
    subject: subject || '(no subject)',
    content,
    ...(mime.attachments.length
      ? {
          attachments: mime.attachments.map((a) => ({
            content: a.content.toString('base64'),
            filename: a.filename,
            type: a.contentType,
            disposition: a.inline ? 'inline' : 'attachment',
            ...(a.contentId ? { content_id: a.contentId } : {}),
          })),
        }
      : {}),
    ...(kept.length ? { headers: Object.fromEntries(kept) } : {}),
  });
}

function postmark(envelope: HttpEnvelope, message: Buffer): string {
  const { mime, from, replyTo, subject, kept } = parts(envelope, message);
  return JSON.stringify({
    From: display(from),
    To: envelope.to.join(', '),
    ...(replyTo ? { ReplyTo: display(replyTo) } : {}),
    Subject: subject,
    ...(mime.text !== undefined ? { TextBody: mime.text } : {}),
    ...(mime.html !== undefined ? { HtmlBody: mime.html } : {}),
    ...(kept.length ? { Headers: kept.map(([Name, Value]) => ({ Name, Value })) } : {}),
    ...(mime.attachments.length
      ? { Attachments: mime.attachments.map((a) => ({ Name: a.filename, Content: a.content.toString('base64'), ContentType: a.contentType, ...(a.contentId ? { ContentID: `cid:${a.contentId}` } : {}) })) }
      : {}),
  });
}

function mailgun(envelope: HttpEnvelope, message: Buffer): FormData {
  const form = new FormData();
  for (const rcpt of envelope.to) form.append('to', rcpt);
  form.append('message', new Blob([message], { type: 'message/rfc822' }), 'message.eml');
  return form;
}

/** The request for one attempt. Pure; does not mutate its inputs. */
export function httpRequest(config: HttpProviderConfig, envelope: HttpEnvelope, message: Buffer): HttpRequest {
  const headers = { accept: 'application/json', ...authHeader(config.auth) };
  const json = { ...headers, 'content-type': 'application/json' };
  switch (config.format) {
    case 'raw':
      return { url: config.url, headers: json, body: JSON.stringify({ from: envelope.from, to: [...envelope.to], raw: message.toString('base64') }) };
    case 'sendgrid':
      return { url: config.url, headers: json, body: sendgrid(envelope, message) };
    case 'postmark':
      return { url: config.url, headers: json, body: postmark(envelope, message) };
    case 'mailgun':
      return { url: config.url, headers, body: mailgun(envelope, message) };
  }
}

/** A Retry-After value (delay-seconds or an HTTP date, RFC 9110 10.2.3) as milliseconds from `nowMs`; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null | undefined, nowMs: number): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = /^[A-Za-z]{3}/.test(v) ? Date.parse(v) : NaN; // an HTTP date starts with the day's name
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/**
 * What an API's reply means (table above). `retryAfter`: its Retry-After header, if any. The
 * delivery log keeps the status line only, never the body: a reply is whatever the URL's server
 * says, and with allow_private that may be a service of this host.
 */
export function httpOutcome(status: number, statusText: string, retryAfter?: string | null, nowMs = Date.now()): Outcome {
  // eslint-disable-next-line no-control-regex -- control characters of a status text are replaced
  const reply = `HTTP ${status}${statusText ? ` ${statusText.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 100)}` : ''}`;
  const wait = retryAfterMs(retryAfter, nowMs);
  const as = (outcome: Outcome['outcome'], enhanced: string): Outcome => {
    const retry = outcome === 'transient' ? wait : undefined; // a refusal is final whatever it asks
    return {
      outcome,
      code: null,
      response: `${enhanced} ${reply}${retry === undefined ? '' : ` (Retry-After: ${Math.ceil(retry / 1000)} s)`}`.slice(0, 1000),
      ...(retry === undefined ? {} : { retry_after_ms: retry }),
    };
  };
  if (status >= 200 && status < 300) return { outcome: 'delivered', code: null, response: reply.slice(0, 1000) };
  if (status === 401 || status === 403) return as('transient', '4.7.0');
  if (status === 408 || status === 429) return as('transient', '4.4.5');
  if (status === 413) return as('permanent', '5.3.4');
  if (status >= 400 && status < 500) return as('permanent', '5.0.0');
  return as('transient', '4.0.0');
}

/** Why a request got no reply, without anything of the request itself (node:http errors carry a code). */
function noReply(e: unknown, url: string, timeoutMs: number): string {
  const err = e as Error & { code?: string; cause?: { name?: string } };
  if (err.name === 'TimeoutError' || err.cause?.name === 'TimeoutError') return `no reply from ${new URL(url).host} within ${timeoutMs / 1000} s`;
  return `${new URL(url).host}: ${err.code ?? err.message}`;
}

interface HttpReply {
  status: number;
  statusText: string;
  retryAfter: string | undefined;
}

export interface HttpSenderOptions {
  /** HTTP_TIMEOUT_MS unless given. */
  timeoutMs?: number;
  /** This node's own addresses: refused without allow_private (destination.ts). */
  own?: ReadonlySet<string>;
  /** DNS for API hosts (dns.lookup unless given). */
  lookup?: LookupFunction;
}

/**
 * Sends one attempt: node:http(s) rather than fetch, because only it lets the relay choose the
 * address the socket connects to (guardedLookup(), destination.ts). Keep-alive agents per scheme,
 * one pair for providers without allow_private and one for those with it, so a socket opened for
 * one is never reused for the other.
 */
export class HttpSender {
  private readonly timeoutMs: number;
  private readonly own: ReadonlySet<string>;
  /** Without allow_private: every address checked (destination.ts). */
  private readonly lookup: LookupFunction;
  /** With allow_private: as given (dns.lookup when undefined). */
  private readonly openLookup: LookupFunction | undefined;
  private readonly agents = {
    guarded: { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) },
    open: { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) },
  };

  constructor(opts: HttpSenderOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? HTTP_TIMEOUT_MS;
    this.own = opts.own ?? new Set();
    this.lookup = guardedLookup(this.own, opts.lookup);
    this.openLookup = opts.lookup;
  }

  /** Never throws. */
  async send(config: HttpProviderConfig, envelope: HttpEnvelope, message: Buffer): Promise<Outcome> {
    try {
      const why = config.allow_private ? undefined : refusedHost(urlHost(config.url), this.own);
      if (why) throw destinationError(`provider host ${urlHost(config.url)}: ${why}: refused (set allow_private on the provider to allow it)`);
      const req = httpRequest(config, envelope, message);
      const res = await this.post(config, req);
      return httpOutcome(res.status, res.statusText, res.retryAfter);
    } catch (e) {
      if (isDestinationError(e)) return { outcome: 'permanent', code: null, response: `5.3.5 ${e.message}`.slice(0, 1000) };
      return { outcome: 'transient', code: null, response: noReply(e, config.url, this.timeoutMs).slice(0, 1000) };
    }
  }

  /** One POST; resolves at the status line (the body is read and dropped), redirects not followed. */
  private async post(config: HttpProviderConfig, req: HttpRequest): Promise<HttpReply> {
    // FormData (mailgun) is encoded as fetch would: Response gives the bytes and the boundary.
    const encoded = typeof req.body === 'string' ? { body: Buffer.from(req.body), type: undefined } : await (async (r: Response) => ({ body: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type') ?? undefined }))(new Response(req.body));
    const url = new URL(req.url);
    const secure = url.protocol === 'https:';
    const agents = config.allow_private ? this.agents.open : this.agents.guarded;
    const headers = { ...req.headers, ...(encoded.type ? { 'content-type': encoded.type } : {}), 'content-length': String(encoded.body.length) };
    return new Promise<HttpReply>((resolve, reject) => {
      const options = { method: 'POST', headers, signal: AbortSignal.timeout(this.timeoutMs), ...(config.allow_private ? (this.openLookup ? { lookup: this.openLookup } : {}) : { lookup: this.lookup }) };
      const onReply = (res: http.IncomingMessage) => {
        res.resume();
        res.on('error', () => undefined); // the body is not ours to keep; a reset after the status line changes nothing
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined });
      };
      const r = secure ? https.request(url, { ...options, agent: agents.https }, onReply) : http.request(url, { ...options, agent: agents.http }, onReply);
      r.on('error', reject);
      r.end(encoded.body);
    });
  }

  /** Closes the kept-alive connections. */
  close(): void {
    for (const set of Object.values(this.agents)) for (const agent of Object.values(set)) agent.destroy();
  }
}
