// RFC 1035 master files: export of a served zone and import of pasted text.
// Layout: zonefile-export.ts (records → text via templates/zone.hbs), zonefile-lex.ts (text →
// tokens), zonefile-parse.ts (tokens → validated record sets). Both directions are pure.
export { exportZone, ZoneExportError } from './zonefile-export.js';
export { parseZoneFile, type ParsedZoneFile, type ZoneFileError } from './zonefile-parse.js';
