/**
 * The fault suite: API server faults, TLS and identity, hostile log content,
 * the counter under kills and races, load, hostile arguments and secrets. Each
 * case runs the real probe and checks the exit code, the line and the counter.
 * (The decision-table rows already in probe_test.ts are not repeated here.)
 */
import assert from "node:assert/strict";
import { brotliCompressSync } from "node:zlib";
import { ERROR_CADENCE, limitOf, main } from "../probe.ts";
import { FakeApiServer, makePki, type Pki } from "./apiserver.ts";
import { Cluster, commandOutput, denoFlags, type Run, type RunOptions } from "./cluster.ts";

/** The limit with the flags the cluster's probe runs with: 2h. */
const LIMIT = limitOf({ window: 60, growth: "triangular", period: 60, failureThreshold: 15 });

const clusters: Cluster[] = [];
async function cluster(): Promise<Cluster> {
  const started = await Cluster.start();
  clusters.push(started);
  return started;
}

/** Writes the counter of a container that printed a minute ago, seen by the check then. */
async function printed(c: Cluster): Promise<number> {
  const at = c.server.now - 60_000;
  await Deno.writeTextFile(c.stateFile, c.counterLine(at, { seenUntil: at, countedAt: at }));
  return at;
}

/**
 * The counter of a silent streak: the last output ten minutes over the limit, `failures` silent
 * checks in a row, the last a minute ago.
 */
function streak(
  c: Cluster,
  failures: number,
): { line: string; lastOutput: number; seenUntil: number } {
  const lastOutput = c.server.now - (LIMIT + 600) * 1000;
  const seenUntil = c.server.now - 60_000;
  const line = c.counterLine(lastOutput, { seenUntil, countedAt: seenUntil, failures });
  return { line, lastOutput, seenUntil };
}

/**
 * Runs a misconfigured check ERROR_CADENCE times in a row: each prints one error line and nothing
 * on stderr, and exactly one of them fails (exit 2): loud, but never two failures in a row.
 */
async function misconfigured(c: Cluster, args: string[], options: RunOptions = {}): Promise<Run[]> {
  const runs: Run[] = [];
  for (let i = 0; i < ERROR_CADENCE; i++) runs.push(await c.run(args, options));
  const said = runs.map((run) => `${run.code} ${run.stdout}`).join("");
  for (const run of runs) {
    assert.match(run.stdout, /^error: /, said);
    assert.equal(run.stdout.split("\n").length, 2, "one line");
    assert.equal(run.stderr, "");
  }
  assert.deepEqual(
    runs.map((run) => run.code).sort(),
    [0, ...Array(ERROR_CADENCE - 2).fill(0), 2].sort(),
    said,
  );
  return runs;
}

/** A TLS server signed by the cluster's CA that does whatever `serve` does with each connection. */
function rawTlsServer(pki: Pki, serve: (conn: Deno.TlsConn) => Promise<void>) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: pki.serverCert,
    key: pki.serverKey,
  });
  const conns: Deno.Conn[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      serve(conn).catch(() => {});
    }
  })().catch(() => {});
  return {
    host: `127.0.0.1:${listener.addr.port}`,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await loop;
    },
  };
}

async function readRequest(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) return;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
}

// ---------------------------------------------------------------------------
// API server faults

Deno.test("an answer reset mid-body is unknown, counter kept", async () => {
  const c = await cluster();
  try {
    const at = await printed(c);
    const server = rawTlsServer(c.pki, async (conn) => {
      await readRequest(conn);
      await conn.write(
        new TextEncoder().encode("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n2026-11-25T1"),
      );
      conn.close();
    });
    const run = await c.run([], { server: server.host });
    assert.equal(run.code, 0);
    assert.match(
      run.stdout,
      /^unknown: API server unreachable: .*; passed, as the check before \(last output 1m(\d+s)? ago\)$/m,
    );
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(at, { seenUntil: at, countedAt: c.server.now, blind: 1 }),
    );
    await server.close();
  } finally {
    await c.stop();
  }
});

Deno.test("an answer at one byte per second hits the probe's own deadline: unknown", async () => {
  const c = await cluster();
  try {
    const at = await printed(c);
    const answer = new TextEncoder().encode(
      "HTTP/1.1 200 OK\r\ncontent-length: 30\r\n\r\n2026-11-25T12:00:00Z trickle\n",
    );
    const server = rawTlsServer(c.pki, async (conn) => {
      await readRequest(conn);
      for (const byte of answer) {
        await conn.write(new Uint8Array([byte]));
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    });
    const run = await c.run(["--timeout", "2s"], { server: server.host });
    assert.equal(run.code, 0);
    assert.match(
      run.stdout,
      /^unknown: no answer from the API server within 2s; passed, as the check before \(last output 1m(\d+s)? ago\)\n$/,
    );
    assert.ok(run.ms < 4000, `${run.ms} ms: well before a 10 s timeoutSeconds`);
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(at, { seenUntil: at, countedAt: c.server.now, blind: 1 }),
    );
    await server.close();
  } finally {
    await c.stop();
  }
});

Deno.test("a 200 that is not a log (a proxy's page) is an error naming it, and only 4 KiB is read", async () => {
  const c = await cluster();
  try {
    const at = await printed(c);
    const page = `<html><body>${"Please log in. ".repeat(700_000)}</body></html>`; // 10 MB
    c.server.override = { status: 200, headers: { "content-type": "text/html" }, body: page };
    for (const declared of await misconfigured(c, [])) {
      assert.match(
        declared.stdout,
        /^error: answer is not a container log \(text\/html\): --server is not the API server, or a proxy answers(; passed\b.*)?$/m,
      );
    }
    // The same page streamed, with no declared length.
    const stream = () =>
      new ReadableStream({
        pull(controller) {
          controller.enqueue(new TextEncoder().encode(page.slice(0, 65536)));
        },
      });
    const plain = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert: c.pki.serverCert,
      key: c.pki.serverKey,
      onListen() {},
    }, () => new Response(stream(), { headers: { "content-type": "text/html" } }));
    const host = `127.0.0.1:${plain.addr.port}`;
    const streamed = await c.run([], { server: host });
    assert.ok([0, 2].includes(streamed.code), streamed.stdout);
    assert.match(streamed.stdout, /^error: answer is not a container log/);
    assert.ok(streamed.ms < 3000, "an endless page does not hold the probe");
    // Four checks that could not see the log; what the counter knew of the output is kept.
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(at, {
        seenUntil: at,
        countedAt: c.server.now,
        blind: 4,
        failures: streamed.code ? 1 : 0,
      }),
    );
    await plain.shutdown();
  } finally {
    await c.stop();
  }
});

