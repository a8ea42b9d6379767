// The state file's text: YAML written with a fixed key order and layout, so the same state is
// always the same bytes (export → apply → export is byte-identical), and read as YAML (JSON is
// YAML too). Pure.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type YAML from 'yaml';
import { AppError } from '../errors.js';
import { STATE_KEY_ORDER } from '../model/state.js';

/** yaml is loaded on first use, as the config loader does (~5 MiB resident otherwise spent for nothing). */
const require = createRequire(import.meta.url);
const yaml = () => require('yaml') as typeof YAML;

/** Longest state file read: the API's body limit (a 5,000-name state is ~400 KB of YAML). */
export const MAX_STATE_BYTES = 16 * 1024 * 1024;

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

interface YamlIssue {
  line: number | null;
  col: number | null;
  message: string;
}

/** A 400 naming each syntax error by its line and column. */
function syntaxError(issues: readonly YamlIssue[]): AppError {
  const fields = issues.map((e) => ({ path: e.line === null ? '(file)' : `line ${e.line}, column ${e.col}`, message: e.message.split('\n')[0] ?? e.message }));
  return new AppError('invalid_body', `the state file is not valid YAML: ${fields[0]!.path}: ${fields[0]!.message}`, fields);
}

const tooBig = (text: string) => (Buffer.byteLength(text) > MAX_STATE_BYTES ? new AppError('payload_too_large', `a state file may hold at most ${MAX_STATE_BYTES} bytes`) : null);

/** Parses YAML (or JSON) text into plain data; a syntax error is a 400 naming its line and column. Runs here: for small texts and the CLI. */
export function parseStateText(text: string): unknown {
  const big = tooBig(text);
  if (big) throw big;
  const doc = yaml().parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) throw syntaxError(doc.errors.map((e) => ({ line: e.linePos?.[0].line ?? null, col: e.linePos?.[0].col ?? null, message: e.message })));
  return doc.toJS({ maxAliasCount: 100 }) as unknown;
}

/** Texts longer than this are parsed on a thread of their own (the yaml package takes ~1 s for 400 KB on a busy box). */
export const THREAD_PARSE_CHARS = 64 * 1024;

/** The thread's code: CommonJS, only the yaml package (plain JS, no build step needed). */
const PARSE_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const yaml = require(workerData.yaml);
const doc = yaml.parseDocument(workerData.text, { prettyErrors: true, uniqueKeys: true });
if (doc.errors.length) parentPort.postMessage({ errors: doc.errors.map((e) => ({ line: e.linePos ? e.linePos[0].line : null, col: e.linePos ? e.linePos[0].col : null, message: e.message })) });
else parentPort.postMessage({ value: doc.toJS({ maxAliasCount: 100 }) });
`;

/**
 * parseStateText() off the main thread for a long text, so DNS and the API keep answering while a
 * big state file is read (the API's YAML bodies, serve --watch).
 */
export async function parseStateTextOffThread(text: string): Promise<unknown> {
  if (text.length <= THREAD_PARSE_CHARS) return parseStateText(text);
  const big = tooBig(text);
  if (big) throw big;
  const out = await new Promise<{ value?: unknown; errors?: YamlIssue[] }>((resolve, reject) => {
    const w = new Worker(PARSE_THREAD, { eval: true, workerData: { text, yaml: require.resolve('yaml') } });
    w.once('message', (m: { value?: unknown; errors?: YamlIssue[] }) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
  if (out.errors) throw syntaxError(out.errors);
  return out.value;
}
