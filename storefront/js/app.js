// The storefront's entry point: a hash router (#/cart, #/orders/<id>, ...), the header, and the
// life cycle of views.
//
// The password-reset e-mail links to `#reset=<token>` rather than to a route: the token leaves the
// address bar (and the history) as soon as the page sees it, and waits in memory for the reset view.
//
// A token the API refuses (a 401: expired, signed out everywhere, password changed, account
// closed) signs the page out wherever it is: the log-in page then says why (see api.js).
//
// A view is `async (main, params, scope) => void`: it fills `main`, and registers its timers
// (polling, countdowns) with `scope`, which stops them all when the user navigates away, so a
// view that is gone never keeps calling the API.

import { api } from "./api.js";
import { session } from "./session.js";
import { clearBanners, h, showError, showNotice } from "./ui.js";
import { accountView } from "./views/account.js";
import { adminView } from "./views/admin.js";
import { cartView } from "./views/cart.js";
import { mailboxView } from "./views/mailbox.js";
import { myAccountView } from "./views/my-account.js";
import { orderView, ordersView } from "./views/orders.js";
import { forgotPasswordView, openResetLink, resetPasswordView } from "./views/password.js";
import { productView, shopView } from "./views/shop.js";

// [pattern, view, nav item, needs a signed-in user]
const ROUTES = [
  [/^\/$/, shopView, "shop", false],
  [/^\/products\/([^/]+)$/, productView, "shop", false],
  [/^\/login$/, accountView, null, false],
  [/^\/forgot-password$/, forgotPasswordView, null, false],
  [/^\/reset-password$/, resetPasswordView, null, false],
  [/^\/account$/, myAccountView, null, true],
  [/^\/cart$/, cartView, "cart", true],
  [/^\/orders$/, ordersView, "orders", true],
  [/^\/orders\/([^/]+)$/, orderView, "orders", true],
  [/^\/mailbox$/, mailboxView, "mailbox", false],
  [/^\/admin$/, adminView, "admin", true],
];

class Scope {
  #timers = [];
  alive = true;

  /** Calls `f` now and every `ms` until the view is left (or `f` returns false). */
  every(ms, f) {
    const tick = async () => {
      if (!this.alive) return;
      const again = await f();
      if (this.alive && again !== false) this.#timers.push(setTimeout(tick, ms));
    };
    tick();
  }

  close() {
    this.alive = false;
    this.#timers.forEach(clearTimeout);
  }
}

let scope = new Scope();
const main = () => document.getElementById("view");

let pendingNotice = null;
let pendingError = null;

/** Goes to `hash` (e.g. "#/cart"), optionally with a notice to show there. */
export function go(hash, ...notice) {
  pendingNotice = notice.length ? notice : null;
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  scope.close();
  scope = new Scope();
  clearBanners();
  if (pendingNotice) showNotice(...pendingNotice);
  if (pendingError) showError(pendingError);
  pendingNotice = pendingError = null;
  const link = /^#reset=(.*)$/.exec(location.hash);
  if (link) {
    openResetLink(link[1]);
    history.replaceState(history.state, "", "#/reset-password");
  }
  const path = location.hash.replace(/^#/, "") || "/";
  const [view, nav, needsUser, params] = resolve(path);
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
  if (needsUser && !session.token()) {
    go(`#/login?next=${encodeURIComponent(path)}`, "Log in or create an account to continue.");
    return;
  }
  // A fresh element per visit: a slow view that finishes after the user moved on writes into
  // its own detached element, never over the next view.
  const el = h("section", { class: "page" }, h("p", { class: "muted" }, "Loading…"));
  main().replaceChildren(el);
  try {
    await view(el, params, scope);
  } catch (err) {
    el.replaceChildren();
    showError(err);
  }
}

/** The route for `path` ("/orders/42?x=1"): its view, nav item, whether it needs a user, and
 * its parameters (the pattern's groups, then the query string as URLSearchParams). */
function resolve(path) {
  const [route, query] = path.split("?");
  for (const [re, view, nav, needsUser] of ROUTES) {
    const match = re.exec(route);
    if (!match) continue;
    let groups;
    try {
      groups = match.slice(1).map(decodeURIComponent);
    } catch {
      break; // a malformed escape (#/orders/%E0) names nothing: the not-found view
    }
    return [view, nav, needsUser, [...groups, new URLSearchParams(query)]];
  }
  return [notFoundView, null, false, []];
}

async function notFoundView(el) {
  el.replaceChildren(h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Back to the shop")));
}

// ---- header: account box, admin link, cart count ----

function renderAccount() {
  const user = session.user();
  const box = document.querySelector('[data-testid="account"]');
  document.querySelector('[data-testid="nav-admin"]').hidden = !session.isAdmin();
  if (!user) {
    box.replaceChildren(h("a", { href: "#/login", class: "button", testid: "nav-login" }, "Log in / Sign up"));
    updateCartCount(null);
    return;
  }
  box.replaceChildren(
    h("a", { href: "#/account", class: "who", testid: "signed-in-as", title: "Your account: password, your data, closing it" },
      user.email, user.role === "admin" ? " (admin)" : ""),
    h("button", {
      class: "link",
      testid: "logout",
      onclick: () => {
        session.signOut();
        go("#/");
      },
    }, "Log out"),
  );
  refreshCartCount();
}

/** Shows the number of units in the cart next to "Cart" (hidden when empty or signed out). */
export function updateCartCount(cart) {
  const badge = document.querySelector('[data-testid="cart-count"]');
  const units = cart?.items?.reduce((n, line) => n + line.quantity, 0) ?? 0;
  badge.textContent = String(units);
  badge.hidden = units === 0;
}

export async function refreshCartCount() {
  if (!session.token()) return updateCartCount(null);
  try {
    updateCartCount(await api.cart());
  } catch {
    // The count is a convenience; the cart view shows real errors.
  }
}

/** The API refused the token (`why`, a 401 error): off to the log-in page, which says so and
 * leads back here. */
function sessionEnded(why) {
  if (!why) return;
  const path = location.hash.replace(/^#/, "") || "/";
  pendingError = why;
  go(path.startsWith("/login") ? `#${path}` : `#/login?next=${encodeURIComponent(path)}`);
}

session.onChange(renderAccount);
session.onChange(sessionEnded);
window.addEventListener("hashchange", () => render());
renderAccount();
render();
