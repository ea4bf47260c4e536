//! obol's configuration: embedded defaults, then `obol.yaml` (or `--config`),
//! then `OBOL_*` environment variables (`__` nests: `OBOL_STRIPE__SECRET_KEY`).
//!
//! Loaded and validated once at start; every problem names the key at fault.
//! Secrets (Stripe keys, webhook secrets, API keys, the database URL, which
//! may hold a password) are `SecretString`, so `Debug` never shows them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Yaml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

pub const DEFAULT_CONFIG_FILE: &str = "obol.yaml";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://obol.db?mode=rwc";
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";
pub const STRIPE_CONNECT_BASE: &str = "https://connect.stripe.com";
/// The Connect client id obol uses with its built-in sandbox (which
/// accepts any well-formed `ca_…`).
pub const SANDBOX_CONNECT_CLIENT_ID: &str = "ca_obolsandbox";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address `obol serve` listens on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `sqlite://…` (embedded default) or `postgres://…`.
    #[serde(default = "default_database_url")]
    pub database_url: SecretString,
    /// The URL obol is reached at from outside (webhooks, hosted pages).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Secret API keys (`obol_sk_…`), a list or one comma-separated string.
    #[serde(default, deserialize_with = "secret_list")]
    pub api_keys: Vec<SecretString>,
    #[serde(default)]
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `obol=debug,info`.
    #[serde(default = "default_log")]
    pub log: String,
    #[serde(default)]
    pub stripe: StripeSettings,
    #[serde(default)]
    pub sandbox: SandboxSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub customer_tokens: CustomerTokenSettings,
    #[serde(default)]
    pub reconcile: ReconcileSettings,
    #[serde(default)]
    pub notifications: NotificationSettings,
    #[serde(default)]
    pub checkout: CheckoutSettings,
    #[serde(default)]
    pub jobs: JobsSettings,
    #[serde(default)]
    pub payment_links: PaymentLinkSettings,
    #[serde(default)]
    pub fees: FeeConfig,
    #[serde(default)]
    pub invoices: InvoiceSettings,
    #[serde(default)]
    pub accounting: AccountingSettings,
    #[serde(default)]
    pub charge_runs: ChargeRunSettings,
    #[serde(default)]
    pub email: EmailSettings,
    #[serde(default)]
    pub secrets: SecretsSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub inbox: InboxSettings,
    #[serde(default)]
    pub acp: AcpConfig,
}

/// `admin.*`: the dashboard at `/admin` (`crate::admin`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// The admin password's argon2 hash (a PHC string, `$argon2id$…`), as
    /// `obol admin set-password` prints it. None: only a secret API key
    /// signs in.
    #[serde(default)]
    pub password_hash: Option<SecretString>,
    /// Minutes without a request after which a session ends (1–1440).
    #[serde(default = "default_admin_idle")]
    pub session_idle_minutes: u64,
    /// Hours after sign-in after which a session ends however busy (1–168).
    #[serde(default = "default_admin_lifetime")]
    pub session_max_hours: u64,
}

fn default_admin_idle() -> u64 {
    30
}

fn default_admin_lifetime() -> u64 {
    12
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            password_hash: None,
            session_idle_minutes: default_admin_idle(),
            session_max_hours: default_admin_lifetime(),
        }
    }
}

/// `metrics.*`: who may read `GET /metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// A bearer token `GET /metrics` requires (`Authorization: Bearer …`);
    /// unset: `/metrics` is open (it carries counts and route templates,
    /// no ids, amounts or secrets). 16 characters or more.
    #[serde(default)]
    pub token: Option<SecretString>,
}

/// `inbox.*`: the Stripe webhook inbox's alarm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSettings {
    /// `/health` reports the inbox `degraded` when the oldest event waiting
    /// for the applier was stored longer ago than this (seconds, >= 1).
    #[serde(default = "default_lag_warning")]
    pub lag_warning_seconds: u64,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self {
            lag_warning_seconds: default_lag_warning(),
        }
    }
}

fn default_lag_warning() -> u64 {
    60
}

/// `acp.*`: the Agentic Commerce Protocol merchant endpoint (`/acp`,
/// `crate::acp`). Without `api_keys` the endpoint answers 401 to everyone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcpConfig {
    /// The agent platforms' credentials (`Authorization: Bearer …` on
    /// `/acp`), a list or one comma-separated string; at least 32
    /// characters each, and never an `obol_` key.
    #[serde(default, deserialize_with = "secret_list")]
    pub api_keys: Vec<SecretString>,
    /// The organisation (`org_…`) ACP sessions and their orders belong
    /// to; absent: the platform's own account.
    #[serde(default)]
    pub organization: Option<String>,
    /// Where `order_create` / `order_update` events are POSTed.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The HMAC key of `Merchant-Signature`; required with `webhook_url`.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// The HMAC key the agent platform signs its requests with (`Signature`
    /// and `Timestamp` headers, `crate::acp::verify_request`); when set,
    /// unsigned, badly signed or stale requests are refused (401). At
    /// least 32 characters.
    #[serde(default)]
    pub signing_secret: Option<SecretString>,
    /// The buyer's order page, `{id}` and `{number}` replaced (default
    /// `{public_url}/orders/{id}`): the order's `permalink_url`.
    #[serde(default)]
    pub order_url: Option<String>,
    /// The 3-D Secure acquirer details sent in `authentication_metadata`
    /// (your acquirer's BIN, country and merchant id); placeholders by default.
    #[serde(default)]
    pub acquirer_bin: Option<String>,
    #[serde(default)]
    pub acquirer_country: Option<String>,
    #[serde(default)]
    pub acquirer_merchant_id: Option<String>,
}

/// `secrets.*`: the keys values obol must read back (connected accounts'
/// OAuth tokens) are encrypted with at rest (`crate::secrets`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSettings {
    /// 32 random bytes in base64 (`openssl rand -base64 32`): encrypts
    /// every new value. Required with real Stripe keys once organisations
    /// are used; in sandbox mode obol generates one and keeps it in the
    /// database.
    #[serde(default)]
    pub encryption_key: Option<SecretString>,
    /// Keys used before a rotation, still accepted for reading values they
    /// wrote until `obol secrets rotate` re-encrypted them; a list or one
    /// comma-separated string.
    #[serde(default, deserialize_with = "secret_list")]
    pub previous_keys: Vec<SecretString>,
}

/// `charge_runs.*`: how a running charge run is worked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeRunSettings {
    /// Worker jobs per running run (1–32); each may run in any obol process.
    #[serde(default = "default_run_workers")]
    pub workers: usize,
    /// Charges each worker has in flight at once (1–256); together they keep
    /// the Stripe rate limiter full.
    #[serde(default = "default_run_concurrency")]
    pub concurrency: usize,
    /// How long a worker holds a claimed item (5–3600 s): an item whose
    /// worker died is charged again (with the same idempotency key) after it.
    #[serde(default = "default_item_lease")]
    pub item_lease_seconds: u64,
}

fn default_run_workers() -> usize {
    2
}

fn default_run_concurrency() -> usize {
    16
}

fn default_item_lease() -> u64 {
    120
}

impl Default for ChargeRunSettings {
    fn default() -> Self {
        Self {
            workers: default_run_workers(),
            concurrency: default_run_concurrency(),
            item_lease_seconds: default_item_lease(),
        }
    }
}

