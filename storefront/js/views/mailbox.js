// The local mailbox (#/mailbox): the e-mails the local stack "sent" (its SES emulator keeps them).
//
// E-mails are sent asynchronously (outbox → Kafka → notifier → SES), a moment after the action
// that caused them, so the view refreshes itself every two seconds. It shows the newest first,
// filtered by recipient (the signed-in user by default). This reads GET /_local/mail, which only
// the local stack serves: it is not part of the deployed API.

import { api } from "../api.js";
import { session } from "../session.js";
import { h, showError } from "../ui.js";

const SHOWN = 50;

export async function mailboxView(el, _params, scope) {
  const filter = h("input", {
    type: "search", placeholder: "Filter by recipient", value: session.user()?.email ?? "",
    testid: "mail-filter", "aria-label": "Filter by recipient",
  });
  const count = h("p", { class: "muted", testid: "mail-count" });
  const list = h("div", { class: "mail-list", testid: "mail-list" });
  let all = [];
  let shownKey = null;

  function show() {
    const needle = filter.value.trim().toLowerCase();
    const matching = all.filter((m) => !needle || m.to.some((to) => to.toLowerCase().includes(needle))).reverse();
    const key = `${needle}|${matching.length}|${matching[0]?.id}`;
    if (key === shownKey) return; // unchanged: keep opened messages open
    shownKey = key;
    count.textContent = `${matching.length} e-mail${matching.length === 1 ? "" : "s"}${needle ? ` to “${needle}”` : ""}` +
      (matching.length > SHOWN ? `, newest ${SHOWN} shown` : "");
    list.replaceChildren(...matching.slice(0, SHOWN).map(mailItem));
    if (!matching.length) list.append(h("p", { class: "muted", testid: "mail-empty" }, "Nothing yet."));
  }
  filter.addEventListener("input", show);

  el.replaceChildren(
    h("h1", {}, "Local mailbox"),
    h("p", { class: "muted" }, "The e-mails the local stack sent (nothing leaves this machine). New ones appear by themselves."),
    h("div", { class: "row" }, filter),
    count,
    list,
  );
  scope.every(2000, async () => {
    try {
      all = await api.mail();
      show();
    } catch (err) {
      showError(err);
      return false;
    }
  });
}

function mailItem(mail) {
  // The body is the e-mail's HTML: shown in a sandboxed frame (no scripts, no access to this page).
  const body = h("iframe", { sandbox: "", title: mail.subject, class: "mail-body" });
  const item = h("details", { class: "card mail", testid: "mail-item" },
    h("summary", {},
      h("span", { class: "subject", testid: "mail-subject" }, mail.subject),
      h("span", { class: "muted", testid: "mail-to" }, ` → ${mail.to.join(", ")}`)),
    h("p", { class: "muted" }, `From ${mail.from}`),
    body);
  item.addEventListener("toggle", () => {
    if (item.open && !body.srcdoc) body.srcdoc = mail.body;
  });
  return item;
}
