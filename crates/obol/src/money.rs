//! Money: currencies, amounts in integer minor units, and fees.
//!
//! This module is the one place where obol turns user input into amounts and
//! amounts into Stripe's wire format:
//!
//! * [`Currency`]: a validated, lowercase ISO 4217 code from the table of
//!   currencies Stripe supports for card payments, with its number of decimal
//!   places ([`Currency::exponent`]).
//! * [`Money`]: a non-negative `i64` count of minor units (cents, yen, fils…)
//!   tagged with its currency. Charge amounts are built with [`Money::new`] or
//!   [`Money::parse_decimal`], which enforce Stripe's rules; ledger values
//!   (sums, fees, balances that may be zero) with [`Money::balance`].
//! * [`FeeSchedule`]: a percentage in basis points plus a fixed part, rounded
//!   half up in minor units.
//! * [`MoneyError`]: every way the above can refuse, each with a stable
//!   snake_case [`MoneyError::code`] for API error bodies.
//!
//! Money is never a float: parsing, formatting and fee arithmetic use integers
//! only, with checked operations wherever a value could overflow.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Stripe's maximum charge amount: eight digits of minor units
/// (999,999.99 for a two-decimal currency).
pub const MAX_AMOUNT: i64 = 99_999_999;

/// The currencies Stripe supports for card payments, lowercase, sorted.
const SUPPORTED: [&str; 139] = [
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf",
    "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb",
    "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg",
    "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf", "krw",
    "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk",
    "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr",
    "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub",
    "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl", "thb",
    "tjs", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs", "vnd",
    "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

/// Stripe's zero-decimal currencies: the amount is in whole units (¥500 is 500).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Stripe's three-decimal currencies: amounts must be a multiple of 10.
const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];

/// Stripe's minimum charge amounts, in minor units, for the currencies it
/// lists (docs.stripe.com "Minimum and maximum charge amounts"; the
/// sandbox keeps the same table on its side of the wire). A charge below
/// its currency's minimum is refused by Stripe with `amount_too_small`,
/// so obol refuses it before asking. For currencies Stripe does not list
/// the rule is "the equivalent of 0.50 USD", which depends on the day's
/// exchange rate: obol cannot know it offline and checks only positivity
/// there; Stripe's own refusal is then a 422 `stripe_invalid_request`.
const MINIMUM_CHARGE: [(&str, i64); 24] = [
    ("aed", 200),
    ("aud", 50),
    ("bgn", 100),
    ("brl", 50),
    ("cad", 50),
    ("chf", 50),
    ("czk", 1500),
    ("dkk", 250),
    ("eur", 50),
    ("gbp", 30),
    ("hkd", 400),
    ("huf", 17500),
    ("inr", 50),
    ("jpy", 50),
    ("mxn", 1000),
    ("myr", 200),
    ("nok", 300),
    ("nzd", 50),
    ("pln", 200),
    ("ron", 200),
    ("sek", 300),
    ("sgd", 50),
    ("thb", 1000),
    ("usd", 50),
];

/// At most this many characters of rejected input are echoed back in errors.
const ECHO_LIMIT: usize = 32;

// ---------------------------------------------------------------------------
// Currency
// ---------------------------------------------------------------------------

/// A currency Stripe supports, held as its lowercase ISO 4217 code.
///
/// The only ways to obtain one are [`Currency::parse`] (and its `FromStr` /
/// serde equivalents), [`Currency::all`] and the associated constants, so a
/// `Currency` is always in the supported table.
///
/// `Display` and serde use the lowercase form, as Stripe's API does; use
/// [`Currency::iso_code`] for the uppercase form shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(&'static str);

impl Currency {
    /// United States dollar.
    pub const USD: Currency = Currency("usd");
    /// Euro.
    pub const EUR: Currency = Currency("eur");
    /// Pound sterling.
    pub const GBP: Currency = Currency("gbp");
    /// Kuwaiti dinar (three decimals).
    pub const KWD: Currency = Currency("kwd");

    /// Parses a currency code in any letter case (`"eur"`, `"EUR"`, `"Eur"`).
    ///
    /// Nothing is trimmed: `" eur"` is refused like any unknown code, with
    /// [`MoneyError::UnsupportedCurrency`].
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        SUPPORTED
            .iter()
            .find(|known| known.eq_ignore_ascii_case(code))
            .map(|known| Currency(known))
            .ok_or_else(|| MoneyError::UnsupportedCurrency {
                code: excerpt(code),
            })
    }

    /// Every supported currency, in alphabetical order.
    pub fn all() -> impl ExactSizeIterator<Item = Currency> {
        SUPPORTED.iter().map(|code| Currency(code))
    }

    /// The lowercase code, as Stripe expects it on the wire (`"eur"`).
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The uppercase ISO 4217 code (`"EUR"`), for display to people.
    pub fn iso_code(self) -> String {
        self.0.to_ascii_uppercase()
    }

    /// Number of decimal places in Stripe's minor units: 0 for zero-decimal
    /// currencies (JPY, KRW…), 3 for BHD JOD KWD OMR TND, 2 otherwise.
    pub fn exponent(self) -> u32 {
        if ZERO_DECIMAL.contains(&self.0) {
            0
        } else if THREE_DECIMAL.contains(&self.0) {
            3
        } else {
            2
        }
    }

    /// Stripe's minimum charge in this currency, in minor units, for the
    /// currencies Stripe lists (50 for EUR and USD, 30 for GBP, 50 for
    /// JPY…); `None` where the minimum depends on an exchange rate.
    pub fn minimum_charge(self) -> Option<i64> {
        MINIMUM_CHARGE
            .iter()
            .find(|(code, _)| *code == self.0)
            .map(|(_, minimum)| *minimum)
    }

    /// Minor units per major unit: 1, 100 or 1000.
    fn minor_per_major(self) -> i64 {
        match self.exponent() {
            0 => 1,
            3 => 1000,
            _ => 100,
        }
    }

    /// [`Currency::exponent`] as a digit count.
    fn decimals(self) -> usize {
        match self.exponent() {
            0 => 0,
            3 => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    /// Prints the lowercase code (`eur`), matching Stripe's wire format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

/// In the OpenAPI document: one of the supported codes, lowercase as
/// obol answers them (requests may use any letter case).
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A three-letter ISO 4217 currency code Stripe supports, lowercase (`eur`). \
                 Requests may use any letter case.",
            ))
            .enum_values(Some(Currency::all().map(Currency::as_str)))
            .examples([serde_json::json!("eur")])
            .into()
    }
}

impl utoipa::ToSchema for Currency {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Currency")
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CurrencyVisitor;

        impl Visitor<'_> for CurrencyVisitor {
            type Value = Currency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a three-letter ISO 4217 currency code supported by Stripe")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Currency, E> {
                Currency::parse(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(CurrencyVisitor)
    }
}

