//! Accounts after sign-up: password resets, password changes, signing out everywhere, closing.
//!
//! **Sessions** are one number on the profile, `session_gen` (absent = 0): every token carries the
//! generation it was issued in, and moving the account to the next one refuses every token issued
//! before, at once (see `auth::session`). Each change below that must sign sessions out moves it in
//! the same transaction as the change itself.
//!
//! **Reset tokens** live in two places, so that a request can be written without reading the
//! account first (the answer must not depend on whether there is one, in body or in time):
//! - the credentials item `EMAIL#<address>` holds the current token's hash and its end
//!   (`reset_hash`, `reset_valid_until`); a new request overwrites both, so an earlier token stops
//!   working the moment a newer one exists;
//! - `RESET#<hash>` maps the hash back to the address (a link carries only the token), with the
//!   table's TTL set a day after the token's end.
//!
//! A token resets the password only while both agree: the `RESET#` item exists, the credentials
//! item still holds that hash, and the end has not passed — checked again as the transaction's
//! condition, so two uses racing cannot both win.
//!
//! **Closing** deletes the credentials item (the address is free to sign up again, as a new
//! account) and keeps a tombstone profile: the id, role, creation and closing times, no e-mail or
//! name. The tombstone is what refuses the account's tokens and what the notifier reads to drop
//! its e-mails.

use super::transact::TransactError;
use super::transition::built;
use super::users::CredentialsItem;
use super::{DynamoStore, Item, applied, decode_error, keys, outbox};
use crate::domain::order::Order;
use crate::domain::user::{Email, Role, User};
use crate::events::event::Event;
use crate::store::{AccountStore, Credentials, Recipients, ResetTarget, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::Deserialize;
use std::collections::HashSet;
use uuid::Uuid;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `SET session_gen = session_gen + 1` for a profile that may never have had one; its values
/// come with [`NextGeneration::next_generation_values`].
const NEXT_GENERATION: &str = "session_gen = if_not_exists(session_gen, :zero) + :one";

/// The values [`NEXT_GENERATION`] names, for a transaction's update and a single `UpdateItem`
/// alike (two builder types with the same method).
trait NextGeneration: Sized {
    fn value(self, name: &str, v: AttributeValue) -> Self;

    fn next_generation_values(self) -> Self {
        self.value(":zero", n(0)).value(":one", n(1))
    }
}

impl NextGeneration for aws_sdk_dynamodb::types::builders::UpdateBuilder {
    fn value(self, name: &str, v: AttributeValue) -> Self {
        self.expression_attribute_values(name, v)
    }
}

impl NextGeneration for aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    fn value(self, name: &str, v: AttributeValue) -> Self {
        self.expression_attribute_values(name, v)
    }
}

/// The profile update that moves an open account to its next generation.
fn next_generation(table: &str, user_id: Uuid) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    Update::builder()
        .table_name(table)
        .set_key(Some(keys::key(keys::user(user_id))))
        .update_expression(format!("SET {NEXT_GENERATION}"))
        .condition_expression("attribute_exists(pk) AND attribute_not_exists(closed_at)")
        .next_generation_values()
}

fn update(u: aws_sdk_dynamodb::types::builders::UpdateBuilder) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder().update(built(u.build())?).build())
}

#[derive(Deserialize)]
struct ResetItem {
    email: String,
    valid_until: i64,
}

#[derive(Deserialize)]
struct ResetOnCredentials {
    user_id: Uuid,
    #[serde(default)]
    reset_hash: Option<String>,
    #[serde(default)]
    reset_valid_until: Option<i64>,
}

