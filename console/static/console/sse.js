// Server-Sent Events over fetch (the bearer token goes in a header, which EventSource cannot send).
// Reconnects by itself and resumes with Last-Event-ID when the stream carries ids.

import { authorizedFetch } from "./api.js";

export function openStream(path, { onEvent, onStatus = () => {}, terminal = [401, 403, 404], retryMs = 3000 }) {
  const state = { lastEventId: "", closed: false, controller: null };

  async function run() {
    while (!state.closed) {
      state.controller = new AbortController();
      const headers = { Accept: "text/event-stream", "Cache-Control": "no-cache" };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      let wait = retryMs;
      try {
        onStatus("connecting");
        const response = await authorizedFetch(path, { headers, signal: state.controller.signal });
        if (!response.ok) {
          if (terminal.includes(response.status)) {
            onStatus("closed", response.status);
            return;
          }
          onStatus("error", response.status);
          wait = 5000;
        } else {
          onStatus("live");
          await read(response);
          if (!state.closed) onStatus("reconnecting");
        }
      } catch (err) {
        if (state.closed) return;
        onStatus("error", 0);
      }
      if (state.ended) return;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  async function read(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let index;
      while ((index = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, index);
        buffer = buffer.slice(index + 2);
        dispatch(block);
      }
    }
  }

  function dispatch(block) {
    let event = "message";
    let id = "";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("id: ")) id = line.slice(4);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (!data.length) return;
    if (id) state.lastEventId = id;
    let parsed;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (event === "session.ended") state.ended = true;
    onEvent(event, parsed, id);
  }

  run();
  return {
    close() {
      state.closed = true;
      if (state.controller) state.controller.abort();
    },
    // For tests and the UI: drop the connection and let it resume.
    reconnect() {
      if (state.controller) state.controller.abort();
    },
    get lastEventId() {
      return state.lastEventId;
    },
  };
}
