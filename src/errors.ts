// Errors that cross layers: any module may throw them, the command runner (src/cli/args.ts
// `runCommand`) maps them to exit codes.

/** A user mistake (bad flag, bad file): printed as one line, no stack trace, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
