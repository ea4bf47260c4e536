//! Stripe-shaped identifiers: a prefix and 24 random base62 characters.

use rand::Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn random(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect()
}

/// `prefix` is given without the underscore: `new_id("pi")` → `pi_…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random(24))
}
