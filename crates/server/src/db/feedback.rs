//! Votes on answers (`chat.message_feedback`): what the feedback routes write, and the bookkeeping of sending them to
//! MLflow, shared by every server process: claiming a vote to send (a lease in `claimed_until`, taken with
//! `FOR UPDATE SKIP LOCKED` for the due ones), and recording how the attempt went.
//!
//! A vote's `revision` grows with every change, and an attempt records its result against the revision it sent: a
//! vote changed meanwhile keeps its new state and stays pending (but learns the assessment id, so it is updated, never
//! created twice).

use chrono::{DateTime, Utc};
use shared::{Feedback, FeedbackSync, Rating};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// The vote as the API shows it, from the columns of a row (`None` when there is no vote, or only a tombstone).
pub fn to_wire(
    rating: Option<&str>,
    comment: Option<String>,
    updated_at: Option<DateTime<Utc>>,
    sync: Option<&str>,
) -> Option<Feedback> {
    // The table's check constraints guarantee known spellings.
    Some(Feedback {
        rating: Rating::parse(rating?)?,
        comment,
        updated_at: updated_at?,
        sync: FeedbackSync::parse(sync?)?,
    })
}

/// A stored vote.
#[derive(Debug)]
pub struct VoteRow {
    /// `up`, `down`, or null on a tombstone.
    pub rating: Option<String>,
    /// The comment.
    pub comment: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// `off`, `pending`, `synced` or `failed`.
    pub sync: String,
}

impl VoteRow {
    /// As the API shows it.
    pub fn to_wire(&self) -> Option<Feedback> {
        to_wire(self.rating.as_deref(), self.comment.clone(), Some(self.updated_at), Some(&self.sync))
    }

    /// Whether it waits to be sent to MLflow.
    pub fn is_pending(&self) -> bool {
        self.sync == FeedbackSync::Pending.as_str()
    }
}

/// The message a vote is about.
#[derive(Debug)]
pub struct VoteTarget {
    /// `user`, `assistant`, ...
    pub role: String,
    /// `streaming`, `complete`, ...
    pub status: String,
    /// The answer's MLflow trace.
    pub trace_id: Option<String>,
}

/// A message of a chat, locked against deletion until the transaction ends (so that a chat deleted meanwhile
/// cannot turn the vote's insert into a foreign-key error).
pub async fn lock_target(conn: &mut PgConnection, chat_id: Uuid, message_id: Uuid) -> sqlx::Result<Option<VoteTarget>> {
    sqlx::query_as!(
        VoteTarget,
        // language=PostgreSQL
        r#"
        select role, status, trace_id from chat.messages
        where message_id = $1 and chat_id = $2
        for key share
        "#,
        message_id,
        chat_id
    )
    .fetch_optional(conn)
    .await
}

/// Whether a message is in a chat (for removing a vote, which needs no lock).
pub async fn target(db: impl PgExecutor<'_>, chat_id: Uuid, message_id: Uuid) -> sqlx::Result<Option<VoteTarget>> {
    sqlx::query_as!(
        VoteTarget,
        // language=PostgreSQL
        "select role, status, trace_id from chat.messages where message_id = $1 and chat_id = $2",
        message_id,
        chat_id
    )
    .fetch_optional(db)
    .await
}

/// A vote to store.
#[derive(Debug, Clone, Copy)]
pub struct NewVote<'a> {
    /// The answer.
    pub message_id: Uuid,
    /// The voter.
    pub user_id: &'a str,
    /// Up or down.
    pub rating: Rating,
    /// The cleaned comment.
    pub comment: Option<&'a str>,
    /// `Pending` when it is to be sent to MLflow, else `Off`.
    pub sync: FeedbackSync,
}

