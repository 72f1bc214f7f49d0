// Stands in for `node:util` in the browser bundle. The page's modules import UsageError from
// src/cli/args.ts, which also imports node:util's parseArgs for the CLI; the browser never parses
// flags, so the bundle maps node:util here (see src/serve/bundle.ts).

export function parseArgs(): never {
  throw new Error("command-line flag parsing is not available in the browser");
}