// ---------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------

/// An amount of money: a non-negative number of minor units in a currency.
///
/// Invariants, whatever the constructor: the amount is `>= 0` and the currency
/// is supported. Values from [`Money::new`] and [`Money::parse_decimal`] are
/// also valid Stripe charge amounts (positive, at most [`MAX_AMOUNT`], a
/// multiple of 10 for three-decimal currencies). Values from
/// [`Money::balance`], [`Money::zero`], the checked arithmetic and
/// [`FeeSchedule::fee_for`] are ledger values that need not be; use
/// [`Money::ensure_chargeable`] before sending one to Stripe as an amount.
///
/// Serializes as `{"amount": 4999, "currency": "eur"}`. Deserialization
/// applies the charge rules of [`Money::new`], since JSON money arriving at
/// obol is a caller's requested amount; a zero balance serializes fine but is
/// refused on the way back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "MoneyRepr", try_from = "MoneyRepr")]
pub struct Money {
    amount: i64,
    currency: Currency,
}

/// In the OpenAPI document: `{amount, currency}`, the amount in integer
/// minor units (cents for EUR, yen for JPY), never a decimal.
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{KnownFormat, Ref, SchemaFormat};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An amount of money: integer minor units and a currency.",
            ))
            .property(
                "amount",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0))
                    .description(Some(
                        "Minor units of `currency` (1250 is €12.50, ¥1250 is ¥1250).",
                    )),
            )
            .required("amount")
            .property("currency", Ref::from_schema_name("Currency"))
            .required("currency")
            .into()
    }
}

impl utoipa::ToSchema for Money {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Money")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("Currency".to_string(), Currency::schema()));
    }
}

/// The JSON shape of [`Money`].
#[derive(Serialize, Deserialize)]
struct MoneyRepr {
    amount: i64,
    currency: Currency,
}

impl From<Money> for MoneyRepr {
    fn from(money: Money) -> Self {
        MoneyRepr {
            amount: money.amount,
            currency: money.currency,
        }
    }
}

impl TryFrom<MoneyRepr> for Money {
    type Error = MoneyError;

    fn try_from(repr: MoneyRepr) -> Result<Self, Self::Error> {
        Money::new(repr.amount, repr.currency)
    }
}

impl Money {
    /// A charge amount of `minor` minor units (cents for EUR, yen for JPY,
    /// fils for KWD), validated against Stripe's rules:
    ///
    /// * zero or negative: [`MoneyError::NotPositive`];
    /// * more than [`MAX_AMOUNT`] (8 digits): [`MoneyError::TooLarge`];
    /// * a three-decimal currency and not a multiple of 10:
    ///   [`MoneyError::Precision`] (Stripe requires the last digit to be 0).
    pub fn new(minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive { got: minor });
        }
        if minor > MAX_AMOUNT {
            return Err(MoneyError::TooLarge);
        }
        if currency.exponent() == 3 && minor % 10 != 0 {
            return Err(MoneyError::Precision { currency });
        }
        Ok(Money {
            amount: minor,
            currency,
        })
    }

    /// Zero in `currency`: the starting point of a ledger sum.
    pub fn zero(currency: Currency) -> Money {
        Money {
            amount: 0,
            currency,
        }
    }

    /// A ledger value (a sum, a fee, a balance): any `minor >= 0`.
    ///
    /// Unlike [`Money::new`] it accepts zero, has no upper limit and no
    /// multiple-of-10 rule. Negative values are refused with
    /// [`MoneyError::Negative`].
    pub fn balance(minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative { got: minor });
        }
        Ok(Money {
            amount: minor,
            currency,
        })
    }

    /// Parses a human decimal amount such as `"12.34"`, `"12.3"` or `"12"`.
    ///
    /// Accepted: ASCII digits, optionally followed by `.` and at least one
    /// more digit. Refused with [`MoneyError::InvalidDecimal`]: signs (`+`,
    /// `-`), thousands separators (`"1,000.50"`), exponents (`"1e3"`),
    /// whitespace anywhere, and a bare `.` at either end (`".5"`, `"5."`).
    ///
    /// More fractional digits than the currency has is
    /// [`MoneyError::Precision`], even when they are zeros (`"0.5"` and
    /// `"500.0"` for JPY, `"0.001"` for EUR). The result must then pass
    /// [`Money::new`]; values that overflow on the way are
    /// [`MoneyError::TooLarge`].
    ///
    /// `"12.3"` in EUR is 1230 minor units; `"1.23"` in KWD is 1230.
    pub fn parse_decimal(input: &str, currency: Currency) -> Result<Money, MoneyError> {
        let invalid = |reason: &'static str| MoneyError::InvalidDecimal {
            input: excerpt(input),
            reason,
        };
        let (whole, fraction) = match input.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (input, None),
        };
        if input.is_empty() {
            return Err(invalid("the amount is empty"));
        }
        if whole.is_empty() {
            return Err(invalid("digits are required before the '.'"));
        }
        if !all_ascii_digits(whole) {
            return Err(invalid(
                "only digits and a single '.' are allowed (no signs, separators, exponents or spaces)",
            ));
        }
        let fraction = fraction.unwrap_or("");
        if input.len() > whole.len() && fraction.is_empty() {
            return Err(invalid("digits are required after the '.'"));
        }
        if !all_ascii_digits(fraction) {
            return Err(invalid(
                "only digits and a single '.' are allowed (no signs, separators, exponents or spaces)",
            ));
        }
        let decimals = currency.decimals();
        if fraction.len() > decimals {
            return Err(MoneyError::Precision { currency });
        }

        let mut minor: i64 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(digit.wrapping_sub(b'0'))))
                .ok_or(MoneyError::TooLarge)?;
        }
        for _ in fraction.len()..decimals {
            minor = minor.checked_mul(10).ok_or(MoneyError::TooLarge)?;
        }
        Money::new(minor, currency)
    }

    /// The amount in minor units.
    pub fn minor(&self) -> i64 {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is zero (only possible for ledger values).
    pub fn is_zero(&self) -> bool {
        self.amount == 0
    }

    /// Checks a charge amount against Stripe's minimum for its currency
    /// ([`Currency::minimum_charge`]): [`MoneyError::TooSmall`] below it.
    ///
    /// Separate from [`Money::new`] because the minimum applies to what is
    /// charged (an order's total, a pay-first intent), not to each line
    /// item's unit amount.
    pub fn ensure_minimum_charge(self) -> Result<Money, MoneyError> {
        match self.currency.minimum_charge() {
            Some(minimum) if self.amount < minimum => Err(MoneyError::TooSmall {
                minimum,
                currency: self.currency,
            }),
            _ => Ok(self),
        }
    }

    /// Re-checks a ledger value against the charge rules of [`Money::new`].
    pub fn ensure_chargeable(self) -> Result<Money, MoneyError> {
        Money::new(self.amount, self.currency)
    }

    /// The amount as a plain decimal, without currency: `"12.34"` for 1234
    /// EUR, `"1234"` for 1234 JPY, `"1.230"` for 1230 KWD. Always exactly
    /// [`Currency::exponent`] fractional digits, so that
    /// `Money::parse_decimal(&m.format_decimal(), m.currency()) == Ok(m)`
    /// for every charge amount `m`.
    pub fn format_decimal(&self) -> String {
        let decimals = self.currency.decimals();
        if decimals == 0 {
            return self.amount.to_string();
        }
        let unit = self.currency.minor_per_major();
        let whole = self.amount / unit;
        let fraction = self.amount % unit;
        format!("{whole}.{fraction:0decimals$}")
    }

    /// The value of Stripe's `amount` field: the minor units unchanged.
    pub fn to_stripe_amount(&self) -> i64 {
        // obol's minor units are Stripe's minor units for every currency in
        // the table: the exponents above are Stripe's (0 for its zero-decimal
        // currencies, 3 for BHD JOD KWD OMR TND, 2 otherwise), so no scaling
        // happens here. For three-decimal currencies Stripe also requires the
        // amount to be a multiple of 10; `Money::new` (and so `parse_decimal`
        // and deserialization) has already enforced that, as well as
        // positivity and the 8-digit maximum. Ledger values built with
        // `Money::balance` or arithmetic should go through
        // `ensure_chargeable` before being sent.
        self.amount
    }

    /// `self + other`, for amounts in the same currency.
    ///
    /// Different currencies: [`MoneyError::CurrencyMismatch`]; `i64`
    /// overflow: [`MoneyError::TooLarge`]. The sum is a ledger value and may
    /// exceed [`MAX_AMOUNT`].
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::TooLarge)?;
        Money::balance(amount, self.currency)
    }

    /// `self - other`, for amounts in the same currency. The result may be
    /// zero but never negative: [`MoneyError::Negative`] carries the would-be
    /// result. Different currencies: [`MoneyError::CurrencyMismatch`].
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        // Both amounts are >= 0, so this cannot overflow; checked regardless.
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::TooLarge)?;
        Money::balance(amount, self.currency)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// `12.34 EUR`: the decimal amount and the uppercase ISO code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.format_decimal(), self.currency.iso_code())
    }
}

