// What the console knows about work orders without asking the API: which states are open,
// the colour of a state, whether an order is overdue, whether it passes the list filters,
// and the triage order (the API's sort=urgency, kept as the feed adds and changes rows).

export const OPEN_STATES = new Set([
  "reported", "filed", "dispatched", "signed", "in_progress", "returned", "rework",
  "extended", "reopened",
]);

/** Marker and badge colour by state group: waiting for dispatch, with a unit, being
 * handled, done. Overdue is shown separately (red ring / red due time). */
export function stateColor(state) {
  switch (state) {
    case "reported": case "filed": case "reopened": case "returned":
      return "#f5a623";
    case "dispatched": case "signed":
      return "#4a90e2";
    case "in_progress": case "extended": case "rework":
      return "#2ec4d6";
    case "resolved": case "verified": case "closed":
      return "#3fb950";
    default:
      return "#8b949e";
  }
}

export function isOpen(order) {
  return OPEN_STATES.has(order.state);
}

/** Overdue: the API says so for rows it listed; orders updated from the feed carry only
 * due_at, so work it out (open and past due). */
export function isOverdue(order, now = new Date()) {
  if (!isOpen(order)) return false;
  return Boolean(order.due_at && new Date(order.due_at) < now);
}

/** The list's query string for the current filters (the API does the filtering). */
export function listQuery(filters, cursor) {
  const q = new URLSearchParams();
  if (filters.state) q.append("state", filters.state);
  else q.set("open", "true");
  if (filters.kind) q.append("kind", filters.kind);
  if (filters.department) q.set("department", filters.department);
  if (filters.district) q.set("district", filters.district);
  if (filters.overdue) q.set("overdue", "true");
  if (filters.escalated) q.set("escalated", "true");
  q.set("sort", "urgency");
  q.set("limit", "200");
  if (cursor) q.set("cursor", cursor);
  return q.toString();
}

/** Whether an order from the feed belongs in the list under these filters. Orders already
 * listed stay (greyed) when they stop matching, so a change of state is seen, not lost. */
export function matches(order, filters) {
  if (filters.state ? order.state !== filters.state : !isOpen(order)) return false;
  if (filters.kind && order.kind !== filters.kind) return false;
  if (filters.department && order.department !== filters.department) return false;
  if (filters.district && order.district !== filters.district) return false;
  if (filters.overdue && !isOverdue(order)) return false;
  if (filters.escalated && !order.escalation_level) return false;
  return true;
}

/** The duty officer's order: overdue first (most overdue first), then priority 1 → 4,
 * then the least time left; finished orders last. The same keys as the API's
 * sort=urgency, so rows the feed adds fall where a reload would put them. */
export function byUrgency(a, b, now = new Date()) {
  const rank = (o) => (isOverdue(o, now) ? 0 : isOpen(o) ? 1 : 2);
  const due = (o) => (o.due_at ? new Date(o.due_at).getTime() : Infinity);
  return rank(a) - rank(b) || (a.priority ?? 4) - (b.priority ?? 4) || due(a) - due(b)
    || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Seconds until due (negative: overdue), or null without a due time. */
export function secondsLeft(order, now = Date.now()) {
  return order.due_at ? (new Date(order.due_at).getTime() - now) / 1000 : null;
}