/// Stores or replaces the user's vote. The same vote again changes nothing (a client's retry sends nothing more to
/// MLflow), unless MLflow refused it before or it was kept out of MLflow and now goes there.
pub async fn upsert(conn: &mut PgConnection, vote: NewVote<'_>) -> sqlx::Result<VoteRow> {
    sqlx::query_as!(
        VoteRow,
        // language=PostgreSQL
        r#"
        with written as (
            insert into chat.message_feedback as f (message_id, user_id, rating, comment, sync, next_sync_at)
            values ($1, $2, $3, $4, $5, case when $5 = 'pending' then now() end)
            on conflict (message_id, user_id) do update
            set rating = excluded.rating, comment = excluded.comment, updated_at = now(), revision = f.revision + 1,
                sync = excluded.sync, next_sync_at = excluded.next_sync_at, sync_attempts = 0
            where f.rating is distinct from excluded.rating or f.comment is distinct from excluded.comment
               or f.sync = 'failed' or (f.sync = 'off' and excluded.sync = 'pending')
            returning f.rating, f.comment, f.updated_at, f.sync
        )
        select rating, comment, updated_at as "updated_at!", sync as "sync!" from written
        union all
        select rating, comment, updated_at, sync from chat.message_feedback
        where message_id = $1 and user_id = $2 and not exists (select 1 from written)
        "#,
        vote.message_id,
        vote.user_id,
        vote.rating.as_str(),
        vote.comment,
        vote.sync.as_str()
    )
    .fetch_one(conn)
    .await
}

/// The user's vote on a message, tombstones included.
pub async fn vote(db: impl PgExecutor<'_>, message_id: Uuid, user_id: &str) -> sqlx::Result<Option<VoteRow>> {
    sqlx::query_as!(
        VoteRow,
        // language=PostgreSQL
        r#"
        select rating, comment, updated_at, sync from chat.message_feedback
        where message_id = $1 and user_id = $2
        "#,
        message_id,
        user_id
    )
    .fetch_optional(db)
    .await
}

/// Removes the user's vote. One that MLflow may hold (an assessment id, or an attempt under way that may be creating
/// one) becomes a pending tombstone; returns whether it did, i.e. whether a deletion is to be sent.
pub async fn remove(db: impl PgExecutor<'_>, message_id: Uuid, user_id: &str) -> sqlx::Result<bool> {
    let tombstoned = sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        with gone as (
            delete from chat.message_feedback
            where message_id = $1 and user_id = $2 and assessment_id is null
              and (claimed_until is null or claimed_until <= now())
            returning 1
        )
        update chat.message_feedback
        set rating = null, comment = null, updated_at = now(), revision = revision + 1, sync = 'pending',
            sync_attempts = 0, next_sync_at = now()
        where message_id = $1 and user_id = $2 and rating is not null and not exists (select 1 from gone)
        returning true as "tombstoned!"
        "#,
        message_id,
        user_id
    )
    .fetch_optional(db)
    .await?;
    Ok(tombstoned.is_some())
}

/// A vote claimed for one attempt to send it, as it was when claimed.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The answer.
    pub message_id: Uuid,
    /// The voter (the assessment's source).
    pub user_id: String,
    /// The revision being sent.
    pub revision: i64,
    /// `up`, `down`, or null: delete the assessment.
    pub rating: Option<String>,
    /// The comment (the assessment's rationale).
    pub comment: Option<String>,
    /// The assessment, once created.
    pub assessment_id: Option<String>,
    /// The answer's trace.
    pub trace_id: Option<String>,
    /// Failed attempts so far.
    pub sync_attempts: i32,
}

/// Claims one pending vote for `lease_secs`, unless another attempt holds it.
pub async fn claim(
    db: impl PgExecutor<'_>,
    message_id: Uuid,
    user_id: &str,
    lease_secs: f64,
) -> sqlx::Result<Option<Claim>> {
    sqlx::query_as!(
        Claim,
        // language=PostgreSQL
        r#"
        update chat.message_feedback f
        set claimed_until = now() + make_interval(secs => $3)
        from chat.messages m
        where f.message_id = $1 and f.user_id = $2 and f.sync = 'pending'
          and (f.claimed_until is null or f.claimed_until <= now())
          and m.message_id = f.message_id
        returning f.message_id, f.user_id, f.revision, f.rating, f.comment, f.assessment_id, m.trace_id,
                  f.sync_attempts
        "#,
        message_id,
        user_id,
        lease_secs
    )
    .fetch_optional(db)
    .await
}

