// A strict parser for the subset of YAML the deployment files use (no YAML package is
// installed): block mappings and sequences by indentation, `- key: value` items, plain, single-
// and double-quoted scalars, flow sequences/mappings (`['a', 'b']`, `{}`, over several lines, a
// trailing comma allowed), comments and `---` between documents. Anything outside the subset —
// tabs, block scalars (`|`, `>`), anchors, aliases, tags, duplicate keys, a line indented where no
// value can start — is an error naming the line, so a file that parses here is well-formed YAML
// with the structure a real parser would give.

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  no: number;
  indent: number;
  text: string;
}

export class YamlError extends Error {}

/** Every document of the file (documents separated by `---`). */
export function parseYamlDocuments(source: string): YamlValue[] {
  const docs: Line[][] = [[]];
  source.split(/\r?\n/).forEach((raw, i) => {
    if (/^---\s*$/.test(raw)) {
      docs.push([]);
      return;
    }
    if (raw.includes('\t') && /^\s*\t/.test(raw)) throw new YamlError(`line ${i + 1}: tab indentation`);
    const text = stripComment(raw).trimEnd();
    if (text.trim() === '') return;
    const indent = text.length - text.trimStart().length;
    docs[docs.length - 1].push({ no: i + 1, indent, text: text.trimStart() });
  });
  return docs.filter((d) => d.length > 0).map((lines) => new Parser(lines).document());
}

function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) {
        if (quote === "'" && line[i + 1] === "'") i++;
        else quote = undefined;
      } else if (c === '\\' && quote === '"') i++;
    } else if (c === '"' || c === "'") {
      const before = line.slice(0, i).trimEnd();
      if (before === '' || /[:\-[{,]$/.test(before)) quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]))) {
      return line.slice(0, i);
    }
  }
  return line;
}

class Parser {
  private i = 0;
  constructor(private readonly lines: Line[]) {}

  document(): YamlValue {
    const value = this.block(this.lines[0].indent);
    if (this.i < this.lines.length) this.fail(this.lines[this.i], 'unexpected indentation');
    return value;
  }

  private fail(line: Line, why: string): never {
    throw new YamlError(`line ${line.no}: ${why}: ${line.text}`);
  }

  private block(indent: number): YamlValue {
    const line = this.lines[this.i];
    if (line.indent !== indent) this.fail(line, `expected indentation ${indent}`);
    if (line.text.startsWith('[') || line.text.startsWith('{')) return this.flowFrom(line, line.text);
    return isItem(line.text) ? this.sequence(indent) : this.mapping(indent);
  }

  private sequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    while (this.i < this.lines.length) {
      const line = this.lines[this.i];
      if (line.indent !== indent || !isItem(line.text)) break;
      const rest = line.text.slice(1).trimStart();
      if (rest === '') {
        this.i++;
        out.push(this.nested(indent));
      } else if (keyOf(rest) !== undefined) {
        // `- key: value`: a mapping whose keys line up with `key`.
        const inner = indent + (line.text.length - rest.length);
        this.lines[this.i] = { no: line.no, indent: inner, text: rest };
        out.push(this.mapping(inner));
      } else {
        out.push(this.inline(line, rest));
      }
    }
    return out;
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    while (this.i < this.lines.length) {
      const line = this.lines[this.i];
      if (line.indent < indent) break;
      if (line.indent > indent) this.fail(line, 'unexpected indentation');
      if (isItem(line.text)) break;
      const parsed = keyOf(line.text);
      if (!parsed) this.fail(line, 'expected "key: value"');
      const [key, rest] = parsed;
      if (Object.prototype.hasOwnProperty.call(out, key)) this.fail(line, `duplicate key ${key}`);
      if (rest === '') {
        this.i++;
        const next = this.lines[this.i];
        // A sequence may sit at the key's own indentation.
        if (next && next.indent === indent && isItem(next.text)) out[key] = this.sequence(indent);
        else out[key] = this.nested(indent);
      } else {
        out[key] = this.inline(line, rest);
      }
    }
    return out;
  }

  /** The value on the following lines, indented deeper than `indent` (null when none). */
  private nested(indent: number): YamlValue {
    const next = this.lines[this.i];
    if (!next || next.indent <= indent) return null;
    return this.block(next.indent);
  }

  /** A value on the same line as its key or dash; consumes the line (and flow continuations). */
  private inline(line: Line, text: string): YamlValue {
    if (text.startsWith('[') || text.startsWith('{')) return this.flowFrom(line, text);
    this.i++;
    return scalar(line, text);
  }

  /** A flow collection starting on `line`, continued on following lines until balanced. */
  private flowFrom(line: Line, first: string): YamlValue {
    let text = first;
    this.i++;
    while (!balanced(text)) {
      const next = this.lines[this.i++];
      if (!next) this.fail(line, 'unterminated flow collection');
      text += ' ' + next.text;
    }
    const flow = new FlowParser(text, line);
    const value = flow.value();
    flow.end();
    return value;
  }
}

