// /health model: per-component status rolled up into one.
export type ComponentStatus = 'ok' | 'degraded' | 'down' | 'disabled';

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  components: Record<string, { status: ComponentStatus; detail?: string }>;
}

/** Components whose loss makes the controller useless (the rest only degrade it). */
const CRITICAL = new Set(['store', 'dns']);

export function rollUp(components: HealthReport['components']): HealthReport {
  const entries = Object.entries(components);
  const down = entries.some(([name, c]) => c.status === 'down' && CRITICAL.has(name));
  const degraded = entries.some(([, c]) => c.status === 'down' || c.status === 'degraded');
  return { status: down ? 'down' : degraded ? 'degraded' : 'ok', components };
}
