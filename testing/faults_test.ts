/**
 * The fault suite: API server faults, TLS and identity, hostile log content,
 * the counter under kills and races, load, hostile arguments and secrets. Each
 * case runs the real probe and checks the exit code, the line and the counter.
 * (The decision-table rows already in probe_test.ts are not repeated here.)
 */
import assert from "node:assert/strict";
import { brotliCompressSync } from "node:zlib";
import { main } from "../probe.ts";
import { FakeApiServer, makePki, type Pki } from "./apiserver.ts";
import { Cluster, commandOutput, denoFlags, type Run } from "./cluster.ts";

const clusters: Cluster[] = [];
async function cluster(): Promise<Cluster> {
  const started = await Cluster.start();
  clusters.push(started);
  return started;
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
  await c.setCounter(0);
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
    /^unknown: API server unreachable: .*; not counted, as the check before passed$/m,
  );
  assert.equal(await c.counter(), c.counterLine(1, undefined, 0));
  await server.close();
  await c.stop();
});

Deno.test("an answer at one byte per second hits the probe's own deadline: unknown", async () => {
  const c = await cluster();
  await c.setCounter(0);
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
  assert.equal(
    run.stdout,
    "unknown: no answer from the API server within 2s; not counted, as the check before passed\n",
  );
  assert.ok(run.ms < 4000, `${run.ms} ms: well before a 10 s timeoutSeconds`);
  assert.equal(await c.counter(), c.counterLine(1, undefined, 0));
  await server.close();
  await c.stop();
});

Deno.test("a 200 that is not a log (a proxy's page) is an error naming it, and only 4 KiB is read", async () => {
  const c = await cluster();
  await Deno.writeTextFile(c.stateFile, c.counterLine(2, undefined, 0)); // passing, window 2 steps wide
  const page = `<html><body>${"Please log in. ".repeat(700_000)}</body></html>`; // 10 MB
  c.server.override = { status: 200, headers: { "content-type": "text/html" }, body: page };
  const declared = await c.run();
  assert.equal(declared.code, 2);
  assert.match(
    declared.stdout,
    /^error: answer is not a container log \(text\/html\): --server is not the API server, or a proxy answers$/m,
  );
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
  assert.equal(streamed.code, 2);
  assert.match(streamed.stdout, /^error: answer is not a container log/);
  assert.ok(streamed.ms < 3000, "an endless page does not hold the probe");
  // Two failures in a row more; the silent count kept.
  assert.equal(await c.counter(), c.counterLine(2, undefined, 2, { errors: 2 }));
  await plain.shutdown();
  await c.stop();
});

// ---------------------------------------------------------------------------
// TLS and identity

