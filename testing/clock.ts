/**
 * The virtual clock for probe runs. The pod shares the node's clock
 * (`CLOCK_REALTIME` is not namespaced), and the probe compares it with log
 * timestamps, so a probe run on the stand-in's virtual timeline must see that
 * time too: `testing/clock.c`, preloaded, shifts the real-time clock to it.
 *
 * @module
 */

let built: Promise<string> | undefined;

/** Builds the shim once per machine and source (with `cc`) and returns its path. */
export function clockLibrary(): Promise<string> {
  return built ??= build();
}

async function build(): Promise<string> {
  const source = new URL("./clock.c", import.meta.url).pathname;
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(source));
  const hash = Array.from(
    new Uint8Array(digest).slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  const path = `/tmp/log-probe-clock-${hash}.so`;
  try {
    await Deno.stat(path);
    return path;
  } catch {
    // not built yet on this machine
  }
  const temporary = `${path}.${Deno.pid}.tmp`;
  const { code, stderr } = await new Deno.Command("cc", {
    args: ["-shared", "-fPIC", "-O2", "-o", temporary, source, "-ldl"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`cc failed: ${new TextDecoder().decode(stderr)}`);
  await Deno.rename(temporary, path);
  return path;
}

/**
 * The environment that starts a probe run at `nowMs` (the stand-in's virtual
 * "now") on the real-time clock.
 */
export async function clockEnv(nowMs: number): Promise<Record<string, string>> {
  return { LD_PRELOAD: await clockLibrary(), LOG_PROBE_FAKE_NOW_MS: String(Math.round(nowMs)) };
}
