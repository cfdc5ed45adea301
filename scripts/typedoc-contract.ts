/**
 * TypeDoc plugin: renders the contract lines of the doc comments as paragraphs of their own.
 *
 * The library's comments state each function's contract in lines that start with `Locking:`,
 * `Threads:`, `Returns` or `Throws` (also after a sentence on the same line). Markdown would run
 * them together into one paragraph; this puts each on its own, its label in bold, so a reader finds
 * "which locks, which threads, what comes back, what is thrown" at a glance. Only the rendering
 * changes: the comments stay plain text in the sources.
 *
 * Loaded by typedoc.json from the build (`npm run docs` builds first).
 */
import { Converter, type Application, type Comment, type CommentDisplayPart, type Context } from 'typedoc';

/** A label at the start of a line, or after the end of a sentence on the same line. */
const CONTRACT_LABEL = /(\n|(?<=\.) )(Locking:|Threads:|Returns\b|Throws\b)/g;

/** The parts with every contract label moved to a new paragraph and set in bold. */
export function splitContractLines(parts: CommentDisplayPart[]): CommentDisplayPart[] {
  return parts.map((part) => (part.kind === 'text' ? { ...part, text: part.text.replace(CONTRACT_LABEL, '\n\n**$2**') } : part));
}

function rewrite(comment: Comment | undefined): void {
  if (comment === undefined) return;
  comment.summary = splitContractLines(comment.summary);
  for (const tag of comment.blockTags) tag.content = splitContractLines(tag.content);
}

export function load(app: Application): void {
  app.converter.on(Converter.EVENT_RESOLVE_END, (context: Context) => {
    for (const reflection of Object.values(context.project.reflections)) rewrite(reflection.comment);
  });
}
