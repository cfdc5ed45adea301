/**
 * The layout tables of docs/architecture.md are generated from the code (scripts/layout-doc.ts):
 * this suite fails when the document and the code disagree, and checks the source parse the
 * generator relies on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { definedStructs } from '../src/arena/struct.js';
import {
  BEGIN, DOC, END, findRoot, generatedPart, layoutSources, parseConstants, parseStructs, renderLayoutSection, withGeneratedPart,
} from '../scripts/layout-doc.js';

const root = findRoot(fileURLToPath(new URL('.', import.meta.url)));
/** Every layout module, imported from its source: each registers its structs as it loads. */
const importSource = (file: string) => import(join(root, file)) as Promise<Record<string, unknown>>;

describe('docs/architecture.md layout tables', () => {
  it('match what the defineStruct calls define (run `npm run docs:layout` after changing a layout)', async () => {
    const section = await renderLayoutSection(root, importSource);
    const doc = readFileSync(join(root, DOC), 'utf8');
    const inDoc = generatedPart(doc);
    expect(inDoc, `${DOC} has no layout markers`).not.toBeNull();
    // The first differing line says more than a whole-document diff.
    const want = section.trim().split('\n');
    const have = (inDoc ?? '').split('\n');
    let i = want.findIndex((line, k) => have[k] !== line);
    if (i < 0 && have.length !== want.length) i = want.length;
    const why = `${DOC} differs from the code at generated line ${i + 1}:\n  doc:  ${have[i] ?? '(nothing)'}\n  code: ${want[i] ?? '(nothing)'}\nrun npm run docs:layout`;
    expect(i, why).toBe(-1);
  });

  it('cover every struct: each registered struct is documented once, with every field and offset', async () => {
    await renderLayoutSection(root, importSource); // imports every layout module
    const doc = generatedPart(readFileSync(join(root, DOC), 'utf8')) ?? '';
    const structs = definedStructs();
    // Every defineStruct call under src/ was found and its module imported (renderLayoutSection
    // throws otherwise); each struct has a name of its own.
    const calls = layoutSources(root).flatMap((s) => parseStructs(s.file, s.text));
    expect(structs.map((s) => s.name).sort()).toEqual(calls.map((c) => c.name).sort());
    expect(new Set(structs.map((s) => s.name)).size).toBe(structs.length);
    for (const s of structs) {
      expect(doc).toContain(`#### Struct \`${s.name}\``);
      for (const f of s.fields) expect(doc).toMatch(new RegExp(`\\| ${f.offset} \\| ${f.words} \\| ${f.name} \\|`));
    }
  });
});

describe('layout source parse', () => {
  const source = [
    "import { defineStruct } from '../arena/struct.js';",
    '/* ───── widget (W_* relative to the payload) ───── */',
    'export const { A: W_A, B: W_B, END: W_WORDS } = defineStruct(',
    "  'widget',",
    '  {',
    '    A: 1, // the first word',
    '    /** The second, two words. */',
    '    B: 2,',
    '    C: 1,',
    '  },',
    '  { base: 4 },',
    ');',
    "const h = defineStruct('header', { X: 1 }); // lone field, comment after the call",
    'export const { X: H_X } = h;',
    '/** Widget flags, in order. */',
    'export const WF_ONE = 1 << 0;',
    'export const WF_TWO = 1 << 1; // the second flag',
    'export const Kind = {',
    '  PLAIN: 0, // a plain one',
    '} as const;',
  ].join('\n');

  it('reads names, exported constants and comments of every defineStruct call', () => {
    const [widget, header] = parseStructs('src/widget/layout.ts', source);
    expect(widget).toEqual({
      name: 'widget',
      file: 'src/widget/layout.ts',
      line: 3,
      doc: 'widget (W_* relative to the payload)',
      fields: [
        { name: 'A', constant: 'W_A', doc: 'the first word' },
        { name: 'B', constant: 'W_B', doc: 'The second, two words.' },
        { name: 'C', constant: '', doc: '' },
      ],
    });
    expect(header.fields).toEqual([{ name: 'X', constant: 'H_X', doc: 'lone field, comment after the call' }]);
  });

  it('reads exported constants and object entries with their comments', () => {
    expect(parseConstants('f.ts', source)).toEqual([
      { name: 'WF_ONE', file: 'f.ts', lead: 'Widget flags, in order.', trail: '' },
      { name: 'WF_TWO', file: 'f.ts', lead: '', trail: 'the second flag' },
      { name: 'Kind', file: 'f.ts', lead: '', trail: '' },
      { name: 'Kind.PLAIN', file: 'f.ts', lead: '', trail: 'a plain one' },
    ]);
  });

  it('refuses a struct it cannot document', () => {
    expect(() => parseStructs('x.ts', 'const n = "a"; defineStruct(n, { A: 1 });')).toThrow(/x.ts:1: defineStruct needs a string literal name/);
    expect(() => parseStructs('x.ts', "defineStruct('a', fields);")).toThrow(/fields as an object literal/);
  });

  it('replaces only the text between the markers', () => {
    const doc = `# Title\n\nprose\n${BEGIN}\nold tables\n${END}\nmore prose\n`;
    const next = withGeneratedPart(doc, 'NEW');
    expect(next).toBe(`# Title\n\nprose\n${BEGIN}\n\nNEW\n\n${END}\nmore prose\n`);
    expect(generatedPart(next)).toBe('NEW');
    expect(withGeneratedPart(next, 'NEW')).toBe(next);
    expect(() => withGeneratedPart('no markers', 'x')).toThrow(/markers/);
  });
});
