// RDATA in presentation form (RFC 1035 §5.1 zone-file syntax) for the record types whose values
// are stored as text: DS, SSHFP, TLSA, SVCB, HTTPS, and any type in the RFC 3597 generic form.
// parseRdata() gives the wire RDATA and the canonical text that is stored, so equal data is
// stored and compared one way whatever the spelling. Pure; no imports from other domains.
import { isIP } from 'node:net';

/** Types stored as presentation text, with their codes. */
export const TEXT_TYPES = { DS: 43, SSHFP: 44, TLSA: 52, SVCB: 64, HTTPS: 65 } as const;
export type TextType = keyof typeof TEXT_TYPES;

/** Codes a generic `TYPEnnn` may not use: meta types and query types (RFC 6895 §3.1), OPT, SOA (the server owns it). */
const NOT_DATA = new Set([0, 6, 41, 128, 129, 249, 250, 251, 252, 253, 254, 255]);

export type Parsed = { wire: Buffer; text: string } | { error: string };

/** Splits presentation text into tokens: whitespace-separated, `"…"` quoted (quotes kept off), `\` escapes kept. */
function tokens(text: string): { raw: string; quoted: boolean }[] | { error: string } {
  const out: { raw: string; quoted: boolean }[] = [];
  for (let i = 0; i < text.length; ) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) return { error: 'has an unterminated quoted string' };
      out.push({ raw: text.slice(i + 1, j), quoted: true });
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < text.length && !/\s/.test(text[j] as string) && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    out.push({ raw: text.slice(i, j), quoted: false });
    i = j;
  }
  return out;
}

/** `\X` and `\DDD` decoded; literal characters as UTF-8. */
function unescape(raw: string): Buffer | null {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string;
    if (c !== '\\') {
      out.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const d = /^\d{3}/.exec(raw.slice(i + 1, i + 4));
    if (d) {
      if (Number(d[0]) > 255) return null;
      out.push(Number(d[0]));
      i += 3;
    } else if (i + 1 < raw.length) out.push(...Buffer.from(raw[++i] as string, 'utf8'));
    else return null;
  }
  return Buffer.from(out);
}

function uint(raw: string | undefined, bits: 8 | 16, what: string): number | string {
  if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) >= 2 ** bits) return `${what} must be a number 0-${2 ** bits - 1}${raw === undefined ? '' : ` (got ${JSON.stringify(raw)})`}`;
  return Number(raw);
}

function hexOf(parts: string[], what: string, allowEmpty = false): Buffer | string {
  const hex = parts.join('');
  if (!/^(?:[0-9a-f]{2})*$/i.test(hex)) return `${what} must be hex digits, an even number of them`;
  if (!hex && !allowEmpty) return `${what} is missing`;
  return Buffer.from(hex, 'hex');
}

const u8 = (n: number) => Buffer.from([n]);
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

/** An absolute lower-case name (or `.`) in wire form, or why not. Names in RDATA follow the same rules as targets. */
function nameWire(raw: string, what: string): { wire: Buffer; text: string } | string {
  const text = raw === '.' ? '.' : raw.toLowerCase().replace(/\.?$/, '.');
  if (text !== '.' && !/^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+$/.test(text)) return `${what} ${JSON.stringify(raw)} is not a domain name`;
  if (text.length > 254) return `${what} is longer than 253 characters`;
  if (text === '.') return { wire: Buffer.from([0]), text };
  const parts = text.slice(0, -1).split('.');
  return { wire: Buffer.concat([...parts.map((l) => Buffer.concat([u8(l.length), Buffer.from(l, 'latin1')])), u8(0)]), text };
}

/** RFC 3597 §5: `\# <length> <hex>`. */
function generic(toks: string[]): Parsed {
  if (toks[0] !== '\\#') return { error: 'must be in the generic form \\# <length> <hex> (RFC 3597)' };
  const len = toks[1];
  if (len === undefined || !/^\d+$/.test(len) || Number(len) > 65535) return { error: 'generic form: the length must be a number 0-65535' };
  const data = hexOf(toks.slice(2), 'generic form data', true);
  if (typeof data === 'string') return { error: data };
  if (data.length !== Number(len)) return { error: `generic form: the length says ${len} bytes, the data has ${data.length}` };
  return { wire: data, text: data.length ? `\\# ${data.length} ${data.toString('hex').toUpperCase()}` : '\\# 0' };
}

const SVC_KEYS = ['mandatory', 'alpn', 'no-default-alpn', 'port', 'ipv4hint', 'ech', 'ipv6hint'] as const;

function svcKey(name: string): number | null {
  const i = (SVC_KEYS as readonly string[]).indexOf(name);
  if (i >= 0) return i;
  const m = /^key(\d{1,5})$/.exec(name);
  return m && Number(m[1]) < 65535 ? Number(m[1]) : null;
}
const svcKeyName = (k: number) => SVC_KEYS[k] ?? `key${k}`;

