// train.mjs — makes tokenizer.json files of the model types that no pinned
// real file covers, with Hugging Face `tokenizers` itself (npm, pinned in
// package-lock.json), so that tests/tok_compare.py can compare cohort with
// HF on them.  The trainers are HF's defaults.
//   wordpiece: BERT's pipeline (BertNormalizer, BertPreTokenizer, WordPiece
//              decoder), special tokens in the vocab as in BERT's files
//   unigram:   T5/ALBERT-style (NFKC, Metaspace pre-tokenizer and decoder)
//   wordlevel: Lowercase, Whitespace pre-tokenizer, <unk> in the vocab
//   node tests/tokref/train.mjs wordpiece|unigram|wordlevel CORPUS.txt OUT.json
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
const require = createRequire(import.meta.url);
const tk = require("tokenizers");

const [kind, corpus, out] = process.argv.slice(2);
if (!["wordpiece", "unigram", "wordlevel"].includes(kind) || !corpus || !out) {
  console.error("usage: node train.mjs wordpiece|unigram|wordlevel CORPUS.txt OUT.json");
  process.exit(2);
}
let tok;
if (kind === "wordpiece") {
  tok = new tk.Tokenizer(tk.WordPiece.empty());
  tok.setNormalizer(tk.bertNormalizer({ cleanText: true, handleChineseChars: true, lowercase: true }));
  tok.setPreTokenizer(tk.bertPreTokenizer());
  tok.setDecoder(tk.wordPieceDecoder("##", true));
} else if (kind === "wordlevel") {
  tok = new tk.Tokenizer(tk.WordLevel.empty());
  tok.setNormalizer(tk.lowercase());
  tok.setPreTokenizer(tk.whitespacePreTokenizer());
} else {
  tok = new tk.Tokenizer(tk.Unigram.empty());
  tok.setNormalizer(tk.nfkcNormalizer());
  tok.setPreTokenizer(tk.metaspacePreTokenizer("\u2581", "always", true));
  tok.setDecoder(tk.metaspaceDecoder("\u2581", "always", true));
}
tok.train([corpus]);
const specials = {
  wordpiece: ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],
  unigram: ["<pad>", "</s>"],
  wordlevel: ["<unk>", "<pad>"],
}[kind];
tok.addSpecialTokens(specials);
tok.save(out, false);
const j = JSON.parse(readFileSync(out, "utf8"));
if (kind === "unigram") {
  // as T5's files: an unk piece (score 0) that unknown characters map to
  j.model.vocab.push(["<unk>", 0]);
  j.model.unk_id = j.model.vocab.length - 1;
  for (const t of j.added_tokens) t.id += 1;
} else {
  // BERT's (and WordLevel's) files have the special tokens in the model's vocab too (the
  // WordPiece model needs its unk token there)
  for (const t of j.added_tokens) j.model.vocab[t.content] = t.id;
}
writeFileSync(out, JSON.stringify(j));