// ---------------------------------------------------------------------------
// Fees
// ---------------------------------------------------------------------------

/// A fee of `percent_bps` basis points of the amount plus `fixed_minor` minor
/// units of the amount's currency.
///
/// A basis point is 1/100 of a percent: 1.4 % is 140 bps. `fixed_minor` is in
/// the minor units of whatever currency the fee is applied to (25 is €0.25 on
/// a EUR amount, ¥25 on a JPY one), so a schedule is meant for one currency
/// or for currencies with the same exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// Percentage part, in basis points (1/100 of a percent).
    pub percent_bps: u32,
    /// Fixed part, in minor units.
    pub fixed_minor: i64,
}

impl FeeSchedule {
    /// A schedule of `percent_bps` basis points plus `fixed_minor` minor units.
    pub const fn new(percent_bps: u32, fixed_minor: i64) -> FeeSchedule {
        FeeSchedule {
            percent_bps,
            fixed_minor,
        }
    }

    /// The fee on `amount`, in the same currency.
    ///
    /// The percentage part is `amount * percent_bps / 10_000` minor units,
    /// computed exactly in `i128` and rounded **half up** (to the nearest
    /// minor unit, an exact half going up: amounts are never negative, so
    /// this is also half away from zero). The fixed part is then added.
    ///
    /// Worked example, 1.4 % + 25 on 19.99 EUR: 1999 × 140 / 10 000 =
    /// 27.986 → 28 cents, plus 25 = 53 cents. A tie: 1 % of 2.50 EUR is
    /// 2.5 cents → 3 (not 2, as banker's rounding would give).
    ///
    /// Nothing is clamped: the fee may exceed the amount (a fixed fee on a
    /// small amount), and for three-decimal currencies it need not be a
    /// multiple of 10. The result is a ledger value (see [`Money::balance`]);
    /// a negative `fixed_minor` that makes it negative gives
    /// [`MoneyError::Negative`], one that does not fit in `i64` gives
    /// [`MoneyError::TooLarge`].
    pub fn fee_for(&self, amount: &Money) -> Result<Money, MoneyError> {
        // amount < 2^63 and bps < 2^32, so nothing here can overflow i128
        // (the product stays below 2^95); the checked operations are a guard.
        let exact_times_10k = i128::from(amount.amount).checked_mul(i128::from(self.percent_bps));
        // Half up: add half of the divisor, then truncate (exact for values >= 0).
        let percent_part = exact_times_10k
            .and_then(|x| x.checked_add(5_000))
            .and_then(|x| x.checked_div(10_000));
        let total = percent_part
            .and_then(|p| p.checked_add(i128::from(self.fixed_minor)))
            .and_then(|t| i64::try_from(t).ok())
            .ok_or(MoneyError::TooLarge)?;
        Money::balance(total, amount.currency)
    }
}

impl FeeSchedule {
    /// The highest percentage [`FeeSchedule::gross_up`] takes: 50 %. Above
    /// it a customer would pay more in fees than for what was invoiced,
    /// which is a typo, not a rate.
    pub const MAX_GROSS_UP_BPS: u32 = 5_000;

