// The signed-in account (#/account, the e-mail address in the header): change the password, sign
// out everywhere, download the account's data, close the account.
//
// Changing the password, signing out everywhere and closing the account each make the API refuse
// every token issued before, this tab's included. A password change answers a fresh token, which
// becomes this tab's session; the other two sign this tab out as well. Other tabs and devices
// find out at their next request (a 401, see api.js).

import { go } from "../app.js";
import { api } from "../api.js";
import { session } from "../session.js";
import { act, h, showNotice } from "../ui.js";

/** The file name GET /me/export gives its download (Content-Disposition). */
const EXPORT_FILE = "shop-account-export.json";

const field = (label, attrs) => h("label", {}, label, h("input", { required: true, ...attrs }));
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

export async function myAccountView(el) {
  const user = session.user();

  const password = h("form", { class: "card", testid: "change-password-form" },
    h("h2", {}, "Change your password"),
    field("Current password", { type: "password", name: "current", autocomplete: "current-password", testid: "current-password" }),
    field("New password (8 characters or more)", { type: "password", name: "next", autocomplete: "new-password", testid: "new-password" }),
    h("button", { type: "submit", class: "primary", testid: "change-password" }, "Change password"),
  );
  password.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = password.elements;
    act(e.submitter, async () => {
      const { token } = await api.changePassword(f.current.value, f.next.value);
      session.signIn(token);
      password.reset();
      showNotice("Your password is changed. Every other session (other tabs, other devices) is signed out; this one goes on.");
    });
  });

  const everywhere = h("button", { class: "secondary", testid: "sign-out-everywhere" }, "Sign out everywhere");
  everywhere.addEventListener("click", () =>
    act(everywhere, async () => {
      await api.signOutEverywhere();
      session.signOut();
      go("#/login", "You are signed out everywhere: on every device, and in this browser too. Log in again to continue.");
    }));

  const download = h("button", { class: "secondary", testid: "export-data" }, "Download my data");
  download.addEventListener("click", () =>
    act(download, async () => {
      const data = await api.exportAccount();
      save(EXPORT_FILE, JSON.stringify(data, null, 2));
      showNotice(`Downloaded ${EXPORT_FILE}: your account, your cart and ${plural(data.orders.length, "order", "orders")}.`);
    }));

  const close = h("form", { class: "card danger-zone", testid: "close-account-form" },
    h("h2", {}, "Close your account"),
    h("p", {}, "Your account, your name and your cart are deleted, and orders awaiting payment are cancelled " +
      "(their items go back on sale). Paid orders are kept for accounting, without your e-mail address. " +
      "No e-mail is sent to you afterwards. You can sign up again with the same address later, as a new customer."),
    field("Your password", { type: "password", name: "password", autocomplete: "current-password", testid: "close-password" }),
    h("label", { class: "check" },
      h("input", { type: "checkbox", name: "confirm", required: true, testid: "close-confirm" }),
      "Yes, close my account for good"),
    h("button", { type: "submit", class: "danger", testid: "close-account" }, "Close my account"),
  );
  close.addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, async () => {
      const { orders_cancelled: cancelled } = await api.closeAccount(close.elements.password.value);
      session.signOut();
      go("#/", "Your account is closed and you are signed out. " +
        (cancelled ? `${plural(cancelled, "order awaiting payment was", "orders awaiting payment were")} cancelled.` : ""));
    });
  });

  el.replaceChildren(
    h("h1", {}, "Your account"),
    h("p", { class: "muted", testid: "account-email" }, `Signed in as ${user.email}`, user.role === "admin" ? " (admin)" : "", "."),
    h("div", { class: "columns" },
      password,
      h("section", { class: "card" },
        h("h2", {}, "Sessions"),
        h("p", {}, "Lost a phone, or signed in on someone else's computer? Sign out every session of your account at once."),
        everywhere,
        h("h2", { class: "spaced" }, "Your data"),
        h("p", {}, "Your account, your cart and your orders, as a JSON file."),
        download)),
    close,
  );
}

/** Offers `text` as a file download named `name`. */
function save(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started from the URL; give it a moment before letting go of the data.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
