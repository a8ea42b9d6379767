import { expect } from 'chai';
import { nameProblem, ownerName, upstreamProblem } from '../../src/model/name.js';

describe('model/name', () => {
  const zones = ['home.arpa.', 'lab.example.'];
  const table: [string, string | null][] = [
    ['llm', null],
    ['_sip._tcp.home.arpa', null],
    ['*.home.arpa.', null],
    ['a b', 'must not contain whitespace'],
    ['a.home.arpa {\n}', 'must not contain whitespace'],
    ['"quoted"', 'may hold only letters'],
    ['{$ENV}', 'may hold only letters'],
    ['x'.repeat(64), 'longer than 63 bytes'],
    [`${'a'.repeat(60)}.`.repeat(5), 'longer than 253'],
    ['a..b', 'empty label'],
    ['-a', 'must not start or end'],
  ];
  it('a "*" below the leftmost label: an ordinary label for record owners (RFC 4592 §2.1.1), refused elsewhere', () => {
    expect(nameProblem('sub.*.example.', { wildcard: true, ownerStars: true })).to.equal(null);
    expect(nameProblem('*.*.example.', { wildcard: true, ownerStars: true })).to.equal(null);
    expect(nameProblem('a.*.b', { wildcard: true })).to.include('leftmost');
    expect(nameProblem('a.*.b')).to.include('not allowed');
    expect(ownerName('sub.*.home.arpa', zones)).to.deep.equal({ name: 'sub.*.home.arpa.', zone: 'home.arpa.' });
  });
  for (const [input, problem] of table) {
    it(`nameProblem(${JSON.stringify(input.slice(0, 30))}) → ${problem ?? 'ok'}`, () => {
      const got = nameProblem(input, { wildcard: true });
      if (problem === null) expect(got).to.equal(null);
      else expect(got).to.include(problem);
    });
  }

  it('places single labels in the first zone and keeps absolute names', () => {
    expect(ownerName('LLM', zones)).to.deep.equal({ name: 'llm.home.arpa.', zone: 'home.arpa.' });
    expect(ownerName('x.lab.example', zones)).to.deep.equal({ name: 'x.lab.example.', zone: 'lab.example.' });
    expect(ownerName('@', zones)).to.deep.equal({ name: 'home.arpa.', zone: 'home.arpa.' });
    expect(ownerName('x.other.org', zones)).to.have.property('error').that.includes('outside the served zones');
  });

  it('checks upstream host:port', () => {
    expect(upstreamProblem('100.2.2.2:8080')).to.equal(null);
    expect(upstreamProblem('[2001:db8::1]:443')).to.equal(null);
    expect(upstreamProblem('my-laptop:3000')).to.equal(null);
    expect(upstreamProblem('host:0')).to.include('1-65535');
    expect(upstreamProblem('host')).to.include('host:port');
    expect(upstreamProblem('a{b}:80')).to.include('may hold only letters');
  });
});
