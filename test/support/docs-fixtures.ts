// The ConnectorClass and Connector examples of the public docs (alauda/devops-connectors-docs),
// copied into test/fixtures/docs/: one file per docs page, each document preceded by a comment
// naming the page and the line of its code block (and any edit, such as an added apiVersion).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './proxy';

export const DOCS_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'docs');

export interface DocsExample {
  /** `docs/en/...mdx:<line>` and notes, from the comment above the document. */
  readonly source: string;
  readonly file: string;
  /** The document's own YAML text (comment included). */
  readonly text: string;
  readonly object: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec?: Record<string, unknown> } & Record<string, unknown>;
}

export function docsExamples(): DocsExample[] {
  const out: DocsExample[] = [];
  for (const file of readdirSync(DOCS_FIXTURES).filter((f) => f.endsWith('.yaml')).sort()) {
    const text = readFileSync(join(DOCS_FIXTURES, file), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const object = doc.toJS() as DocsExample['object'] | null;
      if (object === null) continue;
      const source = /^# (docs\/\S+.*)$/m.exec(doc.commentBefore ?? '')?.[1] ?? /# (docs\/\S+.*)/.exec(String(doc))?.[1];
      if (source === undefined) throw new Error(`${file}: a document without its source comment`);
      out.push({ source, file, text: String(doc), object });
    }
  }
  return out;
}
