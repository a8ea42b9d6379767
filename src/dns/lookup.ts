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
import { answers, forView, type RRset } from './rrset.js';
import type { Rr } from './wire.js';
import type { ZoneIndex } from './zone.js';

export type LookupKind = 'success' | 'nxdomain' | 'nodata' | 'delegation' | 'notauth';

export interface LookupResult {
  kind: LookupKind;
  answer: Rr[];
  authority: Rr[];
  additional: Rr[];
  /** How many records at the start of `additional` a response must carry (a referral's in-domain glue, RFC 9471). */
  required: number;
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

/** The A or AAAA set at `target` when it is in a served zone and not below a delegation (`glue` lifts that for referrals). */
function address(index: ZoneIndex, target: string, type: 'A' | 'AAAA', glue: boolean, view: string | null): RRset | undefined {
  const zone = index.zoneFor(target);
  if (!zone) return undefined;
  if (!glue && step(index, zone, target, 'A').kind !== 'data') return undefined;
  const set = index.rrset(zone, target, type);
  return set && forView(set, view);
}

function targetOf(set: RRset, i: number): string | undefined {
  const v = set.values[i];
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && 'exchange' in v) return (v as { exchange: string }).exchange;
  if (v && typeof v === 'object' && 'target' in v) return (v as { target: string }).target;
  return undefined;
}

/**
 * In-zone addresses of the set's targets for the additional section: all A sets, then all AAAA
 * sets (as NSD orders them). For a referral (`cut`), glue for names below the cut comes first and
 * is required (RFC 9471); the rest is optional.
 */
function additionalFor(index: ZoneIndex, set: RRset, glue: boolean, view: string | null, cut?: string): { additional: Rr[]; required: number } {
  if (!TARGET_TYPES.has(set.type)) return { additional: [], required: 0 };
  const targets = new Set<string>();
  for (let i = 0; i < set.values.length; i++) {
    const target = targetOf(set, i);
    if (target !== undefined && target !== '.') targets.add(target);
  }
  const inDomain = (t: string) => cut !== undefined && t.endsWith(`.${cut}`);
  const additional: Rr[] = [];
  let required = 0;
  for (const pass of cut === undefined ? [false] : [true, false])
    for (const type of ['A', 'AAAA'] as const)
      for (const target of targets) {
        if (cut !== undefined && inDomain(target) !== pass) continue;
        const found = address(index, target, type, glue, view);
        if (!found) continue;
        const rrs = answers(target, found);
        additional.push(...rrs);
        if (pass) required += rrs.length;
      }
  return { additional, required };
}

/** The zone's SOA for a negative answer, with TTL min(SOA TTL, MINIMUM) (RFC 2308 §3). */
function negativeSoa(index: ZoneIndex, zone: string): Rr[] {
  const soa = index.soa(zone);
  const set = index.rrset(zone, zone, 'SOA');
  return set ? answers(zone, set, Math.min(soa.ttl, soa.minimum)) : [];
}

/**
 * Answers `qname` (as asked: any case, trailing dot optional) for `qtype` (a type name such as
 * 'A', 'ANY' or 'TYPE65') to a client in `view` (null: in none), whose A/AAAA sets with values for
 * that view answer with those. Records owned by the query name carry `qname` exactly as given;
 * all other names are lower-case absolute.
 *
 * - CNAMEs are followed across our zones up to MAX_CNAME_HOPS; a loop or the hop limit ends the
 *   chain with what was found (NOERROR). The kind is that of the last name (RFC 6604).
 * - qtype CNAME and ANY are answered from the node itself, without following.
 * - ANY returns every RRset at the name (we serve small private zones; RFC 8482 minimal answers
 *   protect against amplification, which the UDP size limit and TC already bound here).
 */
export function lookup(index: ZoneIndex, qname: string, qtype: string, view: string | null = null): LookupResult {
  const answer: Rr[] = [];
  let owner = qname.endsWith('.') ? qname : `${qname}.`;
  let name = owner.toLowerCase();
  const seen = new Set<string>();
  for (let hop = 0; ; hop++) {
    const zone = index.zoneFor(name);
    if (!zone) return { kind: hop === 0 ? 'notauth' : 'success', answer, authority: [], additional: [], required: 0 };
    const s = step(index, zone, name, qtype);
    if (s.kind === 'cut') return { kind: 'delegation', answer, authority: answers(s.at, s.ns), ...additionalFor(index, s.ns, true, view, s.at) };
    if (s.kind === 'nx') return { kind: 'nxdomain', answer, authority: negativeSoa(index, zone), additional: [], required: 0 };
    if (qtype === 'ANY' && s.sets.length) {
      // Each set's additional-section processing (RFC 1035 §3.7.1), as NSD does: MX, SRV and NS targets' addresses, each once.
      const additional: Rr[] = [];
      const seenAdd = new Set<string>();
      for (const set of s.sets) {
        answer.push(...answers(owner, forView(set, view)));
        for (const rr of additionalFor(index, set, name === zone && set.type === 'NS', view).additional) {
          const key = `${rr.name} ${rr.code} ${rr.at}`;
          if (seenAdd.has(key)) continue;
          seenAdd.add(key);
          additional.push(rr);
        }
      }
      return { kind: 'success', answer, authority: [], additional, required: 0 };
    }
    const set = s.sets.find((x) => x.type === qtype);
    if (set) {
      answer.push(...answers(owner, forView(set, view)));
      return { kind: 'success', answer, authority: [], ...additionalFor(index, set, name === zone && set.type === 'NS', view) };
    }
    const cname = qtype === 'CNAME' ? undefined : s.sets.find((x) => x.type === 'CNAME');
    const target = cname && targetOf(cname, 0);
    if (!cname || target === undefined) return { kind: 'nodata', answer, authority: negativeSoa(index, zone), additional: [], required: 0 };
    answer.push(...answers(owner, cname));
    seen.add(name);
    if (seen.has(target) || hop + 1 >= MAX_CNAME_HOPS) return { kind: 'success', answer, authority: [], additional: [], required: 0 };
    owner = name = target;
  }
}
