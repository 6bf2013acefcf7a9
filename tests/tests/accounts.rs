//! Accounts people can recover, sign out of and close (issue 24), end to end: password reset by
//! e-mail (the token read from the mail the stack really sent), change password, sign out
//! everywhere, closing an account (its pending orders cancelled and their units released, its paid
//! orders kept anonymised, no e-mail to the address afterwards) and the export.
//!
//! Password-reset requests are throttled per client address (the API Gateway's `sourceIp`): every
//! test here that asks for one calls from a loopback address of its own ([`Caller`], a random
//! `127.x.y.z`), so it neither runs into another test's count nor uses up 127.0.0.1's, which the
//! rest of the suite calls from.
//!
//! The 30-minute expiry of a reset token is not tested: the local stack has no way to move the
//! account function's clock (the sweeper and the gateway's deliveries take their "now" from their
//! event, the API functions from the system clock).
//!
//! Exclusive (see `.config/nextest.toml`): some tests compare the whole table before and after,
//! one takes SES down for everyone, and some run the sweeper (which expires every overdue order in
//! the table) or the refund worker (which pays back every open refund).

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_tests::mail::{Mail, Restore, expect_mail, function_stats, mail_to, set_service, settle};
use shop_tests::payments::{deliver_webhooks_at, gateway, pay};
use shop_tests::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const RESET_ACCEPTED: &str = "If an account uses this address, an e-mail with a link to choose a new password is on \
                              its way. The link works once, for 30 minutes.";
const RESET_DONE: &str = "Your password is changed and every session is signed out. Sign in with the new password.";
const RESET_SUBJECT: &str = "Reset your password";
const NEW_PASSWORD: &str = "a brand new passphrase";

type Item = HashMap<String, AttributeValue>;

/// A client that calls from a loopback address of its own (see the module docs).
struct Caller {
    http: reqwest::Client,
    ip: IpAddr,
}

impl Caller {
    fn new() -> Self {
        let b = *uuid::Uuid::new_v4().as_bytes();
        // 127.1.0.1 – 127.254.255.254: never 127.0.0.1.
        let ip = IpAddr::V4(Ipv4Addr::new(127, 1 + b[0] % 254, b[1], 1 + b[2] % 254));
        let http =
            reqwest::Client::builder().local_address(ip).timeout(Duration::from_secs(60)).build().expect("http client");
        Self { http, ip }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", stack().api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_reply(req.send().await.unwrap_or_else(|e| panic!("request from {}: {e}", self.ip))).await
    }

    async fn request_reset(&self, email: &str) -> Reply {
        self.call(Method::POST, "/auth/password-reset", None, Some(json!({ "email": email }))).await
    }

    async fn confirm_reset(&self, token: &str, password: &str) -> Reply {
        let body = json!({ "token": token, "password": password });
        self.call(Method::POST, "/auth/password-reset/confirm", None, Some(body)).await
    }
}

fn assert_reset_accepted(r: &Reply) {
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body, json!({ "message": RESET_ACCEPTED }));
}

fn assert_invalid_reset_token(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {:?}", r.body);
    assert_eq!(r.error_code(), "invalid_reset_token", "{what}");
}

/// The repo's field error (`ApiError::invalid_fields`): 400 `invalid_input` naming the field.
fn assert_invalid_field(r: &Reply, field: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.error_code(), "invalid_input", "{:?}", r.body);
    assert!(r.body["error"]["details"]["fields"].get(field).is_some(), "no field {field} in {:?}", r.body);
}

fn assert_throttled(r: &Reply) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert_eq!(r.error_code(), "too_many_attempts");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
}

/// The token of a reset e-mail: in its link, `…/#reset=<token>`, 43 characters of unpadded
/// base64url (32 bytes); in the text part, also alone on the line after "reset code:".
fn token_in(mail: &Mail) -> String {
    assert_eq!(mail.subject, RESET_SUBJECT);
    let at = mail.body.find("#reset=").unwrap_or_else(|| panic!("no reset link in {}", mail.body)) + "#reset=".len();
    let token: String =
        mail.body[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    assert_eq!(token.len(), 43, "{}", mail.body);
    assert_eq!(URL_SAFE_NO_PAD.decode(&token).map(|b| b.len()).ok(), Some(32), "{token}");
    if !mail.body.contains('<') {
        let code =
            mail.body.split_once("reset code:").map(|(_, rest)| rest.lines().map(str::trim).find(|l| !l.is_empty()));
        assert_eq!(code.flatten(), Some(token.as_str()), "{}", mail.body);
    }
    token
}

/// The reset tokens e-mailed to `address` so far, oldest first.
async fn reset_tokens(address: &str) -> Vec<String> {
    mail_to(address).await.iter().filter(|m| m.subject == RESET_SUBJECT).map(token_in).collect()
}

/// A token's claims (not verified: the stack does that).
fn claims(token: &str) -> Value {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).expect("a JWT")).expect("base64url claims");
    serde_json::from_slice(&payload).expect("JSON claims")
}

fn user_of(token: &str) -> String {
    claims(token)["sub"].as_str().expect("sub").to_owned()
}

