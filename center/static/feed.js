// The live feed of work-order events (SSE). EventSource reconnects by itself and resends
// Last-Event-ID, so the server replays what was missed; the token travels as
// ?access_token= because EventSource cannot set headers.

export function openFeed(token, { onEvent, onStatus }) {
  const source = new EventSource(`/api/v1/feed?access_token=${encodeURIComponent(token)}`);
  const status = () => {
    const state = ["connecting", "open", "closed"][source.readyState];
    onStatus(state);
  };
  source.onopen = status;
  source.onerror = status;
  source.addEventListener("workorder", (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (err) {
      console.error("feed: unreadable event", message.data, err);
      return;
    }
    onEvent(event);
  });
  onStatus("connecting");
  return { close: () => { source.close(); onStatus("closed"); } };
}
