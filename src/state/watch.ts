// `dnsproxy serve --watch <file>`: the state file is applied at start and again after each save
// (debounced, src/config/watch.ts). A file that does not parse or is refused changes nothing: the
// last good state keeps serving, the refusal is logged with its fields and shown in /health.
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { FileWatch, type Watcher } from '../config/watch.js';
import type { Timers } from '../timers.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { ComponentStatus } from '../api/health.js';
import { summary } from '../api/state.js';
import { parseStateTextOffThread } from './format.js';
import { applyDocument, type StateDeps, type StatePlan } from './state.js';

/** Field errors a health detail names at most (the log line has them all). */
const DETAIL_FIELDS = 3;

export interface StateWatchOptions {
  file: string;
  deps: StateDeps;
  /** Remove what the file lacks (serve --watch-prune). */
  prune: boolean;
  log: Logger;
  debounceMs?: number;
  timers?: Timers;
  watcher?: Watcher;
  now?: () => Date;
}

/** Events: `applied` (StatePlan) after each good save, `refused` (AppError or Error) after each bad one. */
export class StateWatch extends EventEmitter {
  private current: { status: ComponentStatus; detail: string } = { status: 'ok', detail: 'not read yet' };
  private watch: FileWatch | null = null;

  constructor(private readonly opts: StateWatchOptions) {
    super();
  }

  /** For /health: ok after a good apply, degraded while the file's last version is refused. */
  health(): { status: ComponentStatus; detail: string } {
    return this.current;
  }

  /** Applies the file once, then watches it; resolves once the watcher listens. */
  async start(): Promise<void> {
    await this.applyNow();
    this.watch = new FileWatch({
      file: this.opts.file,
      onChange: () => this.applyNow(),
      onUnlink: () => this.opts.log.warn('state file removed; the last good state keeps serving', { file: this.opts.file }),
      ...(this.opts.debounceMs !== undefined ? { debounceMs: this.opts.debounceMs } : {}),
      ...(this.opts.timers ? { timers: this.opts.timers } : {}),
      ...(this.opts.watcher ? { watcher: this.opts.watcher } : {}),
    });
    await this.watch.ready;
  }

  async stop(): Promise<void> {
    await this.watch?.close();
    this.watch = null;
  }

  /** Reads and applies the file now; a refusal is reported, never thrown. */
  async applyNow(): Promise<void> {
    const { file, log } = this.opts;
    const at = (this.opts.now ?? (() => new Date()))().toISOString();
    try {
      const text = await readFile(file, 'utf8');
      const plan: StatePlan = await applyDocument(this.opts.deps, await parseStateTextOffThread(text), { dryRun: false, prune: this.opts.prune });
      this.current = { status: 'ok', detail: `${file} applied at ${at}` };
      if (plan.changed) log.info('state file applied', { file, prune: plan.prune, ...summary(plan.plan) });
      else log.info('state file applied: nothing to change', { file });
      this.emit('applied', plan);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      const fields = e instanceof AppError ? e.fields : [];
      const reason = fields.length ? fields.slice(0, DETAIL_FIELDS).map((f) => `${f.path}: ${f.message}`).join('; ') + (fields.length > DETAIL_FIELDS ? ` (+${fields.length - DETAIL_FIELDS} more)` : '') : err.message;
      this.current = { status: 'degraded', detail: `${file} refused at ${at} (the last good state keeps serving): ${reason}` };
      log.error('state file refused; the last good state keeps serving', { file, error: err.message, fields });
      this.emit('refused', err);
    }
  }
}