// ---------------------------------------------------------------------------
// TLS and identity

Deno.test("a certificate outside its validity is unknown (the control plane's fault), never skipped", async () => {
  const c = await cluster();
  try {
    const silent = streak(c, 2);
    await Deno.writeTextFile(c.stateFile, silent.line);
    const expired = await makePki({ serverDays: -1 });
    const server = new FakeApiServer(expired);
    server.addServiceAccount(c.token, "shop", "log-probe");
    await Deno.writeTextFile(`${c.paths.serviceAccountDir}/ca.crt`, expired.caCert);
    const host = `127.0.0.1:${server.port}`;
    // In a silent streak: fails, as the silent check before, like any outage.
    const run = await c.run([], { server: host });
    assert.equal(run.code, 1);
    assert.match(
      run.stdout,
      /^unknown: API server certificate expired \(the control plane's to renew, or this node's clock\); failed, as the silent check before \(3 in a row\)$/m,
    );
    assert.equal(server.seen.length, 0, "no request without a valid certificate");
    const doctor = await c.run(["doctor"], { server: host });
    assert.match(
      doctor.stdout,
      /^✗ API server certificate expired \(the control plane's to renew/m,
    );
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(silent.lastOutput, {
        seenUntil: silent.seenUntil,
        countedAt: c.server.now,
        failures: 3,
        blind: 1,
      }),
    );
    // Not valid yet: the pod's clock three days behind the certificate. After output: passes.
    await Deno.writeTextFile(`${c.paths.serviceAccountDir}/ca.crt`, c.pki.caCert);
    c.server.now -= 3 * 86400_000;
    const at = await printed(c);
    const early = await c.run();
    assert.equal(early.code, 0);
    assert.match(
      early.stdout,
      /^unknown: API server certificate not valid yet .*; passed, as the check before \(last output 1m(\d+s)? ago\)$/m,
    );
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(at, { seenUntil: at, countedAt: c.server.now, blind: 1 }),
    );
    await server.close();
    await Deno.remove(expired.dir, { recursive: true });
  } finally {
    await c.stop();
  }
});

Deno.test("a plain-HTTP port, and a TLS alert, are errors that say what to fix, one in three failing, the counter's memory kept", async () => {
  const c = await cluster();
  try {
    const at = await printed(c);
    const plain = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response("2026-11-25T12:00:00Z hi\n"),
    );
    const http = await c.run([], { server: `127.0.0.1:${plain.addr.port}` });
    assert.match(
      http.stdout,
      /^error: API server does not speak TLS as expected: .*InvalidContentType \(a plain-HTTP port\? --server right\?\)(;|$)/m,
    );
    const alert = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const alerting = (async () => {
      for await (const conn of alert) {
        await conn.write(new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])); // handshake_failure
        conn.close();
      }
    })().catch(() => {});
    const fatal = await c.run([], { server: `127.0.0.1:${alert.addr.port}` });
    assert.match(fatal.stdout, /^error: API server does not speak TLS as expected: .*alert/m);
    const again = await c.run([], { server: `127.0.0.1:${plain.addr.port}` });
    assert.match(again.stdout, /^error: API server does not speak TLS as expected/m);
    assert.deepEqual([http, fatal, again].map((run) => run.code).sort(), [0, 0, 2]);
    const doctor = await c.run(["doctor"], { server: `127.0.0.1:${plain.addr.port}` });
    assert.match(
      doctor.stdout,
      /^✗ API server does not speak TLS as expected: .*a plain-HTTP port\?/m,
    );
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(at, {
        seenUntil: at,
        countedAt: c.server.now,
        blind: 3,
        failures: again.code ? 1 : 0,
      }),
    );
    alert.close();
    await alerting;
    await plain.shutdown();
  } finally {
    await c.stop();
  }
});

Deno.test("HTTPS_PROXY in the container's environment never carries the probe's request", async () => {
  const c = await cluster();
  try {
    c.server.log(c.pod, "working");
    const proxy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let proxied = 0;
    const proxying = (async () => {
      for await (const conn of proxy) {
        proxied++;
        conn.close();
      }
    })().catch(() => {});
    const url = `http://127.0.0.1:${proxy.addr.port}`;
    const env = { HTTPS_PROXY: url, https_proxy: url, ALL_PROXY: url };
    const run = await c.run([], { env });
    assert.match(run.stdout, /^alive: output \d+s ago\n$/);
    assert.equal(proxied, 0, "nothing reached the proxy");
    // Without --allow-env=NO_PROXY the probe cannot keep it off, and says so.
    const host = `127.0.0.1:${c.server.port}`;
    const flags = denoFlags(c.paths, host).map((flag) =>
      flag.startsWith("--allow-env=") ? flag.replace(",NO_PROXY", "") : flag
    );
    const unguarded = await c.run([], { env, flags });
    assert.match(
      unguarded.stdout,
      /warning: HTTPS_PROXY not kept off \(add --allow-env=NO_PROXY\)/,
    );
    assert.ok(proxied > 0, "Deno's fetch takes the proxy from the environment");
    proxy.close();
    await proxying;
  } finally {
    await c.stop();
  }
});

