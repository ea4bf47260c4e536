//! Postal addresses on orders (`shipping_address`, `billing_address`):
//! parsed once at the edge into [`Address`], with known fields only,
//! strings only, each length-limited, and the country checked against ISO
//! 3166-1 alpha-2.
//!
//! Stored as before, the address's JSON text, so no migration is needed;
//! what is stored is the normalized address (trimmed, country uppercase).
//! A shipping address needs a name, street, city, zip and country; a
//! billing address may carry only some of them (the receipt e-mail and
//! the country are common), but what it carries follows the same rules.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, RuleCode};
use crate::validate;

/// ISO 3166-1 alpha-2 codes (the 249 officially assigned), sorted.
const COUNTRIES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// An address as a caller sends it: unknown keys and non-strings are
/// refused by serde (400 `invalid_body`) before any rule is checked.
#[derive(
    Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2 (`DE`, `US`).
    #[schema(pattern = "^[A-Za-z]{2}$", example = "DE")]
    #[schemars(length(equal = 2))]
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Which address: a shipping address must be complete enough to ship to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Shipping,
    Billing,
}

impl AddressKind {
    fn field(self) -> &'static str {
        match self {
            AddressKind::Shipping => "shipping_address",
            AddressKind::Billing => "billing_address",
        }
    }
}

/// Whether `code` is an ISO 3166-1 alpha-2 code (uppercase).
pub fn is_country(code: &str) -> bool {
    COUNTRIES.binary_search(&code).is_ok()
}

impl Address {
    /// Checks and normalizes an address: every field trimmed, single-line
    /// and within its length limit, the country an ISO 3166-1 alpha-2 code
    /// (any case; stored uppercase), the e-mail an address.
    pub fn validate(self, kind: AddressKind) -> Result<Address> {
        let at = kind.field();
        let required = kind == AddressKind::Shipping;
        let text =
            |name: &str, v: Option<String>, max: usize, needed: bool| -> Result<Option<String>> {
                match v {
                    Some(v) => Ok(Some(
                        validate::text(&format!("{at}.{name}"), &v, max)?.to_string(),
                    )),
                    None if needed => Err(Error::InvalidBody(format!("{at}.{name} is required"))),
                    None => Ok(None),
                }
            };
        let country = self.country.trim().to_ascii_uppercase();
        if !is_country(&country) {
            return Err(Error::rule(
                RuleCode::FieldInvalid,
                format!("{at}.country must be an ISO 3166-1 alpha-2 code such as \"DE\""),
            ));
        }
        Ok(Address {
            first_name: text("first_name", self.first_name, 100, required)?,
            last_name: text("last_name", self.last_name, 100, required)?,
            company: text("company", self.company, 100, false)?,
            street: text("street", self.street, 200, required)?,
            street2: text("street2", self.street2, 200, false)?,
            city: text("city", self.city, 100, required)?,
            zip: text("zip", self.zip, 20, required)?,
            state: text("state", self.state, 100, false)?,
            country,
            phone: text("phone", self.phone, 40, false)?,
            email: self.email.map(|e| validate::email(&e)).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipping(json: serde_json::Value) -> Result<Address> {
        serde_json::from_value::<Address>(json)
            .map_err(|e| Error::InvalidBody(e.to_string()))?
            .validate(AddressKind::Shipping)
    }

    #[test]
    fn countries_are_sorted_iso_codes() {
        let mut sorted = COUNTRIES;
        sorted.sort_unstable();
        assert_eq!(sorted, COUNTRIES);
        assert!(COUNTRIES
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
        for ok in ["DE", "US", "JP", "GB", "BR"] {
            assert!(is_country(ok), "{ok}");
        }
        for bad in ["XX", "UK", "EU", "de", "DEU", ""] {
            assert!(!is_country(bad), "{bad}");
        }
    }

    #[test]
    fn an_address_is_checked_and_normalized() {
        let a = shipping(
            serde_json::json!({"first_name": " Ana ", "last_name": "Lima",
            "street": "Weinstr. 1", "city": "Mainz", "zip": "55116", "country": "de"}),
        )
        .unwrap();
        assert_eq!(a.first_name.as_deref(), Some("Ana"));
        assert_eq!(a.country, "DE");
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"first_name": "Ana", "last_name": "Lima", "street": "Weinstr. 1",
                "city": "Mainz", "zip": "55116", "country": "DE"})
        );
        let base = serde_json::json!({"first_name": "Ana", "last_name": "Lima",
            "street": "Weinstr. 1", "city": "Mainz", "zip": "55116", "country": "DE"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            shipping(b).unwrap_err().code()
        };
        assert_eq!(with("country", "XX".into()), "field_invalid");
        assert_eq!(with("zip", "1".repeat(21).into()), "field_too_long");
        assert_eq!(with("city", 5.into()), "invalid_body");
        assert_eq!(with("evil", "x".into()), "invalid_body");
        assert_eq!(with("email", "nope".into()), "invalid_email");
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove("street");
        assert_eq!(
            shipping(missing.clone()).unwrap_err().code(),
            "invalid_body"
        );
        // A billing address may be partial.
        let billing: Address =
            serde_json::from_value(serde_json::json!({"email": "b@example.com", "country": "DE"}))
                .unwrap();
        assert!(billing.validate(AddressKind::Billing).is_ok());
    }
}