/// Asserts that `token` is accepted (the cart of its account).
async fn assert_signed_in(token: &str, what: &str) {
    let r = call(Method::GET, "/cart", Some(token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{what}: {:?}", r.body);
}

/// Asserts that `token` is refused with `401 unauthorized` wherever a token is needed: cart,
/// orders, placing an order (which then reserves nothing), paying, the account's own routes.
async fn assert_signed_out(token: &str, what: &str) {
    let someone = uuid::Uuid::now_v7();
    let cases = [
        (Method::GET, "/cart".to_owned(), None),
        (Method::PUT, format!("/cart/items/{someone}"), Some(json!({"quantity": 1}))),
        (Method::GET, "/orders".to_owned(), None),
        (Method::GET, format!("/orders/{someone}"), None),
        (Method::POST, "/payments".to_owned(), Some(json!({"order_id": someone, "token": "tok_success"}))),
        (Method::GET, "/me/export".to_owned(), None),
        (Method::POST, "/me/sign-out-everywhere".to_owned(), None),
        (
            Method::POST,
            "/me/password".to_owned(),
            Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        ),
    ];
    for (method, path, body) in cases {
        let r = call(method.clone(), &path, Some(token), body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {method} {path}: {:?}", r.body);
        assert_eq!(r.error_code(), "unauthorized", "{what}: {method} {path}");
    }
    let r = place_order(token, &uuid::Uuid::new_v4().to_string(), Some(&[(&someone.to_string(), 1)])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: POST /orders: {:?}", r.body);
    assert_eq!(r.error_code(), "unauthorized", "{what}: POST /orders");
}

async fn assert_login_refused(email: &str, password: &str) {
    let r = call(Method::POST, "/auth/login", None, Some(json!({"email": email, "password": password}))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert_eq!(r.error_code(), "invalid_credentials");
}

async fn close(token: &str, password: &str) -> Reply {
    call(Method::DELETE, "/me", Some(token), Some(json!({ "password": password }))).await
}

/// Places a one-line order and returns its id.
async fn order(token: &str, product: &str, quantity: u32) -> String {
    let r = place_order(token, &uuid::Uuid::new_v4().to_string(), Some(&[(product, quantity)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn product(name: &str, units: i64) -> String {
    let admin = admin_token().await;
    new_product(&admin, name, 1000, units).await["id"].as_str().unwrap().to_owned()
}

async fn order_item(id: &str) -> Item {
    get_item(&format!("ORDER#{id}"), "ORDER").await.unwrap_or_else(|| panic!("order item {id}"))
}

fn s(item: &Item, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// Every item of the table a scan with `filter` (and `values`) keeps.
async fn scan(filter: &str, names: &[(&str, &str)], values: &[(&str, &str)]) -> Vec<Item> {
    let mut req = dynamodb().await.scan().table_name(&stack().table).consistent_read(true).filter_expression(filter);
    for (k, v) in names {
        req = req.expression_attribute_names(*k, *v);
    }
    for (k, v) in values {
        req = req.expression_attribute_values(*k, AttributeValue::S((*v).to_owned()));
    }
    req.into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.expect("scan")
}

/// Every order item of an account.
async fn orders_of(user: &str) -> Vec<Item> {
    scan("sk = :o AND user_id = :u", &[], &[(":o", "ORDER"), (":u", user)]).await
}

/// The whole table as `table_snapshot` has it, without the attempt counters (`LOGIN_ATTEMPTS#`):
/// a refused password counts against the account's log-in attempts, and every reset confirmation
/// against its client's budget, which is the point.
async fn snapshot_without_attempts() -> BTreeMap<String, String> {
    table_snapshot().await.into_iter().filter(|(k, _)| !k.starts_with("LOGIN_ATTEMPTS#")).collect()
}

/// The `x-request-id` the API answered with.
fn request_id(r: &Reply) -> String {
    r.headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id").to_owned()
}

/// Waits (the functions write their lines a moment after answering) until a line about `trace`
/// of `function` says `message`.
async fn wait_for_log(trace: &str, function: &str, message_is: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lines = log_lines(Some(trace)).await;
        if lines.iter().any(|(f, l)| f == function && log_message(l) == message_is) {
            return;
        }
        let shown: Vec<String> = lines.iter().map(|(f, l)| format!("{f}: {}", log_message(l))).collect();
        assert!(tokio::time::Instant::now() < deadline, "no {function} line {message_is:?} about {trace}: {shown:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Password reset
// ---------------------------------------------------------------------------------------------

/// The answer tells nothing: the same status and body (but for the request id, if any) for an
/// address with an account, the same address in capitals and an address nobody has; only the
/// account's owner gets an e-mail.
#[tokio::test]
async fn a_reset_request_answers_the_same_whether_or_not_the_address_has_an_account() {
    let caller = Caller::new();
    let (email, _) = new_customer("reset-same").await;
    let nobody = unique_email("reset-nobody");
    let strip = |r: &Reply| {
        let mut body = r.body.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("request_id");
        }
        let content_type = r.headers.get("content-type").map(|v| v.to_str().unwrap().to_owned());
        (r.status, content_type, body)
    };
    // In capitals first: the last request's token is the one e-mailed for sure (to the account's
    // address as written here; the reset e-mail goes to the address as the request spelt it).
    let known_upper = caller.request_reset(&email.to_uppercase()).await;
    let known = caller.request_reset(&email).await;
    let unknown = caller.request_reset(&nobody).await;
    assert_reset_accepted(&known);
    assert_eq!(strip(&known), strip(&unknown), "{known:?}\n{unknown:?}");
    assert_eq!(strip(&known), strip(&known_upper));

    // Welcome + the two resets for the account (the second makes the first void: its e-mail may
    // or may not have gone out before, the last one always does); nothing to the stranger.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while reset_tokens(&email).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no reset e-mail within a minute");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    settle().await;
    let mail = mail_to(&email).await;
    assert!((2..=3).contains(&mail.len()), "{mail:?}");
    assert!(mail_to(&email.to_uppercase()).await.len() <= 1);
    assert!(mail.iter().filter(|m| m.subject != RESET_SUBJECT).all(|m| m.subject == "Welcome to the shop"));
    assert!(mail_to(&nobody).await.is_empty(), "no e-mail to an address without an account");
}

#[tokio::test]
async fn a_malformed_reset_request_is_refused() {
    let caller = Caller::new();
    for bad in ["", "not-an-address", "a@", "@b.co", &format!("{}@x.io", "a".repeat(300))] {
        let r = caller.request_reset(bad).await;
        assert_invalid_field(&r, "email");
    }
    let r = caller
        .call(Method::POST, "/auth/password-reset", None, Some(json!({"email": unique_email("x"), "admin": true})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "unknown fields: {:?}", r.body);
    let r = caller.call(Method::POST, "/auth/password-reset/confirm", None, Some(json!({"token": "x"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no password: {:?}", r.body);
}

/// The whole path: the e-mail's token sets the new password, every session is signed out, the
/// answer logs nobody in, and the token works once.
#[tokio::test]
async fn a_reset_token_sets_the_new_password_once_and_signs_out_every_session() {
    let caller = Caller::new();
    let (email, first) = new_customer("reset").await;
    let second = login(&email, PASSWORD).await;
    assert_reset_accepted(&caller.request_reset(&email).await);
    let mail = expect_mail(&email, 2).await;
    let token = token_in(mail.iter().find(|m| m.subject == RESET_SUBJECT).expect("the reset e-mail"));
    // Asking for a link changes nothing yet.
    assert_signed_in(&first, "before the reset").await;
    login(&email, PASSWORD).await;

    let r = caller.confirm_reset(&token, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({ "message": RESET_DONE }), "no token: the client signs in afterwards");

    assert_signed_out(&first, "the first session").await;
    assert_signed_out(&second, "the second session").await;
    assert_login_refused(&email, PASSWORD).await;
    let fresh = login(&email, NEW_PASSWORD).await;
    assert_signed_in(&fresh, "a log-in with the new password").await;

    // Once only: the same token again is refused, and changes nothing.
    let r = caller.confirm_reset(&token, "yet another passphrase").await;
    assert_invalid_reset_token(&r, "the same token again");
    assert_signed_in(&fresh, "after the token was replayed").await;
    assert_login_refused(&email, "yet another passphrase").await;
    login(&email, NEW_PASSWORD).await;
}

#[tokio::test]
async fn an_earlier_reset_token_is_void_once_a_newer_one_is_issued() {
    let caller = Caller::new();
    let (email, _) = new_customer("reset-newer").await;
    assert_reset_accepted(&caller.request_reset(&email).await);
    expect_mail(&email, 2).await;
    let earlier = reset_tokens(&email).await.remove(0);
    assert_reset_accepted(&caller.request_reset(&email).await);
    expect_mail(&email, 3).await;
    let tokens = reset_tokens(&email).await;
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0], tokens[1], "every request has its own token");
    let newer = tokens.into_iter().find(|t| *t != earlier).unwrap();

    let r = caller.confirm_reset(&earlier, NEW_PASSWORD).await;
    assert_invalid_reset_token(&r, "the earlier token");
    login(&email, PASSWORD).await;
    let r = caller.confirm_reset(&newer, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "the newer token: {:?}", r.body);
    login(&email, NEW_PASSWORD).await;
    // Still void after the newer one was used.
    let r = caller.confirm_reset(&earlier, "yet another passphrase").await;
    assert_invalid_reset_token(&r, "the earlier token, after the newer was used");
}

/// Guessed and malformed tokens are all refused the same way and write nothing (but the client's
/// count of attempts), and the real token (outstanding all along) still works afterwards.
#[tokio::test]
async fn guessed_and_malformed_reset_tokens_are_refused_alike_and_change_nothing() {
    let caller = Caller::new();
    let (email, session) = new_customer("reset-guess").await;
    assert_reset_accepted(&caller.request_reset(&email).await);
    expect_mail(&email, 2).await;
    let real = reset_tokens(&email).await.remove(0);

    let random =
        URL_SAFE_NO_PAD.encode([uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat());
    assert_eq!(random.len(), 43);
    let flipped = {
        let mut t = real.clone().into_bytes();
        t[20] = if t[20] == b'A' { b'B' } else { b'A' };
        String::from_utf8(t).unwrap()
    };
    let cases: Vec<(&str, String)> = vec![
        ("random 43 characters", random),
        ("one character changed", flipped),
        ("truncated", real[..42].to_owned()),
        ("one character more", format!("{real}A")),
        ("padded", format!("{real}=")),
        ("upper case", real.to_uppercase()),
        ("the hash of nothing", "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into()),
        ("empty", String::new()),
        ("10 KB", "A".repeat(10 * 1024)),
        ("accented", "é".repeat(43)),
        ("emoji", "🔑".repeat(43)),
        ("right-to-left override", format!("\u{202e}{}", &real[1..])),
        ("zero-width space inside", format!("{}\u{200b}{}", &real[..20], &real[20..])),
        ("NUL characters", "\0".repeat(43)),
        ("full-width letters", "Ａ".repeat(43)),
        ("standard base64 alphabet", "+/".repeat(21) + "A"),
        ("SQL-ish", "' OR '1'='1".into()),
    ];
    settle().await;
    let before = snapshot_without_attempts().await;
    let mut messages = BTreeSet::new();
    for (what, token) in &cases {
        let r = caller.confirm_reset(token, NEW_PASSWORD).await;
        assert_invalid_reset_token(&r, what);
        messages.insert(r.body["error"]["message"].as_str().unwrap().to_owned());
    }
    assert_eq!(messages.len(), 1, "every refusal says the same: {messages:?}");
    assert_eq!(snapshot_without_attempts().await, before, "a refused token writes nothing but the client's count");
    assert_signed_in(&session, "after the guesses").await;
    login(&email, PASSWORD).await;

    let r = caller.confirm_reset(&real, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "the real token still works after the guesses: {:?}", r.body);
    login(&email, NEW_PASSWORD).await;
}

/// A new password the policy refuses is a field error, and the token is not spent on it.
#[tokio::test]
async fn a_weak_new_password_is_refused_and_the_token_still_works() {
    let caller = Caller::new();
    let (email, session) = new_customer("reset-weak").await;
    assert_reset_accepted(&caller.request_reset(&email).await);
    expect_mail(&email, 2).await;
    let token = reset_tokens(&email).await.remove(0);

    for weak in ["short", "", &"x".repeat(257)] {
        let r = caller.confirm_reset(&token, weak).await;
        assert_invalid_field(&r, "password");
    }
    assert_signed_in(&session, "a refused reset signs nobody out").await;
    login(&email, PASSWORD).await;
    let r = caller.confirm_reset(&token, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    login(&email, NEW_PASSWORD).await;
}

/// Neither the request, the relay, the notifier nor the confirmation (refused or not) writes the
/// token to a log.
#[tokio::test]
async fn a_reset_token_never_appears_in_the_logs() {
    let caller = Caller::new();
    let (email, _) = new_customer("reset-logs").await;
    let asked = caller.request_reset(&email).await;
    assert_reset_accepted(&asked);
    expect_mail(&email, 2).await;
    let token = reset_tokens(&email).await.remove(0);
    let weak = caller.confirm_reset(&token, "short").await;
    assert_invalid_field(&weak, "password");
    let done = caller.confirm_reset(&token, NEW_PASSWORD).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    let replayed = caller.confirm_reset(&token, NEW_PASSWORD).await;
    assert_invalid_reset_token(&replayed, "replayed");

    // Wait until the lines of all of it are written: the notifier's "e-mail sent" for the reset
    // (found by the request's id, which travels with the event) and each confirmation's own line.
    let reset_id = request_id(&asked);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lines = log_lines(Some(&reset_id)).await;
        let sent = lines.iter().any(|(f, l)| {
            f == "NotifierFunction"
                && log_message(l) == "e-mail sent"
                && l.pointer("/fields/event_type").and_then(Value::as_str) == Some("user.password_reset_requested")
        });
        if sent {
            break;
        }
        let shown: Vec<String> = lines.iter().map(|(f, l)| format!("{f}: {}", log_message(l))).collect();
        assert!(tokio::time::Instant::now() < deadline, "no e-mail sent line for {reset_id}: {shown:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for r in [&weak, &done, &replayed] {
        wait_for_log(&request_id(r), "AccountFunction", "request done").await;
    }

    let lines = log_lines(None).await;
    assert!(lines.iter().any(|(f, _)| f == "AccountFunction"), "the account function's log was read");
    let leaks: Vec<String> =
        lines.iter().filter(|(_, l)| l.to_string().contains(&token)).map(|(f, l)| format!("{f}: {l}")).collect();
    assert!(leaks.is_empty(), "the reset token is in the logs: {leaks:#?}");
}

/// The table keeps the token's SHA-256, never the token, but on the outbox event that carries it
/// to the e-mail (docs/events.md: `user.password_reset_requested`).
#[tokio::test]
async fn the_table_keeps_only_the_reset_tokens_hash() {
    let caller = Caller::new();
    let (email, _) = new_customer("reset-hash").await;
    assert_reset_accepted(&caller.request_reset(&email).await);
    expect_mail(&email, 2).await;
    let token = reset_tokens(&email).await.remove(0);
    let hash = shop::auth::reset_token::hash(&token);

    let items = scan("attribute_exists(pk)", &[], &[]).await;
    let text = |i: &Item| format!("{i:?}");
    let holding: Vec<String> = items.iter().filter(|i| text(i).contains(&token)).map(|i| s(i, "pk")).collect();
    assert!(holding.iter().all(|pk| pk.starts_with("EVENT#")), "items holding the token itself: {holding:?}");
    assert!(items.iter().any(|i| text(i).contains(&hash)), "no item holds the token's SHA-256 ({hash})");
}

/// Five requests per address per 15 minutes, counted atomically, the same for an account and for
/// an address nobody has, whatever the case of the address and whoever asks.
#[tokio::test]
async fn reset_requests_are_throttled_per_address_alike_for_accounts_and_strangers() {
    let (email, _) = new_customer("reset-throttle").await;
    let nobody = unique_email("reset-stranger");
    for address in [&email, &nobody] {
        let caller = Caller::new();
        let upper = address.to_uppercase();
        let replies =
            join_all((0..8).map(|i| caller.request_reset(if i % 2 == 0 { address.as_str() } else { &upper }))).await;
        let accepted: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::ACCEPTED).collect();
        let throttled: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
        assert_eq!(
            (accepted.len(), throttled.len()),
            (5, 3),
            "{address}: {:?}",
            replies.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>()
        );
        accepted.iter().for_each(|r| assert_reset_accepted(r));
        throttled.iter().for_each(|r| assert_throttled(r));
        // The limit is the address's, from any client.
        assert_throttled(&Caller::new().request_reset(address).await);
    }
}

/// Fifty requests per client address per 15 minutes, whatever the addresses asked for; another
/// client is not held back by them.
#[tokio::test]
async fn reset_requests_are_throttled_per_client() {
    let caller = Caller::new();
    let addresses: Vec<String> = (0..55).map(|_| unique_email("reset-client")).collect();
    let replies = join_all(addresses.iter().map(|a| caller.request_reset(a))).await;
    let accepted = replies.iter().filter(|r| r.status == StatusCode::ACCEPTED).count();
    let throttled: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(
        (accepted, throttled.len()),
        (50, 5),
        "from {}: {:?}",
        caller.ip,
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    throttled.iter().for_each(|r| assert_throttled(r));
    assert_throttled(&caller.request_reset(&unique_email("reset-client")).await);
    assert_reset_accepted(&Caller::new().request_reset(&unique_email("reset-other-client")).await);
}

// ---------------------------------------------------------------------------------------------
// Change password, sign out everywhere
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_signs_out_every_other_session() {
    let (email, first) = new_customer("change").await;
    let second = login(&email, PASSWORD).await;
    let change = |token: &str, current: &str, new: &str| {
        let body = json!({ "current_password": current, "new_password": new });
        let token = token.to_owned();
        async move { call(Method::POST, "/me/password", Some(&token), Some(body)).await }
    };

    let r = change(&first, "not the password", NEW_PASSWORD).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "wrong_password"), "{:?}", r.body);
    let r = change(&first, PASSWORD, "short").await;
    assert_invalid_field(&r, "new_password");
    let r = call(
        Method::POST,
        "/me/password",
        None,
        Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    let r = call(Method::POST, "/me/password", Some(&first), Some(json!({"current_password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no new password: {:?}", r.body);
    // None of that changed anything.
    assert_signed_in(&first, "after refused changes").await;
    assert_signed_in(&second, "after refused changes").await;
    login(&email, PASSWORD).await;

    let r = change(&first, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["token_type"].as_str(), r.body["expires_in"].as_u64()),
        (Some("Bearer"), Some(3600)),
        "{:?}",
        r.body
    );
    let fresh = r.body["token"].as_str().expect("a new token").to_owned();
    assert_eq!(user_of(&fresh), user_of(&first));
    assert_signed_in(&fresh, "the token the change returned").await;
    assert_signed_out(&first, "the token the change was made with").await;
    assert_signed_out(&second, "the other session").await;
    assert_login_refused(&email, PASSWORD).await;
    login(&email, NEW_PASSWORD).await;
}

/// A wrong current password counts against the account's log-in attempts, like a log-in.
#[tokio::test]
async fn wrong_current_passwords_are_throttled_like_log_in() {
    let (email, token) = new_customer("change-guess").await;
    let replies = join_all((0..12).map(|i| {
        let body = json!({ "current_password": format!("wrong guess {i}"), "new_password": NEW_PASSWORD });
        let token = token.clone();
        async move { call(Method::POST, "/me/password", Some(&token), Some(body)).await }
    }))
    .await;
    let refused = replies.iter().filter(|r| r.status == StatusCode::FORBIDDEN).count();
    let throttled: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(
        (refused, throttled.len()),
        (10, 2),
        "{:?}",
        replies.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>()
    );
    throttled.iter().for_each(|r| assert_throttled(r));
    // The account's log-in waits too, and so does the right current password; nothing changed.
    let r = call(Method::POST, "/auth/login", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_throttled(&r);
    let r = call(
        Method::POST,
        "/me/password",
        Some(&token),
        Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
    )
    .await;
    assert_throttled(&r);
    assert_signed_in(&token, "after the throttled guesses").await;
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(stack().jwt_secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn signing_out_everywhere_refuses_every_token_issued_before() {
    let product = product("sign-out", 5).await;
    let (email, first) = new_customer("sign-out").await;
    let second = login(&email, PASSWORD).await;
    assert_signed_in(&first, "first").await;
    assert_signed_in(&second, "second").await;

    let r = call(Method::POST, "/me/sign-out-everywhere", Some(&first), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(r.body, Value::Null);
    assert_signed_out(&first, "the token that signed out").await;
    assert_signed_out(&second, "the other session").await;
    let r = place_order(&second, &uuid::Uuid::new_v4().to_string(), Some(&[(&product, 1)])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert_eq!(stock(&product).await, (5, 0, 5), "a refused token reserved nothing");

    let fresh = login(&email, PASSWORD).await;
    assert_signed_in(&fresh, "a new log-in").await;
    order(&fresh, &product, 1).await;

    // The generation is what is checked, not only the signature: tokens signed with the stack's
    // own key for an earlier generation, a later one or none are refused; the current one works.
    let current = claims(&fresh);
    let generation = current["gen"].as_u64().expect("a gen claim");
    assert!(generation >= 1, "signing out moved the generation on: {current}");
    let with_gen = |g: Option<u64>| {
        let mut c = current.clone();
        match g {
            Some(g) => c["gen"] = json!(g),
            None => {
                c.as_object_mut().unwrap().remove("gen");
            }
        }
        sign(&c)
    };
    assert_signed_in(&with_gen(Some(generation)), "a token of the current generation").await;
    for (what, g) in [
        ("the earlier generation", Some(generation - 1)),
        ("a later generation", Some(generation + 1)),
        ("no generation", None),
    ] {
        let r = call(Method::GET, "/cart", Some(&with_gen(g)), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {:?}", r.body);
    }
}

// ---------------------------------------------------------------------------------------------
// Closing an account
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn closing_an_account_cancels_its_pending_orders_keeps_paid_ones_anonymised_and_frees_the_address() {
    let caller = Caller::new();
    let product = product("closing", 10).await;
    let (email, token) = new_customer("closing").await;
    let other_session = login(&email, PASSWORD).await;
    let user = user_of(&token);
    let pending = order(&token, &product, 2).await;
    let paid = order(&token, &product, 3).await;
    let r = pay(&token, json!({"order_id": paid, "token": "tok_success"})).await;
    assert_eq!(r.body["state"], "PAID", "{:?}", r.body);
    let r = call(Method::PUT, &format!("/cart/items/{product}"), Some(&token), Some(json!({"quantity": 1}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(stock(&product).await, (7, 2, 5));
    // A reset link asked for before closing must not outlive the account.
    assert_reset_accepted(&caller.request_reset(&email).await);
    // Welcome, two orders received, the receipt, the reset.
    let sent = expect_mail(&email, 5).await.len();
    let reset = reset_tokens(&email).await.remove(0);

    let r = close(&token, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"deleted": true, "orders_cancelled": 1}));

    // The pending order is cancelled and its units are back; the paid one is kept; both forget
    // the address.
    assert_eq!(stock(&product).await, (7, 0, 7));
    assert_units_conserved(&[&product]).await;
    let (p, q) = (order_item(&pending).await, order_item(&paid).await);
    assert_eq!((s(&p, "state").as_str(), s(&p, "email").as_str()), ("CANCELLED", ""), "{p:?}");
    assert_eq!((s(&q, "state").as_str(), s(&q, "email").as_str()), ("PAID", ""), "{q:?}");
    assert!(!s(&q, "charge_id").is_empty(), "the paid order keeps its charge for accounting: {q:?}");
    // Nothing kept names the address (but outbox events, which leave with the outbox's TTL, and the
    // notifier's sent-mail markers).
    let naming: Vec<String> = scan("attribute_exists(pk)", &[], &[])
        .await
        .iter()
        .filter(|i| format!("{i:?}").to_lowercase().contains(&email.to_lowercase()))
        .map(|i| format!("{}|{}", s(i, "pk"), s(i, "sk")))
        .filter(|k| !k.starts_with("EVENT#") && !k.starts_with("EMAIL_SENT#"))
        .collect();
    assert!(naming.is_empty(), "items still naming the closed account's address: {naming:?}");
    let left: Vec<String> = scan("pk = :u", &[], &[(":u", &format!("USER#{user}"))])
        .await
        .iter()
        .map(|i| s(i, "sk"))
        .filter(|sk| sk.starts_with("CART#"))
        .collect();
    assert!(left.is_empty(), "the cart is emptied: {left:?}");

    assert_signed_out(&token, "the token that closed the account").await;
    assert_signed_out(&other_session, "another session of the closed account").await;
    assert_login_refused(&email, PASSWORD).await;
    let r = caller.confirm_reset(&reset, NEW_PASSWORD).await;
    assert_invalid_reset_token(&r, "a reset token of a closed account");
    assert_login_refused(&email, NEW_PASSWORD).await;
    assert_reset_accepted(&caller.request_reset(&email).await);

    // No e-mail after closing: not for the cancelled order, not for the reset asked for now.
    settle().await;
    let after: Vec<String> = mail_to(&email).await.iter().skip(sent).map(|m| m.subject.clone()).collect();
    assert!(after.is_empty(), "e-mail after the account was closed: {after:?}");

    // The address is free: a new account, with an id of its own, nothing of the old one, and its
    // e-mail goes out.
    let r = call(Method::POST, "/auth/signup", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_ne!(r.body["id"].as_str().unwrap(), user, "a new account, not the old one back");
    let again = login(&email, PASSWORD).await;
    let orders = call(Method::GET, "/orders", Some(&again), None).await;
    assert_eq!(orders.body["items"], json!([]), "{:?}", orders.body);
    let cart = call(Method::GET, "/cart", Some(&again), None).await;
    assert_eq!(cart.body["items"], json!([]), "{:?}", cart.body);
    let mail = expect_mail(&email, sent + 1).await;
    assert_eq!(mail.last().unwrap().subject, "Welcome to the shop");
    assert_signed_out(&token, "the old account's token, once the address has a new account").await;
}

/// Events already on their way when the account closes (here: held up by an SES outage) are
/// dropped, and the sweeper afterwards has nothing of the account to expire or to write about.
#[tokio::test]
async fn no_email_reaches_a_closed_account_not_even_those_already_on_their_way() {
    let product = product("in-flight", 5).await;
    set_service("ses", false).await;
    let restore = Restore("ses");
    let before = function_stats("NotifierFunction").await["invocations"].as_u64().unwrap();
    let (email, token) = new_customer("in-flight").await;
    let pending = order(&token, &product, 2).await;
    // The notifier has the e-mails in hand and keeps failing: wait until it has tried twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while function_stats("NotifierFunction").await["invocations"].as_u64().unwrap() < before + 2 {
        assert!(tokio::time::Instant::now() < deadline, "the notifier was not invoked twice within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mail_to(&email).await.is_empty());

    let r = close(&token, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["orders_cancelled"], 1, "{:?}", r.body);
    // A delivery whose sends had already started when the account closed may still send (the
    // notifier reads the accounts once per delivery, before its sends: docs/sessions.md). Every
    // delivery from the next one on must drop them: wait for two more before SES comes back.
    let closed = function_stats("NotifierFunction").await["invocations"].as_u64().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while function_stats("NotifierFunction").await["invocations"].as_u64().unwrap() < closed + 2 {
        assert!(tokio::time::Instant::now() < deadline, "the notifier was not invoked twice more within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_service("ses", true).await;
    drop(restore);
    settle().await;
    let mail: Vec<String> = mail_to(&email).await.iter().map(|m| m.subject.clone()).collect();
    assert!(mail.is_empty(), "e-mail to a closed account: {mail:?}");

    sweep_at(time::OffsetDateTime::now_utc() + time::Duration::hours(1)).await;
    assert_eq!(s(&order_item(&pending).await, "state"), "CANCELLED");
    assert_eq!(stock(&product).await, (5, 0, 5));
    settle().await;
    let mail: Vec<String> = mail_to(&email).await.iter().map(|m| m.subject.clone()).collect();
    assert!(mail.is_empty(), "e-mail to a closed account after the sweep: {mail:?}");
}

/// An order the closing could not see (placed a moment before, when the per-user order index had
/// not caught up with it: here, its index entry is taken away while the account closes) keeps its
/// units until its deadline; the sweeper then expires it, and its e-mail is not sent: the account
/// is closed.
#[tokio::test]
async fn an_order_the_closing_missed_is_expired_later_without_an_email() {
    let product = product("closing-missed", 5).await;
    let (email, token) = new_customer("closing-missed").await;
    let missed = order(&token, &product, 2).await;
    let sent = expect_mail(&email, 2).await.len();
    let db = dynamodb().await;
    let key = |b: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
        b.table_name(&stack().table)
            .key("pk", AttributeValue::S(format!("ORDER#{missed}")))
            .key("sk", AttributeValue::S("ORDER".into()))
    };
    let item = order_item(&missed).await;
    let (gsi1pk, gsi1sk) = (item["gsi1pk"].clone(), item["gsi1sk"].clone());
    key(db.update_item()).update_expression("REMOVE gsi1pk, gsi1sk").send().await.expect("hiding the order");

    let r = close(&token, PASSWORD).await;
    key(db.update_item())
        .update_expression("SET gsi1pk = :p, gsi1sk = :s")
        .expression_attribute_values(":p", gsi1pk)
        .expression_attribute_values(":s", gsi1sk)
        .send()
        .await
        .expect("the index catching up");
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["orders_cancelled"], 0, "the closing did not see the order: {:?}", r.body);
    assert_eq!(s(&order_item(&missed).await, "state"), "PENDING_PAYMENT");

    sweep_at(time::OffsetDateTime::now_utc() + time::Duration::hours(1)).await;
    assert_eq!(s(&order_item(&missed).await, "state"), "EXPIRED");
    assert_eq!(stock(&product).await, (5, 0, 5));
    assert_units_conserved(&[&product]).await;
    settle().await;
    let after: Vec<String> = mail_to(&email).await.iter().skip(sent).map(|m| m.subject.clone()).collect();
    assert!(after.is_empty(), "e-mail about an order of a closed account: {after:?}");
}

#[tokio::test]
async fn an_admin_cannot_close_their_account_until_demoted() {
    let (email, _) = new_customer("closing-admin").await;
    let (ok, out) = shop_admin(&["promote", &email]);
    assert!(ok, "{out}");
    let admin = login(&email, PASSWORD).await;
    let r = close(&admin, PASSWORD).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.error_code(), "admin_cannot_be_deleted");
    let refunds = call(Method::GET, "/refunds", Some(&admin), None).await;
    assert_eq!(refunds.status, StatusCode::OK, "still an admin, still signed in: {:?}", refunds.body);
    login(&email, PASSWORD).await;

    let (ok, out) = shop_admin(&["demote", &email]);
    assert!(ok, "{out}");
    let customer = login(&email, PASSWORD).await;
    let r = close(&customer, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "once demoted: {:?}", r.body);
    assert_login_refused(&email, PASSWORD).await;
    let (_, out) = shop_admin(&["list"]);
    assert!(!out.contains(&email), "{out}");
}

#[tokio::test]
async fn closing_with_a_wrong_password_changes_nothing() {
    let product = product("closing-wrong", 5).await;
    let (email, token) = new_customer("closing-wrong").await;
    let pending = order(&token, &product, 2).await;
    let r = call(Method::PUT, &format!("/cart/items/{product}"), Some(&token), Some(json!({"quantity": 1}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    expect_mail(&email, 2).await;
    let before = snapshot_without_attempts().await;

    for wrong in ["not my password", &PASSWORD.to_uppercase(), &format!("{PASSWORD} ")] {
        let r = close(&token, wrong).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "wrong_password"), "{wrong:?}: {:?}", r.body);
    }
    for (what, body) in [
        ("no password", Some(json!({}))),
        ("unknown field", Some(json!({"password": PASSWORD, "force": true}))),
        ("no body", None),
    ] {
        let r = call(Method::DELETE, "/me", Some(&token), body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {:?}", r.body);
    }
    let r = call(Method::DELETE, "/me", None, Some(json!({"password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);

    assert_eq!(snapshot_without_attempts().await, before, "a refused closing writes nothing");
    assert_signed_in(&token, "after refused closings").await;
    assert_eq!(s(&order_item(&pending).await, "state"), "PENDING_PAYMENT");
    assert_eq!(stock(&product).await, (5, 2, 3));
    login(&email, PASSWORD).await;
    settle().await;
    assert_eq!(mail_to(&email).await.len(), 2, "no e-mail");
}

#[tokio::test]
async fn closing_twice_at_once_cancels_once_and_is_otherwise_harmless() {
    let product = product("closing-twice", 5).await;
    let (email, token) = new_customer("closing-twice").await;
    let pending = order(&token, &product, 2).await;
    expect_mail(&email, 2).await;

    let replies = join_all((0..8).map(|_| close(&token, PASSWORD))).await;
    let mut cancelled = 0;
    for r in &replies {
        match r.status {
            StatusCode::OK => {
                assert_eq!(r.body["deleted"], true, "{:?}", r.body);
                cancelled += r.body["orders_cancelled"].as_u64().unwrap();
            }
            StatusCode::UNAUTHORIZED => assert_eq!(r.error_code(), "unauthorized"),
            other => panic!("closing at once: {other} {:?}", r.body),
        }
    }
    assert!(replies.iter().any(|r| r.status == StatusCode::OK));
    assert_eq!(
        cancelled,
        1,
        "the order is cancelled by one of them: {:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(s(&order_item(&pending).await, "state"), "CANCELLED");
    assert_eq!(stock(&product).await, (5, 0, 5));
    assert_units_conserved(&[&product]).await;

    let r = close(&token, PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "once more, later: {:?}", r.body);
    assert_login_refused(&email, PASSWORD).await;
    settle().await;
    assert_eq!(mail_to(&email).await.len(), 2, "no e-mail after closing");
}

/// Orders placed while the account closes: each is either refused or cancelled with the rest, and
/// no unit stays reserved for an account that no longer exists.
#[tokio::test]
async fn closing_while_orders_are_placed_leaves_no_unit_reserved() {
    let product = product("closing-race", 400).await;
    let accounts = join_all((0..4).map(|_| new_customer("closing-race"))).await;
    let outcomes = join_all(accounts.iter().map(|(_, token)| {
        let product = product.clone();
        async move {
            let mut before: Vec<_> = (0..15)
                .map(|_| {
                    let key = uuid::Uuid::new_v4().to_string();
                    let product = product.clone();
                    async move { place_order_retrying(token, &key, Some(&[(&product, 1)])).await }
                })
                .collect();
            let after = before.split_off(7);
            // All at once: the closing in the middle of the placements.
            let (before, closed, after) = futures::join!(join_all(before), close(token, PASSWORD), join_all(after));
            (before.into_iter().chain(after).collect::<Vec<_>>(), closed)
        }
    }))
    .await;

    for ((email, token), (placed, closed)) in accounts.iter().zip(&outcomes) {
        assert_eq!(closed.status, StatusCode::OK, "{:?}", closed.body);
        let mut created = BTreeSet::new();
        for r in placed {
            match r.status {
                StatusCode::CREATED | StatusCode::OK => {
                    created.insert(r.body["id"].as_str().unwrap().to_owned());
                }
                StatusCode::UNAUTHORIZED => assert_eq!(r.error_code(), "unauthorized"),
                other => panic!("an order placed while closing: {other} {:?}", r.body),
            }
        }
        let items = orders_of(&user_of(token)).await;
        let states: Vec<(String, String)> = items.iter().map(|i| (s(i, "id"), s(i, "state"))).collect();
        eprintln!(
            "{email}: {} orders created, {} refused, closing cancelled {}",
            created.len(),
            placed.len() - created.len(),
            closed.body["orders_cancelled"]
        );
        assert!(states.iter().all(|(_, state)| state == "CANCELLED"), "orders of a closed account: {states:?}");
        let in_table: BTreeSet<String> = states.into_iter().map(|(id, _)| id).collect();
        assert_eq!(in_table, created, "the orders in the table are those the API said it created");
        assert!(closed.body["orders_cancelled"].as_u64().unwrap() <= created.len() as u64);
        assert!(items.iter().all(|i| s(i, "email").is_empty()), "anonymised");
        assert_login_refused(email, PASSWORD).await;
    }
    assert_eq!(stock(&product).await, (400, 0, 400), "every unit is back");
    assert_units_conserved(&[&product]).await;
    settle().await;
    for (email, _) in &accounts {
        let mail = mail_to(email).await;
        let late: Vec<&str> = mail
            .iter()
            .map(|m| m.subject.as_str())
            .filter(|s| ["Your order was cancelled", "Your order expired"].contains(s))
            .collect();
        assert!(late.is_empty(), "{email}: {late:?}");
    }
}

/// Every charge the gateway took for an order of a closed account that did not end paid has its
/// refund: the money goes back, the units are not kept.
#[tokio::test]
async fn closing_while_paying_never_leaves_a_charge_unrefunded() {
    let product = product("closing-pay", 40).await;
    let accounts = join_all((0..8).map(|_| {
        let product = product.clone();
        async move {
            let (email, token) = new_customer("closing-pay").await;
            let id = order(&token, &product, 2).await;
            (email, token, id)
        }
    }))
    .await;
    let raced = join_all(accounts.iter().map(|(_, token, id)| async move {
        futures::join!(pay(token, json!({"order_id": id, "token": "tok_success"})), close(token, PASSWORD))
    }))
    .await;
    // Whatever webhook is still due is delivered.
    deliver_webhooks_at(time::OffsetDateTime::now_utc() + time::Duration::minutes(30)).await;

    let mut paid = 0;
    let mut refunds = Vec::new();
    for ((_, _, id), (payment, closed)) in accounts.iter().zip(&raced) {
        assert_eq!(closed.status, StatusCode::OK, "{:?}", closed.body);
        assert!(
            [StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::UNPROCESSABLE_ENTITY].contains(&payment.status),
            "payment racing the closing: {} {:?}",
            payment.status,
            payment.body
        );
        let item = order_item(id).await;
        let state = s(&item, "state");
        assert_eq!(s(&item, "email"), "", "anonymised: {item:?}");
        let charges: Vec<Item> =
            scan("begins_with(pk, :c) AND #r = :o", &[("#r", "reference")], &[(":c", "CHARGE#"), (":o", id.as_str())])
                .await
                .into_iter()
                .filter(|c| s(c, "final_status") == "succeeded" || s(c, "status") == "succeeded")
                .collect();
        eprintln!(
            "order {id}: payment {} {}, closing cancelled {}, now {state}, {} charge(s)",
            payment.status,
            payment.body["state"],
            closed.body["orders_cancelled"],
            charges.len()
        );
        match state.as_str() {
            "PAID" => paid += 1,
            "CANCELLED" => {}
            other => panic!("order {id} of a closed account ended {other}"),
        }
        for c in &charges {
            let charge = s(c, "id");
            let kept = state == "PAID" && s(&item, "charge_id") == charge;
            let refund = get_item(&format!("REFUND#{charge}"), "REFUND").await;
            if kept {
                assert!(refund.is_none(), "the charge that paid order {id} is not refunded");
            } else {
                assert!(refund.is_some(), "charge {charge} for order {id} ({state}) has no refund");
                refunds.push((charge, c["amount"].as_n().unwrap().parse::<i64>().unwrap()));
            }
        }
    }
    assert_eq!(stock(&product).await, (40 - 2 * paid, 0, 40 - 2 * paid));
    assert_units_conserved(&[&product]).await;

    // The refund worker pays them back.
    invoke("RefundsFunction", &event("schedule.json")).await;
    for (charge, amount) in &refunds {
        let refund = get_item(&format!("REFUND#{charge}"), "REFUND").await.unwrap();
        assert_eq!(s(&refund, "state"), "REFUNDED", "{refund:?}");
        let ch = gateway(Method::GET, &format!("/gateway/charges/{charge}"), None, None).await;
        assert_eq!(ch.body["amount_refunded"], *amount, "{:?}", ch.body);
    }
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_export_holds_the_account_its_cart_and_its_orders() {
    let (a, b) = (product("export-a", 10).await, product("export-b", 10).await);
    let email = unique_email("export");
    let signup = call(
        Method::POST,
        "/auth/signup",
        None,
        Some(json!({"email": email, "password": PASSWORD, "name": "Export Ann"})),
    )
    .await;
    assert_eq!(signup.status, StatusCode::CREATED, "{:?}", signup.body);
    let token = login(&email, PASSWORD).await;
    let pending = order(&token, &a, 2).await;
    let cancelled = order(&token, &b, 1).await;
    let r = call(Method::POST, &format!("/orders/{cancelled}/cancel"), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for (p, q) in [(&a, 3), (&b, 1)] {
        let r = call(Method::PUT, &format!("/cart/items/{p}"), Some(&token), Some(json!({"quantity": q}))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    let r = call(Method::GET, "/me/export", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.headers.get("content-disposition").and_then(|v| v.to_str().ok()),
        Some("attachment; filename=\"shop-account-export.json\"")
    );
    let keys: BTreeSet<&str> = r.body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["exported_at", "account", "cart", "orders"]), "{}", r.body);
    let exported_at = time::OffsetDateTime::parse(
        r.body["exported_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("exported_at is RFC 3339");
    assert!((time::OffsetDateTime::now_utc() - exported_at).abs() < time::Duration::minutes(1));
    let account = json!({
        "id": signup.body["id"], "email": signup.body["email"], "name": "Export Ann",
        "role": "customer", "created_at": signup.body["created_at"],
    });
    assert_eq!(r.body["account"], account);
    // Each line as `GET /cart` shows it; its product and quantity are what the export must hold.
    let mut cart: Vec<Value> = r.body["cart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| json!({"product_id": l["product_id"], "quantity": l["quantity"]}))
        .collect();
    cart.sort_by_key(|l| l["product_id"].as_str().unwrap().to_owned());
    let mut expected = vec![json!({"product_id": a, "quantity": 3}), json!({"product_id": b, "quantity": 1})];
    expected.sort_by_key(|l| l["product_id"].as_str().unwrap().to_owned());
    assert_eq!(cart, expected);
    let orders = r.body["orders"].as_array().unwrap();
    let ids: BTreeSet<&str> = orders.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from([pending.as_str(), cancelled.as_str()]));
    for o in orders {
        let own = call(Method::GET, &format!("/orders/{}", o["id"].as_str().unwrap()), Some(&token), None).await;
        assert_eq!(*o, own.body, "an exported order is the order as GET /orders/{{id}} shows it");
    }
    let text = r.body.to_string();
    assert!(!text.contains("argon2") && !text.contains("password"), "{text}");

    // Someone else's export holds none of it.
    let (_, stranger) = new_customer("export-stranger").await;
    let theirs = call(Method::GET, "/me/export", Some(&stranger), None).await;
    assert_eq!(theirs.status, StatusCode::OK, "{:?}", theirs.body);
    assert_ne!(theirs.body["account"]["id"], account["id"]);
    assert_eq!((&theirs.body["cart"], &theirs.body["orders"]), (&json!([]), &json!([])));
}

#[tokio::test]
async fn the_export_needs_a_valid_token() {
    let (_, token) = new_customer("export-auth").await;
    for bad in [None, Some("not-a-jwt")] {
        let r = call(Method::GET, "/me/export", bad, None).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{bad:?}");
    }
    let r = call(Method::POST, "/me/sign-out-everywhere", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = call(Method::GET, "/me/export", Some(&token), None).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"), "a signed-out token");
}