/// Claims up to `limit` pending votes whose next attempt is due, skipping those another process is claiming.
pub async fn claim_due(db: impl PgExecutor<'_>, limit: i64, lease_secs: f64) -> sqlx::Result<Vec<Claim>> {
    sqlx::query_as!(
        Claim,
        // language=PostgreSQL
        r#"
        with due as (
            select message_id, user_id from chat.message_feedback
            where sync = 'pending' and next_sync_at <= now()
              and (claimed_until is null or claimed_until <= now())
            order by next_sync_at
            limit $1
            for update skip locked
        )
        update chat.message_feedback f
        set claimed_until = now() + make_interval(secs => $2)
        from due join chat.messages m on m.message_id = due.message_id
        where f.message_id = due.message_id and f.user_id = due.user_id
        returning f.message_id, f.user_id, f.revision, f.rating, f.comment, f.assessment_id, m.trace_id,
                  f.sync_attempts
        "#,
        limit,
        lease_secs
    )
    .fetch_all(db)
    .await
}

/// Records that MLflow has the claimed revision (`assessment_id`: the assessment now, `None` once deleted) and
/// releases the claim. A sent tombstone is gone for good. Returns whether the vote changed meanwhile and is to be
/// sent again.
pub async fn record_sent(db: impl PgExecutor<'_>, claim: &Claim, assessment_id: Option<&str>) -> sqlx::Result<bool> {
    let again = sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        with finished as (
            delete from chat.message_feedback
            where message_id = $1 and user_id = $2 and revision = $3 and rating is null
            returning 1
        )
        update chat.message_feedback
        set assessment_id = $4, claimed_until = null,
            sync = case when revision = $3 then 'synced' else sync end,
            next_sync_at = case when revision = $3 then null else next_sync_at end,
            sync_attempts = case when revision = $3 then 0 else sync_attempts end
        where message_id = $1 and user_id = $2 and not exists (select 1 from finished)
        returning sync = 'pending' as "again!"
        "#,
        claim.message_id,
        claim.user_id,
        claim.revision,
        assessment_id
    )
    .fetch_optional(db)
    .await?;
    Ok(again.unwrap_or(false))
}

/// Records a failed attempt and releases the claim: the claimed revision is tried again in `retry_in_secs`, or, when
/// `give_up`, marked `failed` (a tombstone is dropped: MLflow keeps an assessment nobody can reach any more). A vote
/// changed meanwhile keeps its own schedule.
pub async fn record_failure(
    db: impl PgExecutor<'_>,
    claim: &Claim,
    retry_in_secs: f64,
    give_up: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        // language=PostgreSQL
        r#"
        with dropped as (
            delete from chat.message_feedback
            where message_id = $1 and user_id = $2 and revision = $3 and rating is null and $5
            returning 1
        )
        update chat.message_feedback
        set claimed_until = null,
            sync_attempts = case when revision = $3 then sync_attempts + 1 else sync_attempts end,
            sync = case when revision = $3 and $5 then 'failed' else sync end,
            next_sync_at = case
                when revision = $3 and $5 then null
                when revision = $3 then now() + make_interval(secs => $4)
                else next_sync_at
            end
        where message_id = $1 and user_id = $2 and not exists (select 1 from dropped)
        "#,
        claim.message_id,
        claim.user_id,
        claim.revision,
        retry_in_secs,
        give_up
    )
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tombstone_or_a_missing_vote_is_no_feedback() {
        let now = Utc::now();
        assert_eq!(to_wire(None, None, None, None), None);
        assert_eq!(to_wire(None, None, Some(now), Some("pending")), None);
        assert_eq!(
            to_wire(Some("down"), Some("stale".into()), Some(now), Some("synced")),
            Some(Feedback {
                rating: Rating::Down,
                comment: Some("stale".into()),
                updated_at: now,
                sync: FeedbackSync::Synced
            })
        );
    }
}
