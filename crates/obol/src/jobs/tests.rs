use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn queued(max_attempts: i32) -> JobState {
    JobState {
        status: JobStatus::Queued,
        attempts: 0,
        max_attempts,
    }
}

fn input() -> impl Strategy<Value = JobInput> {
    prop_oneof![
        Just(JobInput::Claim),
        Just(JobInput::ReclaimExpired),
        Just(JobInput::Succeed),
        Just(JobInput::Fail { permanent: false }),
        Just(JobInput::Fail { permanent: true }),
        Just(JobInput::OperatorRetry),
    ]
}

/// The states a job may be in: attempts within the schedule, a queued job
/// has an attempt left, a running one has spent at least one.
fn legal(s: JobState) -> bool {
    (0..=s.max_attempts).contains(&s.attempts)
        && match s.status {
            JobStatus::Queued => s.attempts < s.max_attempts,
            JobStatus::Running => s.attempts >= 1,
            JobStatus::Succeeded | JobStatus::Dead => s.attempts >= 1,
        }
}

#[test]
fn a_job_fails_until_its_schedule_is_spent_then_is_dead() {
    let max = JobKind::ReleaseAuthorization.max_attempts();
    let mut s = queued(max);
    for attempt in 1..=max {
        s = transition(s, JobInput::Claim).unwrap();
        assert_eq!((s.status, s.attempts), (JobStatus::Running, attempt));
        s = transition(s, JobInput::Fail { permanent: false }).unwrap();
        let expected = if attempt < max {
            JobStatus::Queued
        } else {
            JobStatus::Dead
        };
        assert_eq!(s.status, expected, "after attempt {attempt}");
    }
    let again = transition(s, JobInput::OperatorRetry).unwrap();
    assert_eq!((again.status, again.attempts), (JobStatus::Queued, 0));
}

#[test]
fn a_lease_expired_on_the_last_attempt_makes_the_job_dead() {
    let mut s = queued(2);
    s = transition(s, JobInput::Claim).unwrap();
    s = transition(s, JobInput::ReclaimExpired).unwrap();
    assert_eq!((s.status, s.attempts), (JobStatus::Running, 2));
    s = transition(s, JobInput::ReclaimExpired).unwrap();
    assert_eq!((s.status, s.attempts), (JobStatus::Dead, 2));
}

#[test]
fn only_a_dead_job_can_be_retried_by_an_operator() {
    for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded] {
        let s = JobState {
            status,
            attempts: 1,
            max_attempts: 3,
        };
        assert!(
            transition(s, JobInput::OperatorRetry).is_err(),
            "{status:?}"
        );
    }
}

#[test]
fn every_kind_has_a_schedule_and_a_name_that_parses_back() {
    for kind in JobKind::ALL {
        assert!(!kind.retry_delays().is_empty(), "{kind:?}");
        assert!(kind.retry_delays().windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
    }
    for status in JobStatus::ALL {
        assert_eq!(JobStatus::parse(status.as_str()), Some(status));
    }
    let unit = Duration::from_millis(1000);
    assert_eq!(
        retry_delay(JobKind::ReleaseAuthorization, 1, unit),
        Some(Duration::from_secs(5))
    );
    let last = JobKind::ReleaseAuthorization.max_attempts();
    assert_eq!(retry_delay(JobKind::ReleaseAuthorization, last, unit), None);
    assert_eq!(retry_delay(JobKind::ReleaseAuthorization, 0, unit), None);
}

#[test]
fn release_retries_end_before_the_authorization_lapses() {
    let total: u64 = JobKind::ReleaseAuthorization.retry_delays().iter().sum();
    assert!(total < 7 * 24 * 3600, "{total} s");
}

proptest! {
    /// Any sequence of inputs, duplicates included, keeps the job in a legal
    /// state; a refused input changes nothing; succeeded is final; a job is
    /// dead only after its last attempt or a permanent failure.
    #[test]
    fn any_sequence_ends_in_a_legal_state(
        max in 1i32..12,
        inputs in proptest::collection::vec(input(), 0..60),
    ) {
        let mut s = queued(max);
        for i in inputs {
            match transition(s, i) {
                Ok(next) => {
                    prop_assert!(legal(next), "{s:?} + {i:?} -> {next:?}");
                    prop_assert_ne!(s.status, JobStatus::Succeeded, "succeeded is final");
                    if next.status == JobStatus::Dead && s.status != JobStatus::Dead {
                        prop_assert!(
                            next.attempts == max || i == (JobInput::Fail { permanent: true }),
                            "dead early: {s:?} + {i:?}"
                        );
                    }
                    if next.attempts > s.attempts {
                        prop_assert_eq!(next.attempts, s.attempts + 1, "one attempt per claim");
                        prop_assert_eq!(next.status, JobStatus::Running);
                    }
                    s = next;
                }
                Err(refusal) => prop_assert_eq!(refusal.from, s.status),
            }
        }
        prop_assert!(legal(s));
    }

    /// A job that keeps failing, claimed again each time it is due, is dead
    /// after exactly `max_attempts` claims, never before.
    #[test]
    fn a_job_that_keeps_failing_is_dead_after_exactly_its_attempts(
        max in 1i32..12,
        duplicates in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let mut s = queued(max);
        let mut claims = 0;
        for dup in duplicates.iter().cycle().take(200) {
            if s.status == JobStatus::Dead {
                break;
            }
            s = transition(s, JobInput::Claim).unwrap();
            claims += 1;
            // A duplicate claim (two workers, one row) is refused.
            if *dup {
                prop_assert!(transition(s, JobInput::Claim).is_err());
            }
            s = transition(s, JobInput::Fail { permanent: false }).unwrap();
        }
        prop_assert_eq!(s.status, JobStatus::Dead);
        prop_assert_eq!(claims, max);
    }
}
