/**
 * One run of bench/floor.ts: marks in ms since the first statement, as JSON.
 * No imports, so a run costs what its mode costs and nothing else.
 * Usage: floor_marks.ts hello|tls|tls-delay|fetch SERVICE_ACCOUNT_DIR PORT
 *
 * @module
 */
/** One child run: marks in ms since the first statement, and the time before it. */
async function main(mode: string, dir: string, port: number): Promise<void> {
  const boot = performance.now(); // time origin → first statement
  const marks: Record<string, number> = {};
  const t0 = performance.now();
  const mark = (name: string) => marks[name] = performance.now() - t0;
  if (mode !== "hello") {
    const token = Deno.readTextFileSync(`${dir}/token`);
    const ca = Deno.readTextFileSync(`${dir}/ca.crt`);
    mark("read token and CA");
    const path = "/api/v1/namespaces/shop/pods/worker/log?tailLines=1&limitBytes=64";
    for (const round of ["1st", "2nd"]) {
      if (mode === "fetch") {
        const client = Deno.createHttpClient({ caCerts: [ca], http2: false });
        mark(`${round} createHttpClient`);
        const response = await fetch(`https://127.0.0.1:${port}${path}`, {
          client,
          headers: { authorization: `Bearer ${token}` },
        });
        mark(`${round} fetch → headers`);
        await response.text();
        mark(`${round} text()`);
        client.close();
      } else {
        const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
        if (mode === "tls") tcp.setNoDelay(true);
        mark(`${round} connect`);
        const tls = await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [ca] });
        await tls.handshake();
        mark(`${round} TLS handshake`);
        await tls.write(new TextEncoder().encode(
          `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\n` +
            "connection: close\r\n\r\n",
        ));
        const buffer = new Uint8Array(4096);
        await tls.read(buffer);
        mark(`${round} request → first bytes`);
        while ((await tls.read(buffer)) !== null);
        mark(`${round} read to end`);
        tls.close();
      }
    }
  }
  console.log(JSON.stringify({ boot, marks }));
}

await main(Deno.args[0], Deno.args[1], Number(Deno.args[2]));
