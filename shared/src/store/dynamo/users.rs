//! Users and their credentials.
//!
//! E-mail uniqueness cannot be a secondary-index constraint in DynamoDB, so it is an item of its
//! own, `EMAIL#<lower-case email>`, created with `attribute_not_exists(pk)` in the same transaction
//! as the profile: two signups racing for one address cannot both succeed. The claim item also holds
//! the password hash and role, so login is a single `GetItem`.

use super::transact::TransactError;
use super::{DynamoStore, decode_error, keys, outbox};
use crate::domain::user::{Role, User};
use crate::events::event::Event;
use crate::store::{CreateUserError, Credentials, StoreError, UserStore};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
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
struct CredentialsItem {
    pk: String,
    sk: String,
    user_id: Uuid,
    email: String,
    role: Role,
    password_hash: String,
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

    async fn credentials(&self, email_normalized: &str) -> Result<Option<Credentials>, StoreError> {
        let item: Option<CredentialsItem> = self.get(keys::email(email_normalized)).await?;
        Ok(item.map(|c| Credentials {
            user_id: c.user_id,
            email: c.email,
            role: c.role,
            password_hash: c.password_hash,
        }))
    }
}
