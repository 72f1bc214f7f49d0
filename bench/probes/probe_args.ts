// What the probes share beyond ../timing.ts: the case shape of the conv layer probes and a
// minimal `--name value` reader (probes are developer tools, without the CLI's flag tables).

/** A square conv layer: input height = width, channels in and out, kernel size. */
export interface ProbeCase {
  hw: number;
  cin: number;
  cout: number;
  k: number;
}

/** The value after `--name` on the command line, or `fallback`. */
export function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}
