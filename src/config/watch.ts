// Watching files that hold settings (the config file, a state file): chokidar events, debounced,
// and one handler run at a time, so an editor's burst of writes on save costs one reload. Timers
// are injected (tests drive them). Also what a changed config file means: which settings take
// effect at once and which need a restart.
import { watch as chokidarWatch } from 'chokidar';
import type { Config } from './schema.js';
import { systemTimers, type Timers } from '../timers.js';

/** How long a file must be quiet after an event before it is read: an editor's save is several writes. */
export const WATCH_DEBOUNCE_MS = 250;
/**
 * chokidar reports a write once the file's size held this long (polled every WRITE_POLL_MS). Without
 * it chokidar drops a change that follows the one it reported within 50 ms, and never reports it
 * (measured with chokidar 4: three writes 10 ms apart gave one event, for the first), so the last
 * save could be lost; with it every write is reported, a burst as one event.
 */
const WRITE_STABLE_MS = 100;
const WRITE_POLL_MS = 25;


/** What is watched: a file, and a call for each of its changes ('change' when written, also after a remove and re-create). */
export type Watcher = (file: string, onEvent: (event: 'change' | 'unlink') => void) => { ready: Promise<void>; close: () => Promise<void> };

/** chokidar on one file; an editor that saves by rename (write a temp file, move it over) shows as unlink + add. */
export const chokidarWatcher: Watcher = (file, onEvent) => {
  const w = chokidarWatch(file, { ignoreInitial: true, persistent: true, awaitWriteFinish: { stabilityThreshold: WRITE_STABLE_MS, pollInterval: WRITE_POLL_MS } });
  w.on('add', () => onEvent('change'));
  w.on('change', () => onEvent('change'));
  w.on('unlink', () => onEvent('unlink'));
  return { ready: new Promise<void>((resolve) => w.once('ready', () => resolve())), close: () => w.close() };
};

export interface FileWatchOptions {
  file: string;
  /** Runs after the file was quiet for debounceMs; never two at once (a change meanwhile runs it again after). */
  onChange: () => Promise<void>;
  onUnlink?: () => void;
  debounceMs?: number;
  timers?: Timers;
  watcher?: Watcher;
}

export class FileWatch {
  private timer: unknown = null;
  private running: Promise<void> | null = null;
  private again = false;
  private readonly handle: ReturnType<Watcher>;
  private closed = false;

  constructor(private readonly opts: FileWatchOptions) {
    this.handle = (opts.watcher ?? chokidarWatcher)(opts.file, (event) => (event === 'unlink' ? opts.onUnlink?.() : this.poke()));
  }

  /** Resolves once the watcher listens (changes before it may be missed). */
  get ready(): Promise<void> {
    return this.handle.ready;
  }

  /** A change was seen: (re)start the quiet period. */
  poke(): void {
    if (this.closed) return;
    const t = this.opts.timers ?? systemTimers;
    if (this.timer !== null) t.clearTimeout(this.timer);
    this.timer = t.setTimeout(() => {
      this.timer = null;
      void this.run();
    }, this.opts.debounceMs ?? WATCH_DEBOUNCE_MS);
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.opts.onChange().catch(() => undefined);
    await this.running;
    this.running = null;
    if (this.again && !this.closed) {
      this.again = false;
      await this.run();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) (this.opts.timers ?? systemTimers).clearTimeout(this.timer);
    await this.handle.close();
    await this.running;
  }
}

/** Settings that take effect while running when the config file changes; every other one needs a restart. */
export const LIVE_SETTINGS: ReadonlySet<keyof Config> = new Set(['log_level']);

/** The settings whose value differs, split into those that change now and those that need a restart. */
export function configChanges(before: Config, after: Config): { live: (keyof Config)[]; restart: (keyof Config)[] } {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort() as (keyof Config)[];
  const changed = keys.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  return { live: changed.filter((k) => LIVE_SETTINGS.has(k)), restart: changed.filter((k) => !LIVE_SETTINGS.has(k)) };
}
