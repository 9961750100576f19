// The synthetic prompt of bench_infer.c make_prompt(), for the Node benches
// (node_ref/generate.mjs, serve_load.mjs): token 0 is BOS, token i a
// splitmix-style mix of (request, position) in 64-bit arithmetic, kept in
// 3..vocab-1, so every bench feeds cohort and the references the same ids.
export function makePrompt(len, req, bos, vocab) {
  const M = (1n << 64n) - 1n;
  const p = new Array(len);
  p[0] = bos;
  const span = BigInt(vocab > 16 ? vocab - 3 : 1);
  for (let i = 1; i < len; i++) {
    let x = (BigInt(req) * 0x9E3779B97F4A7C15n + BigInt(i) * 0xBF58476D1CE4E5B9n) & M;
    x ^= x >> 31n;
    x = (x * 0x94D049BB133111EBn) & M;
    x ^= x >> 29n;
    p[i] = Number(3n + x % span);
  }
  return p;
}