/// `email.*`: the SMTP server member e-mails (a payment to confirm, a card
/// to update) are sent through. None by default: e-mails are then kept as
/// `logged` and listed, not sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtp://host:2525` (plain), `smtps://user:pass@host:465` (TLS from
    /// the start) or `smtp://user:pass@host:587?tls=required` (STARTTLS;
    /// `tls=opportunistic` uses it when offered). A secret: it may carry a
    /// password (percent-encode special characters).
    #[serde(default)]
    pub smtp_url: Option<SecretString>,
    /// The sender, a mailbox such as `"Weingut Ana <club@weingut.example>"`
    /// or a bare address; required with `smtp_url`.
    #[serde(default)]
    pub from: Option<String>,
    /// The business the e-mails name; default `invoices.business_name`,
    /// else "obol".
    #[serde(default)]
    pub business_name: Option<String>,
}

/// Where paid invoices are recorded (accounting/): any of Xero, QuickBooks
/// Online and a generic signed webhook; none by default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountingSettings {
    /// The generic target: each payment is POSTed here as JSON, signed per
    /// Standard Webhooks.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The Standard Webhooks secret (`whsec_` + base64) the webhook is
    /// signed with; required with `webhook_url`.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// Timeout of one request to a target, in seconds (1–300; default 10).
    #[serde(default = "default_accounting_timeout")]
    pub timeout_seconds: u64,
    #[serde(default)]
    pub xero: Option<XeroSettings>,
    #[serde(default)]
    pub quickbooks: Option<QuickbooksSettings>,
}

impl Default for AccountingSettings {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: None,
            timeout_seconds: default_accounting_timeout(),
            xero: None,
            quickbooks: None,
        }
    }
}

/// A Xero organisation: each payment becomes an authorised sales invoice
/// and a payment against it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XeroSettings {
    /// Default `https://api.xero.com`.
    #[serde(default = "default_xero_base")]
    pub base_url: String,
    /// An OAuth 2.0 access token with the `accounting.transactions` scope.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// The organisation (`xero-tenant-id` header).
    #[serde(default, deserialize_with = "code")]
    pub tenant_id: Option<String>,
    /// The code of the bank account payments are recorded to, such as
    /// `"090"` (quote it in YAML: unquoted, 090 is the number 90).
    #[serde(default)]
    pub account_code: Option<String>,
    /// The revenue account the invoice lines are posted to (default `"200"`,
    /// Xero's default Sales account).
    #[serde(default = "default_xero_sales_account")]
    pub sales_account_code: String,
}

/// A QuickBooks Online company: each payment becomes a sales receipt.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickbooksSettings {
    /// Default `https://quickbooks.api.intuit.com` (the sandbox is
    /// `https://sandbox-quickbooks.api.intuit.com`).
    #[serde(default = "default_quickbooks_base")]
    pub base_url: String,
    /// The company (realm) id.
    #[serde(default, deserialize_with = "code")]
    pub realm_id: Option<String>,
    /// An OAuth 2.0 access token with the `com.intuit.quickbooks.accounting`
    /// scope.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// The item (product or service) sales lines refer to; unset: none, and
    /// QuickBooks uses its default.
    #[serde(default, deserialize_with = "code")]
    pub item_id: Option<String>,
}

/// `fees.*`: the fee rate invoices pass on when their account has set none
/// (`PUT /v1/fee-settings` sets one per account).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeConfig {
    #[serde(default)]
    pub default: FeeRateConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeRateConfig {
    /// The percentage part in basis points, 0–5000 (default 290: 2.9 %).
    #[serde(default = "default_fee_bps")]
    pub percent_bps: u32,
    /// The fixed part per currency, in that currency's minor units
    /// (`fees.default.fixed.usd: 30`, `OBOL_FEES__DEFAULT__FIXED__USD=30`);
    /// a currency not listed has none. Default: `{usd: 30}`.
    #[serde(default = "default_fee_fixed")]
    pub fixed: std::collections::BTreeMap<String, i64>,
}

fn default_fee_bps() -> u32 {
    290
}

fn default_fee_fixed() -> std::collections::BTreeMap<String, i64> {
    std::collections::BTreeMap::from([("usd".to_string(), 30)])
}

impl Default for FeeRateConfig {
    fn default() -> Self {
        Self {
            percent_bps: default_fee_bps(),
            fixed: default_fee_fixed(),
        }
    }
}

/// `invoices.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceSettings {
    /// How long an invoice's PaymentIntent may stay incomplete before the
    /// sweep reconciles it with Stripe or cancels it (60–2592000 s;
    /// default 86400: a day).
    #[serde(default = "default_stale_intent_seconds")]
    pub stale_intent_seconds: u64,
    /// Seconds between sweeps for such intents; 0 turns them off.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_seconds: u64,
    /// The name the invoice page shows; default the Stripe account's name.
    #[serde(default)]
    pub business_name: Option<String>,
}

fn default_stale_intent_seconds() -> u64 {
    86_400
}

fn default_sweep_interval() -> u64 {
    900
}

