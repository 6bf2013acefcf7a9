// The storefront in a real browser: one customer's whole visit, as a person would click it, from
// signing up to closing the account (with a forgotten password, reset from the e-mailed link, on
// the way).
//
// Run by `cargo local test` (after the Rust suite) and by `cargo local browser-test` against a
// running `cargo local up`; both install playwright-core and Chromium first and pass:
//
//   SHOP_API_URL            the stack's API; the page is served at its root
//   SHOP_ADMIN_EMAIL/_PASSWORD  the seeded admin
//   SHOP_PLAYWRIGHT_CORE    the installed playwright-core package directory
//   SHOP_CHROMIUM           the Chromium executable (default /usr/bin/chromium)
//   SHOP_BROWSER_ARTIFACTS  where screenshots of a failure go (default target/browser-artifacts)
//
// Plain `node --test`, and playwright-core without its test runner, so nothing but the library
// is installed: `eventually()` below polls the page until it shows what is expected (or the
// timeout says what it showed instead), instead of sleeping and hoping.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { test } from "node:test";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set (run this through \`cargo local browser-test\`)`);
  return value;
};
const API = env("SHOP_API_URL").replace(/\/$/, "");
const ADMIN = { email: env("SHOP_ADMIN_EMAIL"), password: env("SHOP_ADMIN_PASSWORD") };
const { chromium } = createRequire(import.meta.url)(env("SHOP_PLAYWRIGHT_CORE"));
const ARTIFACTS = resolve(env("SHOP_BROWSER_ARTIFACTS", "target/browser-artifacts"));

