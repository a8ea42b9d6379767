// Accepting comes first (src/mail/queue/pace.ts): when a claim waits, as a table over a fake clock and
// a fake machine.
import { expect } from 'chai';
import { BURST_MESSAGES, cpuTimes, MAX_PAUSE_MS, Pace, PAUSE_STEP_MS } from '../../src/mail/queue/pace.js';

/** A machine whose next sample shows `idle` (a fraction) of the CPU time since the previous one idle. */
function machine() {
  let idle = 0;
  let total = 0;
  const m = { idleShare: 0.5, times: () => ((total += 100), (idle += 100 * m.idleShare), { idle, total }) };
  return m;
}

describe('mail: delivery pace (accepting comes first)', () => {
  it('a burst on a busy machine holds claims back PAUSE_STEP_MS at a time, never longer than MAX_PAUSE_MS after the last one', () => {
    const m = machine();
    const pace = new Pace(m.times);
    let now = 1000;
    expect(pace.delayMs(now), 'first sample: nothing known yet').to.equal(0);
    m.idleShare = 0.05;
    now += 60;
    pace.accepted(now, BURST_MESSAGES);
    expect(pace.delayMs(now)).to.equal(PAUSE_STEP_MS);
    const waits = new Map<number, number>();
    for (let t = now; t < now + 2 * MAX_PAUSE_MS; t += PAUSE_STEP_MS) {
      pace.accepted(t, BURST_MESSAGES); // the burst goes on
      waits.set(t, pace.delayMs(t));
    }
    // The last claim went at 1000: the one asked at 2060 goes, then the pause starts over.
    expect([...waits].filter(([, w]) => w === 0).map(([t]) => t)).to.deep.equal([1000 + MAX_PAUSE_MS + 60]);
    expect(waits.get(1960), 'the last step is cut to the limit').to.equal(40);
    expect([...waits.values()].every((w) => w <= PAUSE_STEP_MS)).to.equal(true);
  });

  const cases: [string, { idle: number; messages: number; after?: number }, number][] = [
    // what is happening → the claim waits (ms)
    ['a trickle on a busy machine (other work): never held back', { idle: 0.05, messages: BURST_MESSAGES - 1 }, 0],
    ['a burst on a machine with CPU to spare', { idle: 0.5, messages: 5 * BURST_MESSAGES }, 0],
    ['a burst on a busy machine', { idle: 0.05, messages: BURST_MESSAGES }, PAUSE_STEP_MS],
    ['the burst ended 250 ms ago', { idle: 0.05, messages: BURST_MESSAGES, after: 250 }, 0],
  ];
  for (const [what, c, want] of cases)
    it(what, () => {
      const m = machine();
      const pace = new Pace(m.times);
      pace.delayMs(0); // first sample
      pace.delayMs(500); // a claim went at 500
      m.idleShare = c.idle;
      pace.accepted(600, c.messages);
      pace.delayMs(560); // a sample of the machine as it is now
      expect(pace.delayMs(600 + (c.after ?? 0))).to.equal(want);
    });

  it('without /proc/stat (not Linux) nothing waits; /proc/stat is read as idle + iowait of all cores', () => {
    const pace = new Pace(() => undefined);
    pace.accepted(100, 10 * BURST_MESSAGES);
    expect(pace.delayMs(100)).to.equal(0);
    expect(cpuTimes(() => 'cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n')).to.deep.equal({ idle: 850, total: 1000 });
    expect(cpuTimes(() => 'garbage')).to.equal(undefined);
    expect(
      cpuTimes(() => {
        throw new Error('ENOENT');
      }),
    ).to.equal(undefined);
  });
});
