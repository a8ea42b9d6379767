// Record values as typed on the command line, e.g. MX "10 mail.example.com", SRV "10 5 5060 sip.example.com".
import type { RecordType } from '../model/record.js';
import { CliError } from './client.js';

function fields(type: string, text: string, n: number): string[] {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== n) throw new CliError(`${type} value "${text}" needs ${n} fields`, 2);
  return parts;
}

const num = (s: string) => (/^\d+$/.test(s) ? Number(s) : s);

/** Turns one command-line value into the API's value shape; the API validates the result. */
export function parseValue(type: RecordType, text: string): unknown {
  switch (type) {
    case 'MX': {
      const [preference = '', exchange] = fields(type, text, 2);
      return { preference: num(preference), exchange };
    }
    case 'SRV': {
      const [priority = '', weight = '', port = '', target] = fields(type, text, 4);
      return { priority: num(priority), weight: num(weight), port: num(port), target };
    }
    case 'CAA': {
      const m = /^\s*(\d+)\s+(\S+)\s+"?(.*?)"?\s*$/.exec(text);
      if (!m) throw new CliError(`CAA value "${text}" must be: flags tag value`, 2);
      return { flags: Number(m[1]), tag: m[2], value: m[3] };
    }
    default:
      return text;
  }
}