Deno.test("what TLS trusts: ca.crt and Deno's roots; DENO_CERT in the environment too (README)", async () => {
  const c = await cluster();
  try {
    c.server.log(c.pod, "working");
    const other = await makePki();
    const server = new FakeApiServer(other);
    server.addPod("shop", "worker-7d9f").containers.get("app")!.push({
      at: server.now,
      text: "hi",
    });
    server.addServiceAccount(c.token, "shop", "log-probe");
    const host = `127.0.0.1:${server.port}`;
    const rejected = await c.run([], { server: host });
    assert.ok([0, 2].includes(rejected.code), rejected.stdout);
    assert.match(rejected.stdout, /^error: API server certificate rejected: .*UnknownIssuer/m);
    // Deno adds ca.crt to its roots; it cannot be made to trust ca.crt alone.
    const flags = denoFlags(
      { ...c.paths, serviceAccountDir: `${c.paths.serviceAccountDir},${other.dir}` },
      host,
    );
    const widened = await c.run([], {
      server: host,
      flags,
      env: { DENO_CERT: `${other.dir}/ca.crt` },
    });
    assert.equal(widened.code, 0, widened.stdout);
    await server.close();
    await Deno.remove(other.dir, { recursive: true });
  } finally {
    await c.stop();
  }
});

Deno.test("a token rotated between two runs: the second run sends the new one", async () => {
  const c = await cluster();
  try {
    c.server.log(c.pod, "working");
    assert.equal((await c.run()).code, 0);
    const rotated = `tok-${crypto.randomUUID()}`;
    c.server.tokens.clear(); // the old token expires with the rotation
    c.server.addServiceAccount(rotated, "shop", "log-probe");
    await Deno.writeTextFile(`${c.paths.serviceAccountDir}/token`, `${rotated}\n`);
    const run = await c.run();
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^alive: output \d+s ago\n$/);
    assert.ok(!c.outputs.some((o) => o.includes(rotated)));
  } finally {
    await c.stop();
  }
});

// ---------------------------------------------------------------------------
// Log content

Deno.test("hostile log content: a 100 MB line, invalid UTF-8, NUL bytes, CRI partial lines", async () => {
  const c = await cluster();
  try {
    const records = c.pod.containers.get("app")!;
    const cases: Array<[string, () => void]> = [
      ["one 100 MB line", () => records.push({ at: c.server.now, text: "x".repeat(100_000_000) })],
      [
        "invalid UTF-8",
        () =>
          records.push({ at: c.server.now, text: new Uint8Array([0xff, 0xfe, 0xc3, 0x28, 0x80]) }),
      ],
      ["NUL bytes", () => records.push({ at: c.server.now, text: "\0\0\0job\0" })],
      [
        "a partial line still being written",
        () => records.push({ at: c.server.now, text: "processing job 7 ... ", partial: true }),
      ],
      ["only blank lines", () => {
        for (let i = 0; i < 5; i++) records.push({ at: c.server.now - i, text: "" });
      }],
    ];
    for (const [what, log] of cases) {
      records.length = 0;
      await Deno.writeTextFile(c.stateFile, streak(c, 4).line);
      log();
      const run = await c.run();
      assert.equal(run.code, 0, what);
      assert.match(run.stdout, /^alive: output \d+s ago\n$/, what);
      assert.ok(c.server.seen.at(-1)!.bytes <= 64, `${what}: ${c.server.seen.at(-1)!.bytes} bytes`);
      assert.equal(
        await c.counterAt(c.server.now),
        c.counterLine(records.at(-1)!.at, { seenUntil: c.server.now, countedAt: c.server.now }),
        what,
      );
    }
    // A partial line older than the limit is silence, like any other line.
    records.length = 0;
    const old = c.server.now - (LIMIT + 120) * 1000;
    records.push({ at: old, text: "half a line", partial: true });
    await Deno.writeTextFile(
      c.stateFile,
      c.counterLine(old, { seenUntil: c.server.now - 60_000, countedAt: c.server.now - 60_000 }),
    );
    const silent = await c.run();
    assert.equal(silent.code, 1, silent.stdout);
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(old, { seenUntil: c.server.now, countedAt: c.server.now, failures: 1 }),
    );
  } finally {
    await c.stop();
  }
});

// ---------------------------------------------------------------------------
// The counter

