//! Saved cards (placeholder until the saved-cards storage lands).

use super::Conn;
use crate::context::AccountId;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentMethodRow {
    pub stripe_payment_method_id: String,
    pub stripe_customer_id: Option<String>,
}

impl Conn<'_> {
    pub async fn get_default_payment_method(
        &mut self,
        _account: &AccountId,
        _customer_id: &str,
    ) -> Result<Option<PaymentMethodRow>> {
        Ok(None)
    }
}
