// Single entry point: `deno run -A src/main.ts <command> [flags]`, also the `deno compile` binary.
// Each command lives in its own module and is loaded only when asked for.

import { runCommand } from "./cli/args.ts";

const COMMANDS: Record<string, () => Promise<{ main(argv: string[]): Promise<void> }>> = {
  train: () => import("./cmd/train.ts"),
  eval: () => import("./cmd/eval.ts"),
  predict: () => import("./cmd/predict.ts"),
  export: () => import("./cmd/export.ts"),
  tune: () => import("./cmd/tune.ts"),
  serve: () => import("./cmd/serve.ts"),
  bench: () => import("./cmd/bench.ts"),
  profile: () => import("./cmd/profile.ts"),
};

const USAGE = `usage: fmnist <${
  Object.keys(COMMANDS).join("|")
}> [flags]   (<command> --help for flags)`;

if (import.meta.main) {
  const [name, ...rest] = Deno.args;
  const load = name ? COMMANDS[name] : undefined;
  if (!load) {
    console.error(name ? `fmnist: unknown command "${name}"\n${USAGE}` : USAGE);
    Deno.exit(2);
  }
  await runCommand(name, async () => (await load()).main(rest));
}
