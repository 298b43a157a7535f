// RFC 4180 CSV (and TSV) parsing that keeps the physical line each record starts on, so a bad
// row can be reported by the line the user sees in an editor even when quoted fields span lines.
//
// Departures from RFC 4180, each chosen so real files read as their authors meant them:
// - LF and CRLF both end a record; a lone CR inside an unquoted field is kept as text.
// - A quote inside an unquoted field is literal (`5'10"`), as Python's csv module reads it.
// - `quote: null` turns quoting off entirely, which is how GLUE reads its TSV files: QQP's
//   questions keep the `"""...""` artefacts of the Quora export, and GLUE never unquotes them.
// - Blank lines between records are skipped (a multi-column file has no empty records).
// A quoted field that is never closed, or text after a closing quote, is an error for that record.

export interface CsvOptions {
  /** Field separator, one character. Default ','. */
  delimiter?: string;
  /** Quote character, or null for no quoting (GLUE TSV). Default '"'. */
  quote?: string | null;
}

export interface CsvRecord {
  fields: string[];
  /** 1-based line on which the record starts. */
  line: number;
}

export interface CsvParseResult {
  records: CsvRecord[];
  /** Records that could not be parsed; their text is skipped up to the next record. */
  errors: { line: number; message: string }[];
}

export function parseCsv(text: string, options: CsvOptions = {}): CsvParseResult {
  const delimiter = options.delimiter ?? ',';
  const quote = options.quote === undefined ? '"' : options.quote;
  if (delimiter.length !== 1) throw new Error(`CSV delimiter must be one character, got ${JSON.stringify(delimiter)}`);
  if (quote !== null && (quote.length !== 1 || quote === delimiter)) {
    throw new Error(`CSV quote must be one character other than the delimiter, got ${JSON.stringify(quote)}`);
  }
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const records: CsvRecord[] = [];
  const errors: { line: number; message: string }[] = [];
  const n = src.length;
  let i = 0;
  let line = 1;

  /** Skips to the start of the next physical line, after an error in the current record. */
  const skipRestOfLine = () => {
    while (i < n && src[i] !== '\n') i++;
    if (i < n) {
      i++;
      line++;
    }
  };

  while (i < n) {
    // Blank line (LF or CRLF) between records.
    if (src[i] === '\n') {
      i++;
      line++;
      continue;
    }
    if (src[i] === '\r' && src[i + 1] === '\n') {
      i += 2;
      line++;
      continue;
    }
    const startLine = line;
    const fields: string[] = [];
    let failed: string | null = null;
    for (;;) {
      let field = '';
      if (quote !== null && src[i] === quote) {
        const openLine = line;
        i++;
        let closed = false;
        while (i < n) {
          const c = src[i]!;
          if (c === quote) {
            if (src[i + 1] === quote) {
              field += quote;
              i += 2;
              continue;
            }
            i++;
            closed = true;
            break;
          }
          if (c === '\n') line++;
          field += c;
          i++;
        }
        if (!closed) {
          failed = `quoted field opened on line ${openLine} is never closed`;
          break;
        }
        const next = src[i];
        if (next !== undefined && next !== delimiter && next !== '\n' && !(next === '\r' && src[i + 1] === '\n')) {
          failed = `unexpected ${JSON.stringify(next)} after a closing quote (write a quote inside a quoted field as ${quote}${quote})`;
          break;
        }
      } else {
        const start = i;
        while (i < n && src[i] !== delimiter && src[i] !== '\n' && !(src[i] === '\r' && src[i + 1] === '\n')) i++;
        field = src.slice(start, i);
      }
      fields.push(field);
      if (i >= n) break;
      if (src[i] === delimiter) {
        i++;
        continue;
      }
      // End of record.
      i += src[i] === '\r' ? 2 : 1;
      line++;
      break;
    }
    if (failed !== null) {
      errors.push({ line: startLine, message: failed });
      // An unclosed quote swallows the rest of the file: nothing after it can be trusted.
      if (i >= n) break;
      skipRestOfLine();
      continue;
    }
    records.push({ fields, line: startLine });
  }
  return { records, errors };
}

/** Quotes a field when it needs it, for writing CSV fixtures and exports. */
export function formatCsvField(value: string, delimiter = ','): string {
  return /["\r\n]/.test(value) || value.includes(delimiter) ? `"${value.replace(/"/g, '""')}"` : value;
}
