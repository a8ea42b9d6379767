// Heap mode of this process during bulk work. bin/dnsproxy starts the controller with V8's
// --optimize-for-size (the memory target of a controller with 10,000 names). In that mode the heap
// grows in small steps and every step is a memory-reducing full GC: a 150,000-line zone import
// then spends most of its time in GC — on the import's thread and on the main thread, where each
// full GC stops DNS (docs/benchmarks.md, "Zone import"). While bulk work runs, size-first is
// turned off; it is turned on again when the last bulk job is done, and the heap shrinks later.
// V8 reads the flag at each GC, so the switch takes effect at once (measured on Node 24).
import { setFlagsFromString } from 'node:v8';

/** Whether this process was started size-first (then, and only then, the switch is undone). */
const startedSizeFirst = process.execArgv.includes('--optimize-for-size');
let running = 0;

/** Turns size-first GC off until the returned function is called (nested and concurrent calls count). */
export function throughputHeap(): () => void {
  if (running++ === 0 && startedSizeFirst) setFlagsFromString('--no-optimize-for-size');
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--running === 0 && startedSizeFirst) setFlagsFromString('--optimize-for-size');
  };
}

/** Bulk jobs running now (tests). */
export function bulkJobs(): number {
  return running;
}
