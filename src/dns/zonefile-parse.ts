// Zone import: master-file text (as users paste it) → record sets validated by `recordInput`.
import { absolute, inZone, nameProblem } from '../model/name.js';
import { CHARSTRING_BYTES, foldDuplicates, RECORD_TYPES, recordInput, recordTypeProblem, rrsetSizeProblem, type GenericType, type RecordInput, type RecordType, type TxtString } from '../model/record.js';
import type { Soa } from './soa.js';
import { decodeBytes, decodeText, lex, lineError, type Entry, type Token, type ZoneFileError } from './zonefile-lex.js';

/** Whether bytes are valid UTF-8 (then a TXT string is kept as text, else as hex). */
const utf8 = { test: (b: Buffer): boolean => Buffer.from(b.toString('utf8'), 'utf8').equals(b) };

export type { ZoneFileError } from './zonefile-lex.js';

export interface ParsedZoneFile {
  /** Valid record sets in order of first appearance; apex NS included (the caller decides). */
  records: RecordInput[];
  /** The file's SOA, if any. The server owns the SOA, so an import does not store it. */
  soa?: Soa;
  /** Every problem found, sorted by line. The caller must apply nothing when this is non-empty. */
  errors: ZoneFileError[];
  /** What was accepted with a change (duplicate records folded), sorted by line. */
  warnings: ZoneFileError[];
}

/** RFC 2181 §8: TTLs are 31-bit; SOA serial and timers are 32-bit unsigned. */
const MAX_TTL = 2 ** 31 - 1;
const MAX_U32 = 2 ** 32 - 1;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const CLASSES = new Set(['IN', 'CH', 'HS', 'CS', 'ANY', 'NONE']);
const SUPPORTED = [...RECORD_TYPES, 'SOA'] as const;
type ImportType = (typeof SUPPORTED)[number];

/** Seconds from `300`, `1h` or `1h30m` (BIND units s/m/h/d/w), or null when `raw` is not a duration. */
function duration(raw: string, max: number): number | null {
  if (!/^\d+$|^(?:\d+[smhdw])+$/i.test(raw)) return null;
  let total = 0;
  for (const m of raw.matchAll(/(\d+)([smhdw]?)/gi)) total += Number(m[1]) * (UNIT_SECONDS[(m[2] ?? '').toLowerCase()] ?? 1);
  return total <= max ? total : null;
}

/** `@` → origin; a name without a trailing dot is relative to origin. Lower-case, absolute. */
const resolve = (raw: string, origin: string): string => (raw === '@' ? origin : raw.endsWith('.') ? raw.toLowerCase() : `${raw}.${origin}`.toLowerCase());

interface Parse {
  zone: string;
  origin: string;
  /** `$TTL`, the default for records without a TTL (RFC 2308). */
  defaultTtl?: number;
  /** Last explicit TTL, the default when there is no `$TTL` (RFC 1035 §5.1). */
  lastTtl?: number;
  /** Previous owner for blank-owner lines; null after an invalid owner (its lines are skipped). */
  owner?: string | null;
  errors: ZoneFileError[];
  sets: Map<string, { line: number; name: string; type: RecordType; ttl?: number; values: unknown[]; lines: number[] }>;
  soa?: Soa & { line: number };
}

/**
 * Parses `text` against zone `origin`. Pure: no I/O, inputs untouched.
 * Lines with the same owner and type merge into one record set whose TTL is the first line's
 * (BIND does the same; RFC 2181 §5.2 says TTLs within a set must match, we do not pick the minimum).
 * A TXT line's character-strings are kept as given (RFC 1035 §3.3.14): one string is a text value,
 * several a list; export writes them back the same way, so export → parse gives the same value.
 * Not supported, each reported as a line error: `$INCLUDE`, `$GENERATE`, classes other than IN,
 * types other than A AAAA CNAME TXT MX SRV PTR CAA NS SOA, owner names outside `origin`.
 */
