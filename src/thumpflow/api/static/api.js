// Calls to the engine's HTTP API with the bearer token kept in session storage.

const TOKEN_KEY = "thumpflow.token";
const WHO_KEY = "thumpflow.who";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function keepToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(WHO_KEY);
}

// Who signed in ({name, role} from POST /api/session), or null when unknown.
export function who() {
  try {
    return JSON.parse(sessionStorage.getItem(WHO_KEY));
  } catch {
    return null;
  }
}

export function keepWho(session) {
  sessionStorage.setItem(WHO_KEY, JSON.stringify({ name: session.name, role: session.role }));
}

// Whether the page offers acts (replay, pause, acknowledge, open a payload).
// Only a hint for the layout: the engine decides, and the page shows its 403.
// Operators and admins may act and see patient data; viewers may not. When
// the role is unknown the buttons are shown and the engine answers.
export function mayAct() {
  const role = who()?.role;
  return role === undefined || role === "operator" || role === "admin";
}

function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => `${(item.loc || []).join(" > ")}: ${item.msg}`)
      .join("; ");
  }
  return "unexpected answer";
}

// GET or POST `path`; resolves to the JSON body, rejects with ApiError
// (status 0 when the engine could not be reached).
export async function call(path, { method = "GET", body, bearer = token() } = {}) {
  const headers = { Accept: "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "the engine could not be reached");
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const detail = payload && "detail" in payload ? describe(payload.detail) : response.statusText;
    throw new ApiError(response.status, detail);
  }
  return payload;
}

// Query string from an object, leaving out empty values.
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
