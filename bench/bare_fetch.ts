// Floor 2: what any Deno-based probe pays to ask: the service-account token and
// CA, one verified fetch of the same URL as probe.ts, the body printed.
// Usage: bare_fetch.ts SERVICE_ACCOUNT_DIR URL
const [dir, url] = Deno.args;
const token = Deno.readTextFileSync(`${dir}/token`).trim();
const ca = Deno.readTextFileSync(`${dir}/ca.crt`);
const client = Deno.createHttpClient({ caCerts: [ca], http2: false }); // as probe.ts
const response = await fetch(url, { client, headers: { authorization: `Bearer ${token}` } });
console.log(await response.text());
