// Pure authoritative lookup: (index, name, type) → result kind and the three sections.
// Only the handler turns a kind into RCODE and header flags.
//
// Worked example, zone home.arpa. holding a.b.home.arpa. A, *.home.arpa. TXT, sub.home.arpa. NS:
//   query                   walk from the apex                         result
//   a.b.home.arpa. A        b exists, a.b exists                       success
//   b.home.arpa. A          b exists (empty non-terminal)              nodata  (+SOA)
//   x.b.home.arpa. TXT      b exists, x.b does not; no *.b             nxdomain (+SOA)
//   x.home.arpa. TXT        x does not; *.home.arpa exists             success, owner x.home.arpa.
//   h.sub.home.arpa. A      sub has NS below the apex                  delegation (NS + glue)
import type { Answer } from 'dns-packet';
import { answers, type RRset } from './rrset.js';
import type { ZoneIndex } from './zone.js';

export type LookupKind = 'success' | 'nxdomain' | 'nodata' | 'delegation' | 'notauth';

export interface LookupResult {
  kind: LookupKind;
  answer: Answer[];
  authority: Answer[];
  additional: Answer[];
}

/** CNAME hops followed inside our zones before answering with the chain so far (loop guard). */
export const MAX_CNAME_HOPS = 8;

/** Types whose RDATA names a host that gets its in-zone addresses in the additional section. */
const TARGET_TYPES = new Set(['MX', 'SRV', 'NS']);

type Step = { kind: 'cut'; at: string; ns: RRset } | { kind: 'nx' } | { kind: 'data'; sets: RRset[] };

/** Finds name in zone: a delegation on the way down, the node, a wildcard (RFC 4592), or nothing. */
function step(index: ZoneIndex, zone: string, name: string, qtype: string): Step {
  // Ancestors strictly below the apex down to the name, top first.
  const chain: string[] = [];
  for (let n = name; n !== zone && n.length > zone.length; n = n.slice(n.indexOf('.') + 1)) chain.push(n);
  let encloser = zone;
  for (let i = chain.length - 1; i >= 0; i--) {
    const n = chain[i] as string;
    if (!index.exists(zone, n)) {
      // `encloser` is the closest encloser; only its wildcard child may answer.
      const wild = `*.${encloser}`;
      return index.exists(zone, wild) ? { kind: 'data', sets: index.rrsets(zone, wild) } : { kind: 'nx' };
    }
    const ns = index.userRRset(zone, n, 'NS');
    // A DS query at the cut belongs to the parent side (RFC 4035 §3.1.4.1).
    if (ns && !(qtype === 'DS' && n === name)) return { kind: 'cut', at: n, ns };
    encloser = n;
  }
  return { kind: 'data', sets: index.rrsets(zone, name) };
}

/** A/AAAA at `target` when it is in a served zone and not below a delegation (`glue` lifts that for referrals). */
function addresses(index: ZoneIndex, target: string, glue: boolean): Answer[] {
  const zone = index.zoneFor(target);
  if (!zone) return [];
  if (!glue) {
    const s = step(index, zone, target, 'A');
    if (s.kind !== 'data') return [];
  }
  const out: Answer[] = [];
  for (const type of ['A', 'AAAA']) {
    const set = index.rrset(zone, target, type);
    if (set) out.push(...answers(target, set));
  }
  return out;
}

function targetOf(set: RRset, i: number): string | undefined {
  const data = set.rdata[i];
  if (typeof data === 'string') return data;
  if (data && typeof data === 'object' && 'exchange' in data) return data.exchange;
  if (data && typeof data === 'object' && 'target' in data) return data.target;
  return undefined;
}

function additionalFor(index: ZoneIndex, set: RRset, glue: boolean): Answer[] {
  if (!TARGET_TYPES.has(set.type)) return [];
  const seen = new Set<string>();
  const out: Answer[] = [];
  for (let i = 0; i < set.rdata.length; i++) {
    const target = targetOf(set, i);
    if (target === undefined || seen.has(target)) continue;
    seen.add(target);
    out.push(...addresses(index, target, glue));
  }
  return out;
}

/** The zone's SOA for a negative answer, with TTL min(SOA TTL, MINIMUM) (RFC 2308 §3). */
function negativeSoa(index: ZoneIndex, zone: string): Answer[] {
  const soa = index.soa(zone);
  const set = index.rrset(zone, zone, 'SOA');
  return set ? answers(zone, set, Math.min(soa.ttl, soa.minimum)) : [];
}

/**
 * Answers `qname` (as asked: any case, trailing dot optional) for `qtype` (a type name such as
 * 'A', 'ANY' or 'TYPE65'). Records owned by the query name carry `qname` exactly as given;
 * all other names are lower-case absolute.
 *
 * - CNAMEs are followed across our zones up to MAX_CNAME_HOPS; a loop or the hop limit ends the
 *   chain with what was found (NOERROR). The kind is that of the last name (RFC 6604).
 * - qtype CNAME and ANY are answered from the node itself, without following.
 * - ANY returns every RRset at the name (we serve small private zones; RFC 8482 minimal answers
 *   protect against amplification, which the UDP size limit and TC already bound here).
 */
export function lookup(index: ZoneIndex, qname: string, qtype: string): LookupResult {
  const answer: Answer[] = [];
  let owner = qname.endsWith('.') ? qname : `${qname}.`;
  let name = owner.toLowerCase();
  const seen = new Set<string>();
  for (let hop = 0; ; hop++) {
    const zone = index.zoneFor(name);
    if (!zone) return { kind: hop === 0 ? 'notauth' : 'success', answer, authority: [], additional: [] };
    const s = step(index, zone, name, qtype);
    if (s.kind === 'cut') return { kind: 'delegation', answer, authority: answers(s.at, s.ns), additional: additionalFor(index, s.ns, true) };
    if (s.kind === 'nx') return { kind: 'nxdomain', answer, authority: negativeSoa(index, zone), additional: [] };
    if (qtype === 'ANY' && s.sets.length) {
      for (const set of s.sets) answer.push(...answers(owner, set));
      return { kind: 'success', answer, authority: [], additional: [] };
    }
    const set = s.sets.find((x) => x.type === qtype);
    if (set) {
      answer.push(...answers(owner, set));
      return { kind: 'success', answer, authority: [], additional: additionalFor(index, set, name === zone && set.type === 'NS') };
    }
    const cname = qtype === 'CNAME' ? undefined : s.sets.find((x) => x.type === 'CNAME');
    const target = cname && targetOf(cname, 0);
    if (!cname || target === undefined) return { kind: 'nodata', answer, authority: negativeSoa(index, zone), additional: [] };
    answer.push(...answers(owner, cname));
    seen.add(name);
    if (seen.has(target) || hop + 1 >= MAX_CNAME_HOPS) return { kind: 'success', answer, authority: [], additional: [] };
    owner = name = target;
  }
}
