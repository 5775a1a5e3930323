//! Sending users' votes on answers to MLflow, as assessments on the answers' traces: at once when a vote changes
//! (the request waits a moment for it), and from a background worker for the votes that could not be sent then.
//!
//! The database is the queue (see [`crate::db::feedback`]): every server process runs a worker, and a vote is claimed
//! by one attempt at a time, so several processes never send the same vote twice. A failure never loses a vote: it
//! stays `pending` and is tried again with a growing pause, and only repeated refusals (a 4xx other than 429) give
//! up on it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::bail;
use futures::future::join_all;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::{Config, FeedbackConfig};
use crate::databricks::DatabricksAuth;
use crate::databricks::mlflow::{MlflowClient, MlflowError, Vote};
use crate::db::feedback::{self, Claim};

/// How long a request waits for its vote to reach MLflow before answering `pending` (the attempt goes on).
const INLINE_WAIT: Duration = Duration::from_secs(5);
/// How long one attempt holds its vote: longer than two MLflow calls (an update that falls back to a creation) with
/// a token refresh, so that a slow attempt is never overtaken, and short enough to pick up a dead process's claims.
const LEASE: Duration = Duration::from_secs(120);
/// Refusals (a 4xx other than 429) after which a vote is given up on.
const MAX_REFUSALS: i32 = 3;
/// Votes claimed by one round of the worker (sent concurrently).
const BATCH: i64 = 20;
/// Rounds an attempt started by a request makes when the vote changes while it is being sent.
const INLINE_ROUNDS: usize = 3;
/// Longest pause between two rounds of the worker.
const MAX_POLL: Duration = Duration::from_secs(10);
/// How long stopping waits for attempts under way to record their outcome.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The MLflow side of feedback: on (with a client and a worker) or off. Cheap to clone.
#[derive(Clone, Default)]
pub struct MlflowSync {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    db: PgPool,
    mlflow: MlflowClient,
    retry_base: Duration,
    /// Attempts started by requests, which outlive them.
    attempts: TaskTracker,
    stopping: CancellationToken,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl MlflowSync {
    /// Sync off: votes stay in the app.
    pub fn off() -> Self {
        Self::default()
    }

    /// On when asked for (`MLFLOW_FEEDBACK`, else `MLFLOW_EXPERIMENT_ID`) and a workspace is configured; then starts
    /// the worker. Asked for explicitly without a workspace is a setting that cannot work, and stops the start.
    pub fn start(db: PgPool, config: &Config, databricks: Option<&DatabricksAuth>) -> anyhow::Result<Self> {
        let settings = &config.feedback;
        if !settings.mlflow_requested() {
            return Ok(Self::off());
        }
        let Some(auth) = databricks else {
            if settings.mlflow_switch == Some(true) {
                bail!(
                    "MLFLOW_FEEDBACK=true sends votes to MLflow, but no Databricks workspace is configured: set \
                     DATABRICKS_HOST with DATABRICKS_TOKEN or DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET, or a \
                     profile (DATABRICKS_CONFIG_PROFILE)"
                );
            }
            tracing::warn!(
                "MLFLOW_EXPERIMENT_ID is set but no Databricks workspace is configured; votes stay in the app only"
            );
            return Ok(Self::off());
        };
        tracing::info!(
            host = %auth.host(),
            experiment = settings.experiment_id.as_deref().unwrap_or("-"),
            "feedback: votes on traced answers are sent to MLflow as assessments"
        );
        let inner = Arc::new(Inner {
            db,
            mlflow: MlflowClient::new(auth.clone()),
            retry_base: settings.retry_base,
            attempts: TaskTracker::new(),
            stopping: CancellationToken::new(),
            worker: Mutex::new(None),
        });
        let worker = tokio::spawn(work(inner.clone()));
        *inner.worker.lock().unwrap_or_else(PoisonError::into_inner) = Some(worker);
        Ok(Self { inner: Some(inner) })
    }

    /// Whether votes go to MLflow.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Sends a pending vote now, waiting at most a few seconds. The attempt runs as its own task, so a client that
    /// leaves, or a slow MLflow, cannot cut it between creating an assessment and storing its id.
    pub async fn send_now(&self, message_id: Uuid, user_id: &str) {
        let Some(inner) = &self.inner else { return };
        let (inner, user_id) = (inner.clone(), user_id.to_owned());
        let sending = inner.attempts.clone().spawn(async move {
            for _ in 0..INLINE_ROUNDS {
                match feedback::claim(&inner.db, message_id, &user_id, LEASE.as_secs_f64()).await {
                    Ok(Some(claim)) => {
                        if !attempt(&inner, claim).await {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(message.id = %message_id, error = %error, "claiming a vote to send failed");
                        break;
                    }
                }
            }
        });
        let _ = tokio::time::timeout(INLINE_WAIT, sending).await;
    }

    /// Stops the worker after its current round and lets attempts under way record their outcome (briefly).
    pub async fn stop(&self) {
        let Some(inner) = &self.inner else { return };
        inner.stopping.cancel();
        let worker = inner.worker.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut worker) = worker
            && tokio::time::timeout(STOP_WAIT, &mut worker).await.is_err()
        {
            worker.abort();
        }
        inner.attempts.close();
        let _ = tokio::time::timeout(STOP_WAIT, inner.attempts.wait()).await;
    }
}

/// The worker: every round, claims the due votes and sends them.
async fn work(inner: Arc<Inner>) {
    let poll = inner.retry_base.min(MAX_POLL);
    loop {
        tokio::select! {
            () = inner.stopping.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
        }
        match feedback::claim_due(&inner.db, BATCH, LEASE.as_secs_f64()).await {
            Ok(claims) => {
                join_all(claims.into_iter().map(|claim| attempt(&inner, claim))).await;
            }
            Err(error) => tracing::warn!(error = %error, "looking for votes to send to MLflow failed"),
        }
    }
}

/// One attempt at a claimed vote; records the outcome. Returns whether the vote changed meanwhile and is due again.
async fn attempt(inner: &Inner, claim: Claim) -> bool {
    match send(&inner.mlflow, &claim).await {
        Ok(assessment_id) => match feedback::record_sent(&inner.db, &claim, assessment_id.as_deref()).await {
            Ok(again) => again,
            Err(error) => {
                // The claim expires and the vote is sent again; an assessment id lost here means a second assessment.
                tracing::warn!(message.id = %claim.message_id, error = %error, "storing a sent vote failed");
                false
            }
        },
        Err(error) => {
            let failures = claim.sync_attempts + 1;
            let give_up = !error.is_transient() && failures >= MAX_REFUSALS;
            let retry_in = retry_delay(inner.retry_base, failures);
            if give_up {
                tracing::warn!(message.id = %claim.message_id, error = %error, failures, "MLflow keeps refusing a vote; giving up on it");
            } else {
                tracing::warn!(message.id = %claim.message_id, error = %error, failures, retry_in_ms = retry_in.as_millis() as u64, "sending a vote to MLflow failed; will retry");
            }
            if let Err(error) = feedback::record_failure(&inner.db, &claim, retry_in.as_secs_f64(), give_up).await {
                tracing::warn!(message.id = %claim.message_id, error = %error, "storing a failed attempt failed");
            }
            false
        }
    }
}

/// Makes MLflow hold what the claimed revision says: creates, updates or deletes the assessment. Returns the
/// assessment's id afterwards (`None` once deleted).
async fn send(mlflow: &MlflowClient, claim: &Claim) -> Result<Option<String>, MlflowError> {
    // Only votes on traced answers are ever pending; an empty id is refused like any unusable one.
    let trace_id = claim.trace_id.as_deref().unwrap_or_default();
    let vote = claim.rating.as_deref().map(|rating| Vote { up: rating == "up", rationale: claim.comment.as_deref() });
    match (vote, claim.assessment_id.as_deref()) {
        (Some(vote), None) => mlflow.create(trace_id, &claim.user_id, vote).await.map(Some),
        (Some(vote), Some(id)) => match mlflow.update(trace_id, id, vote).await {
            Ok(()) => Ok(Some(id.to_owned())),
            // Deleted in MLflow by someone else: the vote still stands, so it gets a new assessment.
            Err(error) if error.is_not_found() => mlflow.create(trace_id, &claim.user_id, vote).await.map(Some),
            Err(error) => Err(error),
        },
        (None, Some(id)) => mlflow.delete(trace_id, id).await.map(|()| None),
        (None, None) => Ok(None),
    }
}

/// The pause after the `failures`-th failure in a row: the base, doubled each time, at most
/// [`FeedbackConfig::MAX_RETRY_DELAY`].
fn retry_delay(base: Duration, failures: i32) -> Duration {
    let doublings = failures.saturating_sub(1).clamp(0, 30) as u32;
    base.saturating_mul(1 << doublings).min(FeedbackConfig::MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_up_to_its_cap() {
        let base = Duration::from_secs(10);
        assert_eq!(retry_delay(base, 1), base);
        assert_eq!(retry_delay(base, 2), base * 2);
        assert_eq!(retry_delay(base, 4), base * 8);
        assert_eq!(retry_delay(base, 100), FeedbackConfig::MAX_RETRY_DELAY);
        assert_eq!(retry_delay(Duration::from_millis(50), 0), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn sync_is_off_unless_asked_for() {
        let db = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://x@127.0.0.1/x").expect("lazy pool");
        let config = Config::from_map(&crate::config::EnvMap::default()).expect("configuration");
        assert!(!MlflowSync::start(db.clone(), &config, None).expect("off").is_on());
        let asked = crate::config::EnvMap::default().with("MLFLOW_EXPERIMENT_ID", "1");
        let config = Config::from_map(&asked).expect("configuration");
        assert!(!MlflowSync::start(db.clone(), &config, None).expect("no workspace: off").is_on());
        let required = crate::config::EnvMap::default().with("MLFLOW_FEEDBACK", "true");
        let config = Config::from_map(&required).expect("configuration");
        let error = MlflowSync::start(db, &config, None).err().expect("explicitly on without a workspace");
        assert!(error.to_string().contains("DATABRICKS_HOST"), "{error}");
    }
}