Deno.test("a termination-message file named but missing: an error naming the fix, counted; doctor shows it", async () => {
  const c = await cluster();
  try {
    c.server.log(c.pod, "working");
    const born = c.instance();
    assert.match(born, /^\d+:\d+:[0-9a-z]+$/, "device, inode and birth time");
    await Deno.remove(c.paths.terminationMessagePath);
    const runs = await misconfigured(c, []);
    for (const run of runs) {
      assert.match(
        run.stdout,
        /^error: termination-message file \/.*\/termination-log: No such file or directory \(--termination-message-path must be the container's terminationMessagePath\)(;|$)/m,
      );
    }
    assert.equal(c.server.seen.length, 0, "nothing asked");
    // Counted in a counter of no instance ("-"): three checks that could not see the log.
    const fields = (await c.counter())!.trimEnd().split(" ");
    assert.deepEqual([fields[1], fields[6]], ["-", String(ERROR_CADENCE)]);
    const doctor = await c.run(["doctor"]);
    assert.match(doctor.stdout, /^✗ termination-message file .*: No such file or directory/m);
    // The kubelet mounts a new file for the next instance: a new identity.
    await c.restartContainer();
    c.server.log(c.pod, "working");
    const back = await c.run();
    assert.equal(back.code, 0, back.stdout);
    assert.notEqual(c.instance(), born);
  } finally {
    await c.stop();
  }
});

Deno.test("a counter path that is a directory: alive warns, silent stays silent and warns, an error never fails through it; doctor names it", async () => {
  const c = await cluster();
  try {
    await Deno.mkdir(c.stateFile);
    c.server.log(c.pod, "working");
    const run = await c.run();
    assert.equal(run.code, 0);
    assert.match(
      run.stdout,
      /^alive: output \d+s ago; counter unreadable \(Is a directory\), started afresh; warning: counter not saved to \/.*\/counter \(Is a directory\)$/m,
    );
    // Silence the answer showed stays silent, the warning in its line: with no counter, silence
    // counts from the container's start.
    c.server.now += (LIMIT + 60) * 1000;
    const silent = await c.run();
    assert.equal(silent.code, 1);
    assert.match(
      silent.stdout,
      /^silent: no output since the start 2h1m(\d+s)? ago, over the 2h limit \(1 failure in a row; the kubelet restarts at 15\); counter unreadable \(Is a directory\), started afresh; warning: counter not saved/m,
    );
    // A check that cannot see the log never fails through a counter it cannot keep.
    c.server.grants.clear();
    for (let i = 0; i < ERROR_CADENCE; i++) {
      const blind = await c.run();
      assert.equal(blind.code, 0, blind.stdout);
      assert.match(blind.stdout, /^error: /);
    }
    assert.ok((await Deno.stat(c.stateFile)).isDirectory, "the directory is left alone");
    assert.deepEqual([...Deno.readDirSync(c.paths.stateDir)].map((e) => e.name), ["counter"]);
    const doctor = await c.run(["doctor"]);
    assert.match(
      doctor.stdout,
      /✗ counter .*counter: counter unreadable \(Is a directory\), started afresh: --state-file must name a file on a writable emptyDir mounted at /,
    );
  } finally {
    await c.stop();
  }
});

Deno.test("a full emptyDir: a pass stays a pass and no stale failure outlives it; silence stays silent; a blind failure passes", async () => {
  const c = await cluster();
  try {
    // A one-page tmpfs over the counter's folder, in a mount namespace of the probe's own: the old
    // counter (a silent streak) fills it, so the new one cannot be written.
    const script =
      `mount -t tmpfs -o size=4k,mode=0777 full "$0" && printf '%s' "$1" > "$0/counter"` +
      ` && shift && "$@"; code=$?; echo "left: $(ls "$0")" >&2; exit $code`;
    const wrapper = () => [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      script,
      c.paths.stateDir,
      streak(c, 2).line,
    ];
    // Silence the answer showed: still a failure, with a warning.
    const silent = await c.run([], { wrapper: wrapper() });
    assert.equal(silent.code, 1, silent.stdout);
    assert.match(
      silent.stdout,
      /^silent: no output for 2h10m(\d+s)?, over the 2h limit \(3 failures in a row; the kubelet restarts at 15\); warning: counter not saved to \//m,
    );
    // A lost answer in the streak would fail as the silent check before, but a failure nothing
    // records could be the kubelet's last: it passes, and says why.
    c.server.override = {
      status: 503,
      headers: { "content-type": "application/json" },
      body: "{}",
    };
    const blind = await c.run([], { wrapper: wrapper() });
    c.server.override = undefined;
    assert.equal(blind.code, 0, blind.stdout);
    assert.match(
      blind.stdout,
      /^error: counter \/.*\/counter cannot be written \(No space left on device\): --state-file must name a file on a writable emptyDir; unknown: API server answered 503/m,
    );
    c.server.log(c.pod, "working");
    const run = await c.run([], { wrapper: wrapper() });
    assert.equal(run.code, 0);
    assert.match(
      run.stdout,
      /^alive: output \d+s ago; warning: counter not saved to .*No space left on device/m,
    );
    assert.match(run.stderr, /^left: $/m, "the failing counter is gone: the next outage passes");
  } finally {
    await c.stop();
  }
});

Deno.test("a FIFO or a 1 GB file at the counter path: read without blocking, a few bytes", async () => {
  const c = await cluster();
  try {
    c.server.log(c.pod, "working");
    const fifo = await new Deno.Command("mkfifo", { args: [c.stateFile] }).output();
    assert.ok(fifo.success);
    const blocked = await c.run(["--timeout", "2s"]);
    assert.equal(blocked.code, 0);
    assert.match(blocked.stdout, /counter unreadable \(not a regular file\), started afresh/);
    assert.ok(blocked.ms < 3000, `${blocked.ms} ms`);
    await Deno.remove(c.stateFile);
    const big = await Deno.open(c.stateFile, { write: true, create: true });
    await big.truncate(1_000_000_000);
    big.close();
    const time = ["/usr/bin/time", "-f", "%M"];
    const huge = await c.run([], { wrapper: time });
    assert.equal(huge.code, 0);
    assert.match(huge.stdout, /counter held garbage or another version's line/);
    const peakMiB = Number(huge.stderr.trim().split("\n").at(-1)) / 1024;
    assert.ok(peakMiB < 100, `${peakMiB} MiB`);
  } finally {
    await c.stop();
  }
});

Deno.test("two probed containers of one pod on one emptyDir keep a counter each", async () => {
  const c = await Cluster.start({ containers: ["app", "sidecar"] });
  clusters.push(c);
  try {
    // A 10 s limit (a fixed window): the sidecar, which never prints, fails every check.
    const limit = ["--window", "10s", "--growth", "fixed"];
    for (let i = 0; i < 3; i++) {
      c.server.now += 60_000;
      c.server.log(c.pod, "working", "app");
      const app = await c.run(["-c", "app", ...limit]);
      const sidecar = await c.run(["-c", "sidecar", ...limit]);
      assert.ok(
        !`${app.stdout}${sidecar.stdout}`.includes("discarded"),
        app.stdout + sidecar.stdout,
      );
      assert.equal(app.code, 0, app.stdout);
      assert.match(sidecar.stdout, new RegExp(`\\(${i + 1} failures? in a row`));
    }
    assert.deepEqual([...Deno.readDirSync(c.paths.stateDir)].map((e) => e.name).sort(), [
      "counter.app",
      "counter.sidecar",
    ]);
  } finally {
    await c.stop();
  }
});

Deno.test("SIGKILL at random moments: the counter is always the old or the new value", async () => {
  const c = await cluster();
  try {
    const lastWords = c.server.now - (LIMIT + 3600) * 1000;
    c.server.log(c.pod, "last words", "app", lastWords);
    const before = c.server.now - 60_000; // the check before
    const counterOf = (failures: number) =>
      c.counterLine(lastWords, { seenUntil: before, countedAt: before, failures });
    let seed = 7;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    // Kill moments are drawn from this machine's own timings, measured now: a loaded machine
    // stretches a run, and fixed delays would all land before the request.
    const timings = async (child: Deno.ChildProcess, requests: number) => {
      const started = performance.now();
      let exited = false;
      const done = child.output().then((output) => (exited = true, output));
      while (!exited && c.server.seen.length === requests) await sleep(1);
      return { started, asked: performance.now(), done };
    };
    let startup = 0;
    let tail = 0;
    for (let i = 0; i < 3; i++) {
      await Deno.writeTextFile(c.stateFile, counterOf(0));
      const { started, asked, done } = await timings(c.spawn(), c.server.seen.length);
      await done;
      startup = Math.max(startup, asked - started);
      tail = Math.max(tail, performance.now() - asked);
    }
    const runs = 150;
    let killedAfterRequest = 0;
    let newValue = 0;
    for (let i = 0; i < runs; i++) {
      const failures = Math.floor(random() * 10);
      const old = counterOf(failures);
      await Deno.writeTextFile(c.stateFile, old);
      const requests = c.server.seen.length;
      const child = c.spawn();
      const kill = () => {
        try {
          child.kill("SIGKILL");
        } catch {
          // it had already finished
        }
      };
      if (i % 4 === 0) {
        // Before or around the request.
        await sleep(random() * startup);
        kill();
        await child.output();
      } else {
        // Between the request reaching the server and a little after the run would have ended.
        const { done } = await timings(child, requests);
        await sleep(random() * tail * 1.2);
        kill();
        await done;
      }
      if (c.server.seen.length > requests) killedAfterRequest++;
      const text = await c.counterAt(c.server.now, 60_000);
      // The old value, or the new one: one more failure, read and counted now.
      const next = c.counterLine(lastWords, {
        seenUntil: c.server.now,
        countedAt: c.server.now,
        failures: failures + 1,
      });
      assert.ok(text === old || text === next, `run ${i}: ${JSON.stringify(text)}`);
      if (text !== old) newValue++;
    }
    // Left-over temporary files of killed writes are harmless; clear them for the next run.
    const leftovers = [...Deno.readDirSync(c.paths.stateDir)].filter((e) => e.name !== "counter");
    assert.ok(leftovers.every((e) => /^counter\.\d+\.[0-9a-f]+\.tmp$/.test(e.name)));
    console.log(
      `SIGKILL: ${runs} runs (start-up ${Math.round(startup)} ms, request to exit ${
        Math.round(tail)
      } ms), ${killedAfterRequest} killed after the request reached the server, ` +
        `${newValue} had saved the new value, ${leftovers.length} temporary files left; counter always valid`,
    );
    assert.ok(killedAfterRequest >= runs / 2, "kills land around the write");
    assert.ok(newValue > 0 && newValue < runs, "both outcomes happen");
  } finally {
    await c.stop();
  }
});

Deno.test("two probes at once on one counter file: the result is a valid count", async () => {
  const c = await cluster();
  try {
    // Older than the limit: every check is silent.
    const lastWords = c.server.now - 30 * 86400_000;
    c.server.log(c.pod, "last words", "app", lastWords);
    for (let round = 0; round < 10; round++) {
      const before = c.server.now - 60_000;
      await Deno.writeTextFile(
        c.stateFile,
        c.counterLine(lastWords, { seenUntil: before, countedAt: before, failures: round }),
      );
      const runs = await Promise.all([c.run(), c.run()]);
      assert.deepEqual(runs.map((run) => run.code), [1, 1]);
      // Each saw `round`, or `round + 1` when it read after the other's write; the file holds
      // the larger count, whole: no torn or lost write, whatever the interleaving.
      const counts = runs.map((run) => Number(run.stdout.match(/\((\d+) failures? in a row/)?.[1]));
      for (const count of counts) {
        assert.ok(count === round + 1 || count === round + 2, `${counts}`);
      }
      assert.equal(
        await c.counterAt(c.server.now, 60_000),
        c.counterLine(lastWords, {
          seenUntil: c.server.now,
          countedAt: c.server.now,
          failures: Math.max(...counts),
        }),
      );
    }
  } finally {
    await c.stop();
  }
});

// ---------------------------------------------------------------------------
// Load

Deno.test("200 probes of 200 pods at once: each verdict right, nothing left behind", async () => {
  const fdsBefore = (await commandOutput("ls", [`/proc/${Deno.pid}/fd`])).split("\n").length;
  const c = await cluster();
  // The containers started more than the limit ago: a pod that never printed is silent.
  await c.restartContainer("app", c.server.now - (LIMIT + 60) * 1000);
  const pods = Array.from({ length: 200 }, (_, i) => {
    const pod = c.server.addPod("shop", `worker-${i}`);
    if (i % 2 === 0) c.server.log(pod, `job ${i}`);
    return pod.name;
  });
  const runs = await Promise.all(pods.map((pod, i) =>
    c.run(["--pod", pod, "--timeout", "60s"], {
      stateFile: `${c.paths.stateDir}/${pod}`,
    }).then((run) => ({ run, alive: i % 2 === 0 }))
  ));
  for (const [i, { run, alive }] of runs.entries()) {
    assert.equal(run.code, alive ? 0 : 1, `${pods[i]}: ${run.stdout}`);
    assert.match(run.stdout, alive ? /^alive: / : /^silent: /);
  }
  const asked = new Set(c.server.seen.map((s) => s.path.split("/")[6]));
  assert.equal(asked.size, 200);
  assert.ok(!(await commandOutput("ps", ["-eo", "args"])).includes(c.paths.stateDir));
  await c.stop();
  const fdsAfter = (await commandOutput("ls", [`/proc/${Deno.pid}/fd`])).split("\n").length;
  // A leak would be one or more per probe; the runtime's own thread pools may add a couple.
  assert.ok(fdsAfter <= fdsBefore + 4, `file descriptors: ${fdsBefore} before, ${fdsAfter} after`);
  console.log(
    `load: 200 concurrent probes, max ${Math.round(Math.max(...runs.map((r) => r.run.ms)))} ms`,
  );
});

// ---------------------------------------------------------------------------
// Hostile arguments

const FLAG_NAMES = [
  "--server",
  "--namespace",
  "-n",
  "--pod",
  "--container",
  "-c",
  "--state-file",
  "--timeout",
  "--on-api-error",
  "--service-account-dir",
  "--termination-message-path",
  "--window",
  "--growth",
  "--max-window",
  "--period",
  "--failure-threshold",
  "--bogus",
  "-x",
  "--",
  "-",
  "--help",
  "--version",
];
const VALUES = [
  "",
  "0",
  "-1",
  "1s",
  "60s",
  "5m",
  "1h30m",
  "99999999h",
  "1.5s",
  "abc",
  "fixed",
  "triangular",
  "fail",
  "ignore",
  "worker-7d9f",
  "shop",
  "a/b",
  "../../etc/passwd",
  "https://127.0.0.1:1",
  "http://example.com",
  "https://[::1",
  "%2e%2e",
  "\u0000",
  "\n",
  "\u001b[31mred",
  "é".repeat(300),
  "x".repeat(5000),
  "plan",
  "check",
  "true",
];

function randomVector(random: () => number): { args: string[]; env: Record<string, string> } {
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)];
  const args: string[] = [];
  if (random() < 0.2) args.push(pick(["plan", "check", "doctor", ""]));
  const count = Math.floor(random() * 6);
  for (let i = 0; i < count; i++) {
    const r = random();
    if (r < 0.45) args.push(pick(FLAG_NAMES), pick(VALUES));
    else if (r < 0.7) args.push(`${pick(FLAG_NAMES)}=${pick(VALUES)}`);
    else if (r < 0.85) args.push(pick(FLAG_NAMES));
    else args.push(String.fromCharCode(...Array.from({ length: 8 }, () => 1 + random() * 0xd7ff)));
  }
  const env: Record<string, string> = {};
  for (const name of ["POD_NAME", "NAMESPACE", "POD_NAMESPACE", "CONTAINER_NAME", "HOSTNAME"]) {
    if (random() < 0.3) env[name] = pick(VALUES).replace(/\0/g, "");
  }
  return { args, env };
}

Deno.test("10 000 random argument vectors and environments: exit 0, 1 or 2, one line, no stack trace, no stray writes", async () => {
  const c = await cluster();
  c.server.log(c.pod, "working");
  let seed = 20261125;
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const sandbox = await Deno.makeTempDir({ prefix: "log-probe-fuzz-" });
  const fixed = [
    `--service-account-dir=${c.paths.serviceAccountDir}`,
    `--state-file=${sandbox}/state`,
    `--termination-message-path=${c.paths.terminationMessagePath}`,
    `--server=${c.server.url}`,
    "--timeout=5s",
  ];
  const original = console.log;
  const names = ["POD_NAME", "NAMESPACE", "POD_NAMESPACE", "CONTAINER_NAME", "HOSTNAME"];
  const saved = Object.fromEntries(names.map((n) => [n, Deno.env.get(n)]));
  const codes = new Map<number, number>();
  const samples: Array<{ args: string[]; env: Record<string, string>; code: number }> = [];
  try {
    for (let i = 0; i < 10_000; i++) {
      const { args, env } = randomVector(random);
      // Check flags go after a subcommand, which must come first.
      const withFixed = ["plan", "check", "doctor", ""].includes(args[0])
        ? [args[0], ...(args[0] === "plan" ? [] : fixed), ...args.slice(1)]
        : [...fixed, ...args];
      for (const name of names) {
        if (env[name] === undefined) Deno.env.delete(name);
        else Deno.env.set(name, env[name]);
      }
      const lines: string[] = [];
      console.log = (...data: unknown[]) => lines.push(data.join(" "));
      let code: number;
      try {
        code = await main(withFixed);
      } finally {
        console.log = original;
      }
      codes.set(code, (codes.get(code) ?? 0) + 1);
      const text = lines.join("\n");
      assert.ok([0, 1, 2].includes(code), `${JSON.stringify(withFixed)} → ${code}`);
      assert.ok(!/^\s+at /m.test(text), `stack trace for ${JSON.stringify(withFixed)}`);
      const multiLine = withFixed.includes("--help") || ["plan", "doctor"].includes(withFixed[0]);
      if (!multiLine) {
        assert.equal(lines.length, 1, `${JSON.stringify(withFixed)} printed ${text}`);
        assert.ok(!lines[0].includes("\n") && lines[0].length < 200, text);
      }
      assert.ok(!text.includes(c.token));
      // The counter, one per named container; nothing else.
      const stray = [...Deno.readDirSync(sandbox)].map((e) => e.name)
        .filter((n) => !/^state(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/.test(n));
      assert.deepEqual(stray, [], `${JSON.stringify(withFixed)} wrote ${stray}`);
      // (argv and environment cannot carry NUL bytes to a real process)
      const nul = [...withFixed, ...Object.values(env)].some((a) => a.includes("\0"));
      if (i % 40 === 0 && !nul) samples.push({ args: withFixed, env, code });
    }
  } finally {
    for (const name of names) {
      if (saved[name] === undefined) Deno.env.delete(name);
      else Deno.env.set(name, saved[name]!);
    }
  }
  // A sample of them again as real subprocesses with the pod's Deno flags: same exit codes.
  for (const { args, env, code } of samples) {
    const run = await c.run(args, {
      bare: true,
      env: { ...env, HOSTNAME: env.HOSTNAME },
      flags: [...denoFlags(c.paths, `127.0.0.1:${c.server.port}`)].map((flag) =>
        flag.startsWith("--allow-write=") ? `--allow-write=${c.paths.stateDir},${sandbox}` : flag
      ).map((flag) => flag.startsWith("--allow-read=") ? `${flag},${sandbox}` : flag),
    });
    // An error's exit depends on the failures in a row the counter holds (2, or 0 once in a
    // while so that it never restarts the container): the same error line either way.
    const same = run.code === code ||
      (run.stdout.startsWith("error:") && [0, 2].includes(run.code) && [0, 2].includes(code));
    assert.ok(same, `${JSON.stringify(args)}: ${run.code} (in-process ${code}) ${run.stdout}`);
    assert.equal(run.stderr, "");
  }
  const state = await Deno.readTextFile(`${sandbox}/state`);
  const stamp = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z";
  assert.match(
    state,
    new RegExp(`^log-probe/4 \\S+ ${stamp} (-|${stamp}) (-|${stamp}) \\d+ \\d+ [0-3]\n$`),
    "the counter file holds an instance, the last output, where the last read ended and more",
  );
  console.log(
    `fuzz: 10000 vectors in-process (exit codes ${
      JSON.stringify([...codes])
    }), ${samples.length} again as subprocesses`,
  );
  await Deno.remove(sandbox, { recursive: true });
  await c.stop();
});

// ---------------------------------------------------------------------------
// Hostile answers, patterns and environment: bounded memory and time, one line

/** Peak RSS in MiB of one probe run under /usr/bin/time, and the run. */
async function measured(c: Cluster, args: string[] = []): Promise<Run & { rssMiB: number }> {
  const file = `${c.dir}/rss`;
  const run = await c.run(args, { wrapper: ["/usr/bin/time", "-f", "%M", "-o", file] });
  const rssMiB = Number((await Deno.readTextFile(file)).trim().split("\n").at(-1)) / 1024;
  return { ...run, rssMiB };
}

Deno.test("a 1 KB brotli answer that inflates to 300 MB: asked for identity, never inflated, RSS as usual", async () => {
  const c = await cluster();
  try {
    c.server.log(c.pod, "working");
    const normal = await measured(c);
    assert.equal(normal.code, 0);
    assert.equal(c.server.seen.at(-1)!.acceptEncoding, "identity", "the request asks for identity");
    const at = await printed(c);
    const bomb = brotliCompressSync(new Uint8Array(300_000_000).fill(97));
    assert.ok(bomb.length < 1024, `${bomb.length} bytes`);
    c.server.override = {
      status: 200,
      headers: { "content-type": "text/plain", "content-encoding": "br" },
      body: new Uint8Array(bomb),
    };
    const hostile = await measured(c);
    assert.ok([0, 2].includes(hostile.code), hostile.stdout);
    assert.match(hostile.stdout, /^error: answer is not a container log \(content-encoding br\)/);
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(at, {
        seenUntil: at,
        countedAt: c.server.now,
        blind: 1,
        failures: hostile.code ? 1 : 0,
      }),
    );
    assert.equal(c.server.seen.at(-1)!.acceptEncoding, "identity");
    assert.ok(
      hostile.rssMiB < normal.rssMiB * 1.25,
      `peak RSS ${hostile.rssMiB.toFixed(1)} MiB with the bomb, ${
        normal.rssMiB.toFixed(1)
      } without`,
    );
    console.log(
      `brotli bomb: ${bomb.length} B → 300 MB; peak RSS ${hostile.rssMiB.toFixed(1)} MiB, ` +
        `a normal check ${normal.rssMiB.toFixed(1)} MiB; ${hostile.ms.toFixed(0)} ms`,
    );
  } finally {
    await c.stop();
  }
});

Deno.test("--match '^(a+)+$' on a 31-character line ends within --timeout; plain patterns still decide", async () => {
  const c = await cluster();
  try {
    await c.restartContainer("app", c.server.now - (LIMIT + 60) * 1000);
    c.server.log(c.pod, `${"a".repeat(30)}!`);
    const catastrophic = await c.run(["--match", "^(a+)+$", "--timeout", "2s"]);
    assert.equal(catastrophic.code, 1, catastrophic.stdout);
    assert.match(
      catastrophic.stdout,
      /^silent: no matching output since the start 2h1m(\d+s)? ago, over the 2h limit/,
    );
    assert.ok(catastrophic.ms < 3000, `${catastrophic.ms.toFixed(0)} ms with --timeout 2s`);
    const plain = await c.run(["--match", "^a+!$", "--ignore", "DEBUG"]);
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /^alive: matching output \d+s ago$/m);
    console.log(`^(a+)+$ on 31 characters: ${catastrophic.ms.toFixed(0)} ms (was 30 s)`);
  } finally {
    await c.stop();
  }
});

