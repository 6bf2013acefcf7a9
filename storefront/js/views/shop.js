// The catalog (#/) and one product (#/products/<id>).
//
// "In stock" is the product's *sellable* units: what is on hand minus what unpaid orders hold.
// The product page refreshes it every few seconds, so a reservation, a payment or a cancel made
// elsewhere shows without a reload. Admins also see the three counters and can adjust the stock.

import { go, updateCartCount } from "../app.js";
import { api } from "../api.js";
import { session } from "../session.js";
import { act, h, money, showNotice } from "../ui.js";

const soldOut = (product) => product.stock.sellable <= 0;
const stockText = (product) => (soldOut(product) ? "Sold out" : `${product.stock.sellable} in stock`);

/** "Add to cart", or a disabled "Sold out" when nothing is left to sell. */
function showBuyable(button, product) {
  button.disabled = soldOut(product);
  button.classList.toggle("sold-out", button.disabled);
  button.textContent = button.disabled ? "Sold out" : "Add to cart";
}

async function addToCart(product, quantity) {
  if (!session.token()) {
    go(`#/login?next=${encodeURIComponent(`/products/${product.id}`)}`, "Log in or sign up to fill a cart.");
    return;
  }
  const cart = await api.cart();
  const inCart = cart.items.find((line) => line.product_id === product.id)?.quantity ?? 0;
  updateCartCount(await api.setCartQuantity(product.id, Math.min(99, inCart + quantity)));
  showNotice(`Added ${quantity} × ${product.name} to your cart. `, h("a", { href: "#/cart", testid: "view-cart" }, "View cart"));
}

export async function shopView(el, _params, scope) {
  const grid = h("div", { class: "grid", testid: "product-grid" });
  const more = h("button", { class: "secondary", testid: "load-more", hidden: true }, "Show more products");
  let cursor = null;

  async function loadPage() {
    const page = await api.products(cursor);
    if (!scope.alive) return;
    grid.append(...page.items.map(productCard));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    if (!grid.children.length) grid.append(h("p", { class: "muted" }, "No products yet."));
  }
  more.addEventListener("click", () => act(more, loadPage));

  await loadPage();
  el.replaceChildren(h("h1", {}, "Products"), grid, h("div", { class: "center" }, more));
}

function productCard(product) {
  const add = h("button", { class: "primary", testid: "add-to-cart" });
  showBuyable(add, product);
  add.addEventListener("click", () => act(add, () => addToCart(product, 1)));
  return h("article", { class: "card product", testid: "product-card", "data-product-id": product.id },
    h("h3", {}, h("a", { href: `#/products/${product.id}`, testid: "product-link" }, product.name)),
    h("p", { class: "muted" }, product.description),
    h("div", { class: "row" },
      h("span", { class: "price" }, money(product.price)),
      h("span", { class: soldOut(product) ? "stock sold-out" : "stock", testid: "product-stock" }, stockText(product))),
    add,
  );
}

export async function productView(el, [productId], scope) {
  let product = await api.product(productId);
  const stock = h("span", { class: "stock", testid: "product-stock" }, stockText(product));
  const quantity = h("input", { type: "number", min: 1, max: 99, value: 1, testid: "quantity", "aria-label": "Quantity" });
  const add = h("button", { class: "primary", testid: "add-to-cart" });
  add.addEventListener("click", () =>
    act(add, () => addToCart(product, Number(quantity.value) || 1)).finally(() => showBuyable(add, product)));

  const counters = h("span", { testid: "stock-counters" });
  const admin = session.isAdmin() ? adminPanel(product, counters, (p) => show(p)) : null;

  function show(p) {
    product = p;
    stock.textContent = stockText(p);
    stock.classList.toggle("sold-out", soldOut(p));
    if (!add.matches(":disabled:not(.sold-out)")) showBuyable(add, p); // not while adding
    const { available, reserved, sellable } = p.stock;
    counters.replaceChildren(
      h("b", { testid: "stock-available" }, available), " on hand · ",
      h("b", { testid: "stock-reserved" }, reserved), " reserved by unpaid orders · ",
      h("b", { testid: "stock-sellable" }, sellable), " sellable",
    );
  }
  show(product);

  el.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← All products")),
    h("article", { class: "card detail", testid: "product-detail", "data-product-id": product.id },
      h("h1", { testid: "product-name" }, product.name),
      h("p", {}, product.description),
      h("div", { class: "row" }, h("span", { class: "price", testid: "product-price" }, money(product.price)), stock),
      h("div", { class: "row buy" }, h("label", {}, "Quantity ", quantity), add),
    ),
    admin,
  );
  // Live stock: other people's orders and payments move it too.
  scope.every(3000, async () => {
    try {
      show(await api.product(productId));
    } catch {
      // Keep the last known numbers; a deleted product simply stops updating.
    }
  });
}

function adminPanel(product, counters, show) {
  const adjustment = h("input", { type: "number", step: 1, placeholder: "+10 or -3", class: "wide", testid: "stock-adjustment", "aria-label": "Units to add or remove" });
  const apply = h("button", { type: "submit", class: "secondary", testid: "adjust-stock" }, "Adjust stock");
  const form = h("form", { class: "row" }, adjustment, apply);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(apply, async () => {
      const delta = Number(adjustment.value);
      const updated = await api.adjustStock(product.id, delta);
      show(updated);
      adjustment.value = "";
      showNotice(`Stock ${delta > 0 ? "increased" : "decreased"} by ${Math.abs(delta)}: ${updated.stock.available} on hand.`);
    });
  });
  return h("section", { class: "card admin", testid: "admin-stock" },
    h("h2", {}, "Stock (admin)"),
    h("p", {}, counters),
    h("p", { class: "muted" }, "Add units with a positive number, remove unreserved units with a negative one."),
    form,
  );
}
