// Flag parsing shared by every subcommand (train, eval, bench, ...).
//
// One table of flag definitions per command gives typed values, range checks, `--help` text and
// one-line errors that name the flag. `deno task train -- --epochs 3` passes the `--` through
// literally, so a leading `--` is skipped.

import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";
import { debugErrors } from "../flags.ts";

type FlagBase = { help: string; short?: string };
export type FlagDef =
  | FlagBase & { type: "int"; default?: number; min?: number; max?: number }
  | FlagBase & { type: "float"; default?: number; min?: number; max?: number }
  | FlagBase & { type: "string"; default?: string }
  | FlagBase & { type: "enum"; choices: readonly string[]; default?: string }
  | FlagBase & { type: "bool" }
  | FlagBase & { type: "list"; default?: string[] };

export type FlagDefs = Record<string, FlagDef>;

type ValueOf<D extends FlagDef> = D extends { type: "int" | "float" } ? number
  : D extends { type: "bool" } ? boolean
  : D extends { type: "list" } ? string[]
  : string;

/** Parsed flags: a flag with a default (or a bool/list) is always present, others may be undefined. */
export type Flags<D extends FlagDefs> =
  & {
    [K in keyof D]: D[K] extends { default: unknown } | { type: "bool" | "list" } ? ValueOf<D[K]>
      : ValueOf<D[K]> | undefined;
  }
  & { _: string[]; help: boolean };

/** Parses `argv` against `defs`. Throws UsageError naming the flag on unknown flags or bad values. */
export function parseFlags<D extends FlagDefs>(
  argv: readonly string[],
  defs: D,
  opts: { positionals?: boolean } = {},
): Flags<D> {
  const args = joinNegativeNumbers(argv[0] === "--" ? argv.slice(1) : [...argv], defs);
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = { help: { type: "boolean", short: "h" } };
  for (const [name, def] of Object.entries(defs)) {
    options[name] = {
      type: def.type === "bool" ? "boolean" : "string",
      ...(def.short ? { short: def.short } : {}),
      ...(def.type === "list" ? { multiple: true } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(cleanParseError(e as Error));
  }
  if (parsed.positionals.length > 0 && !opts.positionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[0]}" (flags start with --)`);
  }
  const out: Record<string, unknown> = { _: parsed.positionals, help: !!parsed.values.help };
  for (const [name, def] of Object.entries(defs)) {
    const raw = parsed.values[name];
    out[name] = convert(name, def, raw as string | boolean | string[] | undefined);
  }
  return out as Flags<D>;
}

/**
 * node:util refuses `--lr -0.5` as ambiguous (the value looks like a flag); for number flags a
 * following negative number is clearly the value, so it becomes `--lr=-0.5`.
 */
function joinNegativeNumbers(args: string[], defs: FlagDefs): string[] {
  const numeric = new Map<string, string>();
  for (const [name, def] of Object.entries(defs)) {
    if (def.type !== "int" && def.type !== "float") continue;
    numeric.set(`--${name}`, name);
    if (def.short) numeric.set(`-${def.short}`, name);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = numeric.get(args[i]);
    if (args[i] === "--") return out.concat(args.slice(i));
    if (name !== undefined && /^-\.?\d/.test(args[i + 1] ?? "")) {
      out.push(`--${name}=${args[++i]}`);
    } else {
      out.push(args[i]);
    }
  }
  return out;
}

function cleanParseError(e: Error): string {
  // node:util messages look like "Unknown option '--foo'. To specify a positional argument ...".
  const m = e.message.match(/Unknown option '([^']+)'/);
  if (m) return `unknown flag ${m[1]} (see --help)`;
  const v = e.message.match(/Option '(?:-\w, )?(--[\w-]+)[^']*' argument (missing|is ambiguous)/);
  if (v) return `${v[1]} needs a value${v[2] === "missing" ? "" : ` (write ${v[1]}=VALUE)`}`;
  const b = e.message.match(/Option '(?:-\w, )?(--[\w-]+)' does not take an argument/);
  if (b) return `${b[1]} is a switch and takes no value`;
  return e.message.split(/\.\s/)[0];
}