// The flags that work in a container without a GPU or a network; Playwright adds --headless
// itself and launches with a fresh temporary profile (--user-data-dir), removed on close.
const CHROMIUM_ARGS = [
  "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

const unique = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const CUSTOMER = { email: `browser-${unique}@shop.local`, password: "browser-test-password", name: "Browser Tester" };
const PRODUCT = `Browser test mug ${unique}`;
const SOLD_OUT = `Browser test teapot ${unique}`;
// The passwords the customer chooses later: by the reset link, then on the account page.
const RESET_PASSWORD = "browser-test-reset-password";
const CHANGED_PASSWORD = "browser-test-changed-password";

/** Polls `probe` until `ok(value)`, failing with the last value seen after `timeout` ms. */
async function eventually(what, probe, ok, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
    } catch (e) {
      last = `<${e.message.split("\n")[0]}>`;
    }
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the element shows `expected` (a substring, or a RegExp). */
function expectText(locator, expected, timeout) {
  const ok = (text) => typeof text === "string" && (expected instanceof RegExp ? expected.test(text) : text.includes(expected));
  return eventually(`text of ${locator}`, () => locator.innerText({ timeout: 1000 }), ok, timeout);
}

const byId = (page, id) => page.getByTestId(id);

/** The status the API answers `GET path` with this bearer token. */
async function statusWithToken(path, token) {
  const response = await fetch(`${API}${path}`, { headers: { authorization: `Bearer ${token}` } });
  await response.body?.cancel();
  return response.status;
}

/** The page's session token (the storefront keeps it in sessionStorage). */
const tokenOf = (page) => page.evaluate(() => sessionStorage.getItem("shop.token"));

test("a customer signs up, buys, pays, is declined, cancels, reads the e-mails, resets the password, closes the account", { timeout: 300_000 }, async () => {
  const browser = await chromium.launch({
    executablePath: env("SHOP_CHROMIUM", "/usr/bin/chromium"),
    chromiumSandbox: false, // --no-sandbox: containers and CI run as root
    args: CHROMIUM_ARGS,
  });
  // The page formats money and dates with the browser's locale (Intl.NumberFormat(undefined)):
  // pin it, so "37.50" is expected whatever the machine's language and time zone.
  const context = () => browser.newContext({ locale: "en-US", timezoneId: "UTC" });
  const pageErrors = [];
  const pages = []; // [who, page], for the screenshots of a failure
  const newPage = async (who) => {
    const page = await (await context()).newPage();
    page.on("pageerror", (e) => pageErrors.push(`${who}: ${e.message}`));
    pages.push([who, page]);
    return page;
  };
  const customer = await newPage("customer");
  const admin = await newPage("admin");
  let step = "start";
  try {
    const run = async (name, f) => {
      step = name;
      const started = Date.now();
      await f();
      console.log(`  ✓ ${name} (${Date.now() - started} ms)`);
    };

    const logIn = async (page, { email, password }) => {
      await page.goto(`${API}/#/login`);
      await byId(page, "login-email").fill(email);
      await byId(page, "login-password").fill(password);
      await byId(page, "login-submit").click();
    };
    /** The product's counters as the admin's product page (where the admin stays) shows them. */
    const adminSees = async (available, reserved, sellable) => {
      await admin.reload(); // fresh numbers now, rather than at the page's next 3-second refresh
      await expectText(byId(admin, "stock-counters"),
        `${available} on hand · ${reserved} reserved by unpaid orders · ${sellable} sellable`);
    };

    let productUrl;
    await run("the admin creates a product and adjusts its stock", async () => {
      await logIn(admin, ADMIN);
      await expectText(byId(admin, "signed-in-as"), `${ADMIN.email} (admin)`);
      await byId(admin, "nav-admin").click();
      await byId(admin, "new-name").fill(PRODUCT);
      await byId(admin, "new-description").fill("Made in a browser test");
      await byId(admin, "new-price").fill("12.50");
      await byId(admin, "new-stock").fill("4");
      await byId(admin, "create-submit").click();
      await expectText(byId(admin, "product-name"), PRODUCT);
      await expectText(byId(admin, "notice"), `Created “${PRODUCT}” with 4 units.`);
      await expectText(byId(admin, "stock-counters"), "4 on hand · 0 reserved by unpaid orders · 4 sellable");
      productUrl = admin.url();
      assert.match(productUrl, /#\/products\/[0-9a-f-]{36}$/);
      await byId(admin, "stock-adjustment").fill("1");
      await byId(admin, "adjust-stock").click();
      await expectText(byId(admin, "stock-counters"), "5 on hand · 0 reserved by unpaid orders · 5 sellable");
    });

    await run("a sold-out product's card offers no Add to cart", async () => {
      await byId(admin, "nav-admin").click();
      await byId(admin, "new-name").fill(SOLD_OUT);
      await byId(admin, "new-price").fill("30");
      await byId(admin, "new-stock").fill("0");
      await byId(admin, "create-submit").click();
      await expectText(byId(admin, "notice"), `Created “${SOLD_OUT}” with 0 units.`);
      await admin.goto(productUrl); // the admin watches the mug's counters from here on

      await customer.goto(`${API}/`);
      // The catalog is in creation order: the newest product is on the last page.
      const card = byId(customer, "product-card").filter({ hasText: SOLD_OUT });
      const more = byId(customer, "load-more");
      await eventually(`the card of ${SOLD_OUT}`, async () => {
        if (await card.count()) return true;
        if (await more.isVisible() && await more.isEnabled()) await more.click();
        return false;
      }, (found) => found === true, 60_000);
      await expectText(card.getByTestId("product-stock"), "Sold out");
      const button = card.getByTestId("add-to-cart");
      await expectText(button, "Sold out");
      assert.equal(await button.isDisabled(), true, "a sold-out card's button is disabled");
    });

    await run("a visitor sees the catalog and signs up", async () => {
      await customer.goto(`${API}/`);
      await eventually("product cards", () => byId(customer, "product-card").count(), (n) => n > 0);
      await byId(customer, "nav-login").click();
      await byId(customer, "signup-name").fill(CUSTOMER.name);
      await byId(customer, "signup-email").fill(CUSTOMER.email);
      await byId(customer, "signup-password").fill(CUSTOMER.password);
      await byId(customer, "signup-submit").click();
      await expectText(byId(customer, "signed-in-as"), CUSTOMER.email);
      assert.equal(await byId(customer, "nav-admin").isVisible(), false, "no admin menu for a customer");
    });

    await run("a wrong password shows the API's error, the right one logs in", async () => {
      await byId(customer, "logout").click();
      await expectText(byId(customer, "nav-login"), "Log in");
      await logIn(customer, { ...CUSTOMER, password: "not-the-password" });
      await expectText(byId(customer, "error"), "email or password is incorrect (invalid_credentials)");
      await byId(customer, "login-password").fill(CUSTOMER.password);
      await byId(customer, "login-submit").click();
      await expectText(byId(customer, "signed-in-as"), CUSTOMER.email);
    });

    const addToCart = async (quantity) => {
      // A fresh product page: goto to the URL the page is already at (a hash route) does nothing.
      if (customer.url() === productUrl) await customer.reload();
      else await customer.goto(productUrl);
      await byId(customer, "quantity").fill(String(quantity));
      await byId(customer, "add-to-cart").click();
      await expectText(byId(customer, "notice"), `Added ${quantity} × ${PRODUCT}`);
    };
    const placeOrder = async () => {
      await byId(customer, "nav-cart").click();
      await byId(customer, "place-order").click();
      await expectText(byId(customer, "order-status"), "Awaiting payment");
      return customer.url();
    };
    const pay = async (token, expected) => {
      await byId(customer, "pay-token").selectOption(token);
      await byId(customer, "pay").click();
      // The mock gateway's webhook settles the order; the page polls until it shows the outcome.
      await expectText(byId(customer, "order-status"), expected);
    };

    await run("the cart: add, change the quantity, remove", async () => {
      await customer.goto(productUrl);
      await expectText(byId(customer, "product-stock"), "5 in stock");
      await addToCart(2);
      await expectText(byId(customer, "cart-count"), "2");
      await byId(customer, "nav-cart").click();
      const line = byId(customer, "cart-line");
      await expectText(line, PRODUCT);
      await byId(customer, "cart-quantity").fill("3");
      await byId(customer, "cart-quantity").press("Enter");
      await expectText(byId(customer, "cart-total"), "37.50");
      await byId(customer, "cart-remove").click();
      await expectText(byId(customer, "cart-empty"), "Your cart is empty");
    });

    await run("order 1: reserved with a countdown, paid with tok_success", async () => {
      await addToCart(2);
      await placeOrder();
      await expectText(byId(customer, "countdown"), /Items reserved for \d+:\d\d/);
      await adminSees(5, 2, 3);
      await pay("tok_success", "Paid");
      await expectText(byId(customer, "notice"), "Payment received");
      await adminSees(3, 0, 3);
      await customer.goto(productUrl);
      await expectText(byId(customer, "product-stock"), "3 in stock");
    });

    await run("order 2: declined with tok_fail, the units come back", async () => {
      await addToCart(1);
      await placeOrder();
      await adminSees(3, 1, 2);
      await pay("tok_fail", "Payment failed");
      await adminSees(3, 0, 3);
    });

    await run("order 3: cancelled, the units come back", async () => {
      await addToCart(1);
      const orderUrl = await placeOrder();
      await customer.goto(productUrl);
      await expectText(byId(customer, "product-stock"), "2 in stock");
      await customer.goto(orderUrl);
      await byId(customer, "cancel-order").click();
      await expectText(byId(customer, "order-status"), "Cancelled");
      await adminSees(3, 0, 3);
    });

    await run("more than the stock: the API's out-of-stock error names the product", async () => {
      await addToCart(4);
      await byId(customer, "nav-cart").click();
      await byId(customer, "place-order").click();
      await expectText(byId(customer, "error"), `nothing was reserved: ${PRODUCT} (out_of_stock)`);
      await byId(customer, "cart-remove").click();
      await expectText(byId(customer, "cart-empty"), "Your cart is empty");
    });

    await run("the orders list shows every outcome", async () => {
      await byId(customer, "nav-orders").click();
      const states = await eventually("order states", () => byId(customer, "order-row").locator(".state").allInnerTexts(),
        (s) => s.length === 3);
      assert.deepEqual(states, ["Cancelled", "Payment failed", "Paid"], "newest first");
    });

    await run("a malformed link shows the not-found page", async () => {
      await customer.goto(`${API}/#/orders/%E0`); // decodeURIComponent throws on it
      await expectText(customer.getByRole("heading", { level: 1 }), "Page not found");
    });

    await run("the local mailbox shows the customer's e-mails", async () => {
      await byId(customer, "nav-mailbox").click();
      assert.equal(await byId(customer, "mail-filter").inputValue(), CUSTOMER.email);
      const wanted = ["Welcome to the shop", "We received your order", "Payment received: your receipt",
        "Your payment did not go through", "Your order was cancelled"];
      // E-mails go outbox → Kafka → notifier → SES, a moment after the action, and one batch's
      // mails are sent in parallel: wait for all of them (one "received" per order placed).
      const placed = (s) => s.filter((x) => x === "We received your order").length;
      const subjects = await eventually("e-mail subjects", () => byId(customer, "mail-subject").allInnerTexts(),
        (s) => wanted.every((w) => s.includes(w)) && placed(s) >= 3, 30_000);
      assert.equal(placed(subjects), 3, "one per order placed");
      await byId(customer, "mail-subject").filter({ hasText: "Payment received" }).click();
      const receipt = customer.frameLocator('[data-testid="mail-item"][open] iframe');
      await expectText(receipt.locator("body"), PRODUCT);
    });

    let password = CUSTOMER.password;

    await run("forgot password: the e-mailed link sets a new one, once", async () => {
      await byId(customer, "logout").click();
      await expectText(byId(customer, "nav-login"), "Log in");
      await customer.goto(`${API}/#/login`);
      await byId(customer, "forgot-password").click();
      await byId(customer, "forgot-email").fill(CUSTOMER.email);
      await byId(customer, "forgot-submit").click();
      await expectText(byId(customer, "notice"),
        "If an account uses this address, an e-mail with a link to choose a new password is on its way.");

      // The e-mail, as the local mailbox shows it: its link leads back to this storefront.
      await byId(customer, "open-mailbox").click();
      await byId(customer, "mail-filter").fill(CUSTOMER.email);
      const subject = byId(customer, "mail-subject").filter({ hasText: "Reset your password" });
      await eventually("the reset e-mail", () => subject.count(), (n) => n === 1, 30_000);
      await subject.click();
      const mail = customer.frameLocator('[data-testid="mail-item"][open] iframe');
      const link = await eventually("the link in the reset e-mail", async () => {
        const anchor = mail.locator('a[href*="#reset="]');
        if (await anchor.count()) return anchor.first().getAttribute("href", { timeout: 1000 });
        return /https?:\/\/[^\s"<>]+#reset=[\w-]+/.exec(await mail.locator("body").innerText({ timeout: 1000 }))?.[0];
      }, (l) => typeof l === "string" && /#reset=[\w-]{43}$/.test(l));
      assert.ok(link.startsWith(`${API}/#reset=`), `the link opens this storefront: ${link}`);

      await customer.goto(link);
      await expectText(byId(customer, "reset-from-link"), "Opened from the link in your e-mail");
      assert.ok(customer.url().endsWith("#/reset-password"), `the token left the address bar: ${customer.url()}`);
      await byId(customer, "reset-password").fill(RESET_PASSWORD);
      await byId(customer, "reset-password-again").fill(`${RESET_PASSWORD}!`);
      await byId(customer, "reset-submit").click();
      await expectText(byId(customer, "error"), "The two new passwords differ");
      await byId(customer, "reset-password-again").fill(RESET_PASSWORD);
      await byId(customer, "reset-submit").click();
      await expectText(byId(customer, "notice"),
        "Your password is changed and every session is signed out. Sign in with the new password.");
      await byId(customer, "login-form").waitFor();
      password = RESET_PASSWORD;

      // The same link again: refused, and the page says what to do.
      await customer.goto(link);
      await byId(customer, "reset-password").fill("browser-test-another-password");
      await byId(customer, "reset-password-again").fill("browser-test-another-password");
      await byId(customer, "reset-submit").click();
      await expectText(byId(customer, "error"), "(invalid_reset_token)");
      await expectText(byId(customer, "reset-invalid"), "Ask for a new link");

      await logIn(customer, { ...CUSTOMER, password: CUSTOMER.password });
      await expectText(byId(customer, "error"), "(invalid_credentials)");
      await logIn(customer, { ...CUSTOMER, password });
      await expectText(byId(customer, "signed-in-as"), CUSTOMER.email);
    });

    await run("change password: this session goes on, its old token is refused", async () => {
      const before = await tokenOf(customer);
      await byId(customer, "signed-in-as").click();
      await byId(customer, "current-password").fill("not-the-password");
      await byId(customer, "new-password").fill(CHANGED_PASSWORD);
      await byId(customer, "change-password").click();
      await expectText(byId(customer, "error"), "(wrong_password)");
      await byId(customer, "current-password").fill(password);
      await byId(customer, "new-password").fill(CHANGED_PASSWORD);
      await byId(customer, "change-password").click();
      await expectText(byId(customer, "notice"), "Your password is changed.");
      password = CHANGED_PASSWORD;
      assert.notEqual(await tokenOf(customer), before, "a fresh token");
      assert.equal(await statusWithToken("/cart", before), 401, "the token from before the change is refused");
      await byId(customer, "nav-orders").click();
      await eventually("orders", () => byId(customer, "order-row").count(), (n) => n === 3);
      await expectText(byId(customer, "signed-in-as"), CUSTOMER.email);
    });

    await run("sign out everywhere: this browser and another device are signed out", async () => {
      const laptop = await newPage("customer's other device");
      await logIn(laptop, { ...CUSTOMER, password });
      await expectText(byId(laptop, "signed-in-as"), CUSTOMER.email);
      const token = await tokenOf(customer);
      await byId(customer, "signed-in-as").click();
      await byId(customer, "sign-out-everywhere").click();
      await expectText(byId(customer, "notice"), "You are signed out everywhere");
      await expectText(byId(customer, "nav-login"), "Log in");
      assert.equal(await statusWithToken("/cart", token), 401, "the old token is refused");
      // The other device finds out at its next request, and says so.
      await byId(laptop, "nav-orders").click();
      await expectText(byId(laptop, "error"), "You were signed out");
      await expectText(byId(laptop, "nav-login"), "Log in");
      assert.match(laptop.url(), /#\/login\?next=%2Forders$/);
      await byId(laptop, "login-email").fill(CUSTOMER.email);
      await byId(laptop, "login-password").fill(password);
      await byId(laptop, "login-submit").click();
      await eventually("the other device's orders", () => byId(laptop, "order-row").count(), (n) => n === 3); // back where it was going
    });

    await run("download my data: the account and its orders as JSON", async () => {
      await logIn(customer, { ...CUSTOMER, password });
      await expectText(byId(customer, "signed-in-as"), CUSTOMER.email);
      await byId(customer, "signed-in-as").click();
      const [download] = await Promise.all([customer.waitForEvent("download"), byId(customer, "export-data").click()]);
      assert.equal(download.suggestedFilename(), "shop-account-export.json");
      const data = JSON.parse(readFileSync(await download.path(), "utf8"));
      assert.equal(data.account.email, CUSTOMER.email);
      assert.equal(data.account.name, CUSTOMER.name);
      assert.equal(data.account.role, "customer");
      assert.deepEqual(data.cart, []);
      assert.deepEqual(data.orders.map((o) => o.state).sort(), ["CANCELLED", "PAID", "PAYMENT_FAILED"]);
      assert.ok(data.orders.every((o) => o.email === CUSTOMER.email && o.lines[0].name === PRODUCT));
      await expectText(byId(customer, "notice"), "Downloaded shop-account-export.json");
    });

    await run("close the account: the unpaid order is cancelled, the log-in refused", async () => {
      await addToCart(1);
      await placeOrder();
      await adminSees(3, 1, 2);
      await byId(customer, "signed-in-as").click();
      await byId(customer, "close-password").fill("not-the-password");
      await byId(customer, "close-confirm").check();
      await byId(customer, "close-account").click();
      await expectText(byId(customer, "error"), "(wrong_password)");
      await byId(customer, "close-password").fill(password);
      await byId(customer, "close-account").click();
      await expectText(byId(customer, "notice"),
        "Your account is closed and you are signed out. 1 order awaiting payment was cancelled.");
      await expectText(byId(customer, "nav-login"), "Log in");
      await adminSees(3, 0, 3);
      await logIn(customer, { ...CUSTOMER, password });
      await expectText(byId(customer, "error"), "(invalid_credentials)");
    });

    assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
  } catch (error) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const name = step.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
    for (const [who, page] of pages) {
      const file = join(ARTIFACTS, `${name}.${who}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      writeFileSync(join(ARTIFACTS, `${name}.${who}.url.txt`), `${page.url()}\n`);
      console.error(`  screenshot: ${file}`);
      // The API error the page showed, if any, is often the whole story.
      const shown = await byId(page, "error").filter({ visible: true }).innerText({ timeout: 500 }).catch(() => "");
      if (shown) console.error(`  the ${who}'s page shows the error: ${shown}`);
    }
    throw new Error(`step "${step}" failed: ${error.message}`, { cause: error });
  } finally {
    await browser.close();
  }
});
