// The admin view (#/admin): create products and see every product's stock counters.
//
// Shown in the menu when the token's role is admin; the API refuses admin calls from anyone else
// (403), and that refusal is what a customer who types the URL sees. Stock is adjusted on the
// product's own page, where the new product lands after it is created.

import { go } from "../app.js";
import { api } from "../api.js";
import { session } from "../session.js";
import { act, h, money, toMinorUnits } from "../ui.js";

const CURRENCIES = ["EUR", "USD", "GBP"];

export async function adminView(el, _params, scope) {
  if (!session.isAdmin()) {
    el.replaceChildren(h("h1", {}, "Admin"), h("p", { testid: "not-admin" }, "This page is for shop admins. Log in with an admin account."));
    return;
  }
  const input = (label, attrs) => h("label", {}, label, h("input", attrs));
  const form = h("form", { class: "card", testid: "create-product" },
    h("h2", {}, "New product"),
    input("Name", { name: "name", required: true, testid: "new-name" }),
    input("Description", { name: "description", testid: "new-description" }),
    h("div", { class: "row" },
      input("Price", { name: "price", inputMode: "decimal", placeholder: "12.99", required: true, testid: "new-price" }),
      h("label", {}, "Currency", h("select", { name: "currency", testid: "new-currency" },
        CURRENCIES.map((c) => h("option", { value: c }, c)))),
      input("Units in stock", { name: "stock", type: "number", min: 0, value: 0, testid: "new-stock" })),
    h("button", { type: "submit", class: "primary", testid: "create-submit" }, "Create product"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = form.elements;
    act(e.submitter, async () => {
      const amount = toMinorUnits(f.price.value, f.currency.value);
      const product = await api.createProduct({
        name: f.name.value,
        description: f.description.value,
        // An unparseable price goes to the API as-is, so its validation message is the one shown.
        price: { amount: Number.isNaN(amount) ? f.price.value : amount, currency: f.currency.value },
        stock: Number(f.stock.value || 0),
      });
      go(`#/products/${product.id}`, `Created “${product.name}” with ${product.stock.available} units.`);
    });
  });

  const rows = h("tbody");
  const more = h("button", { class: "secondary", testid: "admin-load-more", hidden: true }, "Show more");
  let cursor = null;
  async function loadPage() {
    const page = await api.products(cursor, 50);
    if (!scope.alive) return;
    rows.append(...page.items.map((p) =>
      h("tr", { testid: "admin-product", "data-product-id": p.id },
        h("td", {}, h("a", { href: `#/products/${p.id}` }, p.name)),
        h("td", { class: "num" }, money(p.price)),
        h("td", { class: "num" }, p.stock.available),
        h("td", { class: "num" }, p.stock.reserved),
        h("td", { class: "num" }, p.stock.sellable))));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => act(more, loadPage));
  await loadPage();

  el.replaceChildren(
    h("h1", {}, "Admin"),
    form,
    h("h2", {}, "Catalog"),
    h("p", { class: "muted" }, "Open a product to adjust its stock."),
    h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["Product", "Price", "On hand", "Reserved", "Sellable"].map((t) => h("th", {}, t)))),
      rows),
    h("div", { class: "center" }, more),
  );
}