    /// The fee that passes this schedule's cost on to the payer: **gross-up**,
    /// so the business nets the whole subtotal after the fee is taken from
    /// the total the customer pays.
    ///
    /// The total `T` is the smallest amount such that
    /// `T - self.fee_for(T) >= subtotal`, where `fee_for` is this schedule applied to the total
    /// with its half-up rounding (the way the card processor computes its
    /// fee on what it is paid). For a three-decimal currency `T` is then
    /// rounded **up** to the next multiple of 10, which Stripe requires
    /// (the business nets a little more, never less). The fee line is `T −
    /// subtotal`; a zero-decimal currency has whole units throughout.
    ///
    /// Worked example, 2.9 % + 30 on 100.00 USD: `(10000 + 30) / (1 −
    /// 0.029)` = 10329.55… → 10330; the fee on 10330 is 299.57 → 300 + 30 =
    /// 330, and 10330 − 330 = 10000. The customer pays 103.30 USD, the fee
    /// line is 3.30 USD.
    ///
    /// Computed in integers only: `T₀ = ceil((subtotal + fixed) × 10000 /
    /// (10000 − bps))`, then `T` steps from `T₀` to the smallest total the
    /// rounded fee leaves the subtotal of (at most a step or two; the net
    /// never falls as the total grows). A rate
    /// above [`FeeSchedule::MAX_GROSS_UP_BPS`] or a negative fixed part is
    /// refused, a total past `i64` is [`MoneyError::TooLarge`]; the caller
    /// checks the total against Stripe's maximum and minimum.
    pub fn gross_up(&self, subtotal: &Money) -> Result<Money, MoneyError> {
        if self.percent_bps > Self::MAX_GROSS_UP_BPS {
            return Err(MoneyError::TooLarge);
        }
        if self.fixed_minor < 0 {
            return Err(MoneyError::Negative {
                got: self.fixed_minor,
            });
        }
        let currency = subtotal.currency;
        let s = i128::from(subtotal.amount);
        let keep = 10_000 - i128::from(self.percent_bps);
        let numerator = (s + i128::from(self.fixed_minor)) * 10_000;
        let mut total = (numerator + keep - 1) / keep;
        let net = |t: i128| -> i128 {
            t - (t * i128::from(self.percent_bps) + 5_000) / 10_000 - i128::from(self.fixed_minor)
        };
        // The rounded fee can exceed the exact one by half a minor unit;
        // each step up gains at least half a unit of net (bps ≤ 50 %).
        while net(total) < s {
            total += 1;
        }
        // The rounded fee can also be below the exact one: the smallest
        // total may lie under T₀.
        while total > s && net(total - 1) >= s {
            total -= 1;
        }
        if currency.exponent() == 3 {
            total = (total + 9) / 10 * 10;
        }
        let total = i64::try_from(total).map_err(|_| MoneyError::TooLarge)?;
        Money::balance(total - subtotal.amount, currency)
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why an amount or currency was refused.
///
/// Messages are written for API callers; [`MoneyError::code`] gives a stable
/// machine-readable code for each variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// A charge amount of zero or less.
    #[error("amount must be a positive integer in minor units (cents), got {got}")]
    NotPositive {
        /// The refused amount, in minor units.
        got: i64,
    },
    /// A charge below Stripe's minimum for the currency.
    #[error("amount is below Stripe's minimum charge of {minimum} minor units in {currency}")]
    TooSmall {
        /// The minimum, in minor units.
        minimum: i64,
        /// Its currency.
        currency: Currency,
    },
    /// More than Stripe's 8-digit maximum, or an arithmetic overflow.
    #[error("amount is too large: Stripe accepts at most 99999999 minor units (8 digits)")]
    TooLarge,
    /// More precision than the currency allows.
    #[error("{}", precision_message(.currency))]
    Precision {
        /// The currency whose rule was broken.
        currency: Currency,
    },
    /// A currency code that is not in the supported table.
    #[error(
        "unsupported currency {code:?}: expected a three-letter ISO 4217 code that Stripe supports, such as \"usd\" or \"eur\""
    )]
    UnsupportedCurrency {
        /// The refused code (truncated if long).
        code: String,
    },
    /// Arithmetic between two currencies.
    #[error("cannot combine amounts in different currencies: {left} and {right}")]
    CurrencyMismatch {
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
    /// A decimal amount that could not be parsed.
    #[error("invalid decimal amount {input:?}: {reason}; expected a form like \"12.34\"")]
    InvalidDecimal {
        /// The refused input (truncated if long).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A ledger value below zero.
    #[error("amount must not be negative, got {got} minor units")]
    Negative {
        /// The refused value, in minor units.
        got: i64,
    },
}

impl MoneyError {
    /// A stable snake_case code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::NotPositive { .. } => "amount_not_positive",
            MoneyError::TooLarge => "amount_too_large",
            MoneyError::TooSmall { .. } => "amount_too_small",
            MoneyError::Precision { .. } => "amount_precision",
            MoneyError::UnsupportedCurrency { .. } => "currency_unsupported",
            MoneyError::CurrencyMismatch { .. } => "currency_mismatch",
            MoneyError::InvalidDecimal { .. } => "amount_invalid",
            MoneyError::Negative { .. } => "amount_negative",
        }
    }
}

fn precision_message(currency: &Currency) -> String {
    match currency.exponent() {
        0 => format!("{currency} is a zero-decimal currency: amounts cannot have a fractional part"),
        3 => format!(
            "{currency} amounts must be a multiple of 10 minor units: Stripe requires the third decimal place to be 0"
        ),
        decimals => format!("{currency} amounts have at most {decimals} decimal places"),
    }
}