Deno.test("a certificate outside its validity is unknown (the control plane's fault), never skipped", async () => {
  const c = await cluster();
  await c.setCounter(2);
  const expired = await makePki({ serverDays: -1 });
  const server = new FakeApiServer(expired);
  server.addServiceAccount(c.token, "shop", "log-probe");
  await Deno.writeTextFile(`${c.paths.serviceAccountDir}/ca.crt`, expired.caCert);
  const host = `127.0.0.1:${server.port}`;
  // In a silent streak: fails, one step wider, like any outage.
  const run = await c.run([], { server: host });
  assert.equal(run.code, 1);
  assert.match(
    run.stdout,
    /^unknown: API server certificate expired \(the control plane's to renew, or this node's clock\); failed, as the check before \(3 silent in a row\)$/m,
  );
  assert.equal(server.seen.length, 0, "no request without a valid certificate");
  const doctor = await c.run(["doctor"], { server: host });
  assert.match(doctor.stdout, /^✗ API server certificate expired \(the control plane's to renew/m);
  assert.equal(await c.counter(), c.counterLine(3));
  // Not valid yet: the pod's clock three days behind the certificate. After output: passes.
  await Deno.writeTextFile(`${c.paths.serviceAccountDir}/ca.crt`, c.pki.caCert);
  await c.setCounter(0);
  c.server.now -= 3 * 86400_000;
  const early = await c.run();
  assert.equal(early.code, 0);
  assert.match(early.stdout, /^unknown: API server certificate not valid yet .*; not counted, as/m);
  assert.equal(await c.counter(), c.counterLine(1, undefined, 0));
  await server.close();
  await Deno.remove(expired.dir, { recursive: true });
  await c.stop();
});

Deno.test("a plain-HTTP port, and a TLS alert, are errors that say what to fix, silent count kept", async () => {
  const c = await cluster();
  await Deno.writeTextFile(c.stateFile, c.counterLine(2, undefined, 0)); // passing, window 2 steps wide
  const plain = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("2026-11-25T12:00:00Z hi\n"),
  );
  const http = await c.run([], { server: `127.0.0.1:${plain.addr.port}` });
  assert.equal(http.code, 2);
  assert.match(
    http.stdout,
    /^error: API server does not speak TLS as expected: .*InvalidContentType \(a plain-HTTP port\? --server right\?\)$/m,
  );
  const alert = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const alerting = (async () => {
    for await (const conn of alert) {
      await conn.write(new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])); // handshake_failure
      conn.close();
    }
  })().catch(() => {});
  const fatal = await c.run([], { server: `127.0.0.1:${alert.addr.port}` });
  assert.equal(fatal.code, 2);
  assert.match(fatal.stdout, /^error: API server does not speak TLS as expected: .*alert/m);
  const doctor = await c.run(["doctor"], { server: `127.0.0.1:${plain.addr.port}` });
  assert.match(
    doctor.stdout,
    /^✗ API server does not speak TLS as expected: .*a plain-HTTP port\?/m,
  );
  assert.equal(await c.counter(), c.counterLine(2, undefined, 2, { errors: 2 }));
  alert.close();
  await alerting;
  await plain.shutdown();
  await c.stop();
});

Deno.test("HTTPS_PROXY in the container's environment never carries the probe's request", async () => {
  const c = await cluster();
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
  assert.equal(run.stdout, "alive: output in the last 60s\n");
  assert.equal(proxied, 0, "nothing reached the proxy");
  // Without --allow-env=NO_PROXY the probe cannot keep it off, and says so.
  const host = `127.0.0.1:${c.server.port}`;
  const flags = denoFlags(c.paths, host).map((flag) =>
    flag.startsWith("--allow-env=") ? flag.replace(",NO_PROXY", "") : flag
  );
  const unguarded = await c.run([], { env, flags });
  assert.match(unguarded.stdout, /warning: HTTPS_PROXY not kept off \(add --allow-env=NO_PROXY\)/);
  assert.ok(proxied > 0, "Deno's fetch takes the proxy from the environment");
  proxy.close();
  await proxying;
  await c.stop();
});

Deno.test("what TLS trusts: ca.crt and Deno's roots; DENO_CERT in the environment too (README)", async () => {
  const c = await cluster();
  c.server.log(c.pod, "working");
  const other = await makePki();
  const server = new FakeApiServer(other);
  server.addPod("shop", "worker-7d9f").containers.get("app")!.push({ at: server.now, text: "hi" });
  server.addServiceAccount(c.token, "shop", "log-probe");
  const host = `127.0.0.1:${server.port}`;
  const rejected = await c.run([], { server: host });
  assert.equal(rejected.code, 2);
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
  await c.stop();
});

Deno.test("a token rotated between two runs: the second run sends the new one", async () => {
  const c = await cluster();
  c.server.log(c.pod, "working");
  assert.equal((await c.run()).code, 0);
  const rotated = `tok-${crypto.randomUUID()}`;
  c.server.tokens.clear(); // the old token expires with the rotation
  c.server.addServiceAccount(rotated, "shop", "log-probe");
  await Deno.writeTextFile(`${c.paths.serviceAccountDir}/token`, `${rotated}\n`);
  const run = await c.run();
  assert.equal(run.code, 0);
  assert.equal(run.stdout, "alive: output in the last 60s\n");
  assert.ok(!c.outputs.some((o) => o.includes(rotated)));
  await c.stop();
});

// ---------------------------------------------------------------------------
// Log content