function isItem(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

/** `key: rest` (plain or quoted key), or undefined. */
function keyOf(text: string): [string, string] | undefined {
  const quoted = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(?:\s+|$)(.*)$/.exec(text);
  if (quoted) return [unquote(quoted[1]), quoted[2]];
  const plain = /^([^\s'"[\]{},#&*!|>%@`][^:#]*?)\s*:(?:\s+|$)(.*)$/.exec(text);
  return plain ? [plain[1], plain[2]] : undefined;
}

function balanced(text: string): boolean {
  let depth = 0;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) {
        if (quote === "'" && text[i + 1] === "'") i++;
        else quote = undefined;
      }
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
  }
  return depth === 0 && quote === undefined;
}

function unquote(text: string): string {
  if (text.startsWith('"')) return JSON.parse(text) as string;
  return text.slice(1, -1).replace(/''/g, "'");
}

function scalar(line: Line, text: string): YamlValue {
  const t = text.trim();
  if (t.startsWith('"') || t.startsWith("'")) {
    const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')$/.exec(t);
    if (!m) throw new YamlError(`line ${line.no}: bad quoted scalar: ${t}`);
    return unquote(t);
  }
  if (/^[|>&*!%@`]/.test(t)) throw new YamlError(`line ${line.no}: unsupported YAML (${t[0]}): ${t}`);
  if (/:\s/.test(t)) throw new YamlError(`line ${line.no}: ": " inside a plain scalar: ${t}`);
  if (t === 'true' || t === 'false') return t === 'true';
  if (t === 'null' || t === '~') return null;
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  return t;
}

class FlowParser {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly line: Line,
  ) {}

  private fail(why: string): never {
    throw new YamlError(`line ${this.line.no}: ${why} in flow collection: ${this.text}`);
  }

  private skip(): void {
    while (/\s/.test(this.text[this.pos] ?? '')) this.pos++;
  }

  end(): void {
    this.skip();
    if (this.pos !== this.text.length) this.fail('trailing text');
  }

  value(): YamlValue {
    this.skip();
    const c = this.text[this.pos];
    if (c === '[') return this.collection(']', () => this.value());
    if (c === '{') {
      const out: { [key: string]: YamlValue } = {};
      this.collection('}', () => {
        const key = this.value();
        this.skip();
        if (this.text[this.pos] !== ':') this.fail('expected ":"');
        this.pos++;
        out[String(key)] = this.value();
        return null;
      });
      return out;
    }
    if (c === '"' || c === "'") {
      const m = (c === '"' ? /^"(?:[^"\\]|\\.)*"/ : /^'(?:[^']|'')*'/).exec(this.text.slice(this.pos));
      if (!m) this.fail('unterminated string');
      this.pos += m[0].length;
      return unquote(m[0]);
    }
    const m = /^[^,[\]{}:]+/.exec(this.text.slice(this.pos));
    if (!m) this.fail('expected a value');
    this.pos += m[0].length;
    return scalar(this.line, m[0]);
  }

  private collection(close: string, item: () => YamlValue): YamlValue[] {
    const out: YamlValue[] = [];
    this.pos++;
    for (;;) {
      this.skip();
      if (this.text[this.pos] === close) {
        this.pos++;
        return out;
      }
      out.push(item());
      this.skip();
      const c = this.text[this.pos];
      if (c === ',') this.pos++;
      else if (c !== close) this.fail(`expected "," or "${close}"`);
    }
  }
}
