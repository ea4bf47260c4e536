//! Prefixed object ids (`cus_…`, `ctok_…`) and secret tokens.
//!
//! Ids are a prefix plus a lowercase ULID: unique, URL-safe and sortable by
//! creation time, which cursor pagination relies on. Secret tokens (API keys,
//! customer tokens, link capabilities) carry 256 bits from the OS generator,
//! are stored only as SHA-256 hashes and never print in `Debug` output.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// A new id: `prefix` + a lowercase ULID (unique, sortable by creation).
/// Callers use the typed ids below (`OrderId::generate()`); this is their
/// one implementation.
fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            /// Parses a caller-supplied id: the prefix and a 26-character ULID body.
            pub fn parse(s: &str) -> Result<Self, Error> {
                let body = s.strip_prefix($prefix).ok_or_else(|| {
                    Error::InvalidId(format!("{s:?} is not a {} id (they start with {:?})", stringify!($name), $prefix))
                })?;
                if body.len() != 26 || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(Error::InvalidId(format!("{s:?} is not a well-formed {} id", stringify!($name))));
                }
                Ok(Self(s.to_ascii_lowercase()))
            }

            /// Wraps an id read back from our own storage.
            pub fn from_db(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// In the OpenAPI document: a string with the prefix and a ULID
        /// body, so a generated client gets one type per kind of id.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema($prefix, concat!($(stringify!($doc), "\n",)*))
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

/// The schema of a prefixed id: `^prefix[0-9a-z]{26}$`. The doc comment
/// of the id type (as `stringify!` renders the attribute) becomes its
/// description.
fn id_schema(prefix: &str, docs: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let description: Vec<&str> = docs
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("doc = \"")?.strip_suffix('"')?;
            Some(l.trim())
        })
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^{prefix}[0-9a-z]{{26}}$")))
        .description(Some(
            description
                .join(" ")
                .replace("\\'", "'")
                .replace("\\\"", "\""),
        ))
        .examples([serde_json::json!(format!(
            "{prefix}01jd8x3qzv5m2c7e9f0g1h2j3k"
        ))])
        .into()
}

prefixed_id!(
    /// An obol customer (not Stripe's `cus_` id, which lives in `stripe_customer_id`).
    CustomerId,
    "cus_"
);
prefixed_id!(
    /// A payout obol mirrors from Stripe (Stripe's `po_` id is `stripe_payout_id`).
    PayoutId,
    "pout_"
);
prefixed_id!(
    /// A customer token's public handle, used to revoke it.
    CustomerTokenId,
    "ctok_"
);
prefixed_id!(
    /// A generated API key's public handle.
    ApiKeyId,
    "key_"
);
prefixed_id!(
    /// An order.
    OrderId,
    "ord_"
);
prefixed_id!(
    /// One line of an order.
    LineItemId,
    "li_"
);
prefixed_id!(
    /// A payment in obol's ledger (one Stripe PaymentIntent).
    PaymentId,
    "pay_"
);
prefixed_id!(
    /// A refund obol asked Stripe for, or learnt of.
    RefundId,
    "rf_"
);
prefixed_id!(
    /// A dispute (chargeback) of a payment.
    DisputeId,
    "dsp_"
);
prefixed_id!(
    /// A task for the merchant (respond to a dispute, …).
    TaskId,
    "task_"
);
prefixed_id!(
    /// A host notification endpoint.
    EndpointId,
    "ep_"
);
prefixed_id!(
    /// One notification (the `webhook-id` receivers see).
    MessageId,
    "msg_"
);
prefixed_id!(
    /// One notification's delivery to one endpoint.
    DeliveryId,
    "del_"
);
prefixed_id!(
    /// A Stripe event as obol's inbox stored it.
    WebhookEventId,
    "whev_"
);
prefixed_id!(
    /// An entry of a payment's timeline.
    PaymentTimelineId,
    "tl_"
);
prefixed_id!(
    /// An entry of an order's timeline.
    OrderTimelineId,
    "otl_"
);
prefixed_id!(
    /// An entry of a dispute's timeline.
    DisputeTimelineId,
    "dtl_"
);
prefixed_id!(
    /// An API request (`x-request-id`).
    RequestId,
    "req_"
);
prefixed_id!(
    /// A background job.
    JobId,
    "job_"
);
prefixed_id!(
    /// One attempt of a background job.
    JobRunId,
    "jrun_"
);
prefixed_id!(
    /// A product of the catalog: a name and a price obol keeps.
    ProductId,
    "prod_"
);
prefixed_id!(
    /// A shipping method of the catalog.
    ShippingMethodId,
    "shm_"
);
prefixed_id!(
    /// A payment link's public handle (not its token).
    PaymentLinkId,
    "plink_"
);
prefixed_id!(
    /// An invoice a business sends its customer, paid through a public link.
    InvoiceId,
    "inv_"
);
prefixed_id!(
    /// One PaymentIntent made to pay an invoice.
    InvoiceAttemptId,
    "ia_"
);
prefixed_id!(
    /// An entry of an invoice's timeline.
    InvoiceTimelineId,
    "invt_"
);
prefixed_id!(
    /// The sync of one invoice payment to one accounting target.
    SyncJobId,
    "sync_"
);
prefixed_id!(
    /// A charge run: off-session charges of many members' saved cards.
    ChargeRunId,
    "cr_"
);
prefixed_id!(
    /// One member's charge in a charge run.
    ChargeRunItemId,
    "cri_"
);
prefixed_id!(
    /// An e-mail to a member in the outbox (`GET /v1/emails/{id}`).
    EmailId,
    "eml_"
);
prefixed_id!(
    /// A subscription (a recurring gift or plan) mirrored from Stripe, or
    /// made through obol (not Stripe's `sub_` id, which lives in
    /// `stripe_subscription_id`).
    SubscriptionId,
    "sub_"
);
prefixed_id!(
    /// A Stripe invoice as obol mirrors it (not obol's own `inv_`
    /// invoices, paid through a public link).
    BillingInvoiceId,
    "binv_"
);
prefixed_id!(
    /// A payment on a future date, carried out as a Stripe invoice.
    ScheduledPaymentId,
    "spay_"
);
prefixed_id!(
    /// An organisation: one business served by this obol, with its own
    /// objects (and, once connected, its own Stripe account). Also the
    /// `AccountId` its rows carry.
    OrganizationId,
    "org_"
);

