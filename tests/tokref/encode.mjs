// encode.mjs — the reference side of the tokenizer comparisons: Hugging Face
// `tokenizers` (npm, pinned in package-lock.json) encodes JSON lines
// {"text": ...} from stdin to {"ids": [...]} on stdout, without special
// tokens, the same protocol as `cohort tokenize --tokenizer FILE`.  With
// --decode it decodes {"ids": [...]} lines to {"text": ...}, skipping
// special tokens, as `cohort tokenize --decode`.  Truncation and padding
// are switched off, as cohort ignores them.
//   node tests/tokref/encode.mjs TOKENIZER.json [--decode] < lines.jsonl
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");

const path = process.argv[2];
const decode = process.argv[3] === "--decode";
if (!path || (process.argv[3] !== undefined && !decode)) {
  console.error("usage: node encode.mjs TOKENIZER.json [--decode] < lines.jsonl");
  process.exit(2);
}
const tok = Tokenizer.fromFile(path);
// cohort ignores a file's truncation and padding (a tokenizer is not a
// batching policy): compare tokenization, not batching.
tok.disableTruncation();
tok.disablePadding();
const lines = readFileSync(0, "utf8").split("\n").filter((l) => l.length > 0);
for (const line of lines) {
  if (decode) {
    const { ids } = JSON.parse(line);
    const text = await tok.decode(ids, true);
    process.stdout.write(JSON.stringify({ text }) + "\n");
  } else {
    const { text } = JSON.parse(line);
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    process.stdout.write(JSON.stringify({ ids: Array.from(enc.getIds()) }) + "\n");
  }
}
