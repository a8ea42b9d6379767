// Master-file lexer (RFC 1035 §5.1): text → entries (one per record or directive) of tokens.
// Handles `;` comments, `( … )` spanning lines, quoted strings with `\X` / `\DDD` escapes.

export interface ZoneFileError {
  line: number;
  /** What is wrong, without the line number; shown to users as `line ${line}: ${message}`. */
  message: string;
}

export interface Token {
  /** Text as written, without surrounding quotes; escapes are still encoded (see decodeText). */
  raw: string;
  quoted: boolean;
  line: number;
}

/** One logical line: a record or a directive. `line` is where it starts. */
export interface Entry {
  line: number;
  /** The entry starts with whitespace: the owner is the previous record's. */
  blankOwner: boolean;
  tokens: Token[];
}

export const lineError = (line: number, message: string): ZoneFileError => ({ line, message });

const DELIMITERS = new Set([' ', '\t', '\r', '\n', ';', '(', ')', '"']);

/**
 * Splits `text` into entries. An entry with a syntax error (unterminated quote, unbalanced
 * parenthesis) is reported once, on the line where the problem starts, and dropped; lexing
 * resumes on the next line, so later errors are reported too.
 */
export function lex(text: string): { entries: Entry[]; errors: ZoneFileError[] } {
  const entries: Entry[] = [];
  const errors: ZoneFileError[] = [];
  let line = 1;
  let lineStart = 0;
  let entry: Entry | undefined;
  let broken = false;
  let openParen = 0; // line of the open `(`, 0 when none
  const flush = () => {
    if (entry && !broken) entries.push(entry);
    entry = undefined;
    broken = false;
    openParen = 0;
  };
  const push = (token: Token, column: number) => {
    entry ??= { line: token.line, blankOwner: column > 0, tokens: [] };
    entry.tokens.push(token);
  };
  const fail = (at: number, message: string) => {
    errors.push(lineError(at, message));
    broken = true;
  };

  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') {
      if (!openParen) flush();
      line++;
      lineStart = i + 1;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      continue;
    } else if (c === ';') {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (c === '(') {
      if (openParen) fail(line, `"(" inside the "(" opened on line ${openParen}`);
      else openParen = line;
    } else if (c === ')') {
      if (openParen) openParen = 0;
      else fail(line, '")" without a matching "("');
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"' && text[j] !== '\n') j += text[j] === '\\' && text[j + 1] !== '\n' ? 2 : 1;
      if (j >= text.length || text[j] !== '"') {
        fail(line, 'unterminated quoted string (a closing " is missing on this line)');
        openParen = 0; // resume on the next line
        i = j - 1;
        continue;
      }
      push({ raw: text.slice(i + 1, j), quoted: true, line }, i - lineStart);
      i = j;
    } else {
      let j = i;
      while (j < text.length && !DELIMITERS.has(text[j] as string)) j += text[j] === '\\' && j + 1 < text.length && text[j + 1] !== '\n' ? 2 : 1;
      push({ raw: text.slice(i, j), quoted: false, line }, i - lineStart);
      i = j - 1;
    }
  }
  if (openParen) fail(openParen, '"(" is never closed with ")"');
  flush();
  return { entries, errors };
}

/**
 * Decodes `\X` (X literally) and `\DDD` (decimal byte 0-255) in a token's text. Bytes come back
 * as characters U+0000-U+00FF; the schema then rejects anything that is not printable ASCII.
 */
export function decodeText(raw: string): { text: string } | { error: string } {
  let text = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string;
    if (c !== '\\') {
      text += c;
      continue;
    }
    const digits = /^\d{3}/.exec(raw.slice(i + 1, i + 4));
    if (digits) {
      const code = Number(digits[0]);
      if (code > 255) return { error: `escape \\${digits[0]} is not a byte (0-255)` };
      text += String.fromCharCode(code);
      i += 3;
    } else if (i + 1 < raw.length) {
      text += raw[++i];
    } else {
      return { error: 'a lone "\\" ends the text' };
    }
  }
  return { text };
}

/**
 * The bytes a token stands for: literal characters as UTF-8, `\X` as X, `\DDD` as the byte DDD
 * (RFC 1035 §5.1), so a TXT string can hold any byte.
 */
export function decodeBytes(raw: string): { bytes: Buffer } | { error: string } {
  const out: number[] = [];
  let literal = '';
  const flush = () => {
    if (literal) out.push(...Buffer.from(literal, 'utf8'));
    literal = '';
  };
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string;
    if (c !== '\\') {
      literal += c;
      continue;
    }
    flush();
    const digits = /^\d{3}/.exec(raw.slice(i + 1, i + 4));
    if (digits) {
      const code = Number(digits[0]);
      if (code > 255) return { error: `escape \\${digits[0]} is not a byte (0-255)` };
      out.push(code);
      i += 3;
    } else if (i + 1 < raw.length) literal += raw[++i];
    else return { error: 'a lone "\\" ends the text' };
  }
  flush();
  return { bytes: Buffer.from(out) };
}