export function parseZoneFile(text: string, origin: string): ParsedZoneFile {
  const zone = absolute(origin);
  const lexed = lex(text.replace(/^\uFEFF/, '')); // editors on Windows prepend a byte-order mark
  const p: Parse = { zone, origin: zone, errors: lexed.errors, sets: new Map() };
  for (const entry of lexed.entries) {
    const first = entry.tokens[0];
    if (!entry.blankOwner && first && !first.quoted && first.raw.startsWith('$')) directive(p, entry, first);
    else record(p, entry);
  }
  const records: RecordInput[] = [];
  const warnings: ZoneFileError[] = [];
  for (const set of p.sets.values()) {
    const { line, lines, ...input } = set;
    const parsed = recordInput.safeParse(input);
    const tooBig = parsed.success ? rrsetSizeProblem(set.name, parsed.data) : null;
    if (tooBig) p.errors.push(lineError(line, `${set.type}: values: ${tooBig}`));
    else if (parsed.success) {
      const folded = foldDuplicates(parsed.data);
      for (const d of folded.dropped) warnings.push(lineError(lines[d.index] ?? line, `${set.type}: repeats the record on line ${lines[d.first] ?? line} (the same data in canonical form): served once (RFC 2181 §5)`));
      records.push(folded.data);
    }
    for (const issue of parsed.error?.issues ?? []) {
      const [field, index] = issue.path;
      const at = field === 'values' && typeof index === 'number' ? (lines[index] ?? line) : line;
      const got = issue.path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined), input);
      const shown = typeof got === 'string' || typeof got === 'number' ? ` (got ${JSON.stringify(got)})` : '';
      p.errors.push(lineError(at, `${set.type}: ${issue.path.map(String).join('.') || '(record)'}: ${issue.message}${shown}`));
    }
  }
  checkCnames(p);
  const errors = p.errors.sort((a, b) => a.line - b.line);
  warnings.sort((a, b) => a.line - b.line);
  if (!p.soa) return { records, errors, warnings };
  const { line: _line, ...soa } = p.soa;
  return { records, soa, errors, warnings };
}

function directive(p: Parse, entry: Entry, first: Token): void {
  const name = first.raw.toUpperCase();
  const args = entry.tokens.slice(1);
  const fail = (message: string) => p.errors.push(lineError(entry.line, message));
  const arg = args[0];
  if (name === '$INCLUDE' || name === '$GENERATE') return void fail(`${name} is not supported: paste the records themselves`);
  if (name !== '$ORIGIN' && name !== '$TTL') return void fail(`unknown directive ${JSON.stringify(first.raw)}`);
  if (!arg || args.length > 1) return void fail(`${name} takes exactly one value`);
  if (name === '$TTL') {
    const ttl = duration(arg.raw, MAX_TTL);
    if (ttl === null) return void fail(`$TTL: ${JSON.stringify(arg.raw)} is not a TTL (seconds, or units like 1h30m; at most ${MAX_TTL})`);
    p.defaultTtl = ttl;
    return;
  }
  const origin = resolve(arg.raw, p.origin);
  const problem = nameProblem(origin);
  if (problem) return void fail(`$ORIGIN ${JSON.stringify(origin)}: ${problem}`);
  p.origin = origin;
}

