import { expect } from 'chai';
import { addressClass, isInternalAddress, isLocalhostName } from '../../src/model/address.js';

describe('model/address', () => {
  const table: [string, ReturnType<typeof addressClass>][] = [
    ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'],
    ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
    ['169.254.169.254', 'link_local'], ['fe80::1', 'link_local'], ['::ffff:169.254.169.254', 'link_local'],
    ['100.100.100.200', 'metadata'], ['fd00:ec2::254', 'metadata'],
    ['100.64.1.1', 'tailnet'], ['100.127.255.254', 'tailnet'], ['fd7a:115c:a1e0::1', 'tailnet'],
    ['10.1.1.1', 'private'], ['172.31.0.1', 'private'], ['192.168.1.1', 'private'], ['fd00::1', 'private'], ['::ffff:10.0.0.1', 'private'],
    ['224.0.0.1', 'multicast'], ['255.255.255.255', 'multicast'], ['ff02::1', 'multicast'],
    ['192.0.2.5', 'public'], ['100.128.0.1', 'public'], ['2001:db8::1', 'public'],
    ['example.com', null], ['fe80::1%eth0', null], ['', null],
  ];
  for (const [ip, cls] of table) it(`${ip || '(empty)'} → ${cls}`, () => expect(addressClass(ip)).to.equal(cls));

  it('calls loopback, unspecified, link-local, metadata and multicast internal; tailnet, private and public not', () => {
    expect(['127.0.0.1', '::', '169.254.169.254', '100.100.100.200', '224.0.0.1'].map(isInternalAddress)).to.deep.equal([true, true, true, true, true]);
    expect(['100.64.1.1', '10.0.0.1', '192.0.2.1', 'nas.home.arpa'].map(isInternalAddress)).to.deep.equal([false, false, false, false]);
  });

  it('knows the names that always mean this host (RFC 6761)', () => {
    expect(['localhost', 'LOCALHOST.', 'a.localhost', 'ip6-localhost'].map(isLocalhostName)).to.deep.equal([true, true, true, true]);
    expect(['localhost.home.arpa', 'mylocalhost', 'nas'].map(isLocalhostName)).to.deep.equal([false, false, false]);
  });
});
