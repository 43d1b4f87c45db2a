// The backend's JSON API: one fetch wrapper, its errors, and the admin token.

const TOKEN_KEY = "e2eai.adminToken";

/** The admin token lives in sessionStorage: this tab only, gone when it closes. */
export const adminToken = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
};

/** An answer other than 2xx; ``field`` names the input at fault when the API says so. */
export class ApiError extends Error {
  constructor(status, message, field = null) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

const NO_TOKEN = "This needs the admin token: enter it under “Admin token” at the top of the page.";

function explain(status, body) {
  const said = body?.error ?? (typeof body?.detail === "string" ? body.detail : null);
  if (status === 401) {
    return adminToken.get()
      ? "The admin token was refused (401): check it under “Admin token” at the top of the page."
      : NO_TOKEN;
  }
  if (status === 413) return `The request is too large (413)${said ? `: ${said}` : ""}.`;
  if (status === 503) return `Serving is unavailable (503)${said ? `: ${said}` : ""}. Try again shortly.`;
  return said ?? `The app answered ${status}.`;
}

/**
 * Call the API: api("/api/predictions", {method: "POST", body, admin: true, query, signal}).
 * Resolves to the parsed JSON; rejects with an ApiError (status 0: the app did not answer).
 */
export async function api(path, { method = "GET", body, admin = false, query, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (admin) {
    const token = adminToken.get();
    if (!token) throw new ApiError(401, NO_TOKEN);
    headers.Authorization = `Bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(url, {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "The app did not answer: is it still running?");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, explain(response.status, data), data?.field ?? null);
  return data;
}

/** The task (its request fields and class names), fetched once per page load. */
let task;
export function getTask() {
  task ??= api("/api/task").catch((error) => {
    task = undefined;
    throw error;
  });
  return task;
}