impl Default for InvoiceSettings {
    fn default() -> Self {
        Self {
            stale_intent_seconds: default_stale_intent_seconds(),
            sweep_interval_seconds: default_sweep_interval(),
            business_name: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentLinkSettings {
    /// How long a payment link can be paid (60–604800 s; default 1800).
    #[serde(default = "default_link_ttl")]
    pub ttl_seconds: u64,
}

fn default_public_requests() -> u32 {
    120
}

fn default_link_ttl() -> u64 {
    1800
}

impl Default for PaymentLinkSettings {
    fn default() -> Self {
        Self {
            ttl_seconds: default_link_ttl(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    /// Job runner tasks per process (1–32).
    #[serde(default = "default_job_workers")]
    pub workers: usize,
    /// How often an idle runner looks for due jobs queued by other
    /// processes, in milliseconds (10–60000); jobs queued by this process
    /// wake it at once.
    #[serde(default = "default_job_poll_ms")]
    pub poll_interval_ms: u64,
    /// The unit of the job retry schedules in milliseconds (default 1000:
    /// the schedules read in seconds). Tests shrink it; 0 retries at once.
    #[serde(default = "default_retry_unit_ms")]
    pub retry_unit_ms: u64,
    /// How long a claimed job is held (2–3600 s): a job whose worker died
    /// is taken over this long after its claim. An attempt may run for
    /// three quarters of it.
    #[serde(default = "default_job_lease_seconds")]
    pub lease_seconds: u64,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            workers: default_job_workers(),
            poll_interval_ms: default_job_poll_ms(),
            retry_unit_ms: default_retry_unit_ms(),
            lease_seconds: default_job_lease_seconds(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutSettings {
    /// The order status at which an authorized pay-first payment is
    /// captured: confirmed (default), shipped or delivered.
    #[serde(default = "default_capture_on")]
    pub capture_on: String,
    /// Open pay-first intents (pending, requires_action, authorized; no
    /// order yet) one customer token may hold (1–1000); beyond it answers
    /// 409 `too_many_open_intents`. The secret key is not capped.
    #[serde(default = "default_max_open_intents")]
    pub max_open_intents_per_customer: u32,
}

impl Default for CheckoutSettings {
    fn default() -> Self {
        Self {
            capture_on: default_capture_on(),
            max_open_intents_per_customer: default_max_open_intents(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// The unit of the retry schedule in milliseconds (default 1000: the
    /// schedule reads in seconds). Tests shrink it; 0 retries at once.
    #[serde(default = "default_retry_unit_ms")]
    pub retry_unit_ms: u64,
    /// Whether endpoint URLs may point at loopback, private, link-local and
    /// other reserved addresses. Unset: allowed in sandbox mode only. An
    /// explicit value wins in every mode: `false` enforces the rule even
    /// in sandbox mode (how the tests exercise it).
    #[serde(default)]
    pub allow_private_targets: Option<bool>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            retry_unit_ms: default_retry_unit_ms(),
            allow_private_targets: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    /// Seconds between reconciliation passes; 0 turns the loop off
    /// (`obol reconcile` and `POST /v1/reconciliations` still work).
    #[serde(default = "default_reconcile_interval")]
    pub interval_seconds: u64,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            interval_seconds: default_reconcile_interval(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeSettings {
    /// `sk_test_…`, `sk_live_…` or a restricted `rk_…` key. None: built-in sandbox.
    #[serde(default)]
    pub secret_key: Option<SecretString>,
    #[serde(default)]
    pub publishable_key: Option<String>,
    /// `whsec_…` signing secrets; several during a rotation.
    #[serde(default, deserialize_with = "secret_list")]
    pub webhook_secrets: Vec<SecretString>,
    /// Any Stripe-compatible server; default Stripe's own.
    #[serde(default)]
    pub api_base: Option<String>,
    /// Requests per second towards Stripe, shared by the whole process.
    /// Default: 25 in test and sandbox mode, 100 in live mode (Stripe's limits).
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// Stripe requests per second one customer token, guest token or link
    /// may cause (1–1000), in bursts of twice that; beyond it answers 429
    /// before Stripe is asked. All of them together get at most half of
    /// `rate_limit_per_second`, so the secret key keeps the rest.
    #[serde(default = "default_customer_rate_limit")]
    pub customer_rate_limit_per_second: u32,
    /// Attempts per Stripe request, retries included (default 6).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Timeout of one Stripe request in seconds (default 30).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Stripe Connect (OAuth for Standard accounts): how organisations
    /// connect their own Stripe accounts.
    #[serde(default)]
    pub connect: ConnectSettings,
}

/// `stripe.connect.*`: the platform's Connect application.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectSettings {
    /// The platform's Connect client id (`ca_…`, Dashboard → Settings →
    /// Connect). Required with real Stripe keys to connect organisations;
    /// in sandbox mode a built-in one is used.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Where Stripe's OAuth endpoints live (`/oauth/authorize`,
    /// `/oauth/token`, `/oauth/deauthorize`). Default
    /// `https://connect.stripe.com`; in sandbox mode the built-in sandbox.
    #[serde(default)]
    pub base: Option<String>,
    /// The `whsec_…` signing secret of a Connect webhook endpoint made
    /// outside obol (in Stripe's dashboard). One obol registers itself
    /// keeps its secret encrypted in the database instead.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            secret_key: None,
            publishable_key: None,
            webhook_secrets: Vec::new(),
            api_base: None,
            rate_limit_per_second: None,
            customer_rate_limit_per_second: default_customer_rate_limit(),
            max_attempts: None,
            timeout_seconds: None,
            connect: ConnectSettings::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Where the in-process sandbox keeps its state: a file path, or `memory`.
    /// Default: beside obol's SQLite database (`obol-sandbox.db` for PostgreSQL).
    #[serde(default)]
    pub db: Option<String>,
    /// Chaos settings for tests, e.g. `seed=1,drop=0.2` (see the sandbox docs).
    #[serde(default)]
    pub chaos: Option<String>,
    /// Requests per second the in-process sandbox's API accepts, as Stripe's
    /// global limit (beyond it 429 `rate_limit`). None: no limit.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes (413 above it).
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Failed authentications one client address may make per minute
    /// before it is answered 429 for a while.
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_minute: u32,
    /// Origins (`https://shop.example`) whose pages may call obol from a
    /// browser (CORS): the storefronts that embed `<obol-checkout>`. Empty:
    /// none.
    #[serde(default, deserialize_with = "string_list")]
    pub cors_allowed_origins: Vec<String>,
    /// Requests per client address per minute to the public payment-link
    /// routes (default 120); beyond it 429 with Retry-After.
    #[serde(default = "default_public_requests")]
    pub public_requests_per_minute: u32,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For`
    /// names the client; a list, or one comma-separated string. Empty:
    /// the TCP peer is the client and the header is ignored.
    #[serde(default, deserialize_with = "string_list")]
    pub trusted_proxies: Vec<String>,
    /// How long a client may take to send a request's headers (1–3600 s);
    /// the connection is closed after that.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// How long a request body may stall between two chunks (1–3600 s);
    /// answered 408 after that.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_seconds: u64,
    /// How long a keep-alive connection may sit without a request in
    /// progress before it is closed (1–3600 s).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Connections served at once (1–65536); more wait in the listen
    /// backlog until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: default_body_limit(),
            shutdown_grace_seconds: default_grace(),
            auth_failures_per_minute: default_auth_failures(),
            public_requests_per_minute: default_public_requests(),
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            header_timeout_seconds: default_header_timeout(),
            body_timeout_seconds: default_body_timeout(),
            idle_timeout_seconds: default_idle_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerTokenSettings {
    #[serde(default = "default_token_ttl")]
    pub default_ttl_seconds: u64,
    #[serde(default = "default_token_max_ttl")]
    pub max_ttl_seconds: u64,
}

impl Default for CustomerTokenSettings {
    fn default() -> Self {
        Self {
            default_ttl_seconds: default_token_ttl(),
            max_ttl_seconds: default_token_max_ttl(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Which Stripe obol talks to, derived from the secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StripeMode {
    Sandbox,
    Test,
    Live,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_database_url() -> SecretString {
    SecretString::from(DEFAULT_DATABASE_URL)
}
fn default_log() -> String {
    "info".into()
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_grace() -> u64 {
    20
}
fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    5
}
fn default_max_connections() -> usize {
    1024
}
fn default_capture_on() -> String {
    "confirmed".into()
}
fn default_max_open_intents() -> u32 {
    5
}
fn default_customer_rate_limit() -> u32 {
    2
}
fn default_retry_unit_ms() -> u64 {
    1000
}
fn default_job_workers() -> usize {
    2
}
fn default_job_poll_ms() -> u64 {
    1000
}
fn default_job_lease_seconds() -> u64 {
    60
}
fn default_accounting_timeout() -> u64 {
    10
}
fn default_xero_base() -> String {
    "https://api.xero.com".into()
}
fn default_xero_sales_account() -> String {
    "200".into()
}
fn default_quickbooks_base() -> String {
    "https://quickbooks.api.intuit.com".into()
}
fn default_reconcile_interval() -> u64 {
    300
}
fn default_auth_failures() -> u32 {
    30
}
fn default_token_ttl() -> u64 {
    900
}
fn default_token_max_ttl() -> u64 {
    24 * 3600
}

/// Accepts `["a", "b"]` (YAML) or `"a,b"` (one environment variable).
fn secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(string_list(d)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

/// Accepts `["a", "b"]` (YAML) or `"a,b"` (one environment variable);
/// items are trimmed and empty ones dropped.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// An id that YAML may write unquoted (`realm_id: 9130350412345678`):
/// a string, or an integer taken as its digits.
fn code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Code>::deserialize(d)?.map(|c| match c {
        Code::Text(s) => s,
        Code::Number(n) => n.to_string(),
    }))
}

/// Keys holding codes and ids, not numbers. figment reads an environment
/// value `090` as the integer 90, losing the zero of Xero's account code
/// 090; these keys are read from the environment verbatim instead.
const VERBATIM_ENV_KEYS: &[&str] = &[
    "accounting.xero.tenant_id",
    "accounting.xero.account_code",
    "accounting.xero.sales_account_code",
    "accounting.quickbooks.realm_id",
    "accounting.quickbooks.item_id",
];

/// `OBOL_ACCOUNTING__XERO__ACCOUNT_CODE=090` as the string `"090"`.
fn verbatim_env(key: &str) -> Option<String> {
    let name = format!("OBOL_{}", key.replace('.', "__"));
    std::env::vars().find_map(|(k, v)| k.eq_ignore_ascii_case(&name).then_some(v))
}

/// `10.0.0.0/8`, or one address (`10.0.0.1`, `::1`) as a one-address range.
fn parse_proxy(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let url =
        url::Url::parse(value).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(key, "must be an http(s) URL"));
    }
    Ok(())
}

fn required(key: &str, value: Option<&str>) -> Result<(), ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(()),
        _ => Err(ConfigError::new(key, "is required")),
    }
}

fn required_secret(key: &str, value: &Option<SecretString>) -> Result<(), ConfigError> {
    required(key, value.as_ref().map(|s| s.expose_secret()))
}

impl Config {
    /// Defaults, then the file, then the environment; then validation.
    /// `path` given explicitly must exist; the default `obol.yaml` is optional.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        match path {
            Some(p) => {
                if !p.exists() {
                    return Err(ConfigError::new(
                        "--config",
                        format!("file {} does not exist", p.display()),
                    ));
                }
                figment = figment.merge(Yaml::file(p));
            }
            None => figment = figment.merge(Yaml::file(DEFAULT_CONFIG_FILE)),
        }
        // Variables that configure other commands, not the config tree.
        let env = Env::prefixed("OBOL_").split("__").ignore(&[
            "config",
            "mcp_token",
            "mcp_organization",
            "sandbox_listen",
            "sandbox_db",
            "sandbox_chaos",
            "sandbox_rate_limit",
            "sandbox_public_url",
            "sandbox_webhook_retry_ms",
        ]);
        figment = figment.merge(env);
        for key in VERBATIM_ENV_KEYS {
            if let Some(value) = verbatim_env(key) {
                figment = figment.merge(figment::providers::Serialized::default(key, value));
            }
        }
        let config: Config = figment.extract().map_err(|e| {
            let key = e
                .path
                .iter()
                .filter(|p| p.as_str() != "default")
                .cloned()
                .collect::<Vec<_>>()
                .join(".");
            let mut message = e.kind.to_string();
            if let Some(source) = &e.metadata {
                message.push_str(&format!(" (from {})", source.name));
            }
            ConfigError::new(if key.is_empty() { "config" } else { &key }, message)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Configuration from a YAML text alone (no file, no environment):
    /// for tests and tools that build a configuration programmatically.
    pub fn from_yaml(yaml: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::new()
            .merge(Yaml::string(yaml))
            .extract()
            .map_err(|e| ConfigError::new("config", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate_admin(&self) -> Result<(), ConfigError> {
        let admin = &self.admin;
        if let Some(hash) = &admin.password_hash {
            argon2::PasswordHash::new(hash.expose_secret().trim()).map_err(|e| {
                ConfigError::new(
                    "admin.password_hash",
                    format!(
                        "is not an argon2 PHC string (obol admin set-password prints one): {e}"
                    ),
                )
            })?;
        }
        if !(1..=1440).contains(&admin.session_idle_minutes) {
            return Err(ConfigError::new(
                "admin.session_idle_minutes",
                "must be between 1 and 1440",
            ));
        }
        if !(1..=168).contains(&admin.session_max_hours) {
            return Err(ConfigError::new(
                "admin.session_max_hours",
                "must be between 1 and 168",
            ));
        }
        Ok(())
    }

    fn validate_acp(&self) -> Result<(), ConfigError> {
        let acp = &self.acp;
        for (i, key) in acp.api_keys.iter().enumerate() {
            let k = key.expose_secret();
            let obol_key =
                k.starts_with("obol_") || self.api_keys.iter().any(|s| s.expose_secret() == k);
            if k.len() < 32 || obol_key || k.chars().any(char::is_whitespace) {
                return Err(ConfigError::new(
                    &format!("acp.api_keys[{i}]"),
                    "an ACP key has at least 32 characters, no spaces, and is none of obol's own keys (obol_…)",
                ));
            }
        }
        if let Some(s) = &acp.signing_secret {
            if s.expose_secret().len() < 32 {
                return Err(ConfigError::new(
                    "acp.signing_secret",
                    "the request-signing secret has at least 32 characters",
                ));
            }
        }
        if let Some(url) = &acp.webhook_url {
            http_url("acp.webhook_url", url)?;
            required_secret("acp.webhook_secret", &acp.webhook_secret)?;
        }
        if let Some(org) = &acp.organization {
            if !org.starts_with("org_") {
                return Err(ConfigError::new("acp.organization", "must be an org_… id"));
            }
        }
        Ok(())
    }

    fn validate_fees(&self) -> Result<(), ConfigError> {
        let rate = &self.fees.default;
        if rate.percent_bps > crate::money::FeeSchedule::MAX_GROSS_UP_BPS {
            return Err(ConfigError::new(
                "fees.default.percent_bps",
                format!("{} is above 5000 (50 %)", rate.percent_bps),
            ));
        }
        for (code, amount) in &rate.fixed {
            let key = format!("fees.default.fixed.{code}");
            crate::money::Currency::parse(code)
                .map_err(|e| ConfigError::new(&key, e.to_string()))?;
            if !(0..=crate::money::MAX_AMOUNT).contains(amount) {
                return Err(ConfigError::new(
                    &key,
                    "must be between 0 and 99999999 minor units",
                ));
            }
        }
        let runs = &self.charge_runs;
        if !(1..=32).contains(&runs.workers) {
            return Err(ConfigError::new(
                "charge_runs.workers",
                "must be between 1 and 32",
            ));
        }
        if !(1..=256).contains(&runs.concurrency) {
            return Err(ConfigError::new(
                "charge_runs.concurrency",
                "must be between 1 and 256",
            ));
        }
        if !(5..=3600).contains(&runs.item_lease_seconds) {
            return Err(ConfigError::new(
                "charge_runs.item_lease_seconds",
                "must be between 5 and 3600",
            ));
        }
        let stale = self.invoices.stale_intent_seconds;
        if !(60..=2_592_000).contains(&stale) {
            return Err(ConfigError::new(
                "invoices.stale_intent_seconds",
                format!("{stale} is not between 60 and 2592000"),
            ));
        }
        Ok(())
    }

    /// Every rule a value must meet, checked once at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if let Some(t) = &self.metrics.token {
            if t.expose_secret().trim().len() < 16 {
                return Err(ConfigError::new(
                    "metrics.token",
                    "must have at least 16 characters",
                ));
            }
        }
        if self.inbox.lag_warning_seconds == 0 {
            return Err(ConfigError::new(
                "inbox.lag_warning_seconds",
                "must be at least 1",
            ));
        }
        self.backend()?;
        self.validate_fees()?;
        self.validate_admin()?;
        self.validate_acp()?;
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError::new("public_url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::new("public_url", "must be an http(s) URL"));
            }
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            let k = key.expose_secret();
            if !k.starts_with("obol_sk_") || k.len() < "obol_sk_".len() + 32 {
                return Err(ConfigError::new(
                    &format!("api_keys[{i}]"),
                    "an API key starts with obol_sk_ and has at least 32 characters after it (generate one with `openssl rand -base64 32 | tr '+/' '-_'`)",
                ));
            }
        }
        if let Some(sk) = &self.stripe.secret_key {
            let sk = sk.expose_secret();
            if !(sk.starts_with("sk_test_")
                || sk.starts_with("sk_live_")
                || sk.starts_with("rk_test_")
                || sk.starts_with("rk_live_"))
            {
                return Err(ConfigError::new(
                    "stripe.secret_key",
                    "must start with sk_test_, sk_live_, rk_test_ or rk_live_",
                ));
            }
            let live = sk.contains("_live_");
            match &self.stripe.publishable_key {
                None => {
                    return Err(ConfigError::new(
                        "stripe.publishable_key",
                        "is required when stripe.secret_key is set",
                    ))
                }
                Some(pk) if live && !pk.starts_with("pk_live_") => {
                    return Err(ConfigError::new(
                        "stripe.publishable_key",
                        "a live secret key needs a pk_live_ publishable key",
                    ))
                }
                Some(pk) if !live && !pk.starts_with("pk_test_") => {
                    return Err(ConfigError::new(
                        "stripe.publishable_key",
                        "a test secret key needs a pk_test_ publishable key",
                    ))
                }
                Some(_) => {}
            }
            if self.api_keys.is_empty() {
                return Err(ConfigError::new(
                    "api_keys",
                    "at least one obol_sk_ key is required with real Stripe keys (only the sandbox generates a development key)",
                ));
            }
        }
        for (i, s) in self.stripe.webhook_secrets.iter().enumerate() {
            if !s.expose_secret().starts_with("whsec_") {
                return Err(ConfigError::new(
                    &format!("stripe.webhook_secrets[{i}]"),
                    "a Stripe webhook signing secret starts with whsec_",
                ));
            }
        }
        if let Some(s) = &self.stripe.connect.webhook_secret {
            if !s.expose_secret().starts_with("whsec_") {
                return Err(ConfigError::new(
                    "stripe.connect.webhook_secret",
                    "a Stripe webhook signing secret starts with whsec_",
                ));
            }
        }
        if let Some(base) = &self.stripe.api_base {
            url::Url::parse(base)
                .map_err(|e| ConfigError::new("stripe.api_base", format!("not a URL: {e}")))?;
        }
        if let Some(base) = &self.stripe.connect.base {
            http_url("stripe.connect.base", base)?;
        }
        if let Some(id) = &self.stripe.connect.client_id {
            let well_formed = id
                .strip_prefix("ca_")
                .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()));
            if !well_formed {
                return Err(ConfigError::new(
                    "stripe.connect.client_id",
                    "a Connect client id starts with ca_ (Stripe Dashboard: Settings, Connect)",
                ));
            }
        }
        if let Some(chaos) = &self.sandbox.chaos {
            chaos
                .parse::<obol_sandbox::ChaosConfig>()
                .map_err(|e| ConfigError::new("sandbox.chaos", e.to_string()))?;
        }
        if self.sandbox.rate_limit_per_second == Some(0) {
            return Err(ConfigError::new(
                "sandbox.rate_limit_per_second",
                "must be at least 1",
            ));
        }
        if self.stripe.rate_limit_per_second == Some(0) {
            return Err(ConfigError::new(
                "stripe.rate_limit_per_second",
                "must be at least 1",
            ));
        }
        if !(1..=1000).contains(&self.stripe.customer_rate_limit_per_second) {
            return Err(ConfigError::new(
                "stripe.customer_rate_limit_per_second",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=1000).contains(&self.checkout.max_open_intents_per_customer) {
            return Err(ConfigError::new(
                "checkout.max_open_intents_per_customer",
                "must be between 1 and 1000",
            ));
        }
        if matches!(self.stripe.max_attempts, Some(0) | Some(21..)) {
            return Err(ConfigError::new(
                "stripe.max_attempts",
                "must be between 1 and 20",
            ));
        }
        if self.stripe.timeout_seconds == Some(0) {
            return Err(ConfigError::new(
                "stripe.timeout_seconds",
                "must be at least 1",
            ));
        }
        if !matches!(
            self.checkout.capture_on.as_str(),
            "confirmed" | "shipped" | "delivered"
        ) {
            return Err(ConfigError::new(
                "checkout.capture_on",
                "must be confirmed, shipped or delivered",
            ));
        }
        for (i, p) in self.http.trusted_proxies.iter().enumerate() {
            if parse_proxy(p).is_none() {
                return Err(ConfigError::new(
                    &format!("http.trusted_proxies[{i}]"),
                    format!("{p:?} is not an address or a CIDR range such as 10.0.0.0/8"),
                ));
            }
        }
        for (i, o) in self.http.cors_allowed_origins.iter().enumerate() {
            let ok = url::Url::parse(o).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && !o.ends_with('/')
                    && u.query().is_none()
            });
            if !ok {
                return Err(ConfigError::new(
                    &format!("http.cors_allowed_origins[{i}]"),
                    format!("{o:?} is not an origin such as https://shop.example (scheme, host, port; no path)"),
                ));
            }
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(ConfigError::new(
                "http.body_limit_bytes",
                "must be at least 1024",
            ));
        }
        for (key, value) in [
            (
                "http.header_timeout_seconds",
                self.http.header_timeout_seconds,
            ),
            ("http.body_timeout_seconds", self.http.body_timeout_seconds),
            ("http.idle_timeout_seconds", self.http.idle_timeout_seconds),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(ConfigError::new(key, "must be between 1 and 3600"));
            }
        }
        if !(1..=65_536).contains(&self.http.max_connections) {
            return Err(ConfigError::new(
                "http.max_connections",
                "must be between 1 and 65536",
            ));
        }
        if !(1..=32).contains(&self.jobs.workers) {
            return Err(ConfigError::new("jobs.workers", "must be between 1 and 32"));
        }
        if !(10..=60_000).contains(&self.jobs.poll_interval_ms) {
            return Err(ConfigError::new(
                "jobs.poll_interval_ms",
                "must be between 10 and 60000",
            ));
        }
        if !(2..=3600).contains(&self.jobs.lease_seconds) {
            return Err(ConfigError::new(
                "jobs.lease_seconds",
                "must be between 2 and 3600",
            ));
        }
        let t = &self.customer_tokens;
        if t.default_ttl_seconds == 0 || t.default_ttl_seconds > t.max_ttl_seconds {
            return Err(ConfigError::new(
                "customer_tokens.default_ttl_seconds",
                "must be between 1 and customer_tokens.max_ttl_seconds",
            ));
        }
        self.validate_accounting()?;
        self.validate_secrets()?;
        self.validate_email()
    }

    /// Each key must parse; the error names the key, never its value.
    fn validate_secrets(&self) -> Result<(), ConfigError> {
        let s = &self.secrets;
        if let Some(key) = &s.encryption_key {
            crate::secrets::EncryptionKey::from_base64(key.expose_secret())
                .map_err(|e| ConfigError::new("secrets.encryption_key", e.to_string()))?;
        } else if !s.previous_keys.is_empty() {
            return Err(ConfigError::new(
                "secrets.previous_keys",
                "needs secrets.encryption_key: previous keys only decrypt, the current key encrypts",
            ));
        }
        for (i, key) in s.previous_keys.iter().enumerate() {
            crate::secrets::EncryptionKey::from_base64(key.expose_secret()).map_err(|e| {
                ConfigError::new(&format!("secrets.previous_keys[{i}]"), e.to_string())
            })?;
        }
        Ok(())
    }

    /// The configured encryption keys, parsed (validation refused bad ones).
    pub fn secrets(&self) -> Option<crate::secrets::Secrets> {
        let key = self.secrets.encryption_key.as_ref()?;
        crate::secrets::Secrets::from_config(key, &self.secrets.previous_keys).ok()
    }

    /// The SMTP URL is checked without ever echoing it (it may hold a
    /// password); lettre, which sends, parses it the same way here.
    fn validate_email(&self) -> Result<(), ConfigError> {
        let e = &self.email;
        if let Some(url) = &e.smtp_url {
            let key = "email.smtp_url";
            let parsed = url::Url::parse(url.expose_secret())
                .map_err(|err| ConfigError::new(key, format!("not a URL: {err}")))?;
            if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none() {
                return Err(ConfigError::new(
                    key,
                    "must be smtp://host:port or smtps://host:port (with user:pass@ before the host when the server wants a login)",
                ));
            }
            let tls = parsed
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned());
            if !matches!(tls.as_deref(), None | Some("required" | "opportunistic")) {
                return Err(ConfigError::new(
                    key,
                    "the tls parameter is required (STARTTLS) or opportunistic",
                ));
            }
            if let Err(err) =
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url.expose_secret())
            {
                return Err(ConfigError::new(key, err.to_string()));
            }
            if e.from.is_none() {
                return Err(ConfigError::new(
                    "email.from",
                    "is required when email.smtp_url is set",
                ));
            }
        }
        if let Some(from) = &e.from {
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(ConfigError::new(
                    "email.from",
                    format!(
                        "{from:?} is not a mailbox such as \"Weingut Ana <club@weingut.example>\""
                    ),
                ));
            }
        }
        if let Some(name) = &e.business_name {
            required("email.business_name", Some(name))?;
        }
        Ok(())
    }

    fn validate_accounting(&self) -> Result<(), ConfigError> {
        let a = &self.accounting;
        if !(1..=300).contains(&a.timeout_seconds) {
            return Err(ConfigError::new(
                "accounting.timeout_seconds",
                "must be between 1 and 300",
            ));
        }
        match (&a.webhook_url, &a.webhook_secret) {
            (Some(url), secret) => {
                http_url("accounting.webhook_url", url)?;
                let Some(secret) = secret else {
                    return Err(ConfigError::new(
                        "accounting.webhook_secret",
                        "is required when accounting.webhook_url is set",
                    ));
                };
                let key = secret.expose_secret().strip_prefix("whsec_").map(|b64| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                });
                if !matches!(key, Some(Ok(k)) if !k.is_empty()) {
                    return Err(ConfigError::new(
                        "accounting.webhook_secret",
                        "a Standard Webhooks secret is whsec_ followed by base64 (such as whsec_ and `openssl rand -base64 32`)",
                    ));
                }
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "accounting.webhook_secret",
                    "is set but accounting.webhook_url is not",
                ))
            }
            (None, None) => {}
        }
        if let Some(x) = &a.xero {
            http_url("accounting.xero.base_url", &x.base_url)?;
            required_secret("accounting.xero.access_token", &x.access_token)?;
            required("accounting.xero.tenant_id", x.tenant_id.as_deref())?;
            required("accounting.xero.account_code", x.account_code.as_deref())?;
            required(
                "accounting.xero.sales_account_code",
                Some(&x.sales_account_code),
            )?;
        }
        if let Some(q) = &a.quickbooks {
            http_url("accounting.quickbooks.base_url", &q.base_url)?;
            required("accounting.quickbooks.realm_id", q.realm_id.as_deref())?;
            required_secret("accounting.quickbooks.access_token", &q.access_token)?;
            if q.item_id.is_some() {
                required("accounting.quickbooks.item_id", q.item_id.as_deref())?;
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!("{:?} is not an address such as 127.0.0.1:8080", self.listen),
            )
        })
    }

    pub fn backend(&self) -> Result<Backend, ConfigError> {
        let url = self.database_url.expose_secret();
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(ConfigError::new(
                "database_url",
                "must start with sqlite: or postgres://",
            ))
        }
    }

    pub fn stripe_mode(&self) -> StripeMode {
        match &self.stripe.secret_key {
            None => StripeMode::Sandbox,
            Some(k) if k.expose_secret().contains("_live_") => StripeMode::Live,
            Some(_) => StripeMode::Test,
        }
    }

    /// `http.trusted_proxies`, parsed (validation refused any that is not).
    pub fn trusted_proxies(&self) -> Vec<ipnet::IpNet> {
        self.http
            .trusted_proxies
            .iter()
            .filter_map(|p| parse_proxy(p))
            .collect()
    }

    pub fn stripe_rate_limit(&self) -> u32 {
        self.stripe
            .rate_limit_per_second
            .unwrap_or(match self.stripe_mode() {
                StripeMode::Live => 100,
                StripeMode::Test | StripeMode::Sandbox => 25,
            })
    }

    /// The Connect client id in force: the configured one, or in sandbox
    /// mode the built-in one; `None` with real keys and none configured.
    pub fn connect_client_id(&self) -> Option<String> {
        match (&self.stripe.connect.client_id, self.stripe_mode()) {
            (Some(id), _) => Some(id.clone()),
            (None, StripeMode::Sandbox) => Some(SANDBOX_CONNECT_CLIENT_ID.to_string()),
            (None, StripeMode::Test | StripeMode::Live) => None,
        }
    }

    pub fn stripe_retry_policy(&self) -> crate::stripe::RetryPolicy {
        let mut p = crate::stripe::RetryPolicy::default();
        if let Some(n) = self.stripe.max_attempts {
            p.max_attempts = n;
        }
        if let Some(t) = self.stripe.timeout_seconds {
            p.request_timeout = std::time::Duration::from_secs(t);
        }
        p
    }

    /// The rule for outbound URLs API callers supply (notification
    /// endpoints): private targets per `notifications.allow_private_targets`
    /// (default: sandbox mode only), https in live mode.
    pub fn outbound_policy(&self) -> crate::outbound::OutboundPolicy {
        let mode = self.stripe_mode();
        crate::outbound::OutboundPolicy {
            allow_private: self
                .notifications
                .allow_private_targets
                .unwrap_or(mode == StripeMode::Sandbox),
            require_https: mode == StripeMode::Live,
        }
    }

    /// Where the in-process sandbox keeps its state (`None`: in memory).
    pub fn sandbox_db_path(&self) -> Option<PathBuf> {
        match self.sandbox.db.as_deref() {
            Some("memory") | Some(":memory:") => None,
            Some(path) => Some(PathBuf::from(path)),
            None => {
                let url = self.database_url.expose_secret();
                let file = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .map(|rest| rest.split('?').next().unwrap_or(rest))
                    .filter(|f| !f.is_empty() && !f.contains(":memory:"));
                match file {
                    Some(f) => {
                        let p = Path::new(f);
                        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("obol");
                        Some(p.with_file_name(format!("{stem}-sandbox.db")))
                    }
                    None if url.contains(":memory:") => None,
                    None => Some(PathBuf::from("obol-sandbox.db")),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Error, in tests only
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn env_overrides_file_and_nests_with_double_underscore() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "obol.yaml",
                "listen: 127.0.0.1:9000\nstripe:\n  publishable_key: pk_test_file\n",
            )?;
            jail.set_env("OBOL_LISTEN", "127.0.0.1:0");
            jail.set_env("OBOL_STRIPE__SECRET_KEY", "sk_test_abc");
            jail.set_env(
                "OBOL_API_KEYS",
                "obol_sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, obol_sk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "127.0.0.1:0");
            assert_eq!(c.stripe.publishable_key.as_deref(), Some("pk_test_file"));
            assert_eq!(c.api_keys.len(), 2);
            assert_eq!(c.stripe_mode(), StripeMode::Test);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("OBOL_LISTEN", "not-an-address");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "listen");
            jail.set_env("OBOL_LISTEN", "127.0.0.1:0");
            jail.create_file("obol.yaml", "stripe:\n  secret_kye: x\n")?;
            let e = Config::load(None).unwrap_err();
            assert!(e.to_string().contains("secret_kye"), "{e}");
            jail.create_file("obol.yaml", "http:\n  body_limit_bytes: lots\n")?;
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "http.body_limit_bytes", "{e}");
            jail.create_file("obol.yaml", "")?;
            for key in [
                "HEADER_TIMEOUT_SECONDS",
                "BODY_TIMEOUT_SECONDS",
                "IDLE_TIMEOUT_SECONDS",
                "MAX_CONNECTIONS",
            ] {
                jail.set_env(format!("OBOL_HTTP__{key}"), "0");
                let e = Config::load(None).unwrap_err();
                assert_eq!(e.key, format!("http.{}", key.to_lowercase()), "{e}");
                jail.set_env(format!("OBOL_HTTP__{key}"), "5");
            }
            jail.set_env("OBOL_STRIPE__WEBHOOK_SECRETS", "whsec_a,nope");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "stripe.webhook_secrets[1]");
            Ok(())
        });
    }

    #[test]
    fn job_settings_default_and_out_of_range_values_name_their_key() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert_eq!(
                (
                    c.jobs.workers,
                    c.jobs.poll_interval_ms,
                    c.jobs.retry_unit_ms
                ),
                (2, 1000, 1000)
            );
            jail.set_env("OBOL_JOBS__WORKERS", "0");
            assert_eq!(Config::load(None).unwrap_err().key, "jobs.workers");
            jail.set_env("OBOL_JOBS__WORKERS", "4");
            jail.set_env("OBOL_JOBS__POLL_INTERVAL_MS", "5");
            assert_eq!(Config::load(None).unwrap_err().key, "jobs.poll_interval_ms");
            jail.set_env("OBOL_JOBS__POLL_INTERVAL_MS", "50");
            jail.set_env("OBOL_JOBS__LEASE_SECONDS", "1");
            assert_eq!(Config::load(None).unwrap_err().key, "jobs.lease_seconds");
            jail.set_env("OBOL_JOBS__LEASE_SECONDS", "5");
            jail.set_env("OBOL_JOBS__RETRY_UNIT_MS", "0");
            let c = Config::load(None).unwrap();
            assert_eq!(
                (
                    c.jobs.workers,
                    c.jobs.poll_interval_ms,
                    c.jobs.retry_unit_ms
                ),
                (4, 50, 0)
            );
            Ok(())
        });
    }

    #[test]
    fn customer_budgets_default_and_out_of_range_values_name_their_key() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.stripe.customer_rate_limit_per_second, 2);
            assert_eq!(c.checkout.max_open_intents_per_customer, 5);
            jail.set_env("OBOL_STRIPE__CUSTOMER_RATE_LIMIT_PER_SECOND", "0");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "stripe.customer_rate_limit_per_second");
            jail.set_env("OBOL_STRIPE__CUSTOMER_RATE_LIMIT_PER_SECOND", "3");
            jail.set_env("OBOL_CHECKOUT__MAX_OPEN_INTENTS_PER_CUSTOMER", "0");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "checkout.max_open_intents_per_customer");
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges_and_name_a_bad_one() {
        Jail::expect_with(|jail| {
            assert!(Config::load(None).unwrap().trusted_proxies().is_empty());
            jail.set_env("OBOL_HTTP__TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1,::1");
            let c = Config::load(None).unwrap();
            assert_eq!(c.trusted_proxies().len(), 3);
            jail.set_env("OBOL_HTTP__TRUSTED_PROXIES", "10.0.0.0/8,proxy.local");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "http.trusted_proxies[1]", "{e}");
            Ok(())
        });
    }

    #[test]
    fn private_targets_are_allowed_in_sandbox_mode_unless_explicitly_refused() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert!(c.outbound_policy().allow_private);
            assert!(!c.outbound_policy().require_https);
            jail.set_env("OBOL_NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "false");
            assert!(!Config::load(None).unwrap().outbound_policy().allow_private);
            jail.set_env("OBOL_NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "maybe");
            assert_eq!(
                Config::load(None).unwrap_err().key,
                "notifications.allow_private_targets"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("OBOL_STRIPE__SECRET_KEY", "sk_live_x");
            jail.set_env("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_live_x");
            jail.set_env(
                "OBOL_API_KEYS",
                "obol_sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            );
            let p = Config::load(None).unwrap().outbound_policy();
            assert!(!p.allow_private && p.require_https);
            Ok(())
        });
    }

    #[test]
    fn debug_output_hides_every_secret() {
        Jail::expect_with(|jail| {
            jail.set_env("OBOL_STRIPE__SECRET_KEY", "sk_test_SECRETSTRIPE");
            jail.set_env("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_x");
            jail.set_env("OBOL_STRIPE__WEBHOOK_SECRETS", "whsec_SECRETHOOK");
            jail.set_env(
                "OBOL_API_KEYS",
                "obol_sk_SECRETAPIKEYSECRETAPIKEYSECRETAPIKEY",
            );
            jail.set_env(
                "OBOL_DATABASE_URL",
                "postgres://postgres:SECRETPASSWORD@127.0.0.1/obol",
            );
            // 32 bytes whose base64 spells SECRETKEY…
            jail.set_env(
                "OBOL_SECRETS__ENCRYPTION_KEY",
                "SECRETKEYSECRETKEYSECRETKEYSECRETKEYSECRETQ=",
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert!(c.secrets().is_some());
            let debug = format!("{c:?} {c:#?}");
            for secret in [
                "SECRETSTRIPE",
                "SECRETHOOK",
                "SECRETAPIKEY",
                "SECRETPASSWORD",
                "SECRETKEY",
            ] {
                assert!(!debug.contains(secret), "{secret} leaked: {debug}");
            }
            Ok(())
        });
    }

    #[test]
    fn accounting_targets_load_from_the_environment_with_codes_verbatim() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert!(c.accounting.webhook_url.is_none() && c.accounting.xero.is_none());
            assert_eq!(c.accounting.timeout_seconds, 10);
            jail.set_env("OBOL_ACCOUNTING__WEBHOOK_URL", "https://books.example/hook");
            jail.set_env("OBOL_ACCOUNTING__WEBHOOK_SECRET", "whsec_c2VjcmV0");
            jail.set_env("OBOL_ACCOUNTING__XERO__ACCESS_TOKEN", "XEROTOKEN");
            jail.set_env("OBOL_ACCOUNTING__XERO__TENANT_ID", "t-1");
            jail.set_env("OBOL_ACCOUNTING__XERO__ACCOUNT_CODE", "090");
            jail.set_env("OBOL_ACCOUNTING__XERO__BASE_URL", "http://127.0.0.1:9/xero");
            jail.set_env("OBOL_ACCOUNTING__QUICKBOOKS__REALM_ID", "0123456789");
            jail.set_env("OBOL_ACCOUNTING__QUICKBOOKS__ACCESS_TOKEN", "QBTOKEN");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let x = c.accounting.xero.as_ref().unwrap();
            assert_eq!(x.account_code.as_deref(), Some("090"));
            assert_eq!(x.sales_account_code, "200");
            assert_eq!(x.base_url, "http://127.0.0.1:9/xero");
            let q = c.accounting.quickbooks.as_ref().unwrap();
            assert_eq!(q.realm_id.as_deref(), Some("0123456789"));
            assert_eq!(q.base_url, "https://quickbooks.api.intuit.com");
            let debug = format!("{c:?}");
            for secret in ["XEROTOKEN", "QBTOKEN", "c2VjcmV0"] {
                assert!(!debug.contains(secret), "{secret} leaked: {debug}");
            }
            // YAML may write a realm id unquoted.
            let c = Config::from_yaml(
                "accounting:\n  quickbooks:\n    realm_id: 9130350412345678\n    access_token: t\n",
            )
            .unwrap();
            let q = c.accounting.quickbooks.unwrap();
            assert_eq!(q.realm_id.as_deref(), Some("9130350412345678"));
            Ok(())
        });
    }

    #[test]
    fn incomplete_accounting_targets_name_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("OBOL_ACCOUNTING__WEBHOOK_URL", "ftp://books.example/hook");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "accounting.webhook_url", "{e}");
            jail.set_env("OBOL_ACCOUNTING__WEBHOOK_URL", "https://books.example/hook");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "accounting.webhook_secret", "{e}");
            for bad in ["c2VjcmV0", "whsec_not base64!", "whsec_"] {
                jail.set_env("OBOL_ACCOUNTING__WEBHOOK_SECRET", bad);
                let e = Config::load(None).unwrap_err();
                assert_eq!(e.key, "accounting.webhook_secret", "{bad}: {e}");
                // The value itself is never echoed (the bare prefix is named).
                assert!(bad == "whsec_" || !e.to_string().contains(bad), "{e}");
            }
            jail.set_env("OBOL_ACCOUNTING__WEBHOOK_SECRET", "whsec_c2VjcmV0");
            Config::load(None).map_err(|e| e.to_string())?;

            jail.set_env("OBOL_ACCOUNTING__XERO__TENANT_ID", "t-1");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "accounting.xero.access_token", "{e}");
            jail.set_env("OBOL_ACCOUNTING__XERO__ACCESS_TOKEN", " ");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "accounting.xero.access_token", "{e}");
            jail.set_env("OBOL_ACCOUNTING__XERO__ACCESS_TOKEN", "token");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "accounting.xero.account_code", "{e}");
            jail.set_env("OBOL_ACCOUNTING__XERO__ACCOUNT_CODE", "090");
            Config::load(None).map_err(|e| e.to_string())?;

            jail.set_env("OBOL_ACCOUNTING__QUICKBOOKS__ACCESS_TOKEN", "token");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "accounting.quickbooks.realm_id", "{e}");
            jail.set_env("OBOL_ACCOUNTING__QUICKBOOKS__REALM_ID", "123");
            jail.set_env("OBOL_ACCOUNTING__QUICKBOOKS__BASE_URL", "not a url");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "accounting.quickbooks.base_url", "{e}");
            jail.set_env(
                "OBOL_ACCOUNTING__QUICKBOOKS__BASE_URL",
                "http://127.0.0.1:9",
            );
            jail.set_env("OBOL_ACCOUNTING__TIMEOUT_SECONDS", "0");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "accounting.timeout_seconds", "{e}");
            jail.set_env("OBOL_ACCOUNTING__TIMEOUT_SECONDS", "5");
            Config::load(None).map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn email_settings_load_from_the_environment_and_bad_ones_name_their_key() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert!(c.email.smtp_url.is_none());
            assert_eq!(crate::email::business_name(&c), "obol");
            jail.set_env("OBOL_INVOICES__BUSINESS_NAME", "Weingut Ana");
            let c = Config::load(None).unwrap();
            assert_eq!(crate::email::business_name(&c), "Weingut Ana");
            jail.set_env(
                "OBOL_EMAIL__SMTP_URL",
                "smtp://club:SMTPPASSWORD@127.0.0.1:587?tls=required",
            );
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "email.from", "{e}");
            jail.set_env("OBOL_EMAIL__FROM", "Weingut Ana <club@weingut.example>");
            jail.set_env("OBOL_EMAIL__BUSINESS_NAME", "Ana's Wine Club");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(crate::email::business_name(&c), "Ana's Wine Club");
            let mailer = crate::email::Mailer::from_config(&c).unwrap();
            assert!(mailer.is_configured());
            assert_eq!(
                mailer.message_id("eml_x").as_deref(),
                Some("<eml_x@weingut.example>")
            );
            let debug = format!("{c:?} {mailer:?}");
            assert!(!debug.contains("SMTPPASSWORD"), "{debug}");
            for bad in [
                "http://club:SMTPPASSWORD@127.0.0.1:587",
                "smtp://club:SMTPPASSWORD@127.0.0.1:587?tls=sometimes",
                "club:SMTPPASSWORD at smtp",
            ] {
                jail.set_env("OBOL_EMAIL__SMTP_URL", bad);
                let e = Config::load(None).unwrap_err();
                assert_eq!(e.key, "email.smtp_url", "{bad}: {e}");
                assert!(!e.to_string().contains("SMTPPASSWORD"), "{e}");
            }
            jail.set_env("OBOL_EMAIL__SMTP_URL", "smtps://mail.example");
            jail.set_env("OBOL_EMAIL__FROM", "not an address");
            let e = Config::load(None).unwrap_err();
            assert_eq!(e.key, "email.from", "{e}");
            jail.set_env("OBOL_EMAIL__FROM", "club@weingut.example");
            Config::load(None).map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn encryption_keys_load_from_the_environment_and_bad_ones_name_their_key() {
        let key = |b: u8| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode([b; 32])
        };
        Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert!(c.secrets().is_none());
            jail.set_env("OBOL_SECRETS__ENCRYPTION_KEY", key(1));
            jail.set_env(
                "OBOL_SECRETS__PREVIOUS_KEYS",
                format!("{},{}", key(2), key(3)),
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.secrets.previous_keys.len(), 2);
            assert!(c.secrets().is_some());

            jail.set_env("OBOL_SECRETS__PREVIOUS_KEYS", format!("{},short", key(2)));
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("secrets.previous_keys[1]") && !e.contains("short"),
                "{e}"
            );

            jail.set_env("OBOL_SECRETS__ENCRYPTION_KEY", "c2hvcnQ=");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("secrets.encryption_key")
                    && e.contains("32 bytes")
                    && !e.contains("c2hvcnQ"),
                "{e}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("OBOL_SECRETS__PREVIOUS_KEYS", key(2));
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("secrets.previous_keys") && e.contains("needs secrets.encryption_key"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn sandbox_db_sits_beside_the_sqlite_database() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "OBOL_DATABASE_URL",
                "sqlite:///var/lib/obol/obol.db?mode=rwc",
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.sandbox_db_path(),
                Some(PathBuf::from("/var/lib/obol/obol-sandbox.db"))
            );
            Ok(())
        });
    }

    #[test]
    fn the_sandbox_rate_limit_loads_from_the_environment() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.sandbox.rate_limit_per_second, None);
            jail.set_env("OBOL_SANDBOX__RATE_LIMIT_PER_SECOND", "40");
            // `obol sandbox`'s own variables are not configuration keys.
            jail.set_env("OBOL_SANDBOX_RATE_LIMIT", "10");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.sandbox.rate_limit_per_second, Some(40));
            jail.set_env("OBOL_SANDBOX__RATE_LIMIT_PER_SECOND", "0");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("sandbox.rate_limit_per_second"), "{e}");
            Ok(())
        });
    }
}