/** A comma-separated list where `\,` is a literal comma (RFC 9460 Appendix A.1). */
function commaList(value: Buffer): Buffer[] {
  const items: number[][] = [[]];
  for (let i = 0; i < value.length; i++) {
    const b = value[i] as number;
    if (b === 0x5c && i + 1 < value.length) (items[items.length - 1] as number[]).push(value[++i] as number);
    else if (b === 0x2c) items.push([]);
    else (items[items.length - 1] as number[]).push(b);
  }
  return items.map((x) => Buffer.from(x));
}

/** Text of a value for canonical output: printable ASCII kept, the rest `\DDD`, quotes and backslashes escaped. */
function shown(b: Buffer, commas = false): string {
  let s = '';
  for (const x of b) {
    if (x === 0x22 || x === 0x5c || (commas && x === 0x2c)) s += `\\${commas && x === 0x2c ? '\\' : ''}${String.fromCharCode(x)}`;
    else if (x > 0x20 && x < 0x7f) s += String.fromCharCode(x);
    else s += `\\${String(x).padStart(3, '0')}`;
  }
  return s;
}

/** SvcParams (RFC 9460 §2.2): parsed, checked, sorted by key; wire and canonical text. */
function svcParams(toks: { raw: string; quoted: boolean }[]): { wire: Buffer; text: string } | string {
  const params = new Map<number, { wire: Buffer; text: string }>();
  for (let i = 0; i < toks.length; i++) {
    const tok = toks[i] as { raw: string; quoted: boolean };
    const eq = tok.raw.indexOf('=');
    const name = (eq < 0 ? tok.raw : tok.raw.slice(0, eq)).toLowerCase();
    let rawValue = eq < 0 ? null : tok.raw.slice(eq + 1);
    // key="quoted value" arrives as `key=` then a quoted token.
    if (rawValue === '' && toks[i + 1]?.quoted) rawValue = (toks[++i] as { raw: string }).raw;
    const key = svcKey(name);
    if (key === null) return `unknown SvcParam key ${JSON.stringify(name)} (use keyNNNNN for others)`;
    if (params.has(key)) return `SvcParam ${name} is given twice`;
    const value = rawValue === null ? null : unescape(rawValue);
    if (rawValue !== null && value === null) return `SvcParam ${name} has a bad escape`;
    const p = svcParam(key, value);
    if (typeof p === 'string') return `SvcParam ${name}: ${p}`;
    params.set(key, p);
  }
  const keys = [...params.keys()].sort((a, b) => a - b);
  const mandatory = params.get(0);
  if (mandatory) {
    for (let i = 0; i < mandatory.wire.length; i += 2) {
      const k = mandatory.wire.readUInt16BE(i);
      if (k === 0) return 'mandatory may not list itself';
      if (!params.has(k)) return `mandatory lists ${svcKeyName(k)}, which is not given`;
    }
  }
  const wire = Buffer.concat(keys.flatMap((k) => [u16(k), u16((params.get(k) as { wire: Buffer }).wire.length), (params.get(k) as { wire: Buffer }).wire]));
  return { wire, text: keys.map((k) => (params.get(k) as { text: string }).text).join(' ') };
}

function svcParam(key: number, value: Buffer | null): { wire: Buffer; text: string } | string {
  const name = svcKeyName(key);
  const need = () => (value === null || value.length === 0 ? 'needs a value' : null);
  switch (key) {
    case 0: {
      if (need()) return need() as string;
      const keys: number[] = [];
      for (const item of (value as Buffer).toString('latin1').split(',')) {
        const k = svcKey(item.toLowerCase());
        if (k === null) return `unknown key ${JSON.stringify(item)}`;
        if (keys.includes(k)) return `lists ${item} twice`;
        keys.push(k);
      }
      keys.sort((a, b) => a - b);
      return { wire: Buffer.concat(keys.map(u16)), text: `${name}=${keys.map(svcKeyName).join(',')}` };
    }
    case 1: {
      if (need()) return need() as string;
      const ids = commaList(value as Buffer);
      if (ids.some((id) => id.length === 0 || id.length > 255)) return 'each alpn-id holds 1-255 bytes';
      return { wire: Buffer.concat(ids.flatMap((id) => [u8(id.length), id])), text: `${name}="${ids.map((id) => shown(id, true)).join(',')}"` };
    }
    case 2:
      if (value !== null && value.length) return 'takes no value';
      return { wire: Buffer.alloc(0), text: name };
    case 3: {
      const port = uint(value?.toString('latin1'), 16, 'the port');
      return typeof port === 'string' ? port : { wire: u16(port), text: `${name}=${port}` };
    }
    case 4:
    case 6: {
      if (need()) return need() as string;
      const family = key === 4 ? 4 : 6;
      const addrs = (value as Buffer).toString('latin1').split(',');
      const bad = addrs.find((a) => isIP(a) !== family || a.includes('%'));
      if (bad !== undefined) return `${JSON.stringify(bad)} is not an IPv${family} address`;
      return { wire: Buffer.concat(addrs.map((a) => ipBytes(a))), text: `${name}=${addrs.map(ipText).join(',')}` };
    }
    case 5: {
      if (need()) return need() as string;
      const b64 = (value as Buffer).toString('latin1');
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return 'must be base64';
      const bytes = Buffer.from(b64, 'base64');
      return { wire: bytes, text: `${name}=${bytes.toString('base64')}` };
    }
    default: {
      const bytes = value ?? Buffer.alloc(0);
      return { wire: bytes, text: value === null ? name : `${name}="${shown(bytes)}"` };
    }
  }
}