// Plain decimal numbers only: Number() would also take "0x10", "0b1" and "Infinity".
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function convert(name: string, def: FlagDef, raw: string | boolean | string[] | undefined) {
  const flag = `--${name}`;
  if (def.type === "bool") return raw === true;
  if (def.type === "list") {
    const items = (raw as string[] | undefined) ?? def.default ?? [];
    return items.flatMap((s) => s.split(",")).map((s) => s.trim()).filter((s) => s !== "");
  }
  if (raw === undefined) return def.default;
  const text = String(raw);
  switch (def.type) {
    case "string":
      if (text === "") throw new UsageError(`${flag} needs a non-empty value`);
      return text;
    case "enum":
      if (!def.choices.includes(text)) {
        throw new UsageError(`${flag} must be one of ${def.choices.join("|")}, got "${text}"`);
      }
      return text;
    case "int":
    case "float": {
      const n = Number(text);
      const kind = def.type === "int" ? "an integer" : "a number";
      if (
        !DECIMAL.test(text.trim()) || !Number.isFinite(n) ||
        (def.type === "int" && !Number.isInteger(n))
      ) {
        throw new UsageError(`${flag} must be ${kind}, got "${text}"`);
      }
      if (def.min !== undefined && n < def.min) {
        throw new UsageError(`${flag} must be >= ${def.min}, got ${text}`);
      }
      if (def.max !== undefined && n > def.max) {
        throw new UsageError(`${flag} must be <= ${def.max}, got ${text}`);
      }
      return n;
    }
  }
}

/** `--help` text: usage line, then one aligned line per flag with its default. */
export function helpText(usage: string, defs: FlagDefs, intro = ""): string {
  const rows = Object.entries(defs).map(([name, def]) => {
    const value = def.type === "bool"
      ? ""
      : def.type === "enum"
      ? ` <${def.choices.join("|")}>`
      : def.type === "int" || def.type === "float"
      ? " N"
      : def.type === "list"
      ? " A,B,..."
      : " VALUE";
    const dflt = "default" in def && def.default !== undefined &&
        !(Array.isArray(def.default) && def.default.length === 0)
      ? ` (default ${def.default})`
      : "";
    const short = def.short ? `-${def.short}, ` : "";
    return [`  ${short}--${name}${value}`, `${def.help}${dflt}`];
  });
  rows.push(["  -h, --help", "print this help"]);
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  const lines = rows.map(([l, r]) => l.padEnd(width) + r);
  return [`usage: ${usage}`, ...(intro ? ["", intro] : []), "", "flags:", ...lines].join("\n");
}

/**
 * The start of every command's main: parses `argv` against `defs`; on `--help` prints the help
 * text and returns null, and the command then returns without doing anything.
 */
export function parseCommandFlags<D extends FlagDefs>(
  argv: readonly string[],
  defs: D,
  help: { usage: string; intro?: string; positionals?: boolean },
): Flags<D> | null {
  const f = parseFlags(argv, defs, { positionals: help.positionals });
  if (!f.help) return f;
  console.log(helpText(help.usage, defs, help.intro));
  return null;
}

/**
 * Runs a command's main. A UsageError prints one line and exits 2; any other error prints its
 * message (stack only with FMNIST_DEBUG=1) and exits 1.
 */
export async function runCommand(name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const err = e as Error;
    const debug = debugErrors();
    console.error(`${name}: error: ${err.message}`);
    if (debug && err.stack) console.error(err.stack);
    Deno.exit(err instanceof UsageError ? 2 : 1);
  }
}

/** `--backend` and `--adapter` for the commands that take both with these defaults. */
export const DEVICE_FLAGS = {
  backend: { type: "enum", choices: ["webgpu", "cpu"], default: "webgpu", help: "tfjs backend" },
  adapter: {
    type: "enum",
    choices: ["any", "hardware"],
    default: "any",
    help: "hardware: refuse software adapters such as llvmpipe",
  },
} as const satisfies FlagDefs;
