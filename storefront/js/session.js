// Who is signed in: the bearer token from POST /auth/login, kept in sessionStorage (it lives as
// long as the tab, and a second tab can sign in as someone else).
//
// The token's claims (sub, role, email, exp) are read only to decide what to *show*, e.g. the
// admin view; the API checks the signature and the role on every request, so editing them here
// grants nothing.

const KEY = "shop.token";
const listeners = new Set();

function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return null;
  }
}

export const session = {
  token() {
    const token = sessionStorage.getItem(KEY);
    const claims = token && claimsOf(token);
    if (!claims || claims.exp * 1000 <= Date.now()) return null;
    return token;
  },
  user() {
    const token = this.token();
    return token ? claimsOf(token) : null;
  },
  isAdmin() {
    return this.user()?.role === "admin";
  },
  signIn(token) {
    sessionStorage.setItem(KEY, token);
    listeners.forEach((f) => f());
  },
  signOut() {
    sessionStorage.removeItem(KEY);
    listeners.forEach((f) => f());
  },
  /** Signs out because the API refused the token (a 401); `why` is the error to show. */
  expire(why) {
    sessionStorage.removeItem(KEY);
    listeners.forEach((f) => f(why));
  },
  /** `f(why)` after every sign-in and sign-out; `why` is set when the API ended the session. */
  onChange(f) {
    listeners.add(f);
  },
};
