// Log in, or create an account (which then logs in with the same credentials). A forgotten
// password is reset from here (views/password.js).

import { go } from "../app.js";
import { api } from "../api.js";
import { session } from "../session.js";
import { act, h } from "../ui.js";

export async function accountView(el, [query]) {
  const next = query.get("next") || "/";
  const field = (label, attrs) => h("label", {}, label, h("input", { required: true, ...attrs }));

  async function logIn(email, password, greeting = "Signed in as") {
    const { token } = await api.login(email, password);
    session.signIn(token);
    go(`#${next}`, `${greeting} ${session.user().email}.`);
  }

  const login = h("form", { class: "card", testid: "login-form" },
    h("h2", {}, "Log in"),
    field("E-mail", { type: "email", name: "email", autocomplete: "username", testid: "login-email" }),
    field("Password", { type: "password", name: "password", autocomplete: "current-password", testid: "login-password" }),
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary", testid: "login-submit" }, "Log in"),
      h("a", { href: "#/forgot-password", testid: "forgot-password" }, "Forgot password?")),
  );
  login.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = login.elements;
    act(e.submitter, () => logIn(f.email.value, f.password.value));
  });

  const signup = h("form", { class: "card", testid: "signup-form" },
    h("h2", {}, "New here? Create an account"),
    field("Name", { name: "name", autocomplete: "name", required: false, testid: "signup-name" }),
    field("E-mail", { type: "email", name: "email", autocomplete: "email", testid: "signup-email" }),
    field("Password (8 characters or more)", {
      type: "password", name: "password", autocomplete: "new-password", testid: "signup-password",
    }),
    h("button", { type: "submit", class: "primary", testid: "signup-submit" }, "Create account"),
  );
  signup.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = signup.elements;
    act(e.submitter, async () => {
      await api.signup(f.email.value, f.password.value, f.name.value.trim() || undefined);
      await logIn(f.email.value, f.password.value, "Welcome! Your account is ready; you are signed in as");
    });
  });

  el.replaceChildren(h("h1", {}, "Your account"), h("div", { class: "columns" }, login, signup));
}
