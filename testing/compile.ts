/**
 * `deno task compile`, run with the task's own arguments into a chosen folder,
 * for the tests and the benchmark. Where only the runtime download stands in
 * the way, it says so instead of failing.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname;

/** The arguments of the `compile` task in deno.json, output into `dir`. */
export async function compileArgs(dir: string): Promise<string[]> {
  const task: string = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.compile;
  return task.split(" ").slice(1).map((arg) =>
    arg === "log-probe" ? `${dir}/log-probe` : arg === "probe.ts" ? `${ROOT}probe.ts` : arg
  );
}

/**
 * Builds `dir/log-probe`. Returns "" on success, or why it could not be built
 * when `deno compile` cannot download its runtime; throws on any other failure.
 */
export async function compileProbe(dir: string): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: await compileArgs(dir),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.success) return "";
  const stderr = new TextDecoder().decode(output.stderr);
  const download = stderr.match(
    /error sending request for url \((https:\/\/dl\.deno\.land[^)]*)\)/,
  );
  if (download) return `deno compile must download ${download[1]}, unreachable here`;
  throw new Error(`deno task compile failed: ${stderr}`);
}
