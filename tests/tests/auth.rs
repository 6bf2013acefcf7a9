//! Sign up and log in, end to end, and every way a token can be wrong.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shop_tests::*;

#[tokio::test]
async fn signup_then_login_gives_a_one_hour_token_that_the_api_accepts() {
    let email = unique_email("ann");
    let r =
        call(Method::POST, "/auth/signup", None, Some(json!({"email": email, "password": PASSWORD, "name": "Ann"})))
            .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["email"], email);
    assert_eq!(r.body["role"], "customer");
    assert!(r.body.get("password_hash").is_none() && !r.body.to_string().contains("argon2"));
    let user_id = r.body["id"].as_str().unwrap().to_owned();

    // Stored: argon2id hash with OWASP parameters, never the password.
    let creds = get_item(&format!("EMAIL#{}", email.to_lowercase()), "CREDENTIALS").await.expect("credentials item");
    let hash = creds["password_hash"].as_s().unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!format!("{creds:?}").contains(PASSWORD));
    assert!(get_item(&format!("USER#{user_id}"), "PROFILE").await.is_some());

    let r = call(Method::POST, "/auth/login", None, Some(json!({"email": email.to_uppercase(), "password": PASSWORD})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "login is case-insensitive on the email: {:?}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3600);
    let token = r.body["token"].as_str().unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["sub"], user_id);
    assert_eq!(claims["role"], "customer");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert_eq!(claims["iss"], stack().jwt_issuer);
    assert_eq!(claims["aud"], stack().jwt_audience);

    // The token authenticates: a customer gets past 401 to the role check (403).
    let r = call(Method::POST, "/products", Some(token), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
}

#[tokio::test]
async fn signup_writes_the_welcome_event_to_the_outbox_in_the_same_transaction() {
    let email = unique_email("welcome");
    let r = call(Method::POST, "/auth/signup", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // The event may already be published (and out of the pending index): look at the items.
    use aws_sdk_dynamodb::types::AttributeValue;
    let db = dynamodb().await;
    let mut mine = Vec::new();
    let mut start = None;
    loop {
        let page = db
            .scan()
            .table_name(&stack().table)
            .filter_expression("sk = :e AND aggregate_id = :u")
            .expression_attribute_values(":e", AttributeValue::S("EVENT".into()))
            .expression_attribute_values(":u", AttributeValue::S(r.body["id"].as_str().unwrap().into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        mine.extend(page.items().iter().cloned());
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["type"].as_s().unwrap(), "user.signed_up");
    let payload: serde_json::Value = serde_json::from_str(mine[0]["payload"].as_s().unwrap()).unwrap();
    assert_eq!(payload["data"]["email"], email);
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_whatever_its_case() {
    let email = unique_email("dup");
    let first = call(Method::POST, "/auth/signup", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again =
        call(Method::POST, "/auth/signup", None, Some(json!({"email": email.to_uppercase(), "password": PASSWORD})))
            .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "email_taken");
}

#[tokio::test]
async fn racing_signups_for_one_email_create_exactly_one_account() {
    let email = unique_email("race");
    let replies =
        join_all((0..16).map(|i| {
            let address = if i % 2 == 0 { email.clone() } else { email.to_uppercase() };
            async move {
                call(Method::POST, "/auth/signup", None, Some(json!({"email": address, "password": PASSWORD}))).await
            }
        }))
        .await;
    let created = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let conflicts = replies.iter().filter(|r| r.status == StatusCode::CONFLICT).count();
    assert_eq!((created, conflicts), (1, 15), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    let creds = get_item(&format!("EMAIL#{}", email.to_lowercase()), "CREDENTIALS").await.unwrap();
    let winner = replies.iter().find(|r| r.status == StatusCode::CREATED).unwrap();
    assert_eq!(creds["user_id"].as_s().unwrap(), winner.body["id"].as_str().unwrap());
}

#[tokio::test]
async fn login_does_not_reveal_whether_an_email_exists() {
    let (email, _) = new_customer("secretive").await;
    let wrong_password =
        call(Method::POST, "/auth/login", None, Some(json!({"email": email, "password": "not the password"}))).await;
    let unknown = call(
        Method::POST,
        "/auth/login",
        None,
        Some(json!({"email": unique_email("nobody"), "password": "not the password"})),
    )
    .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.error_code(), unknown.error_code());
    assert_eq!(wrong_password.body["error"]["message"], unknown.body["error"]["message"]);
}

fn forge(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

fn sign(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn every_kind_of_bad_token_is_a_401() {
    let (_, token) = new_customer("jwt").await;
    let admin = admin_token().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let admin_claims = |iat: i64, exp: i64| {
        json!({"sub": uuid::Uuid::new_v4(), "role": "admin", "email": "evil@x.io", "iss": stack().jwt_issuer,
            "aud": stack().jwt_audience, "iat": iat, "exp": exp})
    };
    let parts: Vec<&str> = admin.split('.').collect();
    let tampered_payload = {
        let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        let sig = token.split('.').nth(2).unwrap();
        format!(
            "{}.{}.{sig}",
            token.split('.').next().unwrap(),
            URL_SAFE_NO_PAD.encode(claims.replace("\"customer\"", "\"admin\""))
        )
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("alg none", Some(forge(json!({"alg": "none", "typ": "JWT"}), admin_claims(now, now + 600), ""))),
        ("wrong key", Some(sign(&admin_claims(now, now + 600), "an-attacker-chosen-secret-of-32-bytes!"))),
        ("expired", Some(sign(&admin_claims(now - 7200, now - 3600), &stack().jwt_secret))),
        ("tampered payload", Some(tampered_payload)),
        ("signature of another token", Some(format!("{}.{}.{}", parts[0], parts[1], token.split('.').nth(2).unwrap()))),
        ("garbage", Some("not-a-jwt".into())),
        ("empty", Some(String::new())),
        (
            "wrong audience",
            Some(sign(
                &json!({"sub": uuid::Uuid::new_v4(), "role": "admin", "email": "e@x.io", "iss": stack().jwt_issuer,
                    "aud": "someone-else", "iat": now, "exp": now + 600}),
                &stack().jwt_secret,
            )),
        ),
    ];
    for (name, bad) in cases {
        let body = json!({"name": "Forged", "price": {"amount": 100, "currency": "EUR"}, "stock": 1});
        let r = call(Method::POST, "/products", bad.as_deref(), Some(body)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}: {:?}", r.body);
        assert_eq!(r.error_code(), "unauthorized", "{name}");
    }
    // A scheme other than Bearer.
    let r = client()
        .post(format!("{}/products", stack().api))
        .header("authorization", format!("Basic {admin}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Other tests run alongside, so check only that no product named "Forged" appeared.
    let forged = table_snapshot().await.values().filter(|v| v.contains("Forged")).count();
    assert_eq!(forged, 0);
}

/// Signing up never makes an admin, whatever the address; the operator's `shop-admin` does, with
/// AWS credentials of their own, and a demotion takes effect at once, old tokens included.
#[tokio::test]
async fn admins_are_made_by_the_operator_not_by_signing_up() {
    let product = json!({"name": "Guessed", "price": {"amount": 100, "currency": "EUR"}});
    // An attacker signing up first with a guessable admin address gets a customer account.
    let email = format!("admin-{}@shop.local", uuid::Uuid::new_v4().simple());
    let r = call(Method::POST, "/auth/signup", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!((r.status, r.body["role"].as_str()), (StatusCode::CREATED, Some("customer")), "{:?}", r.body);
    let customer = login(&email, PASSWORD).await;
    let r = call(Method::POST, "/products", Some(&customer), Some(product.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);

    let (ok, out) = shop_admin(&["promote", &email.to_uppercase()]);
    assert!(ok && out.contains("is now an admin"), "{out}");
    let admin = login(&email, PASSWORD).await;
    let r = call(Method::POST, "/products", Some(&admin), Some(product.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (ok, out) = shop_admin(&["list"]);
    assert!(ok && out.contains(&email) && out.contains(stack().admin_email.as_str()), "{out}");

    let (ok, out) = shop_admin(&["demote", &email]);
    assert!(ok && out.contains("is now a customer"), "{out}");
    let r = call(Method::POST, "/products", Some(&admin), Some(product)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the admin token of a demoted account: {:?}", r.body);
    let (_, out) = shop_admin(&["list"]);
    assert!(!out.contains(&email), "{out}");

    let (ok, out) = shop_admin(&["promote", &unique_email("nobody")]);
    assert!(!ok && out.contains("sign up with it first"), "{out}");
}

/// SES sends to ASCII local parts only and needs IDN domains in Punycode: a sign-up with a
/// non-ASCII domain becomes its Punycode form (and the welcome e-mail goes there).
#[tokio::test]
async fn idn_domains_are_kept_in_punycode() {
    let local = format!("idn-{}", uuid::Uuid::new_v4().simple());
    let r = call(
        Method::POST,
        "/auth/signup",
        None,
        Some(json!({"email": format!("{local}@bücher.example"), "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["email"], format!("{local}@xn--bcher-kva.example"));
    // Either spelling logs in to the one account.
    login(&format!("{local}@bücher.example"), PASSWORD).await;
    login(&format!("{local}@XN--BCHER-KVA.example"), PASSWORD).await;
}

/// Guessing a password is slowed down per address, the same for an account and for an address
/// nobody has (so the limit tells nothing), counted atomically under concurrency, with `Retry-After`.
#[tokio::test]
async fn guessing_passwords_is_throttled_without_telling_who_has_an_account() {
    let (email, _) = new_customer("guessed").await;
    let nobody = unique_email("nobody");
    for address in [&email, &nobody] {
        let guesses = futures::future::join_all((0..12).map(|i| {
            call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": address, "password": format!("wrong guess {i}")})),
            )
        }))
        .await;
        let refused = guesses.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
        let throttled: Vec<_> = guesses.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
        assert_eq!((refused, throttled.len()), (10, 2), "{address}: 10 attempts per window, then 429");
        assert_eq!(throttled[0].error_code(), "too_many_attempts");
        let retry: u64 = throttled[0].headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
    }
    // While throttled, even the right password waits.
    let r = call(Method::POST, "/auth/login", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
}

/// A successful log-in starts the count again: an owner who mistypes a few times is not locked out.
#[tokio::test]
async fn a_successful_login_resets_the_count() {
    let (email, _) = new_customer("typo").await;
    for _ in 0..2 {
        for _ in 0..8 {
            let r =
                call(Method::POST, "/auth/login", None, Some(json!({"email": email, "password": "a typo here"}))).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        login(&email, PASSWORD).await;
    }
}
