//! `GET /me/export`: everything the shop keeps about the caller, as one JSON document (GDPR's
//! right of access and to portability): the account, the cart and every order, each order exactly
//! as `GET /orders/{id}` shows it. Served as a download (`Content-Disposition: attachment`).

use super::close::all_orders;
use super::{Account, AccountPorts};
use crate::auth::session::{ended, reading};
use crate::error::ApiError;
use crate::http::json;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::json;

pub async fn export<S: AccountPorts>(account: &Account<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    let store = &account.store;
    let document = reading(req, &account.tokens, store, |me| async move {
        let (profile, cart, orders) =
            tokio::join!(store.profile(me.user_id), store.cart(me.user_id), all_orders(store, me.user_id));
        let profile = profile?.ok_or_else(ended)?;
        let cart = crate::api::cart::cart_view(&cart?);
        let exported_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| ApiError::internal(&e))?;
        Ok(json!({
            "exported_at": exported_at,
            "account": profile,
            "cart": cart["items"],
            "orders": orders?,
        }))
    })
    .await?;
    let mut resp = json(StatusCode::OK, &document);
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"shop-account-export.json\""),
    );
    Ok(resp)
}
