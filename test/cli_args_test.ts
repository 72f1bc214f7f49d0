// Flag parsing: typed values, one-line errors naming the flag, help text.

import assert from "node:assert/strict";
import { type FlagDefs, helpText, parseCommandFlags, parseFlags } from "../src/cli/args.ts";
import { UsageError } from "../src/errors.ts";

const DEFS = {
  epochs: { type: "int", default: 3, min: 1, max: 100, short: "e", help: "training epochs" },
  lr: { type: "float", min: -1, help: "learning rate" },
  model: {
    type: "enum",
    choices: ["baseline", "wide"],
    default: "baseline",
    help: "which network",
  },
  verbose: { type: "bool", help: "more output" },
  tags: { type: "list", help: "labels for the run" },
  out: { type: "string", help: "output folder" },
} satisfies FlagDefs;

function usageError(argv: string[]): string {
  try {
    parseFlags(argv, DEFS);
  } catch (e) {
    assert.ok(e instanceof UsageError, `expected UsageError, got ${e}`);
    assert.ok(!e.message.includes("\n"), `one line: ${JSON.stringify(e.message)}`);
    return e.message;
  }
  assert.fail(`no error for ${JSON.stringify(argv)}`);
}

Deno.test("parseFlags: typed values, defaults and a leading -- skipped", () => {
  const f = parseFlags(
    [
      "--",
      "--epochs",
      "7",
      "--lr=0.5",
      "--model",
      "wide",
      "--verbose",
      "--tags",
      "a,b",
      "--tags",
      "c",
    ],
    DEFS,
  );
  assert.equal(f.epochs, 7);
  assert.equal(f.lr, 0.5);
  assert.equal(f.model, "wide");
  assert.equal(f.verbose, true);
  assert.deepEqual(f.tags, ["a", "b", "c"]);
  assert.equal(f.out, undefined);
  assert.equal(f.help, false);
  const d = parseFlags([], DEFS);
  assert.equal(d.epochs, 3);
  assert.equal(d.model, "baseline");
  assert.equal(d.verbose, false);
  assert.deepEqual(d.tags, []);
  assert.equal(parseFlags(["-e", "9"], DEFS).epochs, 9);
  assert.equal(parseFlags(["-h"], DEFS).help, true);
});

Deno.test("parseFlags: a negative number after a number flag is its value", () => {
  assert.equal(parseFlags(["--lr", "-0.5"], DEFS).lr, -0.5);
  assert.equal(parseFlags(["--lr", "-.5"], DEFS).lr, -0.5);
  assert.match(usageError(["--epochs", "-2"]), /^--epochs must be >= 1, got -2$/);
});

Deno.test("parseFlags: unknown flags and stray arguments are named", () => {
  assert.match(usageError(["--bogus"]), /unknown flag --bogus/);
  assert.match(usageError(["-x"]), /unknown flag -x/);
  assert.match(usageError(["--epochs", "5", "extra"]), /unexpected argument "extra"/);
  assert.deepEqual(parseFlags(["a", "b"], DEFS, { positionals: true })._, ["a", "b"]);
});

Deno.test("parseFlags: bad int/float/enum values name the flag and the value", () => {
  assert.match(usageError(["--epochs", "2.5"]), /^--epochs must be an integer, got "2.5"$/);
  assert.match(usageError(["--epochs", "ten"]), /^--epochs must be an integer, got "ten"$/);
  assert.match(usageError(["--epochs", "0x10"]), /^--epochs must be an integer, got "0x10"$/);
  assert.match(usageError(["--epochs", ""]), /^--epochs must be an integer/);
  assert.match(usageError(["--lr", "fast"]), /^--lr must be a number, got "fast"$/);
  assert.match(usageError(["--lr", "Infinity"]), /^--lr must be a number/);
  assert.match(
    usageError(["--model", "huge"]),
    /^--model must be one of baseline\|wide, got "huge"$/,
  );
  assert.match(usageError(["--out="]), /^--out needs a non-empty value$/);
  assert.match(usageError(["--epochs"]), /^--epochs needs a value$/);
  assert.match(usageError(["--verbose=1"]), /^--verbose is a switch and takes no value$/);
  assert.match(usageError(["--out", "-x"]), /^--out needs a value \(write --out=VALUE\)$/);
});

Deno.test("parseFlags: min and max are enforced, bounds themselves allowed", () => {
  assert.match(usageError(["--epochs", "0"]), /^--epochs must be >= 1, got 0$/);
  assert.match(usageError(["--epochs", "101"]), /^--epochs must be <= 100, got 101$/);
  assert.match(usageError(["--lr=-1.5"]), /^--lr must be >= -1, got -1.5$/);
  assert.equal(parseFlags(["--epochs", "1"], DEFS).epochs, 1);
  assert.equal(parseFlags(["--epochs", "100"], DEFS).epochs, 100);
  assert.equal(parseFlags(["--epochs", "1e1"], DEFS).epochs, 10);
});

Deno.test("helpText lists every flag with its value kind, short form and default", () => {
  const text = helpText("fmnist train [flags]", DEFS, "Trains a model.");
  const lines = text.split("\n");
  assert.equal(lines[0], "usage: fmnist train [flags]");
  assert.ok(lines.includes("Trains a model."));
  for (const name of Object.keys(DEFS)) {
    assert.ok(lines.some((l) => l.includes(`--${name}`)), `--${name} missing from:\n${text}`);
  }
  assert.match(text, /-e, --epochs N\s+training epochs \(default 3\)/);
  assert.match(text, /--model <baseline\|wide>\s+which network \(default baseline\)/);
  assert.match(text, /--tags A,B,\.\.\.\s+labels for the run\n/);
  assert.match(text, /-h, --help\s+print this help/);
  // Descriptions line up in one column.
  const helps = [...Object.values(DEFS).map((d) => d.help), "print this help"];
  const columns = helps.map((h) => lines.find((l) => l.endsWith(h) || l.includes(`${h} (`))!);
  assert.equal(new Set(columns.map((l, i) => l.indexOf(helps[i]))).size, 1, text);
});

Deno.test("parseCommandFlags: --help prints the help text and gives null, else the flags", () => {
  const printed: unknown[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => printed.push(a.join(" "));
  try {
    assert.equal(
      parseCommandFlags(["--help"], DEFS, { usage: "fmnist x", intro: "Does x." }),
      null,
    );
    assert.deepEqual(printed, [helpText("fmnist x", DEFS, "Does x.")]);
    assert.equal(parseCommandFlags(["-e", "4"], DEFS, { usage: "fmnist x" })?.epochs, 4);
    assert.equal(printed.length, 1, "no help printed without --help");
    assert.throws(() => parseCommandFlags(["a"], DEFS, { usage: "fmnist x" }), UsageError);
    const f = parseCommandFlags(["a"], DEFS, { usage: "fmnist x", positionals: true });
    assert.deepEqual(f?._, ["a"]);
  } finally {
    console.log = log;
  }
});
