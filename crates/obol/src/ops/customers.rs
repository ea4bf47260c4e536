//! Customers: obol's record of the host application's customers, and the
//! Stripe customer each gets once (`ensure_stripe_customer`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::CustomerId;
use crate::storage::customers::{CustomerRow, NewCustomer};
use crate::stripe::{IdempotencyKey, Params};
use crate::validate;

/// Body of `POST /v1/customers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerIn {
    /// The host application's own id for this customer; unique per account.
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerOut {
    #[schema(value_type = crate::ids::CustomerId)]
    pub id: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Stripe's `cus_…`, created the first time a payment needs it (or
    /// the Stripe customer this one was adopted from).
    pub stripe_customer_id: Option<String>,
    /// `obol`: created through obol's API; `stripe`: a Stripe customer obol
    /// did not create (made in Stripe's dashboard, say), adopted from its
    /// `customer.*` events. Either way the e-mail and name follow Stripe's
    /// `customer.updated`.
    #[schema(example = "obol")]
    pub source: String,
    /// When the Stripe customer was deleted (`customer.deleted`): its saved
    /// cards are gone and it cannot be charged; its payments stay. Null
    /// while it exists.
    pub stripe_customer_deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<CustomerRow> for CustomerOut {
    fn from(r: CustomerRow) -> Self {
        CustomerOut {
            id: r.id,
            external_id: r.external_id,
            email: r.email,
            name: r.name,
            stripe_customer_id: r.stripe_customer_id,
            source: r.source,
            stripe_customer_deleted_at: r.stripe_deleted_at,
            created_at: r.created_at,
        }
    }
}

/// Creates a customer (secret key). A taken `external_id` is
/// `customer_exists` with `existing_id`, so a host retrying after a
/// timeout finds its record.
pub async fn create(ctx: &Ctx, actor: &Actor, body: CustomerIn) -> Result<CustomerOut> {
    let Actor::Secret { account } = actor else {
        return Err(Error::SecretKeyRequired);
    };
    let external_id = body
        .external_id
        .as_deref()
        .map(|s| validate::text("external_id", s, 255))
        .transpose()?;
    let email = body.email.as_deref().map(validate::email).transpose()?;
    let name = body
        .name
        .as_deref()
        .map(|s| validate::text("name", s, 255))
        .transpose()?;

    let id = CustomerId::generate();
    let mut handle = ctx.store().acquire().await?;
    let mut conn = handle.conn();
    let new = NewCustomer {
        id: &id,
        account_id: account.as_str(),
        external_id,
        email: email.as_deref(),
        name,
        now: ctx.now(),
    };
    match conn.insert_customer(&new).await? {
        Some(row) => {
            tracing::info!(customer_id = %row.id, "customer created");
            Ok(row.into())
        }
        None => {
            let external_id = external_id.unwrap_or_default();
            let existing = conn
                .get_customer_by_external_id(account.as_str(), external_id)
                .await?
                .ok_or_else(|| Error::internal("unique violation without a matching customer"))?;
            Err(Error::CustomerExists {
                external_id: external_id.to_string(),
                existing_id: existing.id,
            })
        }
    }
}

/// A customer, for the secret key or that customer's own token.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<CustomerOut> {
    // A malformed id is as unknown as a well-formed one that does not exist.
    let id = CustomerId::parse(id).map_err(|_| Error::NotFound(Resource::Customer))?;
    if !actor.may_access_customer_object(Some(&id)) {
        return Err(Error::NotFound(Resource::Customer));
    }
    let mut handle = ctx.store().acquire().await?;
    let row = handle
        .conn()
        .get_customer(actor.account(), &id)
        .await?
        .ok_or(Error::NotFound(Resource::Customer))?;
    Ok(row.into())
}

/// Stripe's customer (`cus_…`) for obol's customer `customer_id`, created
/// at Stripe the first time it is needed, with `metadata[obol_customer_id]`,
/// the e-mail and the name. Exactly one per customer: the create carries a
/// key derived from obol's id, so concurrent calls and retries get the same
/// Stripe customer, and the first write of it wins (`… WHERE
/// stripe_customer_id IS NULL`, then read back). A Stripe customer deleted
/// at Stripe (its `customer.deleted` applied) cannot be charged or given a
/// card again, so it is replaced the same way, with a key derived from the
/// deleted one too. Unknown or another account's customer:
/// `customer_not_found`. Stripe is called with the secret key's budget; a
/// use case acting for someone else charges its own budget first.
pub async fn ensure_stripe_customer(
    ctx: &Ctx,
    account: &AccountId,
    customer_id: &str,
) -> Result<String> {
    let id = CustomerId::parse(customer_id).map_err(|_| Error::NotFound(Resource::Customer))?;
    let row = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_customer(account, &id)
            .await?
            .ok_or(Error::NotFound(Resource::Customer))?
    };
    let deleted = match (row.stripe_customer_id, row.stripe_deleted_at) {
        (Some(cus), None) => return Ok(cus),
        (Some(cus), Some(_)) => Some(cus),
        (None, _) => None,
    };
    let key = match &deleted {
        Some(old) => IdempotencyKey::for_op("stripe-customer", &[id.as_str(), old]),
        None => IdempotencyKey::for_op("stripe-customer", &[id.as_str()]),
    };
    let params = Params::new()
        .set("metadata[obol_customer_id]", id.as_str())
        .set_opt("email", row.email.as_deref())
        .set_opt("name", row.name.as_deref());
    let created: serde_json::Value = ctx
        .stripe_of(account)
        .await?
        .post("/v1/customers", &params, &key)
        .await?;
    let cus = created["id"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::internal("Stripe answered a customer without an id"))?;
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let won = match &deleted {
        Some(old) => {
            conn.replace_deleted_stripe_customer(account, &id, old, cus, ctx.now())
                .await?
        }
        None => {
            conn.set_stripe_customer_id(account, &id, cus, ctx.now())
                .await?
        }
    };
    if won {
        tracing::info!(customer_id = %id, stripe_customer = %cus, replaced = deleted.as_deref(), "Stripe customer created");
    }
    conn.get_customer(account, &id)
        .await?
        .and_then(|r| r.stripe_customer_id)
        .ok_or_else(|| Error::internal("the customer's Stripe customer was not recorded"))
}

/// The Stripe customer to bill obol's customer `customer` on its saved
/// default card (subscriptions, scheduled payments): the customer must be
/// this account's (`customer_not_found`) and have a default card
/// (`no_default_card`, before anything is created at Stripe).
pub async fn billable_stripe_customer(
    ctx: &Ctx,
    account: &AccountId,
    customer: &str,
) -> Result<(CustomerId, String)> {
    let customer_id =
        CustomerId::parse(customer).map_err(|_| Error::NotFound(Resource::Customer))?;
    {
        let mut h = ctx.store().acquire().await?;
        let mut conn = h.conn();
        conn.get_customer(account, &customer_id)
            .await?
            .ok_or(Error::NotFound(Resource::Customer))?;
        if conn
            .get_default_payment_method(account, customer_id.as_str())
            .await?
            .is_none()
        {
            return Err(Error::rule(
                RuleCode::NoDefaultCard,
                "the customer has no default card; send them a card-update link first",
            ));
        }
    }
    let stripe_customer = ensure_stripe_customer(ctx, account, customer_id.as_str()).await?;
    Ok((customer_id, stripe_customer))
}
