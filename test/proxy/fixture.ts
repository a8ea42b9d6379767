// Shared by the proxy tests: a DesiredRoute builder and the golden inputs.
import { readdirSync, readFileSync } from 'node:fs';
import type { DesiredProxy, DesiredRoute } from '../../src/proxy/types.js';

export const route = (id: string, hosts: string[], upstreams: string[], more: Partial<DesiredRoute> = {}): DesiredRoute => ({
  id,
  hosts,
  path: null,
  upstreams,
  tls: 'off',
  health_path: null,
  ...more,
});

export const GOLDEN = new URL('./golden/', import.meta.url);
export const goldenNames = readdirSync(GOLDEN)
  .filter((f) => f.endsWith('.input.json'))
  .map((f) => f.slice(0, -'.input.json'.length))
  .sort();
export const goldenInput = (name: string): DesiredProxy => JSON.parse(readFileSync(new URL(`${name}.input.json`, GOLDEN), 'utf8')) as DesiredProxy;