Deno.test("matching that outlasts --timeout stops before the deadline: judged on the lines matched, never unknown", async () => {
  const c = await cluster();
  try {
    const start = c.server.now - (LIMIT + 60) * 1000;
    await c.restartContainer("app", start);
    // Linear, but slow: about 30 ms a 4096-character line here, 300 lines.
    const slow = "(?:a?){9}".repeat(28) + "b";
    for (let i = 0; i < 300; i++) c.server.log(c.pod, "a".repeat(4096));
    const run = await c.run(["--match", slow, "--limit-bytes", "2000000", "--timeout", "1s"]);
    assert.equal(run.code, 1, run.stdout);
    assert.match(
      run.stdout,
      /^silent: no matching output since the start 2h1m(\d+s)? ago, over the 2h limit \(only \d+ lines? matched within --timeout: raise it or the CPU limit\) \(1 failure in a row/,
    );
    // Silence still counts from the start; one failure.
    const fields = (await c.counter())!.trimEnd().split(" ");
    assert.deepEqual(
      [fields[2], fields[5], fields[7]],
      [new Date(start).toISOString(), "1", "2"],
      fields.join(" "),
    );
    assert.ok(run.ms < 2000, `${run.ms.toFixed(0)} ms with --timeout 1s`);
    console.log(`300 slow matches cut at the deadline: ${run.ms.toFixed(0)} ms with --timeout 1s`);
  } finally {
    await c.stop();
  }
});

Deno.test("patterns the linear engine cannot run, or a deno without its flag: one error line, exit 2 one check in three", async () => {
  const c = await cluster();
  try {
    c.server.log(c.pod, "working");
    for (
      const [pattern, expected] of [
        ["(\\w+) \\1", 'error: Invalid --match "(\\\\w+) \\\\1": cannot be matched in linear time'],
        ["a(?=b)", 'error: Invalid --match "a(?=b)": cannot be matched in linear time'],
        ["x".repeat(257), "longer than 256 characters"],
      ]
    ) {
      for (const run of await misconfigured(c, ["--match", pattern])) {
        assert.ok(run.stdout.includes(expected), run.stdout);
      }
    }
    const flags = denoFlags(c.paths, `127.0.0.1:${c.server.port}`)
      .filter((flag) => !flag.startsWith("--v8-flags"));
    for (const bare of await misconfigured(c, ["--match", "working"], { flags })) {
      assert.match(
        bare.stdout,
        /^error: --match needs linear-time matching: run deno with --v8-flags=--enable-experimental-regexp-engine(;|$)/m,
      );
    }
    const plain = await c.run([], { flags });
    assert.equal(plain.code, 0, "without patterns the flag is not needed");
  } finally {
    await c.stop();
  }
});

Deno.test("--timeout beyond 5m, a service host that is not a host, a server URL with a password: one error line, exit 2 one check in three, nothing asked", async () => {
  const c = await cluster();
  try {
    c.server.log(c.pod, "working");
    const cases: [string[], Record<string, string>, string][] = [
      [["--timeout", "597h"], {}, 'error: Invalid --timeout "597h": at most 5m'],
      [["--timeout", "301s"], {}, 'error: Invalid --timeout "301s": at most 5m'],
      [[], { KUBERNETES_SERVICE_HOST: "evil.example/x" }, "not a host name or IP address"],
      [[], { KUBERNETES_SERVICE_HOST: "evil.example@127.0.0.1" }, "not a host name"],
      [[], { KUBERNETES_SERVICE_HOST: "127.0.0.1\\@evil" }, "not a host name"],
      [[], { KUBERNETES_SERVICE_PORT: "443/x?" }, "not a port number"],
    ];
    for (const [args, env, expected] of cases) {
      const seen = c.server.seen.length;
      for (const run of await misconfigured(c, args, { env })) {
        assert.ok(run.stdout.includes(expected), `${args} ${JSON.stringify(env)}: ${run.stdout}`);
      }
      assert.equal(c.server.seen.length, seen, "nothing was asked");
    }
    for (const userinfo of ["admin:s3cret-pw@", ":s3cret-pw@", "admin@"]) {
      const server = ["--server", `https://${userinfo}127.0.0.1:${c.server.port}`];
      const runs = [
        ...await misconfigured(c, ["check", ...server]),
        await c.run(["doctor", ...server]),
      ];
      assert.equal(runs.at(-1)!.code, 2, "doctor");
      for (const run of runs) {
        assert.match(run.stdout, /Invalid API server URL: it holds a user name or password/);
        assert.ok(!run.stdout.includes("s3cret"), run.stdout);
      }
    }
    const fine = await c.run(["--timeout", "5m"]);
    assert.equal(fine.code, 0, "5m is still allowed");
  } finally {
    await c.stop();
  }
});

Deno.test("--last-line escapes C1 controls, line separators and bidi overrides", async () => {
  const c = await cluster();
  try {
    const hostile = "ok\u009b2J\u0085next\u2028line\u202egnp.exe\u2066x\u2069\u200f";
    await c.restartContainer("app", c.server.now - (LIMIT + 200) * 1000);
    c.server.log(c.pod, hostile, "app", c.server.now - (LIMIT + 184) * 1000);
    const run = await c.run(["--last-line"]);
    assert.equal(run.code, 1);
    assert.ok(
      run.stdout.endsWith(
        '; last line: "ok\\u009b2J\\u0085next\\u2028line\\u202egnp.exe\\u2066x\\u2069\\u200f"\n',
      ),
      run.stdout,
    );
    assert.ok(!/[\x80-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f]/.test(run.stdout));
    const json = await c.run(["--last-line", "--output", "json"]);
    assert.ok(!/[\x80-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(json.stdout));
  } finally {
    await c.stop();
  }
});

// ---------------------------------------------------------------------------
// Secrets

Deno.test("the token is in no output of any probe in this suite", async () => {
  // Run alone, its own checks: alive, silent with the last line quoted, JSON, errors, doctor.
  const c = await cluster();
  c.server.log(c.pod, "working");
  await c.run();
  c.server.now += (LIMIT + 60) * 1000;
  await c.run(["--last-line"]);
  await c.run(["--output", "json"]);
  await c.run(["doctor"]);
  c.server.grants.clear();
  await c.run();
  await c.run(["doctor"]);
  await c.stop();
  assert.equal(c.outputs.length, 12, "stdout and stderr of its 6 runs");
  for (const each of clusters) {
    for (const output of each.outputs) assert.ok(!output.includes(each.token));
  }
});
