// render.mjs — the reference side of the chat-template comparisons:
// @huggingface/jinja (npm, pinned in package-lock.json) renders JSON lines
// {"messages": [...], ...variables} from stdin to {"text": "..."}, or
// {"error": "...", "raised": true|false}, the protocol of
// `cohort template --config FILE`.
//   node tests/jinjaref/render.mjs FILE < lines.jsonl
// FILE: a tokenizer_config.json / chat_template.json ("chat_template": a
// string, or a list of {name, template}: "default", else the first) or a
// .jinja file.  Top-level "*_token" fields (a string or {"content": string})
// become default variables, as cohort does.  A template that does not parse
// exits 3 with the message on stderr.
//
// Two globals are replaced, as cohort defines them: strftime_now formats the
// variable date_time (RFC 3339, default 1970-01-01T00:00:00Z) instead of the
// clock, and raise_exception is marked so that its message can be compared.
import { readFileSync } from "node:fs";
import { Environment, Template } from "@huggingface/jinja";

const path = process.argv[2];
if (!path) {
  console.error("usage: node render.mjs FILE < lines.jsonl");
  process.exit(2);
}
let source;
const specials = {};
if (path.endsWith(".jinja")) {
  source = readFileSync(path, "utf8");
} else {
  const cfg = JSON.parse(readFileSync(path, "utf8"));
  const ct = cfg.chat_template;
  if (typeof ct === "string") source = ct;
  else if (Array.isArray(ct)) source = (ct.find((t) => t.name === "default") ?? ct[0]).template;
  else {
    console.error(`${path}: no chat_template`);
    process.exit(3);
  }
  for (const [k, v] of Object.entries(cfg)) {
    if (!k.endsWith("_token")) continue;
    if (typeof v === "string") specials[k] = v;
    else if (v && typeof v === "object" && typeof v.content === "string") specials[k] = v.content;
  }
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July",
  "August", "September", "October", "November", "December"];
let dateTime = null;
let raised = null;
function strftimeNow(fmt) {
  let y = 1970, mo = 1, d = 1, h = 0, mi = 0;
  if (dateTime !== null) {
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?/.exec(dateTime);
    if (!m) throw new Error(`date_time '${dateTime}' is not an RFC 3339 date`);
    [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (m[4] !== undefined) [h, mi] = [Number(m[4]), Number(m[5])];
  }
  const p2 = (n) => (n < 10 ? "0" + n : String(n));
  return fmt.replace(/%[YmdbBHM%]/g, (t) =>
    ({ "%Y": String(y), "%m": p2(mo), "%d": p2(d), "%b": MONTHS[mo - 1].slice(0, 3),
       "%B": MONTHS[mo - 1], "%H": p2(h), "%M": p2(mi), "%%": "%" })[t]);
}
function raiseException(msg) {
  raised = String(msg);
  throw new Error(msg);
}
const origSet = Environment.prototype.set;
Environment.prototype.set = function (name, value) {
  if (name === "strftime_now") value = strftimeNow;
  if (name === "raise_exception") value = raiseException;
  return origSet.call(this, name, value);
};

let template;
try {
  template = new Template(source);
} catch (e) {
  console.error(`${path}: ${e.message}`);
  process.exit(3);
}
const lines = readFileSync(0, "utf8").split("\n");
for (const line of lines) {
  if (line.trim() === "") continue;
  const vars = { ...specials, ...JSON.parse(line) };
  dateTime = typeof vars.date_time === "string" ? vars.date_time : null;
  raised = null;
  let out;
  try {
    out = { text: template.render(vars) };
  } catch (e) {
    out = raised !== null ? { error: raised, raised: true } : { error: String(e.message), raised: false };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
