// The shop's public HTTP API, one function per route (see openapi.yaml).
//
// The local stack serves the page from the API's own origin, so paths are relative and need no
// CORS. Hosted elsewhere (S3/CloudFront), the page reads the API's base URL from
// <meta name="shop-api-url"> in index.html. A failed request throws an ApiError carrying the API's error shape
// {"error": {code, message, details, request_id}}; anything else (the gateway's
// {"message": "Not Found"}, a network failure) is mapped to the same fields so the page can show
// every failure the same way.
//
// A 401 to a request that carried this tab's token means the API no longer accepts it (expired,
// signed out everywhere, password changed or reset, account closed): the tab is signed out at
// once (session.expire), and the error says so in words a shopper understands.

import { session } from "./session.js";

export class ApiError extends Error {
  constructor(status, code, message, details, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
  }
}

const BASE = (document.querySelector('meta[name="shop-api-url"]')?.content ?? "").replace(/\/$/, "");

async function request(method, path, { body, headers = {}, auth = true } = {}) {
  const init = { method, headers: { accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const token = session.token();
  if (auth && token) init.headers.authorization = `Bearer ${token}`;

  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (e) {
    throw new ApiError(0, "network", `Could not reach the shop (${e.message}). Is the local stack running?`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (should not happen): keep the text for the message below.
  }
  if (response.ok) return json;

  const err = json?.error;
  // Only when the refused token is still this tab's: a request that left before a password change
  // (which brings a new token) must not sign the new session out.
  if (response.status === 401 && auth && token && session.token() === token) {
    const expired = new ApiError(401, err?.code ?? "unauthorized", SIGNED_OUT, undefined, err?.request_id);
    session.expire(expired);
    throw expired;
  }
  if (err) throw new ApiError(response.status, err.code, err.message, err.details, err.request_id);
  const message = json?.message ?? (text || response.statusText);
  throw new ApiError(response.status, `http_${response.status}`, message, undefined,
    response.headers.get("x-request-id") ?? undefined);
}

const SIGNED_OUT = "You were signed out: this session is no longer valid (it expired, the password was changed, " +
  "or the account was signed out everywhere or closed). Log in again to continue.";

const id = (value) => encodeURIComponent(value);

export const api = {
  signup: (email, password, name) =>
    request("POST", "/auth/signup", { body: name ? { email, password, name } : { email, password }, auth: false }),
  login: (email, password) => request("POST", "/auth/login", { body: { email, password }, auth: false }),
  // The same answer whether or not an account has the address; the e-mail carries the reset link.
  requestPasswordReset: (email) => request("POST", "/auth/password-reset", { body: { email }, auth: false }),
  // Does not sign in: the user logs in with the new password afterwards.
  resetPassword: (token, password) =>
    request("POST", "/auth/password-reset/confirm", { body: { token, password }, auth: false }),

  // The signed-in account. Each of these but the export makes the API refuse every token issued
  // before; a password change answers a fresh one.
  changePassword: (currentPassword, newPassword) =>
    request("POST", "/me/password", { body: { current_password: currentPassword, new_password: newPassword } }),
  signOutEverywhere: () => request("POST", "/me/sign-out-everywhere"),
  exportAccount: () => request("GET", "/me/export"),
  closeAccount: (password) => request("DELETE", "/me", { body: { password } }),

  products: (cursor, limit = 24) =>
    request("GET", `/products?limit=${limit}${cursor ? `&cursor=${id(cursor)}` : ""}`, { auth: false }),
  product: (productId) => request("GET", `/products/${id(productId)}`, { auth: false }),
  createProduct: (product) => request("POST", "/products", { body: product }),
  adjustStock: (productId, adjustment) =>
    request("PUT", `/products/${id(productId)}`, { body: { stock_adjustment: adjustment } }),

  cart: () => request("GET", "/cart"),
  setCartQuantity: (productId, quantity) =>
    request("PUT", `/cart/items/${id(productId)}`, { body: { quantity } }),
  removeFromCart: (productId) => request("DELETE", `/cart/items/${id(productId)}`),

  // A fresh key per attempt: a retry of the *same* request would reuse it, a new click is a new order.
  placeOrder: (idempotencyKey = crypto.randomUUID()) =>
    request("POST", "/orders", { headers: { "idempotency-key": idempotencyKey } }),
  orders: (cursor) => request("GET", `/orders?limit=50${cursor ? `&cursor=${id(cursor)}` : ""}`),
  order: (orderId) => request("GET", `/orders/${id(orderId)}`),
  cancelOrder: (orderId) => request("POST", `/orders/${id(orderId)}/cancel`),
  pay: (orderId, token) => request("POST", "/payments", { body: { order_id: orderId, token } }),

  // Local stack only (not part of the deployed API): the e-mails its SES emulator received.
  mail: () => request("GET", "/_local/mail", { auth: false }),
};