Deno.test("hostile log content: a 100 MB line, invalid UTF-8, NUL bytes, CRI partial lines", async () => {
  const c = await cluster();
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
    await c.setCounter(4);
    log();
    const run = await c.run();
    assert.equal(run.code, 0, what);
    assert.equal(
      run.stdout,
      "alive: output in the last 900s (after 4 silent checks in a row)\n",
      what,
    );
    assert.ok(c.server.seen.at(-1)!.bytes <= 64, `${what}: ${c.server.seen.at(-1)!.bytes} bytes`);
    assert.match((await c.counter())!, new RegExp(`^0 ${c.instance()} \\S+Z 0 - - 0 0\n$`), what);
  }
  // A partial line older than the window is silence, like any other line.
  records.length = 0;
  records.push({ at: c.server.now - 120_000, text: "half a line", partial: true });
  await c.setCounter(0);
  const silent = await c.run();
  assert.equal(silent.code, 1);
  assert.equal(await c.counter(), c.counterLine(1, c.server.now - 120_000));
  await c.stop();
});

// ---------------------------------------------------------------------------
// The counter

Deno.test("a termination-message file named but missing: an error naming the fix, counted; doctor shows it", async () => {
  const c = await cluster();
  c.server.log(c.pod, "working");
  const born = c.instance();
  assert.match(born, /^\d+:\d+:[0-9a-z]+$/, "device, inode and birth time");
  await Deno.remove(c.paths.terminationMessagePath);
  const run = await c.run();
  assert.equal(run.code, 2);
  assert.match(
    run.stdout,
    /^error: termination-message file \/.*\/termination-log: No such file or directory \(--termination-message-path must be the container's terminationMessagePath\)$/m,
  );
  assert.equal(c.server.seen.length, 0, "nothing asked");
  const doctor = await c.run(["doctor"]);
  assert.match(doctor.stdout, /^✗ termination-message file .*: No such file or directory/m);
  // The kubelet mounts a new file for the next instance: a new identity, the count starts over.
  await Deno.writeTextFile(c.paths.terminationMessagePath, "");
  const back = await c.run();
  assert.equal(back.code, 0, back.stdout);
  assert.notEqual(c.instance(), born);
  await c.stop();
});

Deno.test("a counter path that is a directory: alive warns, silent is an error naming the path, not counted", async () => {
  const c = await cluster();
  await Deno.mkdir(c.stateFile);
  c.server.log(c.pod, "working");
  const run = await c.run();
  assert.equal(run.code, 0);
  assert.match(
    run.stdout,
    /^alive: output in the last 60s; counter unreadable \(Is a directory\), counted as 0; warning: counter not saved to \/.*\/counter \(Is a directory\)$/m,
  );
  // Silence that cannot be counted would keep the window at 60s (a quiet worker would die young),
  // and a failure that cannot be counted could be the kubelet's last: it passes, loudly in its
  // line, and doctor names it.
  c.server.now += 120_000;
  const silent = await c.run();
  assert.equal(silent.code, 0);
  assert.match(
    silent.stdout,
    /^error: counter \/.*\/counter cannot be written \(Is a directory\): --state-file must name a file on a writable emptyDir; silent, not counted/m,
  );
  assert.ok((await Deno.stat(c.stateFile)).isDirectory, "the directory is left alone");
  assert.deepEqual([...Deno.readDirSync(c.paths.stateDir)].map((e) => e.name), ["counter"]);
  const doctor = await c.run(["doctor"]);
  assert.match(
    doctor.stdout,
    /✗ counter .*counter: counter unreadable \(Is a directory\), counted as 0: --state-file must name a file on a writable emptyDir mounted at /,
  );
  await c.stop();
});

Deno.test("a full emptyDir: the pass is not saved, and no stale failure outlives it", async () => {
  const c = await cluster();
  c.server.log(c.pod, "working");
  // A one-page tmpfs over the counter's folder, in a mount namespace of the probe's own: the old
  // counter (a failing streak) fills it, so the new one cannot be written.
  const script =
    `mount -t tmpfs -o size=4k,mode=0777 full "$0" && printf '2 %s\\n' "$1" > "$0/counter"` +
    ` && shift && "$@"; echo "left: $(ls "$0")" >&2`;
  const wrapper = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    script,
    c.paths.stateDir,
    c.instance(),
  ];
  const run = await c.run([], { wrapper });
  assert.equal(run.code, 0);
  assert.match(
    run.stdout,
    /^alive: output in the last 360s \(after 2 silent checks in a row\); warning: counter not saved to .*No space left on device/m,
  );
  assert.match(run.stderr, /^left: $/m, "the failing counter is gone: the next outage passes");
  await c.stop();
});

