import { expect } from 'chai';
import { parseCidr, type Cidr } from '../../src/model/cidr.js';
import { cidrsOverlap, viewBody, viewOverlaps } from '../../src/model/view.js';

const c = (t: string) => parseCidr(t) as Cidr;

describe('model/view', () => {
  const table: [string, string, boolean][] = [
    ['100.64.0.0/10', '100.127.255.255', true],
    ['100.64.0.0/10', '100.128.0.0/16', false],
    ['0.0.0.0/0', '192.0.2.1', true],
    ['192.168.1.7/24', '192.168.1.200/32', true],
    ['10.0.0.0/8', '::ffff:10.0.0.1/128', false],
    ['fd7a:115c:a1e0::/48', 'fd7a:115c:a1e0:ab12::1', true],
    ['fd7a:115c:a1e0::/48', 'fd7a:115c:a1e1::/48', false],
    ['::/0', '2001:db8::1', true],
    ['2001:db8::/32', '2001:db9::/32', false],
    ['::ffff:10.0.0.0/104', '::ffff:10.1.2.3', true],
    ['fe80::/10', 'febf:ffff::1', true],
  ];
  for (const [a, b, want] of table)
    it(`${a} and ${b} ${want ? 'overlap' : 'do not overlap'}`, () => {
      expect(cidrsOverlap(c(a), c(b))).to.equal(want);
      expect(cidrsOverlap(c(b), c(a))).to.equal(want);
    });

  it('names the overlapping field and the other view; a view does not overlap itself', () => {
    const tailnet = { name: 'tailnet', cidrs: ['100.64.0.0/10'] };
    expect(viewOverlaps({ name: 'lan', cidrs: ['192.168.0.0/16', '100.64.1.0/24'] }, [tailnet])).to.deep.equal([{ path: 'cidrs.1', message: '100.64.1.0/24 overlaps 100.64.0.0/10 of view "tailnet": a client must be in one view at most' }]);
    expect(viewOverlaps({ name: 'tailnet', cidrs: ['100.64.0.0/12'] }, [tailnet])).to.deep.equal([]);
  });

  it('view names and networks are checked', () => {
    expect(viewBody.safeParse({ name: 'tail-net2', cidrs: ['10.0.0.1'] }).success).to.equal(true);
    for (const name of ['', 'Tailnet', '2lan', 'lan-', 'a'.repeat(33), 'la n']) expect(viewBody.safeParse({ name, cidrs: ['10.0.0.1'] }).success, name).to.equal(false);
    expect(viewBody.safeParse({ name: 'x', cidrs: ['10.0.0.1/'] }).success).to.equal(false);
  });
});
