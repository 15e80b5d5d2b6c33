// The live feed of work-order events (SSE). EventSource cannot send a header, so the feed
// opens by a short-lived signed URL the API mints for this user (no token in the URL). Within
// a URL's life EventSource reconnects by itself and resends Last-Event-ID, so the server
// replays what was missed; once the URL has expired (or the center restarted), the feed
// mints a new one and resumes after the last event it saw. A `resync` event means our
// position is from before a database restore: reload the list.

import { api } from "./api.js";

const RETRY_MS = 2000;

export function openFeed({ onEvent, onStatus, onResync }) {
  let source = null;
  let lastId = null;
  let closed = false;
  let timer = null;

  const status = () => onStatus(["connecting", "open", "closed"][source.readyState]);

  async function connect() {
    if (closed) return;
    let url;
    try {
      ({ url } = await api("/api/v1/signed-urls", { method: "POST", json: { path: "/api/v1/feed" } }));
    } catch (err) {
      console.warn("feed: cannot get a signed URL", err);
      onStatus("closed");
      if (err.status !== 401 && err.status !== 403) retry();
      return;
    }
    if (closed) return;
    source = new EventSource(lastId === null ? url : `${url}&after=${encodeURIComponent(lastId)}`);
    source.onopen = status;
    source.onerror = () => {
      status();
      if (source.readyState === EventSource.CLOSED) retry(); // refused: the URL expired
    };
    source.addEventListener("workorder", (message) => {
      lastId = message.lastEventId;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (err) {
        console.error("feed: unreadable event", message.data, err);
        return;
      }
      onEvent(event);
    });
    source.addEventListener("resync", (message) => {
      lastId = message.lastEventId;
      onResync?.();
    });
  }

  function retry() {
    clearTimeout(timer);
    timer = setTimeout(connect, RETRY_MS);
  }

  onStatus("connecting");
  connect();
  return {
    close: () => {
      closed = true;
      clearTimeout(timer);
      source?.close();
      onStatus("closed");
    },
  };
}
