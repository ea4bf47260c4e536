//! Connect webhook endpoint registration, called after an organisation's
//! first connection (`ops::connect::callback`).
//!
//! PLACEHOLDER: the registration itself (one `connect=true` endpoint for
//! the platform, for exactly the event types obol handles) lands in the
//! `connect-events` branch, which replaces this file. Until then it does
//! nothing, so the connect flow builds and runs without it.

/// Makes sure the platform has its Connect webhook endpoint.
pub async fn ensure_registered(_ctx: &crate::context::Ctx) -> crate::error::Result<()> {
    Ok(())
}
