//! Stripe's test cards: numbers, `pm_card_*` tokens and what each does.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Behaviour {
    Succeed,
    /// Declined on every charge and refused on attach.
    Decline {
        code: &'static str,
        decline_code: Option<&'static str>,
    },
    /// Attaches fine; every charge is declined.
    ChargeFail,
    RadarBlock,
    /// …3184: 3DS on-session, `authentication_required` off-session.
    AuthAlways,
    /// …3155: 3DS until set up with a SetupIntent, then frictionless.
    AuthOnSetup,
    /// …0446: 3DS on-session, succeeds off-session.
    AuthSetupOffSession,
    /// …3220: 3-D Secure 2 required.
    ThreeDs2,
    /// …1629: 3DS, then declined.
    ThreeDsDecline,
    Dispute {
        reason: &'static str,
        inquiry: bool,
    },
    PendingRefund,
    RefundFail,
}

pub struct TestCard {
    pub token: &'static str,
    pub number: &'static str,
    pub brand: &'static str,
    pub funding: &'static str,
    pub behaviour: Behaviour,
}

use Behaviour::*;

const fn card(
    token: &'static str,
    number: &'static str,
    brand: &'static str,
    funding: &'static str,
    behaviour: Behaviour,
) -> TestCard {
    TestCard {
        token,
        number,
        brand,
        funding,
        behaviour,
    }
}

const fn decline(code: &'static str, decline_code: Option<&'static str>) -> Behaviour {
    Decline { code, decline_code }
}

pub const CARDS: &[TestCard] = &[
    card(
        "pm_card_visa",
        "4242424242424242",
        "visa",
        "credit",
        Succeed,
    ),
    card(
        "pm_card_visa_debit",
        "4000056655665556",
        "visa",
        "debit",
        Succeed,
    ),
    card(
        "pm_card_mastercard",
        "5555555555554444",
        "mastercard",
        "credit",
        Succeed,
    ),
    card(
        "pm_card_mastercard_debit",
        "5200828282828210",
        "mastercard",
        "debit",
        Succeed,
    ),
    card(
        "pm_card_mastercard_prepaid",
        "5105105105105100",
        "mastercard",
        "prepaid",
        Succeed,
    ),
    card("pm_card_amex", "378282246310005", "amex", "credit", Succeed),
    card(
        "pm_card_discover",
        "6011111111111117",
        "discover",
        "credit",
        Succeed,
    ),
    card(
        "pm_card_diners",
        "3056930009020004",
        "diners",
        "credit",
        Succeed,
    ),
    card("pm_card_jcb", "3566002020360505", "jcb", "credit", Succeed),
    card(
        "pm_card_unionpay",
        "6200000000000005",
        "unionpay",
        "credit",
        Succeed,
    ),
    card(
        "pm_card_visa_chargeDeclined",
        "4000000000000002",
        "visa",
        "credit",
        decline("card_declined", Some("generic_decline")),
    ),
    card(
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "4000000000009995",
        "visa",
        "credit",
        decline("card_declined", Some("insufficient_funds")),
    ),
    card(
        "pm_card_visa_chargeDeclinedLostCard",
        "4000000000009987",
        "visa",
        "credit",
        decline("card_declined", Some("lost_card")),
    ),
    card(
        "pm_card_visa_chargeDeclinedStolenCard",
        "4000000000009979",
        "visa",
        "credit",
        decline("card_declined", Some("stolen_card")),
    ),
    card(
        "pm_card_chargeDeclinedExpiredCard",
        "4000000000000069",
        "visa",
        "credit",
        decline("expired_card", None),
    ),
    card(
        "pm_card_chargeDeclinedIncorrectCvc",
        "4000000000000127",
        "visa",
        "credit",
        decline("incorrect_cvc", None),
    ),
    card(
        "pm_card_chargeDeclinedProcessingError",
        "4000000000000119",
        "visa",
        "credit",
        decline("processing_error", None),
    ),
    card(
        "pm_card_visa_chargeDeclinedVelocityLimitExceeded",
        "4000000000006975",
        "visa",
        "credit",
        decline("card_declined", Some("card_velocity_exceeded")),
    ),
    card(
        "pm_card_chargeCustomerFail",
        "4000000000000341",
        "visa",
        "credit",
        ChargeFail,
    ),
    card(
        "pm_card_radarBlock",
        "4100000000000019",
        "visa",
        "credit",
        RadarBlock,
    ),
    card(
        "pm_card_authenticationRequired",
        "4000002760003184",
        "visa",
        "credit",
        AuthAlways,
    ),
    card(
        "pm_card_authenticationRequiredOnSetup",
        "4000002500003155",
        "visa",
        "credit",
        AuthOnSetup,
    ),
    card(
        "pm_card_authenticationRequiredSetupForOffSession",
        "4000003800000446",
        "visa",
        "credit",
        AuthSetupOffSession,
    ),
    card(
        "pm_card_threeDSecure2Required",
        "4000000000003220",
        "visa",
        "credit",
        ThreeDs2,
    ),
    card(
        "pm_card_threeDSecureRequiredChargeDeclined",
        "4000008400001629",
        "visa",
        "credit",
        ThreeDsDecline,
    ),
    card(
        "pm_card_threeDSecureOptional",
        "4000000000003055",
        "visa",
        "credit",
        Succeed,
    ),
    card(
        "pm_card_createDispute",
        "4000000000000259",
        "visa",
        "credit",
        Dispute {
            reason: "fraudulent",
            inquiry: false,
        },
    ),
    card(
        "pm_card_createDisputeProductNotReceived",
        "4000000000002685",
        "visa",
        "credit",
        Dispute {
            reason: "product_not_received",
            inquiry: false,
        },
    ),
    card(
        "pm_card_createDisputeInquiry",
        "4000000000001976",
        "visa",
        "credit",
        Dispute {
            reason: "fraudulent",
            inquiry: true,
        },
    ),
    card(
        "pm_card_createIssuerFraudRecord",
        "4000000000005423",
        "visa",
        "credit",
        Succeed,
    ),
    card(
        "pm_card_pendingRefund",
        "4000000000007726",
        "visa",
        "credit",
        PendingRefund,
    ),
    card(
        "pm_card_refundFail",
        "4000000000005126",
        "visa",
        "credit",
        RefundFail,
    ),
];

