#!/usr/bin/env node
// GraphQL-over-HTTP conformance: runs graphql-http's `serverAudits` against a live endpoint
// and prints one JSON document on stdout: every audit's id, name, level and status, and for
// a failed audit the reason and the response (status, content type, body).
//
//   npm ci --prefix scripts/graphql-http-audit
//   node scripts/graphql-http-audit/audit.mjs --url http://127.0.0.1:8000/graphql [--token <key>]
//
// Exit status: 0 when the audits ran (whatever they found), 2 on bad arguments or a fatal
// error (the server unreachable, an audit that threw instead of reporting).
import { serverAudits } from "graphql-http";

function parseArgs(argv) {
  const args = { url: null, token: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (!name.startsWith("--") || value === undefined || !(name.slice(2) in args)) return null;
    args[name.slice(2)] = value;
  }
  return args.url ? args : null;
}

const args = parseArgs(process.argv.slice(2));
if (args === null) {
  console.error("usage: audit.mjs --url http://host:port/graphql [--token <api key>]");
  process.exit(2);
}

// With --token every audit request carries `Authorization: Bearer <token>`.
const fetchFn = (input, init = {}) => {
  if (!args.token) return fetch(input, init);
  const headers = new Headers(init.headers || {});
  headers.set("authorization", `Bearer ${args.token}`);
  return fetch(input, { ...init, headers });
};

async function describe(response) {
  if (!response) return null;
  let body = null;
  try {
    body = (await response.clone().text()).slice(0, 2000);
  } catch {
    body = null; // already read by the audit
  }
  return { status: response.status, contentType: response.headers.get("content-type"), body };
}

function level(name) {
  return ["MUST", "SHOULD", "MAY"].find((word) => name.startsWith(word)) ?? "OTHER";
}

try {
  const results = [];
  // One at a time: the audits are cheap, and sequential requests keep the server's log readable.
  for (const { fn } of serverAudits({ url: args.url, fetchFn })) {
    const result = await fn();
    results.push({
      id: result.id,
      name: result.name,
      level: level(result.name),
      status: result.status,
      ...(result.status === "ok" ? {} : { reason: result.reason, response: await describe(result.response) }),
    });
  }
  const summary = {};
  for (const result of results) {
    const counts = (summary[result.level] ??= { ok: 0, total: 0 });
    counts.total += 1;
    if (result.status === "ok") counts.ok += 1;
  }
  console.log(JSON.stringify({ url: args.url, summary, results }, null, 2));
} catch (error) {
  console.error(`audit failed: ${error?.stack ?? error}`);
  process.exit(2);
}
