// validate.mjs — checks constrained generation's outputs with Ajv, an
// independent JSON Schema validator (tests only).
//
// Usage: node validate.mjs RESULTS.jsonl
// Each line: {"name", "schema", "output"} for an output that cohort reported
// complete.  Prints one line per failure and a summary
// {"checked", "valid", "not_json", "invalid", "reference_cannot_compile"};
// exits 1 when any output does not parse or does not validate.
// A schema Ajv itself cannot compile is counted, printed and not passed.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const Ajv = require("ajv").default;
const Ajv2019 = require("ajv/dist/2019").default;
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

// Formats that JSON Schema does not define but ajv-formats checks: for JSON
// Schema (and for cohort's grammar engine, docs/grammar.md) a format name
// outside the specification is an annotation that every string satisfies.
const NONSTANDARD_FORMATS = ["url", "iso-time", "iso-date-time", "byte", "int32", "int64",
                             "float", "double", "password", "binary",
                             "json-pointer-uri-fragment"];

// Draft-04's `id` (the base URI; Ajv 8 refuses the keyword) is dropped at
// every schema position: it only matters to a reference that resolves
// against it, and such a reference then fails to compile, which is counted
// (reference_cannot_compile) and fails tests/grammar_gen_ajv.sh; local
// "#/..." pointers do not depend on it.  Property names "id" (inside
// `properties`) are left alone: only schema objects are walked.
const MAP_KEYS = ["properties", "patternProperties", "definitions", "$defs", "dependentSchemas"];
const ONE_KEYS = ["additionalProperties", "additionalItems", "not", "if", "then", "else",
                  "contains", "propertyNames", "unevaluatedItems", "unevaluatedProperties"];
const LIST_KEYS = ["anyOf", "allOf", "oneOf", "prefixItems"];
function dropDraft4Id(s, depth, key = "id") {
  if (depth > 200 || s === null || typeof s !== "object" || Array.isArray(s)) return;
  if (typeof s[key] === "string") delete s[key];
  for (const k of MAP_KEYS)
    if (s[k] && typeof s[k] === "object") for (const v of Object.values(s[k])) dropDraft4Id(v, depth + 1, key);
  for (const k of ONE_KEYS) dropDraft4Id(s[k], depth + 1, key);
  for (const k of LIST_KEYS) if (Array.isArray(s[k])) for (const v of s[k]) dropDraft4Id(v, depth + 1, key);
  if (Array.isArray(s.items)) for (const v of s.items) dropDraft4Id(v, depth + 1, key);
  else dropDraft4Id(s.items, depth + 1, key);
  if (s.dependencies && typeof s.dependencies === "object")
    for (const v of Object.values(s.dependencies)) dropDraft4Id(v, depth + 1, key);
}

function compile(Cls, s) {
  const ajv = new Cls({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  for (const f of NONSTANDARD_FORMATS) ajv.addFormat(f, true);
  return ajv.compile(s);
}

function validator(schema) {
  const s = JSON.parse(JSON.stringify(schema));
  dropDraft4Id(s, 0);
  const dialect = typeof s.$schema === "string" ? s.$schema : "";
  // Draft-04/06/07 schemas are checked as draft-07 (Ajv's default; draft-04
  // needs another package); 2019-09 and 2020-12 with their own dialects.
  const Cls = dialect.includes("2020-12") ? Ajv2020 : dialect.includes("2019-09") ? Ajv2019 : Ajv;
  if (Cls === Ajv) delete s.$schema;
  try {
    return compile(Cls, s);
  } catch (e) {
    // A schema that gives two subschemas the same `$id` (written by hand as
    // JSON pointers, copy-pasted) cannot compile; when it has no `$ref`,
    // its `$id`s identify nothing and are dropped.
    if (!/resolves to more than one schema/.test(e.message) || JSON.stringify(s).includes('"$ref"'))
      throw e;
    dropDraft4Id(s, 0, "$id");
    return compile(Cls, s);
  }
}

const file = process.argv[2];
const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0);
const sum = { checked: 0, valid: 0, not_json: 0, invalid: 0, reference_cannot_compile: 0 };
for (const line of lines) {
  const r = JSON.parse(line);
  sum.checked++;
  let value;
  try {
    value = JSON.parse(r.output);
  } catch (e) {
    sum.not_json++;
    console.log(`NOT JSON ${r.name}: ${e.message}: ${JSON.stringify(r.output).slice(0, 300)}`);
    continue;
  }
  let validate;
  try {
    validate = validator(r.schema);
  } catch (e) {
    sum.reference_cannot_compile++;
    console.log(`REFERENCE CANNOT COMPILE ${r.name}: ${e.message}`);
    continue;
  }
  if (validate(value)) {
    sum.valid++;
  } else {
    sum.invalid++;
    console.log(`INVALID ${r.name}: ${JSON.stringify(validate.errors).slice(0, 400)}: ` +
                JSON.stringify(r.output).slice(0, 300));
  }
}
console.log(JSON.stringify(sum));
process.exit(sum.not_json + sum.invalid > 0 ? 1 : 0);
