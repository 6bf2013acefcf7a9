// The customer's orders (#/orders) and one order (#/orders/<id>).
//
// An unpaid order holds its units until its reservation deadline: the page counts down to it,
// and offers to pay (with the mock gateway's test tokens) or to cancel. The payment's outcome
// arrives by the gateway's webhook, not by the page: while the order awaits payment the page
// asks the API for it every second and shows the new state as soon as the webhook settled it.

import { api } from "../api.js";
import { act, dateTime, h, money, showNotice, stateBadge } from "../ui.js";

const PENDING = "PENDING_PAYMENT";

/** The mock payment gateway's test tokens (docs/payments.md). */
const TEST_CARDS = [
  ["tok_success", "Test card that pays"],
  ["tok_fail", "Test card that is declined"],
  ["tok_delay", "Test card that pays after 30 seconds"],
];

/** What the customer reads when an order reaches a state. */
const OUTCOMES = {
  PAID: "Payment received: your order is paid. A receipt is in your mailbox.",
  PAYMENT_FAILED: "The payment was declined. Your reserved items were released.",
  CANCELLED: "Order cancelled. Your reserved items were released.",
  EXPIRED: "The reservation expired before payment; the items were released.",
  REFUND_REQUIRED: "The payment arrived after the reservation ended and the items were gone: a refund is on its way.",
};

const summary = (order) => order.lines.map((l) => `${l.quantity} × ${l.name}`).join(", ");

export async function ordersView(el) {
  const page = await api.orders();
  const rows = page.items.map((order) =>
    h("tr", { testid: "order-row", "data-order-id": order.id },
      h("td", {}, h("a", { href: `#/orders/${order.id}` }, dateTime(order.created_at))),
      h("td", {}, summary(order)),
      h("td", { class: "num" }, money(order.total)),
      h("td", {}, stateBadge(order.state))));
  el.replaceChildren(
    h("h1", {}, "Your orders"),
    rows.length
      ? h("table", { class: "table", testid: "orders" },
        h("thead", {}, h("tr", {}, ["Placed", "Items", "Total", "Status"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows))
      : h("p", { testid: "orders-empty" }, "No orders yet. ", h("a", { href: "#/" }, "Go shopping.")),
  );
}

export async function orderView(el, [orderId], scope) {
  let order = await api.order(orderId);
  const status = h("div", { class: "status" });
  const panel = h("div");

  let shown = null; // the state the page shows; the panel is rebuilt only when it changes

  function show(next) {
    order = next;
    if (order.state === shown) return;
    if (shown !== null && OUTCOMES[order.state]) showNotice(OUTCOMES[order.state]);
    shown = order.state;
    status.replaceChildren("Status: ", stateBadge(order.state, "order-status"));
    panel.replaceChildren(...(order.state === PENDING ? payPanel() : []));
  }

  function payPanel() {
    const countdown = h("p", { class: "countdown", testid: "countdown" });
    const deadline = Date.parse(order.reservation_deadline);
    scope.every(1000, () => {
      const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      countdown.replaceChildren(...(left > 0
        ? ["Items reserved for ", h("b", { testid: "countdown-time" }, clock),
          ` (until ${new Date(deadline).toLocaleTimeString()}). Pay before then to keep them.`]
        : ["The reservation has ended; the items are being released."]));
      return left > 0 && order.state === PENDING;
    });

    const card = h("select", { testid: "pay-token", "aria-label": "Payment method" },
      TEST_CARDS.map(([token, label]) => h("option", { value: token }, label)));
    const pay = h("button", { class: "primary", testid: "pay" }, `Pay ${money(order.total)}`);
    const progress = h("p", { class: "muted", testid: "payment-progress", hidden: true },
      "Payment sent; waiting for the payment provider to confirm…");
    pay.addEventListener("click", () =>
      act(pay, async () => {
        progress.hidden = false;
        try {
          await api.pay(order.id, card.value);
        } catch (err) {
          progress.hidden = true;
          throw err;
        }
        // Settled already, or still pending (tok_delay): the polling below shows the outcome.
      }));
    const cancel = h("button", { class: "secondary danger", testid: "cancel-order" }, "Cancel order");
    cancel.addEventListener("click", () =>
      act(cancel, async () => show(await api.cancelOrder(order.id))));

    return [countdown, h("div", { class: "row actions" }, h("label", {}, "Pay with ", card), pay, cancel), progress];
  }

  el.replaceChildren(
    h("p", {}, h("a", { href: "#/orders" }, "← All orders")),
    h("article", { class: "card detail", testid: "order", "data-order-id": order.id },
      h("h1", {}, "Order ", h("code", { testid: "order-id" }, order.id.slice(0, 8))),
      h("p", { class: "muted" }, `Placed ${dateTime(order.created_at)} · confirmation to ${order.email}`),
      status,
      h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Product", "Price", "Quantity"].map((t) => h("th", {}, t)))),
        h("tbody", {}, order.lines.map((l) =>
          h("tr", {}, h("td", {}, h("a", { href: `#/products/${l.product_id}` }, l.name)),
            h("td", { class: "num" }, money(l.unit_price)), h("td", { class: "num" }, l.quantity)))),
        h("tfoot", {}, h("tr", {}, h("th", { colspan: 2 }, "Total"), h("th", { class: "num", testid: "order-total" }, money(order.total))))),
      panel),
  );
  show(order);

  // The webhook settles the order on the server; poll until it leaves "awaiting payment".
  scope.every(1000, async () => {
    if (order.state !== PENDING) return false;
    try {
      show(await api.order(orderId));
    } catch {
      // A dropped poll is retried on the next tick.
    }
    return order.state === PENDING;
  });
}
