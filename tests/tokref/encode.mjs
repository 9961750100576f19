// encode.mjs — the reference side of the tokenizer comparisons: Hugging Face
// `tokenizers` (npm, pinned in package-lock.json) encodes JSON lines
// {"text": ...} from stdin to {"ids": [...]} on stdout, without special
// tokens, the same protocol as `cohort tokenize --tokenizer FILE`.
//   node tests/tokref/encode.mjs TOKENIZER.json < lines.jsonl
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");

const path = process.argv[2];
if (!path) {
  console.error("usage: node encode.mjs TOKENIZER.json < lines.jsonl");
  process.exit(2);
}
const tok = Tokenizer.fromFile(path);
const lines = readFileSync(0, "utf8").split("\n").filter((l) => l.length > 0);
for (const line of lines) {
  const { text } = JSON.parse(line);
  const enc = await tok.encode(text, null, { addSpecialTokens: false });
  process.stdout.write(JSON.stringify({ ids: Array.from(enc.getIds()) }) + "\n");
}