Deno.test("a FIFO or a 1 GB file at the counter path: read without blocking, a few bytes", async () => {
  const c = await cluster();
  c.server.log(c.pod, "working");
  const fifo = await new Deno.Command("mkfifo", { args: [c.stateFile] }).output();
  assert.ok(fifo.success);
  const blocked = await c.run(["--timeout", "2s"]);
  assert.equal(blocked.code, 0);
  assert.match(blocked.stdout, /counter unreadable \(not a regular file\), counted as 0/);
  assert.ok(blocked.ms < 3000, `${blocked.ms} ms`);
  await Deno.remove(c.stateFile);
  const big = await Deno.open(c.stateFile, { write: true, create: true });
  await big.truncate(1_000_000_000);
  big.close();
  const time = ["/usr/bin/time", "-f", "%M"];
  const huge = await c.run([], { wrapper: time });
  assert.equal(huge.code, 0);
  assert.match(huge.stdout, /counter file held garbage, counted as 0/);
  const peakMiB = Number(huge.stderr.trim().split("\n").at(-1)) / 1024;
  assert.ok(peakMiB < 100, `${peakMiB} MiB`);
  await c.stop();
});

Deno.test("two probed containers of one pod on one emptyDir keep a counter each", async () => {
  const c = await Cluster.start({ containers: ["app", "sidecar"] });
  clusters.push(c);
  c.server.log(c.pod, "working", "app");
  for (let i = 0; i < 3; i++) {
    c.server.now += 60_000;
    const app = await c.run(["-c", "app"]);
    const sidecar = await c.run(["-c", "sidecar"]);
    assert.ok(!`${app.stdout}${sidecar.stdout}`.includes("discarded"), app.stdout + sidecar.stdout);
    assert.match(sidecar.stdout, new RegExp(`\\(${i + 1} silent checks? in a row`));
  }
  assert.deepEqual([...Deno.readDirSync(c.paths.stateDir)].map((e) => e.name).sort(), [
    "counter.app",
    "counter.sidecar",
  ]);
  await c.stop();
});

Deno.test("SIGKILL at random moments: the counter is always the old or the new value", async () => {
  const c = await cluster();
  const lastWords = c.server.now - 3600_000;
  c.server.log(c.pod, "last words", "app", lastWords);
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
    await c.setCounter(0);
    const { started, asked, done } = await timings(c.spawn(), c.server.seen.length);
    await done;
    startup = Math.max(startup, asked - started);
    tail = Math.max(tail, performance.now() - asked);
  }
  const runs = 150;
  let killedAfterRequest = 0;
  let newValue = 0;
  for (let i = 0; i < runs; i++) {
    const before = Math.floor(random() * 10);
    await c.setCounter(before);
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
    const text = await c.counter();
    // The old value, or the new count with the last words remembered.
    assert.ok(
      text === `${before} ${c.instance()}\n` || text === c.counterLine(before + 1, lastWords),
      `run ${i}: ${JSON.stringify(text)}`,
    );
    if (text !== `${before} ${c.instance()}\n`) newValue++;
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
  await c.stop();
});

