// A Prometheus histogram for per-packet paths: observe() is a bucket search and three additions
// on typed arrays, with no label hashing or allocation; prom-client reads it at scrape time.
import type { Registry } from 'prom-client';

export interface HotHistogramOptions {
  name: string;
  help: string;
  /** The one label that tells series apart (e.g. transport); bind a series with series(value). */
  labelName: string;
  /** Upper bounds, ascending; +Inf is implied. */
  buckets: readonly number[];
  registry: Registry;
}

export interface HotSeries {
  observe(seconds: number): void;
}

interface Series extends HotSeries {
  readonly counts: Float64Array;
  sum: number;
}

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

export class HotHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly labelName: string;
  private readonly bounds: Float64Array;
  private readonly series = new Map<string, Series>();

  constructor(opts: HotHistogramOptions) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelName = opts.labelName;
    this.bounds = Float64Array.from(opts.buckets);
    // prom-client's Registry only calls name/help/type/aggregator, get() and reset().
    opts.registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The series for one label value, created on first use; keep the result, do not call per observation. */
  seriesFor(value: string): HotSeries {
    const s = this.series.get(value);
    if (s) return s;
    const bounds = this.bounds;
    const counts = new Float64Array(bounds.length + 1); // last slot: above every bound (+Inf only)
    const created: Series = {
      counts,
      sum: 0,
      observe(seconds: number) {
        let i = 0;
        while (i < bounds.length && seconds > (bounds[i] as number)) i++;
        counts[i] = (counts[i] as number) + 1;
        created.sum += seconds;
      },
    };
    this.series.set(value, created);
    return created;
  }

  /** prom-client's shape: cumulative `_bucket` samples with `le`, then `_sum` and `_count`, per series. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const [value, s] of this.series) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += s.counts[i] as number;
        const le = i < this.bounds.length ? (this.bounds[i] as number) : '+Inf';
        values.push({ value: cumulative, labels: { le, [this.labelName]: value }, metricName: `${this.name}_bucket` });
      }
      values.push({ value: s.sum, labels: { [this.labelName]: value }, metricName: `${this.name}_sum` });
      values.push({ value: cumulative, labels: { [this.labelName]: value }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
    }
  }
}
