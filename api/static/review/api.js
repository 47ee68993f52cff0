// The page's only way to the server: GraphQL over HTTP, and graphql-transport-ws for progress.
const KEY = "mmos.apiKey";

export const keyStore = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (value) => (value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY)),
};

// kind: "network" (server gone), "auth" (401/403), "graphql" (errors in the answer).
export class ApiError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

export async function gql(query, variables = {}) {
  const headers = { "content-type": "application/json", accept: "application/json" };
  const key = keyStore.get();
  if (key) headers.authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  } catch (err) {
    throw new ApiError("network", "Cannot reach the MMOS server. Is it still running? " +
      "Your view is kept; retry once it is back.");
  }
  const text = await response.text().catch(() => "");
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (err) {
    body = null; // a refusal before GraphQL (401) answers in plain text
  }
  const message = body?.errors?.[0]?.message || body?.error || text.trim().slice(0, 300) || `HTTP ${response.status}`;
  if (response.status === 401 || (response.status === 403 && !body?.data)) {
    throw new ApiError("auth", message);
  }
  if (response.status >= 500 && !body) {
    throw new ApiError("network", `The server answered ${response.status}; retry in a moment.`);
  }
  if (!body || body.errors?.length) throw new ApiError("graphql", message);
  return body.data;
}

// One subscription per socket: connection_init carries the key, then subscribe.
export function subscribe(query, variables, { next, complete, error }) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
  const socket = new WebSocket(url, "graphql-transport-ws");
  let finished = false;
  const key = keyStore.get();
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "connection_init", payload: key ? { Authorization: `Bearer ${key}` } : {} }));
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "connection_ack") {
      socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
    } else if (message.type === "next") {
      if (message.payload?.errors?.length) error(new ApiError("graphql", message.payload.errors[0].message));
      else next(message.payload.data);
    } else if (message.type === "error") {
      finished = true;
      error(new ApiError("graphql", message.payload?.[0]?.message || "subscription refused"));
      socket.close(1000);
    } else if (message.type === "complete") {
      finished = true;
      complete();
      socket.close(1000);
    } else if (message.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    }
  };
  socket.onclose = (event) => {
    if (finished) return;
    finished = true;
    if (event.code === 4403 || event.code === 4401) error(new ApiError("auth", event.reason || "the key was refused"));
    else error(new ApiError("network", "Lost the live connection to the MMOS server. Is it still running?"));
  };
  return () => {
    finished = true;
    socket.close(1000);
  };
}