Deno.test("two probes at once on one counter file: the result is a valid count", async () => {
  const c = await cluster();
  // Older than any window the counter reaches here: every check is silent.
  const lastWords = c.server.now - 30 * 86400_000;
  c.server.log(c.pod, "last words", "app", lastWords);
  for (let round = 0; round < 10; round++) {
    await c.setCounter(round);
    const runs = await Promise.all([c.run(), c.run()]);
    assert.deepEqual(runs.map((run) => run.code), [1, 1]);
    // Each saw `round`, or `round + 1` when it read after the other's write; the file holds
    // the larger count, whole: no torn or lost write, whatever the interleaving.
    const counts = runs.map((run) =>
      Number(run.stdout.match(/\((\d+) silent checks? in a row/)?.[1])
    );
    for (const count of counts) assert.ok(count === round + 1 || count === round + 2, `${counts}`);
    assert.equal(await c.counter(), c.counterLine(Math.max(...counts), lastWords));
  }
  await c.stop();
});

// ---------------------------------------------------------------------------
// Load

Deno.test("200 probes of 200 pods at once: each verdict right, nothing left behind", async () => {
  const fdsBefore = (await commandOutput("ls", [`/proc/${Deno.pid}/fd`])).split("\n").length;
  const c = await cluster();
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
  const state = await Deno.readTextFile(`${sandbox}/state`).catch(() => "0 -\n");
  assert.match(
    state,
    /^\d+ \S+ (-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \d+ \S+ \S+ [0-3] \d+\n$/,
    "the counter file holds a count, an instance, the newest output seen, failures and more",
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
  c.server.log(c.pod, "working");
  const normal = await measured(c);
  assert.equal(normal.code, 0);
  assert.equal(c.server.seen.at(-1)!.acceptEncoding, "identity", "the request asks for identity");
  await Deno.writeTextFile(c.stateFile, c.counterLine(2, undefined, 0)); // passing, window 2 steps wide
  const bomb = brotliCompressSync(new Uint8Array(300_000_000).fill(97));
  assert.ok(bomb.length < 1024, `${bomb.length} bytes`);
  c.server.override = {
    status: 200,
    headers: { "content-type": "text/plain", "content-encoding": "br" },
    body: new Uint8Array(bomb),
  };
  const hostile = await measured(c);
  assert.equal(hostile.code, 2);
  assert.match(hostile.stdout, /^error: answer is not a container log \(content-encoding br\)/);
  assert.equal(await c.counter(), c.counterLine(2, undefined, 1, { errors: 1 }));
  assert.equal(c.server.seen.at(-1)!.acceptEncoding, "identity");
  assert.ok(
    hostile.rssMiB < normal.rssMiB * 1.25,
    `peak RSS ${hostile.rssMiB.toFixed(1)} MiB with the bomb, ${normal.rssMiB.toFixed(1)} without`,
  );
  console.log(
    `brotli bomb: ${bomb.length} B → 300 MB; peak RSS ${hostile.rssMiB.toFixed(1)} MiB, ` +
      `a normal check ${normal.rssMiB.toFixed(1)} MiB; ${hostile.ms.toFixed(0)} ms`,
  );
  await c.stop();
});

Deno.test("--match '^(a+)+$' on a 31-character line ends within --timeout; plain patterns still decide", async () => {
  const c = await cluster();
  c.server.log(c.pod, `${"a".repeat(30)}!`);
  const catastrophic = await c.run(["--match", "^(a+)+$", "--timeout", "2s"]);
  assert.equal(catastrophic.code, 1, catastrophic.stdout);
  assert.match(catastrophic.stdout, /^silent: no matching output in the last 60s/);
  assert.ok(catastrophic.ms < 3000, `${catastrophic.ms.toFixed(0)} ms with --timeout 2s`);
  const plain = await c.run(["--match", "^a+!$", "--ignore", "DEBUG"]);
  assert.equal(plain.code, 0);
  assert.match(plain.stdout, /^alive: matching output in the last 180s/);
  console.log(`^(a+)+$ on 31 characters: ${catastrophic.ms.toFixed(0)} ms (was 30 s)`);
  await c.stop();
});

Deno.test("matching that outlasts --timeout stops before the deadline: judged on the lines matched, never unknown", async () => {
  const c = await cluster();
  await c.setCounter(0);
  // Linear, but slow: about 30 ms a 4096-character line here, 300 lines.
  const slow = "(?:a?){9}".repeat(28) + "b";
  for (let i = 0; i < 300; i++) c.server.log(c.pod, "a".repeat(4096));
  const run = await c.run(["--match", slow, "--limit-bytes", "2000000", "--timeout", "1s"]);
  assert.equal(run.code, 1, run.stdout);
  assert.match(
    run.stdout,
    /^silent: no matching output in the last 60s \(only \d+ lines matched within --timeout: raise it or the CPU limit\)/,
  );
  assert.equal(
    await c.counterAt(c.server.now),
    c.counterLine(1, undefined, 1, { seenUntil: c.server.now }),
  );
  assert.ok(run.ms < 2000, `${run.ms.toFixed(0)} ms with --timeout 1s`);
  console.log(`300 slow matches cut at the deadline: ${run.ms.toFixed(0)} ms with --timeout 1s`);
  await c.stop();
});

Deno.test("patterns the linear engine cannot run, or a deno without its flag: exit 2, one line", async () => {
  const c = await cluster();
  c.server.log(c.pod, "working");
  for (
    const [pattern, expected] of [
      ["(\\w+) \\1", 'error: Invalid --match "(\\\\w+) \\\\1": cannot be matched in linear time'],
      ["a(?=b)", 'error: Invalid --match "a(?=b)": cannot be matched in linear time'],
      ["x".repeat(257), "longer than 256 characters"],
    ]
  ) {
    const run = await c.run(["--match", pattern]);
    assert.equal(run.code, 2);
    assert.ok(run.stdout.startsWith("error: ") && run.stdout.includes(expected), run.stdout);
    assert.equal(run.stdout.split("\n").length, 2, "one line");
    assert.equal(run.stderr, "");
  }
  const flags = denoFlags(c.paths, `127.0.0.1:${c.server.port}`)
    .filter((flag) => !flag.startsWith("--v8-flags"));
  const bare = await c.run(["--match", "working"], { flags });
  assert.equal(bare.code, 2);
  assert.equal(
    bare.stdout,
    "error: --match needs linear-time matching: run deno with --v8-flags=--enable-experimental-regexp-engine\n",
  );
  const plain = await c.run([], { flags });
  assert.equal(plain.code, 0, "without patterns the flag is not needed");
  await c.stop();
});

Deno.test("--timeout beyond 5m, a service host that is not a host, a server URL with a password: exit 2, one line, nothing asked", async () => {
  const c = await cluster();
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
    const run = await c.run(args, { env });
    assert.equal(run.code, 2, `${args} ${JSON.stringify(env)}: ${run.stdout}`);
    assert.ok(run.stdout.startsWith("error: ") && run.stdout.includes(expected), run.stdout);
    assert.equal(run.stdout.split("\n").length, 2, "one line");
    assert.equal(run.stderr, "");
    assert.equal(c.server.seen.length, seen, "nothing was asked");
  }
  for (const userinfo of ["admin:s3cret-pw@", ":s3cret-pw@", "admin@"]) {
    const server = ["--server", `https://${userinfo}127.0.0.1:${c.server.port}`];
    for (const command of ["check", "doctor"]) {
      const run = await c.run([command, ...server]);
      assert.equal(run.code, 2, run.stdout);
      assert.match(run.stdout, /Invalid API server URL: it holds a user name or password/);
      assert.ok(!run.stdout.includes("s3cret"), run.stdout);
    }
  }
  const fine = await c.run(["--timeout", "5m"]);
  assert.equal(fine.code, 0, "5m is still allowed");
  await c.stop();
});

Deno.test("--last-line escapes C1 controls, line separators and bidi overrides", async () => {
  const c = await cluster();
  const hostile = "ok\u009b2J\u0085next\u2028line\u202egnp.exe\u2066x\u2069\u200f";
  c.server.log(c.pod, hostile, "app", c.server.now - 7384_000);
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
  await c.stop();
});

// ---------------------------------------------------------------------------
// Secrets

Deno.test("the token is in no output of any probe in this suite", async () => {
  for (const c of clusters) {
    for (const output of c.outputs) assert.ok(!output.includes(c.token));
  }
  assert.ok(clusters.length >= 10);
  assert.ok(clusters.reduce((sum, c) => sum + c.outputs.length, 0) > 400);
  await Promise.resolve();
});