/// A freshly minted secret: shown to its owner once, stored as a hash.
pub struct SecretToken {
    value: String,
}

impl SecretToken {
    /// `prefix` + base64url(32 random bytes): 256 bits of entropy.
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        // ThreadRng is a CSPRNG (ChaCha12) seeded and periodically reseeded from the OS.
        rand::rng().fill_bytes(&mut bytes);
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self {
            value: format!("{prefix}{body}"),
        }
    }

    /// The plaintext, for the one response (or start-up line) that reveals it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.value)
    }
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix: String = self.value.chars().take_while(|c| *c != '_').collect();
        write!(f, "SecretToken({prefix}_…)")
    }
}

/// SHA-256 of a token, hex-encoded: what storage keeps and looks up by.
/// A fast hash is right here: the tokens carry 256 random bits, so there is
/// nothing to brute-force that a slow hash would protect.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }

    pub fn from_db(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, for checks that do not go through an
    /// indexed lookup.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every prefix belongs to one id type: an id of one kind never
    /// parses as another.
    #[test]
    fn prefixes_are_distinct() {
        let prefixes = [
            CustomerId::PREFIX,
            CustomerTokenId::PREFIX,
            ApiKeyId::PREFIX,
            OrderId::PREFIX,
            LineItemId::PREFIX,
            PaymentId::PREFIX,
            RefundId::PREFIX,
            DisputeId::PREFIX,
            TaskId::PREFIX,
            EndpointId::PREFIX,
            MessageId::PREFIX,
            DeliveryId::PREFIX,
            WebhookEventId::PREFIX,
            PaymentTimelineId::PREFIX,
            OrderTimelineId::PREFIX,
            DisputeTimelineId::PREFIX,
            RequestId::PREFIX,
            JobId::PREFIX,
            JobRunId::PREFIX,
            ProductId::PREFIX,
            ShippingMethodId::PREFIX,
            PaymentLinkId::PREFIX,
            InvoiceId::PREFIX,
            InvoiceAttemptId::PREFIX,
            InvoiceTimelineId::PREFIX,
            SyncJobId::PREFIX,
            ChargeRunId::PREFIX,
            ChargeRunItemId::PREFIX,
            EmailId::PREFIX,
            PayoutId::PREFIX,
        ];
        for (i, a) in prefixes.iter().enumerate() {
            for b in &prefixes[i + 1..] {
                assert!(!a.starts_with(b) && !b.starts_with(a), "{a} and {b}");
            }
        }
        let order = OrderId::generate();
        assert!(PaymentId::parse(order.as_str()).is_err());
        assert_eq!(OrderId::parse(order.as_str()).unwrap(), order);
    }

    #[test]
    fn ids_round_trip_and_refuse_other_prefixes() {
        let id = CustomerId::generate();
        assert_eq!(CustomerId::parse(id.as_str()).unwrap(), id);
        assert!(CustomerId::parse("ctok_01h").is_err());
        assert!(CustomerId::parse("cus_short").is_err());
        assert!(CustomerId::parse("cus_01hzzzzzzzzzzzzzzzzzzzzz'--").is_err());
    }

    #[test]
    fn tokens_carry_256_bits_and_hide_in_debug() {
        let t = SecretToken::generate("obol_ct_");
        assert_eq!(t.expose().len(), "obol_ct_".len() + 43);
        assert_ne!(t.expose(), SecretToken::generate("obol_ct_").expose());
        let debug = format!("{t:?} {:?}", t.hash());
        assert!(!debug.contains(&t.expose()["obol_ct_".len()..]), "{debug}");
        assert!(t.hash().ct_eq(&TokenHash::of(t.expose())));
    }
}
