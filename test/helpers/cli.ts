// Runs the `fmnist` CLI (src/main.ts) in a child Deno, for tests of exit codes and printed lines.

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

/** `fmnist ...args` to completion: exit code and decoded stdout/stderr. */
export async function fmnist(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}
