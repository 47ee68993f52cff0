#!/usr/bin/env node
// Reference JavaScript client: follows one batch's progress with `graphql-ws` until the
// subscription completes, printing each event as one JSON line on stdout.
//
//   npm ci --prefix scripts/js-subscription-client
//   node scripts/js-subscription-client/subscribe.mjs --url ws://127.0.0.1:8000/graphql \
//        --batch <batch id> [--after <cursor>] [--token <api key>]
//
// Exit status: 0 when the subscription completed, 1 on an error, 2 on bad arguments.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const QUERY = `subscription Progress($batchId: ID!, $after: String) {
  batchProgress(batchId: $batchId, after: $after) {
    cursor seq kind runId model fragments costUsd progress at message
  }
}`;

function parseArgs(argv) {
  const args = { url: "ws://127.0.0.1:8000/graphql", after: null, token: null, batch: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (!name.startsWith("--") || value === undefined) return null;
    args[name.slice(2)] = value;
  }
  return args.batch ? args : null;
}

const args = parseArgs(process.argv.slice(2));
if (args === null) {
  console.error("usage: subscribe.mjs --batch <id> [--url ws://host:port/graphql] [--after <cursor>]");
  process.exit(2);
}

const client = createClient({
  url: args.url,
  webSocketImpl: WebSocket,
  // The connection_init payload: the server's auth hook reads it.
  connectionParams: args.token ? { authorization: `Bearer ${args.token}` } : {},
  retryAttempts: 0,
  lazy: true,
});

let status = 0;
try {
  const events = client.iterate({ query: QUERY, variables: { batchId: args.batch, after: args.after } });
  for await (const result of events) {
    if (result.errors) {
      console.error(JSON.stringify(result.errors));
      status = 1;
      break;
    }
    console.log(JSON.stringify(result.data.batchProgress));
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : JSON.stringify(error));
  status = 1;
} finally {
  await client.dispose();
}
process.exit(status);
