// The state file's text: YAML written with a fixed key order and layout, so the same state is
// always the same bytes (export → apply → export is byte-identical), and read as YAML (JSON is
// YAML too). Pure.
import { createRequire } from 'node:module';
import type YAML from 'yaml';
import { AppError } from '../errors.js';
import { STATE_KEY_ORDER } from '../model/state.js';

/** yaml is loaded on first use, as the config loader does (~5 MiB resident otherwise spent for nothing). */
const require = createRequire(import.meta.url);
const yaml = () => require('yaml') as typeof YAML;

const RANK = new Map<string, number>(STATE_KEY_ORDER.map((k, i) => [k, i]));

/** Keys in STATE_KEY_ORDER first, the rest by code point: the same object always prints the same. */
export function compareKeys(a: string, b: string): number {
  const ra = RANK.get(a) ?? Infinity;
  const rb = RANK.get(b) ?? Infinity;
  return ra !== rb ? ra - rb : a < b ? -1 : a > b ? 1 : 0;
}

/** The document as YAML: keys ordered (compareKeys), no line folding, no anchors. */
export function toYaml(doc: unknown): string {
  return yaml().stringify(doc, {
    sortMapEntries: (a, b) => compareKeys(String(a.key), String(b.key)),
    lineWidth: 0,
    aliasDuplicateObjects: false,
  });
}

/** Longest state file read (a 100,000-name state is ~15 MiB of YAML). */
export const MAX_STATE_BYTES = 32 * 1024 * 1024;

/** Parses YAML (or JSON) text into plain data; a syntax error is a 400 naming its line and column. */
export function parseStateText(text: string): unknown {
  if (Buffer.byteLength(text) > MAX_STATE_BYTES) throw new AppError('payload_too_large', `a state file may hold at most ${MAX_STATE_BYTES} bytes`);
  const doc = yaml().parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const fields = doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(file)', message: e.message.split('\n')[0] ?? e.message }));
    throw new AppError('invalid_body', `the state file is not valid YAML: ${fields[0]!.path}: ${fields[0]!.message}`, fields);
  }
  return doc.toJS({ maxAliasCount: 100 }) as unknown;
}
