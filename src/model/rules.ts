// Rules between record sets at one name (RFC 1034 §3.6.2, RFC 2181 §10.1).
import type { RecordType } from './record.js';

/**
 * Why a `type` RRset cannot be stored at a name that already holds `existing` types, or null.
 * `apex` is true at the zone's own name, where the synthesised SOA and NS live.
 */
export function conflictProblem(type: RecordType, existing: readonly RecordType[], apex: boolean): string | null {
  const others = existing.filter((t) => t !== type);
  if (type === 'CNAME' && apex) return 'a CNAME is not allowed at the zone apex (the SOA and NS records live there)';
  if (type === 'CNAME' && others.length) return `a CNAME cannot sit beside other records at this name (has ${others.join(', ')})`;
  if (type !== 'CNAME' && others.includes('CNAME')) return 'this name already has a CNAME; no other records may sit beside it';
  return null;
}
