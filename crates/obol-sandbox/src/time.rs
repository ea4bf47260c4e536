//! Calendar arithmetic for billing periods (UTC, proleptic Gregorian),
//! written out because the sandbox carries no date crate.

/// Days since 1970-01-01 → (year, month 1-12, day 1-31). Howard Hinnant's algorithm.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn month_len(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 00:00 UTC of the day `ts` falls in.
pub fn day_start(ts: i64) -> i64 {
    ts.div_euclid(86_400) * 86_400
}

/// The `n`-th period boundary after `anchor`: months and years keep the
/// anchor's day of month, clamped to the month's length (Jan 31 → Feb 28
/// → Mar 31), as Stripe bills.
pub fn add_interval(anchor: i64, interval: &str, count: i64, n: i64) -> i64 {
    let secs = anchor.rem_euclid(86_400);
    let days = anchor.div_euclid(86_400);
    match interval {
        "day" => anchor + n * count * 86_400,
        "week" => anchor + n * count * 7 * 86_400,
        _ => {
            let months = if interval == "year" { 12 } else { 1 } * count * n;
            let (y, m, d) = civil(days);
            let total = y * 12 + (m - 1) + months;
            let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) + 1);
            let nd = d.min(month_len(ny, nm));
            days_from_civil(ny, nm, nd) * 86_400 + secs
        }
    }
}

/// The first period boundary after `anchor` that lies strictly after `t`.
pub fn next_boundary(anchor: i64, interval: &str, count: i64, t: i64) -> i64 {
    let mut n = 1;
    loop {
        let b = add_interval(anchor, interval, count, n);
        if b > t || n > 10_000 {
            return b;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_keep_the_anchor_day_clamped() {
        // 2024-01-31 12:00 UTC
        let jan31 = days_from_civil(2024, 1, 31) * 86_400 + 43_200;
        assert_eq!(
            civil(add_interval(jan31, "month", 1, 1).div_euclid(86_400)),
            (2024, 2, 29)
        );
        assert_eq!(
            civil(add_interval(jan31, "month", 1, 2).div_euclid(86_400)),
            (2024, 3, 31)
        );
        assert_eq!(add_interval(jan31, "month", 1, 1) % 86_400, 43_200);
        assert_eq!(
            civil(add_interval(jan31, "year", 1, 1).div_euclid(86_400)),
            (2025, 1, 31)
        );
        assert_eq!(add_interval(jan31, "week", 2, 1) - jan31, 14 * 86_400);
        assert_eq!(civil(days_from_civil(1970, 1, 1)), (1970, 1, 1));
        assert!(next_boundary(jan31, "month", 1, jan31) > jan31);
    }
}