/** The canonical IPv6 text (RFC 5952 as the WHATWG URL parser writes it), so `2001:DB8:0::77` and `2001:db8::77` are one value. */
export function canonicalIpv6(a: string): string {
  return new URL(`http://[${a}]/`).hostname.slice(1, -1);
}

function ipBytes(a: string): Buffer {
  if (isIP(a) === 4) return Buffer.from(a.split('.').map(Number));
  const canon = canonicalIpv6(a);
  const [head = '', tail = ''] = canon.includes('::') ? canon.split('::') : [canon, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const all = canon.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.concat(all.map((g) => u16(Number.parseInt(g, 16))));
}

const ipText = (a: string): string => (isIP(a) === 4 ? a : canonicalIpv6(a));

/**
 * Parses `text` (presentation RDATA) for `type` (a TEXT_TYPES name or `TYPEnnn`). Every type also
 * takes the RFC 3597 generic form; a known type given that way is stored in it.
 */
export function parseRdata(type: string, text: string): Parsed {
  const toks = tokens(text);
  if ('error' in toks) return toks;
  const raw = toks.map((t) => t.raw);
  if (raw[0] === '\\#' && !toks[0]?.quoted) return generic(raw);
  if (/^TYPE\d+$/.test(type)) return generic(raw);
  const fail = (error: string): Parsed => ({ error });
  const nums = (spec: [8 | 16, string][]): number[] | string => {
    const out: number[] = [];
    for (const [i, [bits, what]] of spec.entries()) {
      const n = uint(raw[i], bits, what);
      if (typeof n === 'string') return n;
      out.push(n);
    }
    return out;
  };
  switch (type) {
    case 'DS': {
      const n = nums([
        [16, 'the key tag'],
        [8, 'the algorithm'],
        [8, 'the digest type'],
      ]);
      if (typeof n === 'string') return fail(n);
      const digest = hexOf(raw.slice(3), 'the digest');
      if (typeof digest === 'string') return fail(digest);
      const [tag = 0, alg = 0, dt = 0] = n;
      return { wire: Buffer.concat([u16(tag), u8(alg), u8(dt), digest]), text: `${tag} ${alg} ${dt} ${digest.toString('hex').toUpperCase()}` };
    }
    case 'SSHFP':
    case 'TLSA': {
      const spec: [8 | 16, string][] = type === 'SSHFP' ? [[8, 'the algorithm'], [8, 'the fingerprint type']] : [[8, 'the certificate usage'], [8, 'the selector'], [8, 'the matching type']];
      const n = nums(spec);
      if (typeof n === 'string') return fail(n);
      const data = hexOf(raw.slice(spec.length), type === 'SSHFP' ? 'the fingerprint' : 'the certificate association data');
      if (typeof data === 'string') return fail(data);
      return { wire: Buffer.concat([...n.map(u8), data]), text: `${n.join(' ')} ${data.toString('hex').toUpperCase()}` };
    }
    case 'SVCB':
    case 'HTTPS': {
      const prio = uint(raw[0], 16, 'the priority');
      if (typeof prio === 'string') return fail(prio);
      if (raw[1] === undefined) return fail('the target name is missing');
      const target = nameWire(raw[1], 'the target');
      if (typeof target === 'string') return fail(target);
      const params = svcParams(toks.slice(2));
      if (typeof params === 'string') return fail(params);
      if (prio === 0 && params.wire.length) return fail('AliasMode (priority 0) takes no SvcParams (RFC 9460 §2.4.2)');
      return { wire: Buffer.concat([u16(prio), target.wire, params.wire]), text: [String(prio), target.text, params.text].filter(Boolean).join(' ') };
    }
    default:
      return fail(`${type} is not a record type stored as text`);
  }
}

/** Why `type` (upper-case) cannot be a generic `TYPEnnn`, or null. `named` lists the codes we spell by name. */
export function genericTypeProblem(type: string, named: ReadonlyMap<number, string>): string | null {
  const m = /^TYPE(\d{1,5})$/.exec(type);
  const code = m ? Number(m[1]) : NaN;
  if (!m || code > 65535) return 'must be a record type name or TYPE1-TYPE65535 (RFC 3597)';
  const name = named.get(code);
  if (name) return `TYPE${code} is ${name}: use the name`;
  if (NOT_DATA.has(code)) return `TYPE${code} is not a data type (meta, query or SOA type)`;
  return null;
}