function record(p: Parse, entry: Entry): void {
  const fail = (message: string) => void p.errors.push(lineError(entry.line, message));
  const tokens = entry.tokens;
  let k = 0;
  if (!entry.blankOwner) {
    const owner = resolve((tokens[k++] as Token).raw, p.origin);
    const problem = nameProblem(owner, { wildcard: true, ownerStars: true });
    const outside = !problem && !inZone(owner, p.zone);
    p.owner = problem || outside ? null : owner;
    if (problem) return fail(`name ${JSON.stringify(owner)}: ${problem}`);
    if (outside) return fail(`name ${JSON.stringify(owner)} is outside the zone ${p.zone}`);
  }
  const name = p.owner;
  if (name === null) return; // the invalid owner above this line is already reported
  if (name === undefined) return fail('no owner name: the first record must start in column 1 with its name');

  let ttl: number | undefined;
  for (let seen = 0; seen < 2 && k < tokens.length; seen++) {
    const tok = tokens[k] as Token;
    if (/^\d/.test(tok.raw) && ttl === undefined) {
      const value = duration(tok.raw, MAX_TTL);
      if (value === null) return fail(`${JSON.stringify(tok.raw)} is not a TTL (seconds, or units like 1h30m; at most ${MAX_TTL})`);
      ttl = value;
    } else if (CLASSES.has(tok.raw.toUpperCase()) || /^CLASS\d+$/i.test(tok.raw)) {
      if (tok.raw.toUpperCase() !== 'IN') return fail(`class ${tok.raw} is not supported (only IN)`);
    } else break;
    k++;
  }
  const typeTok = tokens[k++];
  if (!typeTok) return fail('missing record type');
  const type = typeTok.raw.toUpperCase();
  if (!isImportType(type))
    return fail(/^TYPE\d+$/.test(type) ? `record type ${typeTok.raw}: ${recordTypeProblem(type) ?? ''}` : `unsupported record type ${JSON.stringify(typeTok.raw)} (supported: ${SUPPORTED.join(', ')}; any other as TYPEnnn \\# <length> <hex>, RFC 3597)`);
  if (ttl !== undefined) p.lastTtl = ttl;
  const effectiveTtl = ttl ?? p.defaultTtl ?? p.lastTtl;
  const rdata = tokens.slice(k);
  if (type === 'SOA') return soa(p, entry.line, name, effectiveTtl, rdata);

  const key = `${name} ${type}`;
  const set = p.sets.get(key) ?? { line: entry.line, name, type, ttl: effectiveTtl, values: [], lines: [] };
  const value = rdataValue(type, rdata, p.origin);
  if ('error' in value) {
    const path = value.field === undefined ? '' : `values.${set.values.length}${value.field && `.${value.field}`}: `;
    return fail(`${type}: ${path}${value.error}`);
  }
  set.values.push(value.value);
  set.lines.push(entry.line);
  p.sets.set(key, set);
}

/**
 * The text value whose 255-byte cut gives exactly these strings (one string; or pieces of 255
 * bytes and a shorter last one, as export writes a long text), or null: then they stay a list.
 */
function asText(strings: TxtString[]): string | null {
  const bytes = strings.map((s) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s.hex, 'hex')));
  const last = bytes.length - 1;
  if (!bytes.every((b, i) => (i < last ? b.length === CHARSTRING_BYTES : last === 0 || b.length > 0))) return null;
  const joined = Buffer.concat(bytes);
  return utf8.test(joined) ? joined.toString('utf8') : null;
}

const isImportType = (t: string): t is ImportType | GenericType => (SUPPORTED as readonly string[]).includes(t) || recordTypeProblem(t) === null;

/** A value, or why not; `field` names the offending part ('' = the whole value, absent = the line). */
type Field = { value: unknown } | { error: string; field?: string };
const FIELDS: Partial<Record<RecordType, string[]>> = {
  A: ['address'],
  AAAA: ['address'],
  CNAME: ['target'],
  NS: ['target'],
  PTR: ['target'],
  TXT: [],
  MX: ['preference', 'exchange'],
  SRV: ['priority', 'weight', 'port', 'target'],
  CAA: ['flags', 'tag', 'value'],
};

