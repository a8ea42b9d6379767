// A small MIME reader for the `http` formats that rebuild a message from its parts (SendGrid,
// Postmark; src/mail/delivery/http.ts): the top-level headers, the first text/plain and text/html bodies
// that are not attachments, and everything else as attachments. Pure; never throws: a part it
// cannot read is passed on as an attachment of its own bytes.
//
//   part                                                  becomes
//   multipart/* (any subtype)                             its parts, in order (nested up to MAX_DEPTH)
//   text/plain or text/html, first of its kind, no        text / html, decoded by its charset, LF line ends
//     filename, not `Content-Disposition: attachment`
//   anything else (images, PDFs, message/rfc822, a        an attachment: filename (RFC 2047 / 2231
//     second text part, an attached text file)              decoded) or part-N.<ext>, type, bytes,
//                                                           Content-ID, inline or not
import { detectExtension, parseHeaderValue } from 'nodemailer/lib/mime-funcs';

/** Multipart nesting followed; deeper parts are passed on whole as attachments (a message bomb gets no deeper). */
export const MAX_DEPTH = 16;

export interface MimeAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
  /** Without the angle brackets. */
  contentId?: string;
  inline: boolean;
}

export interface ParsedMessage {
  /** Top-level headers, unfolded, in order, names as written, values as written (not decoded). */
  headers: [string, string][];
  text?: string;
  html?: string;
  attachments: MimeAttachment[];
}

/** The first value of header `name` (case-insensitive), unfolded, as written. */
export function header(headers: readonly [string, string][], name: string): string | undefined {
  const n = name.toLowerCase();
  return headers.find(([k]) => k.toLowerCase() === n)?.[1];
}

/** Headers and body of an entity; bytes kept 1:1 as latin1 characters. */
function entity(raw: string): { headers: [string, string][]; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : '';
  const headers: [string, string][] = [];
  for (const line of head.split(/\r?\n/)) {
    const last = headers.at(-1);
    if (/^[ \t]/.test(line) && last) last[1] += ` ${line.trim()}`;
    else {
      const colon = line.indexOf(':');
      if (colon > 0) headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
  }
  // Header text may be UTF-8 (RFC 6532): decode names and values from their bytes.
  return { headers: headers.map(([k, v]) => [utf8(k), utf8(v)]), body };
}

const utf8 = (latin1: string) => Buffer.from(latin1, 'latin1').toString('utf8');

/** The parts of a multipart body (latin1), between `--boundary` lines, up to `--boundary--`. */
function splitParts(body: string, boundary: string): string[] {
  const delimiter = `--${boundary}`;
  const parts: string[] = [];
  let current: string[] | null = null;
  for (const line of body.split(/\r?\n/)) {
    const bare = line.trimEnd();
    if (bare === delimiter || bare === `${delimiter}--`) {
      if (current) parts.push(current.join('\r\n'));
      if (bare !== delimiter) return parts;
      current = [];
    } else current?.push(line);
  }
  if (current) parts.push(current.join('\r\n')); // no closing delimiter: take what is there
  return parts;
}

/** Content-Transfer-Encoding undone: base64, quoted-printable, else the bytes as they are. */
function decodeBody(body: string, encoding: string): Buffer {
  const e = encoding.trim().toLowerCase();
  if (e === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (e === 'quoted-printable')
    return Buffer.from(
      body.replace(/[ \t]+(?=\r?\n)/g, '').replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
      'latin1',
    );
  return Buffer.from(body, 'latin1');
}

/** Bytes as text in `charset` (UTF-8 when unknown). */
function decodeText(bytes: Buffer, charset: string | undefined): string {
  try {
    return new TextDecoder(charset?.trim() || 'utf-8').decode(bytes);
  } catch {
    return bytes.toString('utf8');
  }
}

/**
 * RFC 2047 encoded words decoded (`=?utf-8?B?…?=`, `=?iso-8859-1?Q?…?=`); whitespace between two
 * encoded words goes, and adjacent words of one charset are decoded together (a character may be
 * split across them). Anything malformed stays as written.
 */
export function decodeWords(value: string): string {
  const word = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
  let out = '';
  let last = 0;
  let pending: { charset: string; bytes: Buffer[] } | null = null;
  const flush = () => {
    if (pending) out += decodeText(Buffer.concat(pending.bytes), pending.charset);
    pending = null;
  };
  for (let m; (m = word.exec(value)); ) {
    const between = value.slice(last, m.index);
    const charset = m[1]!.split('*')[0]!.toLowerCase();
    const text = m[3]!;
    const bytes =
      m[2]!.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    if (!(pending && /^\s*$/.test(between) && pending.charset === charset)) {
      const gap = pending && /^\s*$/.test(between) ? '' : between;
      flush();
      out += gap;
      pending = { charset, bytes: [] };
    }
    pending.bytes.push(bytes);
    last = m.index + m[0].length;
  }
  flush();
  return out + value.slice(last);
}

/** A header value with parameters (Content-Type, Content-Disposition); RFC 2231 parameters decoded. */
function structured(value: string | undefined): { value: string; params: Record<string, string> } {
  const parsed = parseHeaderValue(value ?? '', { stripComments: true });
  return { value: parsed.value.trim().toLowerCase(), params: Object.fromEntries(Object.entries(parsed.params).map(([k, v]) => [k, decodeWords(v)])) };
}

/** Text bodies with LF line ends, as JSON APIs expect them (the wire form is CRLF). */
const lf = (s: string) => s.replace(/\r\n/g, '\n');

const EXTENSIONS: Record<string, string> = { 'text/plain': 'txt', 'text/html': 'html', 'message/rfc822': 'eml' };

function walk(raw: string, out: ParsedMessage, depth: number): void {
  const { headers, body } = entity(raw);
  const type = structured(header(headers, 'content-type'));
  const contentType = type.value || 'text/plain';
  if (contentType.startsWith('multipart/') && type.params.boundary && depth < MAX_DEPTH) {
    for (const part of splitParts(body, type.params.boundary)) walk(part, out, depth + 1);
    return;
  }
  const disposition = structured(header(headers, 'content-disposition'));
  const content = decodeBody(body, header(headers, 'content-transfer-encoding') ?? '7bit');
  const filename = disposition.params.filename ?? type.params.name ?? '';
  const attached = disposition.value === 'attachment' || filename !== '';
  if (!attached && contentType === 'text/plain' && out.text === undefined) out.text = lf(decodeText(content, type.params.charset));
  else if (!attached && contentType === 'text/html' && out.html === undefined) out.html = lf(decodeText(content, type.params.charset));
  else {
    const contentId = header(headers, 'content-id')?.replace(/^<|>$/g, '');
    out.attachments.push({
      filename: filename || `part-${out.attachments.length + 1}.${EXTENSIONS[contentType] ?? detectExtension(contentType)}`,
      contentType,
      content,
      ...(contentId ? { contentId } : {}),
      inline: disposition.value === 'inline' || (disposition.value === '' && contentId !== undefined),
    });
  }
}

/** Reads a raw RFC 5322 message. Does not mutate `raw`. */
export function parseMime(raw: Buffer): ParsedMessage {
  const text = raw.toString('latin1');
  const out: ParsedMessage = { headers: entity(text).headers, attachments: [] };
  walk(text, out, 0);
  return out;
}
