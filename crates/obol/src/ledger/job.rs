//! The state machine of one background job (the runner in `jobs/`
//! claims, runs and finishes jobs through it).
//!
//! ```text
//! queued ─▶ running ─▶ succeeded
//!   ▲          │ └───▶ dead    (last attempt failed, or failed for good)
//!   └──────────┘               (failed with attempts left)
//! running ─▶ running           (its lease expired; another worker claims it)
//! dead ─▶ queued               (an operator retries it)
//! ```
//!
//! Storage writes each move guarded by the status and lock owner it read,
//! so two workers never finish one attempt.

use serde::Serialize;

/// A job's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What the state machine looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobState {
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
}

/// What can happen to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobInput {
    /// A worker claims a due queued job.
    Claim,
    /// A worker claims a running job whose lease expired (its worker died).
    ReclaimExpired,
    /// The attempt succeeded.
    Succeed,
    /// The attempt failed; `permanent` when retrying cannot help (the
    /// payment was captured meanwhile, Stripe refused the refund).
    Fail { permanent: bool },
    /// An operator asks for a dead job to be run again.
    OperatorRetry,
}

/// An input the current state does not accept; nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub from: JobStatus,
    pub input: JobInput,
}

/// The one place that says how a job moves:
/// queued → running (claim, counting the attempt); running → running (the
/// lease expired and another worker claims it, counting a new attempt; on
/// the last attempt that makes it dead instead); running → succeeded;
/// running → queued (failed with attempts left) or dead (failed on the last
/// attempt, or permanently); dead → queued with a fresh schedule (operator).
pub fn transition(s: JobState, input: JobInput) -> std::result::Result<JobState, Refusal> {
    let refuse = Err(Refusal {
        from: s.status,
        input,
    });
    let with = |status: JobStatus, attempts: i32| {
        Ok(JobState {
            status,
            attempts,
            max_attempts: s.max_attempts,
        })
    };
    match (s.status, input) {
        (JobStatus::Queued, JobInput::Claim) if s.attempts < s.max_attempts => {
            with(JobStatus::Running, s.attempts + 1)
        }
        (JobStatus::Queued, JobInput::Claim) => refuse,
        (JobStatus::Running, JobInput::ReclaimExpired) if s.attempts < s.max_attempts => {
            with(JobStatus::Running, s.attempts + 1)
        }
        (JobStatus::Running, JobInput::ReclaimExpired) => with(JobStatus::Dead, s.attempts),
        (JobStatus::Running, JobInput::Succeed) => with(JobStatus::Succeeded, s.attempts),
        (JobStatus::Running, JobInput::Fail { permanent }) => {
            if permanent || s.attempts >= s.max_attempts {
                with(JobStatus::Dead, s.attempts)
            } else {
                with(JobStatus::Queued, s.attempts)
            }
        }
        (JobStatus::Dead, JobInput::OperatorRetry) => with(JobStatus::Queued, 0),
        (
            JobStatus::Queued,
            JobInput::ReclaimExpired
            | JobInput::Succeed
            | JobInput::Fail { .. }
            | JobInput::OperatorRetry,
        )
        | (JobStatus::Running, JobInput::Claim | JobInput::OperatorRetry)
        | (
            JobStatus::Succeeded,
            JobInput::Claim
            | JobInput::ReclaimExpired
            | JobInput::Succeed
            | JobInput::Fail { .. }
            | JobInput::OperatorRetry,
        )
        | (
            JobStatus::Dead,
            JobInput::Claim | JobInput::ReclaimExpired | JobInput::Succeed | JobInput::Fail { .. },
        ) => refuse,
    }
}