/** One value in the shape `recordInput` expects; ranges and name rules are left to the schema. */
function rdataValue(type: RecordType, rdata: Token[], origin: string): Field {
  const fields = FIELDS[type];
  if (!fields) {
    // Types stored as presentation text (src/model/rdata.ts checks them): the tokens as written.
    if (rdata.length === 0) return { error: 'has no data' };
    return { value: rdata.map((t) => (t.quoted ? `"${t.raw}"` : t.raw)).join(' ') };
  }
  if (rdata[0]?.raw === '\\#' && !rdata[0].quoted) return { error: `takes its own syntax (${fields.join(' ') || 'quoted strings'}), not the generic \\# form` };
  if (type === 'TXT') {
    if (rdata.length === 0) return { error: 'needs at least one string' };
    // Each character-string is kept as given (RFC 1035 §3.3.14): one string is a text, several a list.
    const strings: TxtString[] = [];
    for (const [i, tok] of rdata.entries()) {
      const decoded = decodeBytes(tok.raw);
      if ('error' in decoded) return { ...decoded, field: '' };
      if (decoded.bytes.length > CHARSTRING_BYTES) return { error: `string ${i + 1} holds ${decoded.bytes.length} bytes; a character-string holds at most ${CHARSTRING_BYTES} (RFC 1035 §3.3): split it into several quoted strings`, field: '' };
      strings.push(utf8.test(decoded.bytes) ? decoded.bytes.toString('utf8') : { hex: decoded.bytes.toString('hex') });
    }
    return { value: asText(strings) ?? strings };
  }
  if (rdata.length !== fields.length)
    return { error: `takes ${fields.length} field${fields.length > 1 ? 's' : ''} (${fields.join(' ')}), found ${rdata.length}` };
  const out: Record<string, unknown> = {};
  for (const [i, field] of fields.entries()) {
    const raw = (rdata[i] as Token).raw;
    if (field === 'target' || field === 'exchange') out[field] = resolve(raw, origin);
    else if (field === 'address' || field === 'tag') out[field] = raw;
    else if (field === 'value') {
      const decoded = decodeText(raw);
      if ('error' in decoded) return { ...decoded, field };
      out[field] = decoded.text;
    } else if (/^\d+$/.test(raw)) out[field] = Number(raw);
    else return { error: `${JSON.stringify(raw)} is not a number`, field };
  }
  return { value: fields.length === 1 ? Object.values(out)[0] : out };
}

function soa(p: Parse, line: number, name: string, ttl: number | undefined, rdata: Token[]): void {
  const fail = (message: string) => void p.errors.push(lineError(line, `SOA: ${message}`));
  if (name !== p.zone) return fail(`must be at the zone apex ${p.zone}, not ${name}`);
  if (p.soa) return fail(`a zone has one SOA (already given on line ${p.soa.line})`);
  const names = ['mname', 'rname'] as const;
  const numbers = ['serial', 'refresh', 'retry', 'expire', 'minimum'] as const;
  if (rdata.length !== 7) return fail(`takes 7 fields (${[...names, ...numbers].join(' ')}), found ${rdata.length}`);
  const out: Partial<Soa> = {};
  for (const [i, field] of names.entries()) {
    const value = resolve((rdata[i] as Token).raw, p.origin);
    const problem = nameProblem(value);
    if (problem) return fail(`${field}: ${JSON.stringify(value)} ${problem}`);
    out[field] = value;
  }
  for (const [i, field] of numbers.entries()) {
    const raw = (rdata[i + 2] as Token).raw;
    const value = field === 'serial' ? (/^\d+$/.test(raw) && Number(raw) <= MAX_U32 ? Number(raw) : null) : duration(raw, MAX_U32);
    if (value === null) return fail(`${field}: ${JSON.stringify(raw)} is not a number 0-${MAX_U32}`);
    out[field] = value;
  }
  p.soa = { ...(out as Omit<Soa, 'ttl'>), ttl: ttl ?? out.minimum ?? 0, line };
}

/** RFC 1034 §3.6.2: a CNAME is the only record at its name, and the apex always holds the SOA. */
function checkCnames(p: Parse): void {
  const types = new Map<string, string[]>();
  for (const set of p.sets.values()) types.set(set.name, [...(types.get(set.name) ?? []), set.type]);
  for (const set of p.sets.values()) {
    if (set.type !== 'CNAME') continue;
    const others = (types.get(set.name) ?? []).filter((t) => t !== 'CNAME');
    if (set.name === p.zone) others.unshift('SOA');
    if (others.length)
      p.errors.push(lineError(set.line, `CNAME: ${set.name} also has ${others.join(', ')}; a CNAME must be the only record at its name`));
  }
}
