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

function validator(schema) {
  const s = JSON.parse(JSON.stringify(schema));
  const dialect = typeof s.$schema === "string" ? s.$schema : "";
  // Draft-04/06/07 schemas are checked as draft-07 (Ajv's default; draft-04
  // needs another package); 2019-09 and 2020-12 with their own dialects.
  const Cls = dialect.includes("2020-12") ? Ajv2020 : dialect.includes("2019-09") ? Ajv2019 : Ajv;
  if (Cls === Ajv) delete s.$schema;
  const ajv = new Cls({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  return ajv.compile(s);
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
