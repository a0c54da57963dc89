// What the CLI prints for people: aligned columns, and no control character chosen by a pod (a name, a label,
// command output in a log) reaches the terminal as such.
import { describe, expect, it } from 'vitest';
import { keyValues, printable, printableText, table } from './output.ts';

describe('output', () => {
  it('aligns columns, without trailing spaces, and shows absent values as -', () => {
    expect(table(['A', 'LONGER'], [['x', 1], ['wide cell', null]])).toBe('A          LONGER\nx          1\nwide cell  -\n');
    expect(keyValues([['id', 'abc'], ['expires', undefined]])).toBe('id:      abc\nexpires: -\n');
  });

  it('escapes control characters: escape sequences, carriage returns, newlines in a cell, C1 controls', () => {
    const hostile = 'pod\x1b]0;owned\x07\r\nname\x9b2J';
    expect(printable(hostile)).toBe('pod\\x1b]0;owned\\x07\\x0d\\x0aname\\x9b2J');
    expect(table(['NAME'], [[hostile]])).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    // Multi-line text keeps its lines and tabs, nothing else.
    expect(printableText('a\tb\nc\x1b[2Jd\r')).toBe('a\tb\nc\\x1b[2Jd\\x0d');
  });
});
