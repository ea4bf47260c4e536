//! Seeded fault injection: API 500s and 429s, duplicated, reordered and
//! dropped webhook deliveries, added latency. Decisions come from two RNG
//! streams (API requests, deliveries) seeded from `seed`, so the same seed and
//! the same sequence of requests give the same faults.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Fault-injection settings. Fractions are probabilities in `0.0..=1.0`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChaosConfig {
    pub seed: u64,
    pub api_5xx: f64,
    pub api_429: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub drop: f64,
    pub latency_ms: u64,
}

impl ChaosConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("api_5xx", self.api_5xx),
            ("api_429", self.api_429),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("drop", self.drop),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for ChaosConfig {
    type Err = String;

    /// Parses `seed=42,api_5xx=0.2,api_429=0.1,drop=0.2`; an empty string is no chaos.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut c = ChaosConfig::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {part:?}"))?;
            let (k, v) = (k.trim(), v.trim());
            let frac = || v.parse::<f64>().map_err(|e| format!("{k}: {e}"));
            let int = || v.parse::<u64>().map_err(|e| format!("{k}: {e}"));
            match k {
                "seed" => c.seed = int()?,
                "api_5xx" => c.api_5xx = frac()?,
                "api_429" => c.api_429 = frac()?,
                "duplicate" => c.duplicate = frac()?,
                "reorder" => c.reorder = frac()?,
                "drop" => c.drop = frac()?,
                "latency_ms" => c.latency_ms = int()?,
                other => return Err(format!("unknown chaos setting {other:?}")),
            }
        }
        c.validate()?;
        Ok(c)
    }
}

/// What chaos decided for one API request.
pub(crate) enum ApiFault {
    None,
    ServerError,
    RateLimited,
}

/// What chaos decided for one webhook delivery.
pub(crate) struct DeliveryFault {
    pub drop: bool,
    pub duplicate: bool,
    /// Extra delay in ms so later events overtake this one.
    pub hold_ms: i64,
}

pub(crate) struct ChaosState {
    pub config: ChaosConfig,
    api_rng: StdRng,
    delivery_rng: StdRng,
}

impl ChaosState {
    pub fn new(config: ChaosConfig) -> Self {
        let api_rng = StdRng::seed_from_u64(config.seed);
        let delivery_rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_de11_7e57_0b01);
        ChaosState {
            config,
            api_rng,
            delivery_rng,
        }
    }

    pub fn api(&mut self) -> ApiFault {
        if self.config.api_5xx <= 0.0 && self.config.api_429 <= 0.0 {
            return ApiFault::None;
        }
        let roll: f64 = self.api_rng.random();
        if roll < self.config.api_5xx {
            ApiFault::ServerError
        } else if roll < self.config.api_5xx + self.config.api_429 {
            ApiFault::RateLimited
        } else {
            ApiFault::None
        }
    }

    pub fn delivery(&mut self) -> DeliveryFault {
        let c = &self.config;
        if c.drop <= 0.0 && c.duplicate <= 0.0 && c.reorder <= 0.0 {
            return DeliveryFault {
                drop: false,
                duplicate: false,
                hold_ms: 0,
            };
        }
        let drop = self.delivery_rng.random::<f64>() < c.drop;
        let duplicate = self.delivery_rng.random::<f64>() < c.duplicate;
        let reorder = self.delivery_rng.random::<f64>() < c.reorder;
        let hold_ms = if reorder {
            self.delivery_rng.random_range(300..1500)
        } else {
            0
        };
        DeliveryFault {
            drop,
            duplicate,
            hold_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_syntax() {
        let c: ChaosConfig = "seed=42, api_5xx=0.2,api_429=0.1,drop=0.2,latency_ms=5"
            .parse()
            .unwrap();
        assert_eq!(c.seed, 42);
        assert_eq!(c.api_5xx, 0.2);
        assert_eq!(c.latency_ms, 5);
        assert!("api_5xx=2".parse::<ChaosConfig>().is_err());
        assert!("bogus=1".parse::<ChaosConfig>().is_err());
        assert_eq!("".parse::<ChaosConfig>().unwrap(), ChaosConfig::default());
    }

    #[test]
    fn same_seed_same_faults() {
        let cfg: ChaosConfig = "seed=7,api_5xx=0.3,api_429=0.2".parse().unwrap();
        let run = |cfg: &ChaosConfig| {
            let mut s = ChaosState::new(cfg.clone());
            (0..200)
                .map(|_| match s.api() {
                    ApiFault::None => 0,
                    ApiFault::ServerError => 1,
                    ApiFault::RateLimited => 2,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(&cfg), run(&cfg));
        assert!(run(&cfg).contains(&1));
    }
}
