// A forgotten password: ask for a reset link (#/forgot-password), then choose a new password with
// it (#/reset-password).
//
// The API answers the request the same whether or not an account has the address, so the page
// cannot tell either (and says only what the API says). The e-mail links to `<site>/#reset=<token>`:
// app.js hands the token to openResetLink() and takes it out of the address bar at once, so it is
// neither in the history nor in a bookmark. The same e-mail carries the token as a "reset code" for
// whoever opens the page another way: it can be pasted here. Setting the new password signs every
// session out and does not sign in (OWASP): the user logs in with it afterwards.

import { go } from "../app.js";
import { api } from "../api.js";
import { session } from "../session.js";
import { act, h, showNotice } from "../ui.js";

let linkToken = "";

/** The token of the reset link the page was opened with (kept in memory only). */
export function openResetLink(token) {
  try {
    linkToken = decodeURIComponent(token);
  } catch {
    linkToken = token; // a malformed escape: the API refuses it like any wrong code
  }
}

const field = (label, attrs) => h("label", {}, label, h("input", { required: true, ...attrs }));

export async function forgotPasswordView(el) {
  const form = h("form", { class: "card narrow", testid: "forgot-form" },
    h("h2", {}, "Forgot your password?"),
    h("p", { class: "muted" }, "Type the e-mail address of your account: we send it a link to choose a new password."),
    field("E-mail", { type: "email", name: "email", autocomplete: "username", testid: "forgot-email" }),
    h("button", { type: "submit", class: "primary", testid: "forgot-submit" }, "Send me a link"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(e.submitter, async () => {
      const { message } = await api.requestPasswordReset(form.elements.email.value.trim());
      form.reset();
      showNotice(message, " ", h("a", { href: "#/mailbox", testid: "open-mailbox" }, "Open the mailbox"));
    });
  });
  el.replaceChildren(
    h("p", {}, h("a", { href: "#/login" }, "← Log in")),
    h("h1", {}, "Your account"),
    form,
  );
}

export async function resetPasswordView(el) {
  const invalid = h("div", { class: "card warning", testid: "reset-invalid", hidden: true },
    h("strong", {}, "This link or code cannot be used any more. "),
    "It works once, for 30 minutes, and only the newest one sent works. ",
    h("a", { href: "#/forgot-password", testid: "reset-ask-again" }, "Ask for a new link"),
    ".");
  const form = h("form", { class: "card narrow", testid: "reset-form" },
    h("h2", {}, "Choose a new password"),
    linkToken
      ? h("p", { class: "muted", testid: "reset-from-link" }, "Opened from the link in your e-mail.")
      : h("p", { class: "muted" }, "Paste the reset code from the e-mail, or open the link it contains."),
    // Hidden when the link brought the code.
    h("label", { hidden: Boolean(linkToken) }, "Reset code (from the e-mail)", h("input", {
      name: "token", value: linkToken, required: true, autocomplete: "off", testid: "reset-code",
    })),
    field("New password (8 characters or more)", {
      type: "password", name: "password", autocomplete: "new-password", testid: "reset-password",
    }),
    field("New password again", {
      type: "password", name: "again", autocomplete: "new-password", testid: "reset-password-again",
    }),
    h("button", { type: "submit", class: "primary", testid: "reset-submit" }, "Set the new password"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = form.elements;
    act(e.submitter, async () => {
      invalid.hidden = true;
      if (f.password.value !== f.again.value) {
        throw new Error("The two new passwords differ: type the same one twice.");
      }
      let reply;
      try {
        reply = await api.resetPassword(f.token.value.trim(), f.password.value);
      } catch (err) {
        if (err.code === "invalid_reset_token") invalid.hidden = false;
        throw err;
      }
      linkToken = "";
      // The account's every session is signed out now: this tab's too (it may well be one).
      if (session.token()) session.signOut();
      go("#/login", reply.message);
    });
  });

  el.replaceChildren(h("h1", {}, "Your account"), invalid, form);
}
