// What the CLI prints: aligned tables and key/value blocks for people, JSON for scripts, and a progress line on
// stderr only when it is a terminal. Pods are hostile and choose some of what is shown (names, labels, command
// output in logs), so every value a table prints has its control characters escaped: no terminal escape
// sequence from a pod reaches the admin's terminal.

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** One line of text with control characters shown as \xNN. */
export function printable(value: unknown): string {
  const s = value === null || value === undefined ? '-' : String(value);
  return s.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Text that may span lines (command output): newlines and tabs are kept, other controls escaped. */
export function printableText(value: string): string {
  return value.replace(CONTROL, (c) => (c === '\n' || c === '\t' ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

export function table(headers: string[], rows: unknown[][]): string {
  const cells = rows.map((r) => r.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export function keyValues(pairs: [string, unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${printable(v)}`).join('\n') + '\n';
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export interface Out {
  stdout(text: string): void;
  stderr(text: string): void;
  /** A line that replaces itself on stderr while something is waited for; nothing when stderr is not a terminal. */
  progress(text: string): void;
  /** Ends the progress line, if one is shown. */
  progressDone(): void;
}

export function processOut(): Out {
  let shown = false;
  const tty = process.stderr.isTTY === true;
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    progress(t) {
      if (!tty) return;
      const width = Math.max(20, (process.stderr.columns || 80) - 1);
      process.stderr.write(`\r\x1b[2K${printable(t).slice(0, width)}`);
      shown = true;
    },
    progressDone() {
      if (shown) process.stderr.write('\r\x1b[2K');
      shown = false;
    },
  };
}
