// src/heap.ts: size-first GC is off while any bulk job runs, on again after the last.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { bulkJobs, throughputHeap } from '../src/heap.js';

describe('heap: speed-first GC during bulk work', () => {
  it('counts nested and concurrent jobs; a second release does nothing', () => {
    const a = throughputHeap();
    const b = throughputHeap();
    expect(bulkJobs()).to.equal(2);
    a();
    a();
    expect(bulkJobs()).to.equal(1);
    b();
    expect(bulkJobs()).to.equal(0);
  });

  it('in a process started size-first, switches the flag off and on again (V8 takes it at runtime)', function () {
    this.timeout(30_000);
    // A full GC after each step shows which mode V8 is in: size-first GCs are memory-reducing ones ("reduce").
    const code = `
      const { throughputHeap } = await import(${JSON.stringify(new URL('../src/heap.ts', import.meta.url).href)});
      const grow = () => { const keep = []; for (let i = 0; i < 300000; i++) keep.push({ i, s: 'x' + i }); return keep.length; };
      grow(); console.log('--');
      const done = throughputHeap(); grow(); console.log('--'); done(); grow();`;
    const out = spawnSync(process.execPath, ['--optimize-for-size', '--trace-gc', '--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8' });
    expect(out.status, out.stderr).to.equal(0);
    const [first, during, after] = out.stdout.split('--\n').map((part) => part.split('\n').filter((l) => l.includes('Mark-Compact')));
    expect(first!.some((l) => l.includes('(reduce)')), 'size-first at start').to.equal(true);
    expect(during!.length, 'a full GC while growing').to.be.greaterThan(0);
    expect(during!.every((l) => !l.includes('(reduce)')), during!.join('\n')).to.equal(true);
    expect(after!.some((l) => l.includes('(reduce)')), 'size-first again after').to.equal(true);
  });
});
