/**
 * Where a bare fetch's time goes, from marks inside the process
 * (`performance.now()` around each step, in `floor_marks.ts`):
 * `deno run --allow-all bench/floor.ts`.
 * Starts the stand-in API server, then runs each way of asking it in a fresh
 * Deno process, interleaved, and prints medians:
 *
 * - `hello`: nothing but start-up (time to the first statement, and the whole run);
 * - `tls`: `Deno.connect` + `setNoDelay(true)` + `Deno.startTls` + one HTTP/1.1
 *   GET by hand, then the same again on a second connection in the same process;
 * - `tls-delay`: the same without `setNoDelay(true)`;
 * - `fetch`: `Deno.createHttpClient` + `fetch` + `text()`, then again with a new client.
 *
 * Not part of `deno task bench`; see bench/README.md for what the numbers mean.
 *
 * @module
 */
import { FakeApiServer, makePki } from "../testing/apiserver.ts";

const ROUNDS = Number(Deno.env.get("FLOOR_ROUNDS") ?? 15);
const MODES = (Deno.env.get("FLOOR_MODES") ?? "hello,tls,tls-delay,fetch").split(",");
// A command to run each child under, e.g. FLOOR_WRAP="strace -f -tt -o /tmp/floor.strace".
const WRAP = Deno.env.get("FLOOR_WRAP")?.split(" ") ?? [];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

{
  const pki = await makePki();
  const server = new FakeApiServer(pki);
  const dir = await Deno.makeTempDir();
  const token = "tok-floor";
  server.addServiceAccount(token, "shop", "log-probe");
  const pod = server.addPod("shop", "worker");
  server.log(pod, "a line");
  await Deno.writeTextFile(`${dir}/token`, token);
  await Deno.writeTextFile(`${dir}/ca.crt`, pki.caCert);
  const cache = await Deno.makeTempDir(); // writable: no transpile retries in these figures
  const runs = new Map<
    string,
    Array<{ wall: number; boot: number; marks: Record<string, number> }>
  >(
    MODES.map((m) => [m, []]),
  );
  for (let round = -1; round < ROUNDS; round++) {
    for (const mode of MODES) {
      const started = performance.now();
      const [command, ...wrapArgs] = [...WRAP, Deno.execPath()];
      const output = await new Deno.Command(command, {
        args: [
          ...wrapArgs,
          "run",
          "--allow-read",
          "--allow-net",
          new URL("floor_marks.ts", import.meta.url).pathname,
          mode,
          dir,
          String(server.port),
        ],
        env: { DENO_DIR: cache },
        stdout: "piped",
      }).output();
      const wall = performance.now() - started;
      if (round >= 0) {
        runs.get(mode)!.push({ wall, ...JSON.parse(new TextDecoder().decode(output.stdout)) });
      }
    }
  }
  console.log(`median of ${ROUNDS} runs each; load ${Deno.loadavg().join(" ")}\n`);
  for (const [mode, list] of runs) {
    console.log(
      `${mode}: whole run ${median(list.map((r) => r.wall)).toFixed(1)} ms, first statement at ${
        median(list.map((r) => r.boot)).toFixed(1)
      } ms`,
    );
    let previous = 0;
    for (const name of Object.keys(list[0].marks)) {
      const at = median(list.map((r) => r.marks[name]));
      const step = median(list.map((r) => {
        const names = Object.keys(r.marks);
        const i = names.indexOf(name);
        return r.marks[name] - (i ? r.marks[names[i - 1]] : 0);
      }));
      console.log(`  ${name.padEnd(26)} +${step.toFixed(1).padStart(6)} ms  (at ${at.toFixed(1)})`);
      previous = at;
    }
    void previous;
  }
  await server.close();
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(cache, { recursive: true });
  await Deno.remove(pki.dir, { recursive: true });
}
