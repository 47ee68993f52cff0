// Starts the MMOS GraphiQL explorer from the vendored UMD bundles.
//
// Kept out of the HTML so a Content-Security-Policy of `script-src 'self'` allows the page:
// the server passes its settings in a non-executable JSON block instead of inline code.
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("graphiql-config").textContent);

  // The page's CSP allows inline styles by nonce only; GraphiQL's dialogs inject a <style>
  // (react-remove-scroll-bar) that takes its nonce from this global.
  if (config.styleNonce) {
    window.__webpack_nonce__ = config.styleNonce;
  }

  // Same origin as the page: http -> ws, https -> wss, so TLS termination keeps working.
  function subscriptionUrlFor(endpoint) {
    var url = new URL(endpoint, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    return url.toString();
  }

  var endpointUrl = new URL(config.endpoint, window.location.href).toString();

  // GraphiQL bundles the graphql-ws client (protocol graphql-transport-ws) and sends the
  // header editor's headers as the connection_init payload, so one API key header
  // authorises both HTTP operations and subscriptions.
  var fetcher = GraphiQL.createFetcher({
    url: endpointUrl,
    subscriptionUrl: subscriptionUrlFor(config.endpoint),
  });

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: config.defaultQuery,
      isHeadersEditorEnabled: true,
      // API keys typed into the header editor stay out of localStorage.
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: true,
    })
  );
})();