pub fn by_token(token: &str) -> Option<&'static TestCard> {
    CARDS.iter().find(|c| c.token == token)
}

pub fn by_number(number: &str) -> Option<&'static TestCard> {
    CARDS.iter().find(|c| c.number == number)
}

/// The behaviour recorded on a payment method (`_card` = the token name).
pub fn behaviour_of(token: &str) -> Behaviour {
    by_token(token).map(|c| c.behaviour).unwrap_or(Succeed)
}

pub fn luhn(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != number.len() || !(12..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    sum % 10 == 0
}

pub fn brand_for(number: &str) -> &'static str {
    let two: u32 = number.get(..2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let four: u32 = number.get(..4).and_then(|s| s.parse().ok()).unwrap_or(0);
    match () {
        _ if number.starts_with('4') => "visa",
        _ if (51..=55).contains(&two) || (2221..=2720).contains(&four) => "mastercard",
        _ if two == 34 || two == 37 => "amex",
        _ if number.starts_with("6011") || number.starts_with("65") => "discover",
        _ if two == 35 => "jcb",
        _ if two == 36 || two == 30 || two == 38 => "diners",
        _ if two == 62 => "unionpay",
        _ => "unknown",
    }
}

/// Stripe's customer-facing message for a decline code.
pub fn decline_message(code: &str, decline_code: Option<&str>) -> &'static str {
    match (code, decline_code) {
        (_, Some("insufficient_funds")) => "Your card has insufficient funds.",
        (_, Some("card_velocity_exceeded")) => {
            "Your card was declined for making repeated attempts too frequently or exceeding its amount limit."
        }
        ("authentication_required", _) => "Your card was declined. This transaction requires authentication.",
        ("expired_card", _) => "Your card has expired.",
        ("incorrect_cvc", _) => "Your card's security code is incorrect.",
        ("processing_error", _) => "An error occurred while processing your card. Try again in a little bit.",
        ("incorrect_number", _) => "Your card number is incorrect.",
        _ => "Your card was declined.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_number_passes_luhn_and_tokens_are_unique() {
        for c in CARDS {
            assert!(luhn(c.number), "{}", c.token);
            assert_eq!(CARDS.iter().filter(|d| d.token == c.token).count(), 1);
            assert_eq!(brand_for(c.number), c.brand, "{}", c.token);
        }
        assert!(!luhn("4242424242424241"));
    }
}
