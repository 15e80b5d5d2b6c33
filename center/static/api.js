// The API client: the bearer token (kept in localStorage), JSON calls that turn the API's
// errors into readable messages, and authenticated images as object URLs.

const TOKEN_KEY = "citywatch.token";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

/** The message a person should read for an error body: 409 {detail: {message}}, 422
 * {detail: [{loc, msg}]}, or {detail: "text"}. */
export function errorMessage(status, body) {
  const detail = body && body.detail;
  if (detail && typeof detail === "object" && !Array.isArray(detail) && detail.message) {
    return detail.message;
  }
  if (Array.isArray(detail)) {
    return detail
      .map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`)
      .join("; ");
  }
  if (typeof detail === "string") return detail;
  return `HTTP ${status}`;
}

async function request(path, { method = "GET", json, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers, Authorization: `Bearer ${token()}` } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `network error: ${err.message}`, null);
  }
  return response;
}

/** GET/POST a JSON endpoint; throws ApiError with the API's own message on failure. */
export async function api(path, options = {}) {
  const response = await request(path, options);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (!response.ok) {
    throw new ApiError(response.status, errorMessage(response.status, data), data);
  }
  return data;
}

/** Upload an image (raw body) as an attachment of a work order → {id, url}. */
export function uploadPhoto(orderId, file) {
  return api(`/api/v1/work-orders/${encodeURIComponent(orderId)}/attachments`, {
    method: "POST",
    body: file,
    headers: { "Content-Type": file.type || "image/jpeg" },
  });
}

/** GET a file with the token; an ApiError with the API's message when it is refused. */
async function fetchOk(path) {
  const response = await request(path);
  if (response.ok) return response;
  let data = null;
  try {
    data = await response.json();
  } catch {
    /* not JSON: the status says enough */
  }
  throw new ApiError(response.status, errorMessage(response.status, data), data);
}

const blobCache = new Map();

/** An object URL for an authenticated file (evidence, attachments): <img src> cannot send
 * the token itself. Cached per URL for the page's life. */
export async function blobUrl(path) {
  if (blobCache.has(path)) return blobCache.get(path);
  const response = await fetchOk(path);
  const url = URL.createObjectURL(await response.blob());
  blobCache.set(path, url);
  return url;
}

export function forgetBlobs() {
  for (const url of blobCache.values()) URL.revokeObjectURL(url);
  blobCache.clear();
}

/** Save what an authenticated GET returns (a CSV export) as a file: fetched with the token,
 * handed to the browser as a blob under the name the API gives. Returns the file name. */
export async function download(path, fallbackName) {
  const response = await fetchOk(path);
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] || fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}
