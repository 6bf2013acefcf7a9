// Small DOM and formatting helpers shared by the views.
//
// Everything is built with h(), which only ever sets text (never innerHTML), so product names,
// e-mail subjects or error messages cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "testid") el.dataset.testid = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in el && !key.startsWith("data-") && key !== "list") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** `{amount: 1299, currency: "EUR"}` → "€12.99" (minor units by the currency's own exponent). */
export function money(m) {
  if (!m) return "–";
  const format = new Intl.NumberFormat(undefined, { style: "currency", currency: m.currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(m.amount / 10 ** digits);
}

/** "12.99" in `currency` → 1299 minor units, or NaN when it is not a plain non-negative amount. */
export function toMinorUnits(text, currency) {
  const digits = new Intl.NumberFormat(undefined, { style: "currency", currency }).resolvedOptions()
    .maximumFractionDigits;
  const match = /^\s*(\d+)(?:[.,](\d*))?\s*$/.exec(text);
  if (!match || (match[2] ?? "").length > digits) return NaN;
  return Number(match[1]) * 10 ** digits + Number((match[2] ?? "").padEnd(digits, "0") || 0);
}

export const dateTime = (iso) => new Date(iso).toLocaleString();

/** Order states as a customer reads them. */
export const STATE_LABELS = {
  PENDING_PAYMENT: "Awaiting payment",
  PAID: "Paid",
  PAYMENT_FAILED: "Payment failed",
  CANCELLED: "Cancelled",
  EXPIRED: "Expired",
  REFUND_REQUIRED: "Refund on its way",
};

export const stateBadge = (state, testid) =>
  h("span", { class: `state state-${state.toLowerCase()}`, testid }, STATE_LABELS[state] ?? state);

// ---- banners: one error and one notice, above the current view ----

const banner = (name) => document.querySelector(`[data-testid="${name}"]`);

export function showError(err) {
  const el = banner("error");
  const fields = err?.details?.fields;
  el.replaceChildren(...[
    h("strong", {}, err?.message ?? String(err)),
    err?.code && h("span", { class: "code" }, ` (${err.code})`),
    fields && h("ul", {}, Object.entries(fields).map(([f, why]) => h("li", {}, `${f}: ${why}`))),
    err?.requestId && err.status >= 500 && h("div", { class: "code" }, `request id ${err.requestId}`),
  ].filter(Boolean));
  el.hidden = false;
}

export function showNotice(...content) {
  const el = banner("notice");
  el.replaceChildren(...content);
  el.hidden = false;
}

export function clearBanners() {
  banner("error").hidden = true;
  banner("notice").hidden = true;
}

/**
 * Runs a user action: disables its button meanwhile, clears old banners, and shows an error
 * instead of throwing. Returns the action's result, or undefined when it failed.
 */
export async function act(button, action) {
  clearBanners();
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