fn all_ascii_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// The start of `s`, for echoing rejected input without echoing megabytes.
fn excerpt(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(ECHO_LIMIT).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn money(minor: i64, code: &str) -> Money {
        Money::new(minor, cur(code)).unwrap()
    }

    // --- Currency ---------------------------------------------------------

    #[test]
    fn table_is_sorted_unique_lowercase_three_letters() {
        assert_eq!(SUPPORTED.len(), 139);
        for pair in SUPPORTED.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?} out of order");
        }
        for code in SUPPORTED {
            assert_eq!(code.len(), 3, "{code}");
            assert!(code.bytes().all(|b| b.is_ascii_lowercase()), "{code}");
        }
    }

    #[test]
    fn decimal_lists_are_in_the_table_and_disjoint() {
        for code in ZERO_DECIMAL.iter().chain(THREE_DECIMAL.iter()) {
            assert!(SUPPORTED.contains(code), "{code}");
        }
        for code in ZERO_DECIMAL {
            assert!(!THREE_DECIMAL.contains(&code), "{code}");
        }
        assert_eq!(Currency::all().filter(|c| c.exponent() == 0).count(), 16);
        assert_eq!(Currency::all().filter(|c| c.exponent() == 3).count(), 5);
    }

    #[test]
    fn constants_are_supported() {
        for c in [Currency::USD, Currency::EUR, Currency::GBP] {
            assert_eq!(Currency::parse(c.as_str()), Ok(c));
        }
    }

    #[test]
    fn currency_parse_is_case_insensitive() {
        assert_eq!(cur("EUR"), Currency::EUR);
        assert_eq!(cur("eur"), Currency::EUR);
        assert_eq!(cur("eUr"), Currency::EUR);
        assert_eq!("UsD".parse::<Currency>(), Ok(Currency::USD));
    }

    #[test]
    fn currency_parse_refuses_unknown_and_untrimmed() {
        for bad in [
            "xyz", "", "eu", "euro", " eur", "eur ", "e u", "EUR\n", "€", "ëur",
        ] {
            let err = Currency::parse(bad).unwrap_err();
            assert_eq!(err.code(), "currency_unsupported", "{bad:?}");
        }
        let err = Currency::parse("xyz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported currency \"xyz\": expected a three-letter ISO 4217 code that Stripe supports, such as \"usd\" or \"eur\""
        );
    }

    #[test]
    fn currency_error_truncates_long_input() {
        let long = "x".repeat(10_000);
        let MoneyError::UnsupportedCurrency { code } = Currency::parse(&long).unwrap_err() else {
            panic!("wrong variant");
        };
        assert_eq!(code.chars().count(), ECHO_LIMIT + 1);
    }

    #[test]
    fn currency_forms() {
        let eur = cur("EUR");
        assert_eq!(eur.as_str(), "eur");
        assert_eq!(eur.to_string(), "eur");
        assert_eq!(eur.iso_code(), "EUR");
    }

    #[test]
    fn exponents() {
        for code in ["jpy", "krw", "bif", "clp", "vnd", "xof", "xpf", "ugx"] {
            assert_eq!(cur(code).exponent(), 0, "{code}");
        }
        for code in ["bhd", "jod", "kwd", "omr", "tnd"] {
            assert_eq!(cur(code).exponent(), 3, "{code}");
        }
        for code in ["usd", "eur", "gbp", "chf", "isk", "huf", "twd"] {
            assert_eq!(cur(code).exponent(), 2, "{code}");
        }
    }

    #[test]
    fn currency_serde() {
        assert_eq!(serde_json::to_string(&Currency::EUR).unwrap(), "\"eur\"");
        let c: Currency = serde_json::from_str("\"GBP\"").unwrap();
        assert_eq!(c, Currency::GBP);
        let err = serde_json::from_str::<Currency>("\"xyz\"").unwrap_err();
        assert!(
            err.to_string().contains("unsupported currency \"xyz\""),
            "{err}"
        );
        let err = serde_json::from_str::<Currency>("42").unwrap_err();
        assert!(err.to_string().contains("ISO 4217"), "{err}");
    }

    // --- Money::new and friends ---------------------------------------------

    #[test]
    fn new_refuses_zero_and_negative() {
        let err = Money::new(0, Currency::EUR).unwrap_err();
        assert_eq!(err, MoneyError::NotPositive { got: 0 });
        assert_eq!(err.code(), "amount_not_positive");
        assert_eq!(
            err.to_string(),
            "amount must be a positive integer in minor units (cents), got 0"
        );
        assert_eq!(
            Money::new(-1, Currency::EUR),
            Err(MoneyError::NotPositive { got: -1 })
        );
        assert_eq!(
            Money::new(i64::MIN, Currency::EUR),
            Err(MoneyError::NotPositive { got: i64::MIN })
        );
    }

    #[test]
    fn new_enforces_eight_digit_maximum() {
        assert_eq!(money(MAX_AMOUNT, "eur").minor(), 99_999_999);
        let err = Money::new(MAX_AMOUNT + 1, Currency::EUR).unwrap_err();
        assert_eq!(err, MoneyError::TooLarge);
        assert_eq!(err.code(), "amount_too_large");
        assert!(err.to_string().contains(&MAX_AMOUNT.to_string()));
        assert_eq!(
            Money::new(i64::MAX, Currency::EUR),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn jpy_is_zero_decimal() {
        let m = money(500, "jpy");
        assert_eq!(m.format_decimal(), "500");
        assert_eq!(m.to_string(), "500 JPY");
        assert_eq!(m.to_stripe_amount(), 500);
        assert_eq!(Money::parse_decimal("500", cur("jpy")), Ok(m));
    }

    #[test]
    fn kwd_requires_multiples_of_ten() {
        let kwd = cur("kwd");
        let err = Money::new(1005, kwd).unwrap_err();
        assert_eq!(err, MoneyError::Precision { currency: kwd });
        assert_eq!(err.code(), "amount_precision");
        assert!(err.to_string().contains("multiple of 10"), "{err}");
        let m = money(1000, "kwd");
        assert_eq!(m.format_decimal(), "1.000");
        assert_eq!(m.to_stripe_amount(), 1000);
        assert_eq!(money(1230, "kwd").format_decimal(), "1.230");
        assert_eq!(money(10, "kwd").format_decimal(), "0.010");
        assert_eq!(Money::parse_decimal("1.005", kwd), Err(err));
        assert_eq!(Money::parse_decimal("1.23", kwd), Ok(money(1230, "kwd")));
    }

    #[test]
    fn balance_allows_zero_not_negative() {
        assert!(Money::balance(0, Currency::EUR).unwrap().is_zero());
        assert_eq!(
            Money::balance(0, Currency::EUR),
            Ok(Money::zero(Currency::EUR))
        );
        // No charge rules: over the maximum, and not a multiple of 10 in KWD.
        assert_eq!(
            Money::balance(i64::MAX, Currency::EUR).unwrap().minor(),
            i64::MAX
        );
        assert_eq!(Money::balance(1005, cur("kwd")).unwrap().minor(), 1005);
        let err = Money::balance(-5, Currency::EUR).unwrap_err();
        assert_eq!(err, MoneyError::Negative { got: -5 });
        assert_eq!(err.code(), "amount_negative");
        assert_eq!(
            err.to_string(),
            "amount must not be negative, got -5 minor units"
        );
    }

    #[test]
    fn ensure_chargeable_reapplies_new() {
        let zero = Money::zero(Currency::EUR);
        assert_eq!(
            zero.ensure_chargeable(),
            Err(MoneyError::NotPositive { got: 0 })
        );
        let big = money(MAX_AMOUNT, "eur")
            .checked_add(money(1, "eur"))
            .unwrap();
        assert_eq!(big.ensure_chargeable(), Err(MoneyError::TooLarge));
        let odd = Money::balance(15, cur("kwd")).unwrap();
        assert_eq!(
            odd.ensure_chargeable().unwrap_err().code(),
            "amount_precision"
        );
        assert_eq!(
            money(4999, "eur").ensure_chargeable(),
            Ok(money(4999, "eur"))
        );
    }

    // --- Decimal parsing and formatting ----------------------------------

    #[test]
    fn parse_decimal_eur() {
        let eur = Currency::EUR;
        assert_eq!(Money::parse_decimal("12.34", eur), Ok(money(1234, "eur")));
        assert_eq!(Money::parse_decimal("12.3", eur), Ok(money(1230, "eur")));
        assert_eq!(Money::parse_decimal("12", eur), Ok(money(1200, "eur")));
        assert_eq!(Money::parse_decimal("0.01", eur), Ok(money(1, "eur")));
        assert_eq!(Money::parse_decimal("007.50", eur), Ok(money(750, "eur")));
        assert_eq!(
            Money::parse_decimal("999999.99", eur),
            Ok(money(MAX_AMOUNT, "eur"))
        );
    }

    #[test]
    fn parse_decimal_precision() {
        let eur = Currency::EUR;
        let jpy = cur("jpy");
        assert_eq!(
            Money::parse_decimal("0.001", eur),
            Err(MoneyError::Precision { currency: eur })
        );
        assert_eq!(
            Money::parse_decimal("12.340", eur),
            Err(MoneyError::Precision { currency: eur })
        );
        assert_eq!(
            Money::parse_decimal("0.5", jpy),
            Err(MoneyError::Precision { currency: jpy })
        );
        assert_eq!(
            Money::parse_decimal("500.0", jpy),
            Err(MoneyError::Precision { currency: jpy })
        );
        assert_eq!(
            MoneyError::Precision { currency: jpy }.to_string(),
            "jpy is a zero-decimal currency: amounts cannot have a fractional part"
        );
        assert_eq!(
            MoneyError::Precision { currency: eur }.to_string(),
            "eur amounts have at most 2 decimal places"
        );
    }

    #[test]
    fn parse_decimal_refuses_malformed_input() {
        for bad in [
            "", "1,000.50", "1 000", "+12", "-12", "-0", "12e3", "1E3", " 12", "12 ", "12\n", ".5",
            "5.", ".", "1.2.3", "12..3", "0x10", "١٢", "12€", "NaN", "inf", "1_000",
        ] {
            let err = Money::parse_decimal(bad, Currency::EUR).unwrap_err();
            assert_eq!(err.code(), "amount_invalid", "{bad:?}: {err}");
        }
        let err = Money::parse_decimal("1,000.50", Currency::EUR).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid decimal amount \"1,000.50\": "),
            "{err}"
        );
    }

    #[test]
    fn parse_decimal_zero_and_too_large() {
        let eur = Currency::EUR;
        assert_eq!(
            Money::parse_decimal("0", eur),
            Err(MoneyError::NotPositive { got: 0 })
        );
        assert_eq!(
            Money::parse_decimal("0.00", eur),
            Err(MoneyError::NotPositive { got: 0 })
        );
        assert_eq!(
            Money::parse_decimal("1000000", eur),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            Money::parse_decimal("92233720368547758.07", eur),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            Money::parse_decimal(&"9".repeat(500), eur),
            Err(MoneyError::TooLarge)
        );
        // Leading zeros do not overflow.
        let padded = format!("{}1", "0".repeat(500));
        assert_eq!(Money::parse_decimal(&padded, eur), Ok(money(100, "eur")));
    }

    #[test]
    fn minimum_charges_are_stripes() {
        for (code, minimum) in [
            ("eur", 50),
            ("usd", 50),
            ("jpy", 50),
            ("gbp", 30),
            ("huf", 17500),
        ] {
            assert_eq!(cur(code).minimum_charge(), Some(minimum), "{code}");
            let below = Money::new(minimum - 1, cur(code)).unwrap();
            let err = below.ensure_minimum_charge().unwrap_err();
            assert_eq!(err.code(), "amount_too_small");
            assert!(err.to_string().contains(&minimum.to_string()), "{err}");
            let at = Money::new(minimum, cur(code)).unwrap();
            assert_eq!(at.ensure_minimum_charge(), Ok(at));
        }
        // Unlisted: the minimum depends on an exchange rate obol does not know.
        assert_eq!(cur("kwd").minimum_charge(), None);
        assert!(money(10, "kwd").ensure_minimum_charge().is_ok());
        // The table is sorted, lowercase and within the supported currencies.
        let codes: Vec<&str> = MINIMUM_CHARGE.iter().map(|(c, _)| *c).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        assert_eq!(codes, sorted);
        assert!(codes.iter().all(|c| Currency::parse(c).is_ok()));
    }

    #[test]
    fn format_decimal_pads_fraction() {
        assert_eq!(money(1234, "eur").format_decimal(), "12.34");
        assert_eq!(money(1205, "eur").format_decimal(), "12.05");
        assert_eq!(money(5, "eur").format_decimal(), "0.05");
        assert_eq!(money(1234, "jpy").format_decimal(), "1234");
        assert_eq!(money(1234, "eur").to_string(), "12.34 EUR");
        assert_eq!(money(1230, "kwd").to_string(), "1.230 KWD");
        assert_eq!(Money::zero(Currency::USD).to_string(), "0.00 USD");
    }

    // --- Arithmetic ---------------------------------------------------------

    #[test]
    fn checked_arithmetic() {
        let a = money(1000, "eur");
        let b = money(250, "eur");
        assert_eq!(a.checked_add(b), Ok(money(1250, "eur")));
        assert_eq!(a.checked_sub(b), Ok(money(750, "eur")));
        assert_eq!(a.checked_sub(a), Ok(Money::zero(Currency::EUR)));
        assert_eq!(b.checked_sub(a), Err(MoneyError::Negative { got: -750 }));
        let usd = money(1, "usd");
        let err = a.checked_add(usd).unwrap_err();
        assert_eq!(
            err,
            MoneyError::CurrencyMismatch {
                left: Currency::EUR,
                right: Currency::USD
            }
        );
        assert_eq!(err.code(), "currency_mismatch");
        assert_eq!(
            err.to_string(),
            "cannot combine amounts in different currencies: eur and usd"
        );
        assert_eq!(a.checked_sub(usd).unwrap_err().code(), "currency_mismatch");
        let max = Money::balance(i64::MAX, Currency::EUR).unwrap();
        assert_eq!(max.checked_add(money(1, "eur")), Err(MoneyError::TooLarge));
    }

    // --- Serde --------------------------------------------------------------

    #[test]
    fn money_serde_shape_and_round_trip() {
        let m = money(4999, "eur");
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":4999,"currency":"eur"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        let upper: Money = serde_json::from_str(r#"{"amount":500,"currency":"JPY"}"#).unwrap();
        assert_eq!(upper, money(500, "jpy"));
        assert_eq!(
            serde_json::to_value(upper).unwrap(),
            serde_json::json!({"amount": 500, "currency": "jpy"})
        );
    }

    #[test]
    fn money_deserialize_applies_charge_rules() {
        let cases = [
            (r#"{"amount":0,"currency":"eur"}"#, "positive integer"),
            (r#"{"amount":-5,"currency":"eur"}"#, "positive integer"),
            (r#"{"amount":100000000,"currency":"eur"}"#, "too large"),
            (r#"{"amount":1005,"currency":"kwd"}"#, "multiple of 10"),
            (r#"{"amount":100,"currency":"xyz"}"#, "unsupported currency"),
            (r#"{"amount":12.5,"currency":"eur"}"#, "i64"),
            (r#"{"amount":"100","currency":"eur"}"#, "i64"),
            (r#"{"currency":"eur"}"#, "amount"),
        ];
        for (json, needle) in cases {
            let err = serde_json::from_str::<Money>(json).unwrap_err();
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
    }

    // --- Fees ---------------------------------------------------------------

    #[test]
    fn fee_worked_example() {
        let schedule = FeeSchedule::new(140, 25);
        let fee = schedule.fee_for(&money(1999, "eur")).unwrap();
        assert_eq!(fee, money(53, "eur"));
    }

    #[test]
    fn fee_rounds_half_up() {
        let one_percent = FeeSchedule::new(100, 0);
        // 2.5 → 3 and 1.5 → 2 (banker's rounding would give 2 and 2).
        assert_eq!(one_percent.fee_for(&money(250, "eur")).unwrap().minor(), 3);
        assert_eq!(one_percent.fee_for(&money(150, "eur")).unwrap().minor(), 2);
        assert_eq!(one_percent.fee_for(&money(249, "eur")).unwrap().minor(), 2);
        assert_eq!(one_percent.fee_for(&money(251, "eur")).unwrap().minor(), 3);
        // 1250 × 4 bps = 0.5 → 1; 1249 × 4 bps = 0.4996 → 0.
        // A large tie: 75 508 750 × 6740 bps = 50 892 897.5 → 50 892 898.
        let big_tie = FeeSchedule::new(6740, 0).fee_for(&money(75_508_750, "eur"));
        assert_eq!(big_tie.unwrap().minor(), 50_892_898);
        let four_bps = FeeSchedule::new(4, 0);
        assert_eq!(four_bps.fee_for(&money(1250, "eur")).unwrap().minor(), 1);
        assert_eq!(four_bps.fee_for(&money(1249, "eur")).unwrap().minor(), 0);
    }

    #[test]
    fn fee_edge_cases() {
        // Not clamped to the amount.
        let fixed = FeeSchedule::new(0, 30);
        assert_eq!(fixed.fee_for(&money(10, "eur")).unwrap().minor(), 30);
        // Zero amount: just the fixed part.
        let zero = Money::zero(Currency::EUR);
        assert_eq!(
            FeeSchedule::new(290, 30).fee_for(&zero).unwrap().minor(),
            30
        );
        // Three-decimal result need not be a multiple of 10.
        let kwd_fee = FeeSchedule::new(140, 0)
            .fee_for(&money(1000, "kwd"))
            .unwrap();
        assert_eq!(kwd_fee.minor(), 14);
        assert_eq!(kwd_fee.currency(), cur("kwd"));
        // Negative fixed part below zero.
        let rebate = FeeSchedule::new(0, -5);
        assert_eq!(
            rebate.fee_for(&money(100, "eur")),
            Err(MoneyError::Negative { got: -5 })
        );
        // Overflow of i64.
        let huge = Money::balance(i64::MAX, Currency::EUR).unwrap();
        assert_eq!(
            FeeSchedule::new(20_000, 0).fee_for(&huge),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn error_codes_are_stable() {
        let eur = Currency::EUR;
        let cases = [
            (MoneyError::NotPositive { got: 0 }, "amount_not_positive"),
            (MoneyError::TooLarge, "amount_too_large"),
            (
                MoneyError::TooSmall {
                    minimum: 50,
                    currency: eur,
                },
                "amount_too_small",
            ),
            (MoneyError::Precision { currency: eur }, "amount_precision"),
            (
                MoneyError::UnsupportedCurrency { code: "x".into() },
                "currency_unsupported",
            ),
            (
                MoneyError::CurrencyMismatch {
                    left: eur,
                    right: eur,
                },
                "currency_mismatch",
            ),
            (
                MoneyError::InvalidDecimal {
                    input: "x".into(),
                    reason: "r",
                },
                "amount_invalid",
            ),
            (MoneyError::Negative { got: -1 }, "amount_negative"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
    }

    // --- Properties ---------------------------------------------------------

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::all().collect::<Vec<_>>())
    }

    /// Any amount `Money::new` accepts, in any supported currency.
    fn any_money() -> impl Strategy<Value = Money> {
        any_currency().prop_flat_map(|c| {
            let minor = if c.exponent() == 3 {
                (1..=MAX_AMOUNT / 10).prop_map(|k| k * 10).boxed()
            } else {
                (1..=MAX_AMOUNT).boxed()
            };
            minor.prop_map(move |m| Money::new(m, c).unwrap())
        })
    }

    fn money_pair_same_currency() -> impl Strategy<Value = (Money, Money)> {
        any_currency().prop_flat_map(|c| {
            (0..=i64::MAX / 2, 0..=i64::MAX / 2).prop_map(move |(a, b)| {
                (Money::balance(a, c).unwrap(), Money::balance(b, c).unwrap())
            })
        })
    }

    /// Amounts around the interesting boundaries as well as anywhere.
    fn any_minor() -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            -100i64..=100,
            MAX_AMOUNT - 100..=MAX_AMOUNT + 100,
            1i64..=MAX_AMOUNT,
        ]
    }

    #[test]
    fn gross_up_nets_the_business_the_subtotal() {
        let us = FeeSchedule::new(290, 30);
        // The documented example: 100.00 USD → fee 3.30, total 103.30.
        let fee = us.gross_up(&money(10_000, "usd")).unwrap();
        assert_eq!(fee.minor(), 330);
        assert_eq!(us.fee_for(&money(10_330, "usd")).unwrap().minor(), 330);
        // 1.5 % + 10 on 50.00 USD: T₀ = ceil(5010 / 0.985) = 5087, but the
        // fee on 5086 is 76.29 → 76 + 10 = 86, which nets exactly 5000.
        let fee = FeeSchedule::new(150, 10)
            .gross_up(&money(5_000, "usd"))
            .unwrap();
        assert_eq!(fee.minor(), 86);
        // JPY: whole yen. 3.6 % on ¥10,000 → ¥10,373 (its fee is 373.43
        // → ¥373); ¥10,372 would net ¥9,999.
        let fee = FeeSchedule::new(360, 0)
            .gross_up(&money(10_000, "jpy"))
            .unwrap();
        assert_eq!(fee.minor(), 373);
        // KWD: the total is rounded up to a multiple of 10 fils.
        let fee = FeeSchedule::new(290, 0)
            .gross_up(&money(10_000, "kwd"))
            .unwrap();
        assert_eq!((10_000 + fee.minor()) % 10, 0);
        assert_eq!(fee.minor(), 300);
        // No rate, no fee.
        assert!(FeeSchedule::new(0, 0)
            .gross_up(&money(1234, "eur"))
            .unwrap()
            .is_zero());
        assert!(FeeSchedule::new(5_001, 0)
            .gross_up(&money(1234, "eur"))
            .is_err());
    }

    proptest! {
        #[test]
        fn prop_format_parse_round_trip(m in any_money()) {
            let text = m.format_decimal();
            prop_assert_eq!(Money::parse_decimal(&text, m.currency()), Ok(m));
            let digits_after_dot = text.split_once('.').map_or(0, |(_, f)| f.len());
            prop_assert_eq!(digits_after_dot, m.currency().decimals());
        }

        #[test]
        fn prop_serde_round_trip(m in any_money()) {
            let json = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        }

        #[test]
        fn prop_parse_never_panics(s in any::<String>(), c in any_currency()) {
            if let Ok(m) = Money::parse_decimal(&s, c) {
                prop_assert_eq!(Money::new(m.minor(), c), Ok(m));
            }
            let _ = Currency::parse(&s);
        }

        #[test]
        fn prop_parse_never_panics_numberish(
            s in "[-+ ,.e0-9]{0,24}",
            c in any_currency(),
        ) {
            match Money::parse_decimal(&s, c) {
                Ok(m) => prop_assert_eq!(Money::new(m.minor(), c), Ok(m)),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn prop_new_accepts_exactly_valid_amounts(minor in any_minor(), c in any_currency()) {
            let valid = minor > 0
                && minor <= MAX_AMOUNT
                && (c.exponent() != 3 || minor % 10 == 0);
            let result = Money::new(minor, c);
            prop_assert_eq!(result.is_ok(), valid);
            match result {
                Ok(m) => {
                    prop_assert_eq!(m.minor(), minor);
                    prop_assert_eq!(m.to_stripe_amount(), minor);
                    prop_assert_eq!(m.currency(), c);
                }
                Err(e) => {
                    let expected = if minor <= 0 {
                        "amount_not_positive"
                    } else if minor > MAX_AMOUNT {
                        "amount_too_large"
                    } else {
                        "amount_precision"
                    };
                    prop_assert_eq!(e.code(), expected);
                }
            }
        }

        #[test]
        fn prop_fee_matches_rational_reference(
            a in prop_oneof![0i64..=MAX_AMOUNT, 0i64..=i64::MAX],
            bps in prop_oneof![0u32..=10_000, any::<u32>()],
            fixed in prop_oneof![0i64..=1_000_000, any::<i64>()],
        ) {
            let amount = Money::balance(a, Currency::EUR).unwrap();
            let result = FeeSchedule::new(bps, fixed).fee_for(&amount);
            // Reference: floor(a·bps/10000 + 1/2) written as one fraction.
            let (a128, bps128) = (i128::from(a), i128::from(bps));
            let reference = (2 * a128 * bps128 + 10_000) / 20_000 + i128::from(fixed);
            match i64::try_from(reference) {
                Ok(r) if r >= 0 => {
                    let fee = result.unwrap();
                    prop_assert_eq!(fee.minor(), r);
                    prop_assert_eq!(fee.currency(), Currency::EUR);
                    // Characterisation: nearest minor unit, ties upward:
                    // -1/2 <= exact - rounded < 1/2, scaled by 2·10000.
                    let diff2 = 2 * (a128 * bps128 - (i128::from(r) - i128::from(fixed)) * 10_000);
                    prop_assert!((-10_000..10_000).contains(&diff2), "diff2 {}", diff2);
                }
                Ok(r) => prop_assert_eq!(result, Err(MoneyError::Negative { got: r })),
                Err(_) => prop_assert_eq!(result, Err(MoneyError::TooLarge)),
            }
        }

        #[test]
        fn prop_fee_ties_round_up(k in 0i64..=999_999, j in 0u32..=99) {
            // (2k+1)·50 minor units at (2j+1)·100 bps is exactly
            // (2k+1)(2j+1)/2: always a tie, which must round up.
            let a = (2 * k + 1) * 50;
            let odd = i64::from(2 * j + 1);
            let fee = FeeSchedule::new(100 * (2 * j + 1), 0)
                .fee_for(&Money::balance(a, Currency::USD).unwrap())
                .unwrap();
            prop_assert_eq!(fee.minor(), ((2 * k + 1) * odd + 1) / 2);
        }

        #[test]
        fn prop_fee_is_monotonic(
            a in 0i64..=MAX_AMOUNT,
            b in 0i64..=MAX_AMOUNT,
            bps in 0u32..=100_000,
            fixed in 0i64..=1_000_000,
            c in any_currency(),
        ) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let schedule = FeeSchedule::new(bps, fixed);
            let fee_lo = schedule.fee_for(&Money::balance(lo, c).unwrap()).unwrap();
            let fee_hi = schedule.fee_for(&Money::balance(hi, c).unwrap()).unwrap();
            prop_assert!(fee_lo.minor() <= fee_hi.minor());
        }

        #[test]
        fn prop_checked_add_commutes((a, b) in money_pair_same_currency()) {
            let ab = a.checked_add(b);
            prop_assert_eq!(&ab, &b.checked_add(a));
            let sum = ab.unwrap();
            prop_assert_eq!(sum.minor(), a.minor() + b.minor());
            prop_assert_eq!(sum.checked_sub(b), Ok(a));
            prop_assert_eq!(sum.checked_sub(a), Ok(b));
            match a.checked_sub(b) {
                Ok(d) => prop_assert_eq!(d.minor(), a.minor() - b.minor()),
                Err(e) => prop_assert_eq!(e, MoneyError::Negative { got: a.minor() - b.minor() }),
            }
        }

        #[test]
        fn prop_mismatched_currencies_refused(
            a in any_money(),
            b in any_money(),
        ) {
            prop_assume!(a.currency() != b.currency());
            let mismatch = |l: Money, r: Money| MoneyError::CurrencyMismatch {
                left: l.currency(),
                right: r.currency(),
            };
            prop_assert_eq!(a.checked_add(b), Err(mismatch(a, b)));
            prop_assert_eq!(b.checked_add(a), Err(mismatch(b, a)));
            prop_assert_eq!(a.checked_sub(b), Err(mismatch(a, b)));
        }

        #[test]
        fn prop_currency_parse_any_case(c in any_currency(), mask in 0u8..8) {
            let mixed: String = c
                .as_str()
                .chars()
                .enumerate()
                .map(|(i, ch)| if mask & (1 << i) != 0 { ch.to_ascii_uppercase() } else { ch })
                .collect();
            prop_assert_eq!(Currency::parse(&mixed), Ok(c));
            prop_assert_eq!(Currency::parse(&c.iso_code()), Ok(c));
        }

        /// The gross-up total is the smallest the business nets the
        /// subtotal from, and a valid Stripe amount for its currency.
        #[test]
        fn prop_gross_up_is_the_smallest_sufficient_total(
            c in any_currency(),
            units in 1i64..1_000_000,
            bps in 0u32..=5_000,
            fixed in 0i64..1_000,
        ) {
            let unit = if c.exponent() == 3 { 10 } else { 1 };
            let subtotal = Money::new(units * unit, c).unwrap();
            let schedule = FeeSchedule::new(bps, fixed);
            let fee = schedule.gross_up(&subtotal).unwrap();
            let total = subtotal.minor() + fee.minor();
            let net = |t: i64| t - schedule.fee_for(&Money::balance(t, c).unwrap()).unwrap().minor();
            prop_assert!(net(total) >= subtotal.minor());
            if c.exponent() == 3 {
                prop_assert_eq!(total % 10, 0);
                prop_assert!(net(total - 10) < subtotal.minor());
            } else {
                prop_assert!(net(total - 1) < subtotal.minor());
            }
        }
    }
}
