// Zone export: served records → RFC 1035 master-file text, laid out by templates/zone.hbs.
// Pure apart from reading the template once; the output passes `named-checkzone <zone> <file>`.
import { isIP } from 'node:net';
import { recordTypeProblem, txtStrings, txtValue, type TxtValue } from '../model/record.js';
import { parseRdata } from '../model/rdata.js';
import { inZone, nameProblem } from '../model/name.js';
import type { ServedRecord } from './soa.js';
import { lazyTemplate, type HelperDelegate } from '../templates.js';


// `../../templates` from src/dns (tsx) and from dist/dns (compiled) alike.
const TEMPLATE_URL = new URL('../../templates/zone.hbs', import.meta.url);

/** Thrown when a record cannot be written safely; records from the store never trigger it. */
export class ZoneExportError extends Error {}

const fail = (what: string, value: unknown, problem: string): never => {
  throw new ZoneExportError(`cannot export ${what} ${JSON.stringify(value) ?? String(value)}: ${problem}`);
};

/**
 * One RFC 1035 quoted string. Printable ASCII stays literal except `"` and `\`, which are
 * backslash-escaped; every other byte (newline, control, UTF-8) becomes `\DDD`.
 */
export function quoteBytes(bytes: Uint8Array): string {
  let out = '"';
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += `\\${String(b).padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** A TXT value as space-separated quoted strings: a text cut every 255 bytes (`""` for empty), a list string by string. */
export function txtText(value: TxtValue): string {
  return txtStrings(value).map(quoteBytes).join(' ');
}

type HelperOptions = { data: { root: View } };

// Each helper returns zone-file-safe text or throws: the template prints nothing else.
function helpers(): Record<string, HelperDelegate> {
  const str = (what: string, v: unknown): string => (typeof v === 'string' ? v : fail(what, v, 'is not a string'));
  const absoluteName = (what: string, v: unknown, wildcard: boolean): string => {
    const s = str(what, v);
    const problem = nameProblem(s, { wildcard, ownerStars: wildcard }) ?? (s.endsWith('.') ? null : 'is not absolute (no trailing dot)');
    return problem ? fail(what, v, problem) : s;
  };
  return {
    name: (v: unknown) => absoluteName('name', v, false),
    target: (v: unknown) => (v === '.' ? '.' : absoluteName('name', v, false)),
    // Re-parsed, so only canonical RDATA text (no newline, quotes balanced) is written.
    rdata: (type: unknown, v: unknown) => {
      const parsed = parseRdata(str('record type', type), str(`${String(type)} value`, v));
      return 'error' in parsed ? fail(`${String(type)} value`, v, parsed.error) : parsed.text;
    },
    owner: (v: unknown, o: HelperOptions) => {
      const s = absoluteName('owner name', v, true);
      return inZone(s.toLowerCase(), o.data.root.zone) ? s : fail('owner name', v, `is outside the zone ${o.data.root.zone}`);
    },
    address: (v: unknown, family: number) => (isIP(str('address', v)) === family ? v : fail('address', v, `is not an IPv${family} address`)),
    text: (v: unknown) => {
      const parsed = txtValue.safeParse(v);
      return parsed.success ? txtText(parsed.data) : fail('TXT value', v, 'is not a text or a list of strings');
    },
    quoted: (v: unknown) => quoteBytes(Buffer.from(str('CAA value', v), 'utf8')),
    caaTag: (v: unknown) => (/^[a-z0-9]{1,15}$/i.test(str('CAA tag', v)) ? v : fail('CAA tag', v, 'must be 1-15 letters or digits')),
    uint: (v: unknown, max: number) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max ? String(v) : fail('number', v, `must be an integer 0-${max}`)),
    rrtype: (v: unknown) => (v === 'SOA' || (typeof v === 'string' && recordTypeProblem(v) === null) ? v : fail('record type', v, 'is not supported')),
    pad: (s: unknown, width: number) => String(s).padEnd(width),
  };
}

/** Types with a partial of their own in templates/zone.hbs; the others are presentation text. */
const PARTIALS = new Set(['SOA', 'A', 'AAAA', 'CNAME', 'NS', 'PTR', 'TXT', 'MX', 'SRV', 'CAA']);

interface View {
  zone: string;
  serial: unknown;
  ttl: number;
  ownerWidth: number;
  lines: { owner: string; ttl: number; type: string; partial: string; value: unknown }[];
}

const template = lazyTemplate<View>(TEMPLATE_URL, helpers);

/**
 * Renders `zone` (absolute, lower-case) as master-file text.
 * Caller guarantees: `records` are sorted as they should appear and start with the zone's SOA
 * (values: [Soa]), then apex NS, glue and user record sets; every owner lies inside `zone`.
 * Throws ZoneExportError when a value cannot be written safely (bad name, address or number).
 * Does not mutate `records`.
 */
export function exportZone(zone: string, records: ServedRecord[]): string {
  const soa = records[0];
  if (!soa || soa.type !== 'SOA' || soa.name !== zone || soa.values.length !== 1)
    throw new ZoneExportError(`cannot export ${zone}: the first record must be its SOA`);
  const lines = records.flatMap((r) => r.values.map((value) => ({ owner: r.name, ttl: r.ttl, type: r.type, partial: PARTIALS.has(r.type) ? r.type : 'RDATA', value })));
  const serial = (soa.values[0] as { serial?: unknown } | undefined)?.serial;
  return template({
    zone,
    serial,
    ttl: soa.ttl,
    ownerWidth: Math.max(...lines.map((l) => l.owner.length)),
    lines,
  });
}