impl AccountStore for DynamoStore {
    async fn request_reset(
        &self,
        email: &Email,
        token_hash: &str,
        expires_at: time::OffsetDateTime,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let until = expires_at.unix_timestamp();
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::email(&email.normalized()))))
            .update_expression("SET reset_hash = :hash, reset_valid_until = :until")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":hash", s(token_hash))
            .expression_attribute_values(":until", n(until));
        let mut item: Item = keys::key(keys::reset(token_hash));
        item.insert("email".into(), s(email.normalized()));
        item.insert("valid_until".into(), n(until));
        item.insert(keys::TTL.into(), n(until + 24 * 3600));
        let lookup = Put::builder().table_name(&self.table).set_item(Some(item));
        let items = vec![
            update(claim)?,
            TransactWriteItem::builder().put(built(lookup.build())?).build(),
            outbox::put_event(&self.table, event)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_conditions().contains(&0) => Ok(false),
            Err(TransactError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Other(e.to_string())),
        }
    }

    async fn reset_target(
        &self,
        token_hash: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<ResetTarget>, StoreError> {
        let t = now.unix_timestamp();
        let Some(reset) = self.get::<ResetItem>(keys::reset(token_hash)).await? else { return Ok(None) };
        if reset.valid_until <= t {
            return Ok(None);
        }
        let Some(claim) = self.get::<ResetOnCredentials>(keys::email(&reset.email)).await? else { return Ok(None) };
        let current = claim.reset_hash.as_deref() == Some(token_hash) && claim.reset_valid_until.is_some_and(|u| u > t);
        Ok(current.then_some(ResetTarget { user_id: claim.user_id, email: reset.email }))
    }

    async fn complete_reset(
        &self,
        target: &ResetTarget,
        token_hash: &str,
        password_hash: &str,
        now: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::email(&target.email))))
            .update_expression("SET password_hash = :p REMOVE reset_hash, reset_valid_until")
            .condition_expression("reset_hash = :hash AND reset_valid_until > :now AND user_id = :user")
            .expression_attribute_values(":p", s(password_hash))
            .expression_attribute_values(":hash", s(token_hash))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .expression_attribute_values(":user", s(target.user_id.to_string()));
        let spent = Delete::builder().table_name(&self.table).set_key(Some(keys::key(keys::reset(token_hash))));
        let items = vec![
            update(claim)?,
            update(next_generation(&self.table, target.user_id))?,
            TransactWriteItem::builder().delete(built(spent.build())?).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(TransactError::Store(e)) => Err(e),
            // A condition failed: used, superseded or expired meanwhile, or the account closed.
            Err(_) => Ok(false),
        }
    }

    async fn password_of(&self, user_id: Uuid) -> Result<Option<Credentials>, StoreError> {
        let Some(profile) = self.profile(user_id).await? else { return Ok(None) };
        let item: Option<CredentialsItem> = self.get(keys::email(&profile.email.normalized())).await?;
        Ok(item.filter(|c| c.user_id == user_id).map(Credentials::from))
    }

    async fn change_password(&self, c: &Credentials, password_hash: &str, from: u64) -> Result<bool, StoreError> {
        let normalized = Email::parse(&c.email).map_err(StoreError::Other)?.normalized();
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::email(&normalized))))
            .update_expression("SET password_hash = :p")
            .condition_expression("user_id = :user")
            .expression_attribute_values(":p", s(password_hash))
            .expression_attribute_values(":user", s(c.user_id.to_string()));
        let at_from = if from == 0 {
            "(attribute_not_exists(session_gen) OR session_gen = :from)"
        } else {
            "session_gen = :from"
        };
        let profile = next_generation(&self.table, c.user_id)
            .condition_expression(format!("attribute_exists(pk) AND attribute_not_exists(closed_at) AND {at_from}"))
            .expression_attribute_values(":from", n(i64::try_from(from).unwrap_or(i64::MAX)));
        match self.transact(vec![update(claim)?, update(profile)?]).await {
            Ok(()) => Ok(true),
            Err(TransactError::Store(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    async fn sign_out_everywhere(&self, user_id: Uuid) -> Result<bool, StoreError> {
        applied(
            self.update(keys::user(user_id))
                .update_expression(format!("SET {NEXT_GENERATION}"))
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(closed_at)")
                .next_generation_values()
                .send()
                .await,
        )
    }

    async fn profile(&self, user_id: Uuid) -> Result<Option<User>, StoreError> {
        // A closed account's tombstone has no e-mail or name: it is not a `User` any more.
        match self.get_item(keys::user(user_id)).await? {
            Some(item) if !item.contains_key("closed_at") => {
                Ok(Some(serde_dynamo::from_item(item).map_err(decode_error)?))
            }
            _ => Ok(None),
        }
    }

    async fn close_account(&self, c: &Credentials, now: time::OffsetDateTime) -> Result<bool, StoreError> {
        let normalized = Email::parse(&c.email).map_err(StoreError::Other)?.normalized();
        let role = serde_dynamo::to_attribute_value::<_, AttributeValue>(Role::Customer).map_err(decode_error)?;
        let claim = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::email(&normalized))))
            .condition_expression("user_id = :user AND #role = :customer")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":user", s(c.user_id.to_string()))
            .expression_attribute_values(":customer", role.clone());
        let profile = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::user(c.user_id))))
            .update_expression(format!("SET closed_at = :now, {NEXT_GENERATION} REMOVE email, #name, gsi1pk, gsi1sk"))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(closed_at) AND #role = :customer")
            .expression_attribute_names("#role", "role")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":now", s(keys::instant(now)))
            .next_generation_values()
            .expression_attribute_values(":customer", role);
        let mut items = vec![TransactWriteItem::builder().delete(built(claim.build())?).build(), update(profile)?];
        // The current reset token's item names the address: it goes too. (Superseded ones do as
        // their TTL runs out, a day after their end.) Its hash came with the credentials: if a
        // reset was asked for since, the claim's condition still holds and that newer token's
        // item lives out its day, unusable (its credentials are gone).
        if let Some(hash) = &c.reset_hash {
            let spent = Delete::builder().table_name(&self.table).set_key(Some(keys::key(keys::reset(hash))));
            items.push(TransactWriteItem::builder().delete(built(spent.build())?).build());
        }
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(TransactError::Store(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    async fn anonymise_order(&self, order: &Order) -> Result<(), StoreError> {
        let erase = |key: (String, &'static str)| {
            self.update(key)
                .update_expression("SET email = :erased")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":erased", s(""))
                .send()
        };
        applied(erase(keys::order(order.id)).await)?;
        if let Some(charge) = &order.charge_id {
            applied(erase(keys::refund(charge)).await)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ProfileState {
    id: Uuid,
    #[serde(default)]
    closed_at: Option<String>,
}

#[derive(Deserialize)]
struct ClaimReset {
    pk: String,
    #[serde(default)]
    reset_hash: Option<String>,
    #[serde(default)]
    reset_valid_until: Option<i64>,
}

impl Recipients for DynamoStore {
    async fn closed_accounts(&self, users: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let unique: HashSet<Uuid> = users.iter().copied().collect();
        if unique.is_empty() {
            return Ok(HashSet::new());
        }
        let keys = unique.iter().map(|u| keys::key(keys::user(*u))).collect();
        let mut closed = HashSet::new();
        // A closed account keeps its tombstone for this; an id with no profile at all (a sample
        // event, a hand-made one) is not a closed account.
        for item in self.batch_get_projected(keys, true, Some("id, closed_at")).await? {
            let p: ProfileState = serde_dynamo::from_item(item).map_err(decode_error)?;
            if p.closed_at.is_some() {
                closed.insert(p.id);
            }
        }
        Ok(closed)
    }

    async fn current_resets(
        &self,
        resets: &[(String, String)],
        now: time::OffsetDateTime,
    ) -> Result<HashSet<String>, StoreError> {
        if resets.is_empty() {
            return Ok(HashSet::new());
        }
        let addresses: HashSet<&str> = resets.iter().map(|(a, _)| a.as_str()).collect();
        let keys = addresses.iter().map(|a| keys::key(keys::email(a))).collect();
        let t = now.unix_timestamp();
        let mut current = HashSet::new();
        for item in self.batch_get_projected(keys, true, Some("pk, reset_hash, reset_valid_until")).await? {
            let c: ClaimReset = serde_dynamo::from_item(item).map_err(decode_error)?;
            if let (Some(hash), Some(until)) = (c.reset_hash, c.reset_valid_until)
                && until > t
                && c.pk.starts_with("EMAIL#")
            {
                current.insert(hash);
            }
        }
        Ok(current)
    }
}
