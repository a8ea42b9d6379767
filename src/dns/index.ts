// Public surface of the DNS module.
export { ZoneIndex } from './zone.js';
export { lookup, MAX_CNAME_HOPS, type LookupKind, type LookupResult } from './lookup.js';
export { DnsServer, type DnsServerOptions } from './server.js';
export { Forwarder, parseUpstream, type ForwarderOptions, type Upstream } from './forward.js';
export { soaFor, SOA_TIMERS, type ServedRecord, type Soa, type ZoneSettings } from './soa.js';
export { PlainUpstreams, PLAIN_SERVICE, PLAIN_PROTO, backendOf, isReservedName, srvName, type PlainBackend } from './upstreams.js';
