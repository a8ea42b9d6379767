// Human output as aligned tables; --json prints the API's JSON unchanged.
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One value of a record set as zone-file-like text. */
export function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  const o = v as Record<string, unknown>;
  const f = (k: string) => String(o[k]);
  if ('exchange' in o) return `${f('preference')} ${f('exchange')}`;
  if ('target' in o) return `${f('priority')} ${f('weight')} ${f('port')} ${f('target')}`;
  if ('tag' in o) return `${f('flags')} ${f('tag')} "${f('value')}"`;
  return JSON.stringify(v);
}
