// The cart (#/cart): change quantities, remove lines, place the order.
//
// Placing the order sends the cart with a fresh Idempotency-Key; the API reserves every line or
// none, and the page moves on to the new order, where it can be paid within its reservation time.

import { go, updateCartCount } from "../app.js";
import { api } from "../api.js";
import { act, h, money } from "../ui.js";

export async function cartView(el) {
  const cart = await api.cart();
  updateCartCount(cart);
  const names = new Map(cart.items.map((line) => [line.product_id, line.name]));

  if (!cart.items.length) {
    el.replaceChildren(h("h1", {}, "Your cart"),
      h("p", { testid: "cart-empty" }, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the products.")));
    return;
  }

  const rows = cart.items.map((line) => {
    const quantity = h("input", {
      type: "number", min: 1, max: 99, value: line.quantity, testid: "cart-quantity", "aria-label": `Quantity of ${line.name}`,
    });
    quantity.addEventListener("change", () =>
      act(quantity, async () => {
        await api.setCartQuantity(line.product_id, Number(quantity.value));
        await cartView(el);
      }));
    const remove = h("button", { class: "link danger", testid: "cart-remove" }, "Remove");
    remove.addEventListener("click", () =>
      act(remove, async () => {
        await api.removeFromCart(line.product_id);
        await cartView(el);
      }));
    return h("tr", { testid: "cart-line", "data-product-id": line.product_id },
      h("td", {}, h("a", { href: `#/products/${line.product_id}` }, line.name)),
      h("td", { class: "num" }, money(line.unit_price)),
      h("td", { class: "num" }, quantity),
      h("td", { class: "num", testid: "cart-line-total" }, money(line.line_total)),
      h("td", {}, remove));
  });

  const place = h("button", { class: "primary big", testid: "place-order" }, "Place order");
  place.addEventListener("click", () =>
    act(place, async () => {
      try {
        const order = await api.placeOrder();
        updateCartCount(null);
        go(`#/orders/${order.id}`, "Order placed: your items are reserved until you pay.");
      } catch (err) {
        // Name the products that ran short rather than showing their ids.
        const short = err.details?.products?.map((id) => names.get(id) ?? id);
        if (short?.length) err.message = `${err.message}: ${short.join(", ")}`;
        throw err;
      }
    }));

  el.replaceChildren(
    h("h1", {}, "Your cart"),
    h("table", { class: "table", testid: "cart" },
      h("thead", {}, h("tr", {}, ["Product", "Price", "Quantity", "Total", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows),
      h("tfoot", {}, h("tr", {}, h("th", { colspan: 3 }, "Total"),
        h("th", { class: "num", testid: "cart-total" }, money(cart.total)), h("th")))),
    h("div", { class: "actions" }, place),
  );
}
