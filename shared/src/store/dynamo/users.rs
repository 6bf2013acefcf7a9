//! Users and their credentials.
//!
//! E-mail uniqueness cannot be a secondary-index constraint in DynamoDB, so it is an item of its
//! own, `EMAIL#<lower-case email>`, created with `attribute_not_exists(pk)` in the same transaction
//! as the profile: two signups racing for one address cannot both succeed. The claim item also holds
//! the password hash and role, so login is a single `GetItem`.
//!
//! Roles: everyone signs up a customer. `set_role` (the operator's `shop-admin`) changes the role
//! on both items in one transaction, and puts an admin's profile in the sparse `gsi1` partition
//! `ADMINS` (sort key: the normalised e-mail), so listing the admins is one query; a demotion
//! takes it out again. Every signed-in request reads the profile's role and session generation
//! (`session`, see `auth::session`): a demotion or a sign-out takes effect at once, not when the
//! last token issued before it expires. Password resets, changes and closing an account are
//! `accounts.rs`'s.

use super::index::Partition;
use super::transact::TransactError;
use super::{DynamoStore, decode_error, keys, outbox};
use crate::domain::user::Email;
use crate::domain::user::{Role, User};
use crate::events::event::Event;
use crate::store::{
    CreateUserError, Credentials, Member, RoleStore, SessionState, SessionStore, StoreError, UserStore,
};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Serialize)]
struct ProfileItem<'a> {
    pk: String,
    sk: &'static str,
    #[serde(flatten)]
    user: &'a User,
}

#[derive(Serialize, Deserialize)]
pub(super) struct CredentialsItem {
    pk: String,
    sk: String,
    pub(super) user_id: Uuid,
    pub(super) email: String,
    pub(super) role: Role,
    pub(super) password_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) reset_hash: Option<String>,
}

fn put_new(table: &str, item: impl Serialize) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(serde_dynamo::to_item(item).map_err(decode_error)?))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| StoreError::Other(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User, password_hash: &str, event: &Event) -> Result<(), CreateUserError> {
        let (pk, sk) = keys::email(&user.email.normalized());
        let claim = CredentialsItem {
            pk,
            sk: sk.to_owned(),
            user_id: user.id,
            email: user.email.as_str().to_owned(),
            role: user.role,
            password_hash: password_hash.to_owned(),
            reset_hash: None,
        };
        let (pk, sk) = keys::user(user.id);
        let items = vec![
            put_new(&self.table, claim)?,
            put_new(&self.table, ProfileItem { pk, sk, user })?,
            outbox::put_event(&self.table, event)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) if e.failed_conditions().contains(&0) => Err(CreateUserError::EmailTaken),
            Err(TransactError::Store(e)) => Err(e.into()),
            Err(e) => Err(StoreError::Other(e.to_string()).into()),
        }
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        let item: Option<CredentialsItem> = self.get(keys::email(&email.normalized())).await?;
        Ok(item.map(Credentials::from))
    }
}

impl From<CredentialsItem> for Credentials {
    fn from(c: CredentialsItem) -> Self {
        Self {
            user_id: c.user_id,
            email: c.email,
            role: c.role,
            password_hash: c.password_hash,
            reset_hash: c.reset_hash,
        }
    }
}

const ADMINS: &str = "ADMINS";

/// The part of a profile every signed-in request reads (see `auth::session`): `session_gen`
/// and `closed_at` are absent until first set (generation 0, open).
#[derive(Deserialize)]
struct SessionItem {
    role: Role,
    #[serde(default)]
    session_gen: u64,
    #[serde(default)]
    closed_at: Option<String>,
}

impl SessionStore for DynamoStore {
    async fn session(&self, user_id: Uuid) -> Result<Option<SessionState>, StoreError> {
        Ok(self.get::<SessionItem>(keys::user(user_id)).await?.map(|p| SessionState {
            role: p.role,
            generation: p.session_gen,
            closed: p.closed_at.is_some(),
        }))
    }
}

/// A profile item as sign-up writes it (the benchmark writes its customers' this way too).
pub fn profile_item(user: &User) -> Result<super::Item, StoreError> {
    let (pk, sk) = keys::user(user.id);
    serde_dynamo::to_item(ProfileItem { pk, sk, user }).map_err(decode_error)
}

#[derive(Deserialize)]
struct AdminProfile {
    id: Uuid,
    email: String,
    role: Role,
}

impl RoleStore for DynamoStore {
    async fn set_role(&self, email: &Email, role: Role) -> Result<Option<Member>, StoreError> {
        let Some(c) = self.get::<CredentialsItem>(keys::email(&email.normalized())).await? else { return Ok(None) };
        let role_value: AttributeValue = serde_dynamo::to_attribute_value(role).map_err(decode_error)?;
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::email(&email.normalized()))))
            .update_expression("SET #role = :role")
            .condition_expression("user_id = :user")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":role", role_value.clone())
            .expression_attribute_values(":user", AttributeValue::S(c.user_id.to_string()));
        let profile = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::user(c.user_id))))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":role", role_value);
        let profile = match role {
            Role::Admin => profile
                .update_expression("SET #role = :role, gsi1pk = :admins, gsi1sk = :email")
                .expression_attribute_values(":admins", AttributeValue::S(ADMINS.into()))
                .expression_attribute_values(":email", AttributeValue::S(email.normalized())),
            Role::Customer => profile.update_expression("SET #role = :role REMOVE gsi1pk, gsi1sk"),
        };
        let built = |u: aws_sdk_dynamodb::error::BuildError| StoreError::Other(u.to_string());
        let items = vec![
            TransactWriteItem::builder().update(claim.build().map_err(built)?).build(),
            TransactWriteItem::builder().update(profile.build().map_err(built)?).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(Some(Member { user_id: c.user_id, email: c.email, role })),
            Err(TransactError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Other(format!("role of {} not changed: {e}", c.user_id))),
        }
    }

    async fn admins(&self) -> Result<Vec<Member>, StoreError> {
        let mut members = Vec::new();
        let mut after: Option<((String, &'static str), String)> = None;
        loop {
            // Sort keys are e-mails: "below" the highest code point, so the whole partition.
            let page = self.due(&Partition::gsi1(ADMINS), "\u{10FFFF}".into(), after.take(), 100, None).await?;
            let full = page.len() == 100;
            for item in page {
                let p: AdminProfile = serde_dynamo::from_item(item).map_err(decode_error)?;
                after = Some((keys::user(p.id), p.email.to_lowercase()));
                members.push(Member { user_id: p.id, email: p.email, role: p.role });
            }
            if !full {
                return Ok(members);
            }
        }
    }
}
