//! Per-user isolation through the API: a chat is visible only to its owner. After a scenario every user's chat
//! list must be exactly the chats the database says are theirs, and a stranger asking for a chat (its details,
//! messages, stop, answer, or a search for its words, or a new turn in it) must get 404, and a resume of its stream
//! 204 (nothing to resume, as for a chat that does not exist). While a scenario runs, a prober asks the same of chats
//! that are streaming, as strangers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::{ChatClient, TurnPlan, TurnRecord};
use super::plan::{Rng, USERS, nonce_of, stranger_of, user};

/// Checks every user's chat list and, for up to `sample` records, every route as a stranger.
pub async fn check(
    client: &ChatClient,
    db: &PgPool,
    records: &[TurnRecord],
    sample: usize,
    seed: u64,
) -> anyhow::Result<Vec<String>> {
    let mut violations = Vec::new();
    for index in 0..USERS {
        let owner = user(index);
        let listed = list_all_chats(client, &owner).await?;
        let owned: BTreeSet<Uuid> = sqlx::query_scalar::<_, Uuid>("select chat_id from chat.chats where owner_id = $1")
            .bind(&owner)
            .fetch_all(db)
            .await?
            .into_iter()
            .collect();
        for foreign in listed.difference(&owned) {
            violations.push(format!("GET /api/chats as {owner} lists chat {foreign}, which is not theirs"));
        }
        for missing in owned.difference(&listed) {
            violations.push(format!("GET /api/chats as {owner} does not list their chat {missing}"));
        }
    }
    let mut rng = Rng::new(seed);
    let step = (records.len() / sample.max(1)).max(1);
    for record in records.iter().filter(|r| r.acknowledged).step_by(step).take(sample) {
        let stranger = stranger_of(&record.plan.user, rng.next_u64());
        violations.extend(probe_as_stranger(client, &record.plan, record.answer_id, &stranger, true).await);
    }
    Ok(violations)
}

/// Every chat id in `owner`'s list, following the pages.
async fn list_all_chats(client: &ChatClient, owner: &str) -> anyhow::Result<BTreeSet<Uuid>> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request =
            client.http().get(format!("{}/api/chats", client.base_url)).header("x-forwarded-email", owner);
        request = request.query(&[("limit", "100")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor.as_str())]);
        }
        let response = request.send().await?;
        anyhow::ensure!(response.status() == StatusCode::OK, "GET /api/chats answered {}", response.status());
        let page: shared::ChatPage = response.json().await?;
        ids.extend(page.chats.iter().map(|c| c.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(ids),
        }
    }
}

/// Asks for someone else's chat in every way the API allows; anything but 404 (or 503 while the database is
/// down) is a violation. `thorough` adds the search and a new turn, which are heavier.
async fn probe_as_stranger(
    client: &ChatClient,
    plan: &TurnPlan,
    answer_id: Option<Uuid>,
    stranger: &str,
    thorough: bool,
) -> Vec<String> {
    let chat = plan.chat_id;
    let mut requests = vec![
        (Method::GET, format!("/api/chats/{chat}"), None),
        (Method::GET, format!("/api/chats/{chat}/messages"), None),
        // Nothing to resume (204), exactly as for a chat that does not exist.
        (Method::GET, format!("/api/chat/{chat}/stream"), None),
        (Method::POST, format!("/api/chat/{chat}/stop"), None),
    ];
    if let Some(answer) = answer_id {
        requests.push((Method::GET, format!("/api/generations/{answer}"), None));
    }
    if thorough {
        requests.push((Method::PATCH, format!("/api/chats/{chat}"), Some(serde_json::json!({"title": "taken"}))));
        let message = serde_json::json!({"id": chat, "message": "[[fake tokens=1]] not my chat"});
        requests.push((Method::POST, "/api/chat".to_owned(), Some(message)));
    }
    let mut violations = Vec::new();
    for (method, path, body) in requests {
        let mut request = client
            .http()
            .request(method.clone(), format!("{}{path}", client.base_url))
            .header("x-forwarded-email", stranger)
            .timeout(Duration::from_secs(10));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resume = path.ends_with("/stream");
        match request.send().await {
            Ok(response) if allowed(response.status(), resume) => {}
            Ok(response) => violations.push(format!(
                "{method} {path} as {stranger} (not the owner {}) answered {}",
                plan.user,
                response.status().as_u16()
            )),
            // The server may be restarting; no answer leaks nothing.
            Err(_) => {}
        }
    }
    if thorough && let Some(nonce) = nonce_of(plan) {
        let response = client
            .http()
            .get(format!("{}/api/chats", client.base_url))
            .query(&[("q", nonce)])
            .header("x-forwarded-email", stranger)
            .send()
            .await;
        if let Ok(response) = response
            && response.status() == StatusCode::OK
            && let Ok(page) = response.json::<shared::ChatPage>().await
            && !page.chats.is_empty()
        {
            violations.push(format!(
                "searching `{nonce}` as {stranger} finds {} chat(s) of {}",
                page.chats.len(),
                plan.user
            ));
        }
    }
    violations
}

/// What a stranger may be answered: 404, or for a resume 204 (nothing to resume), or 503 while the database is down;
/// behind the replica bed's proxy also 502, its answer when the replica a request was on is killed under it (the
/// proxy's own body, nothing of the app's).
fn allowed(status: StatusCode, resume: bool) -> bool {
    let hidden = if resume { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND };
    status == hidden || status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::BAD_GATEWAY
}

/// Probes chats of a wave as strangers while it runs, until cancelled; returns its violations when joined.
pub struct Prober {
    stop: CancellationToken,
    task: JoinHandle<(usize, Vec<String>)>,
}

impl Prober {
    /// Starts probing `plans` (their chats may not exist yet: 404 either way) against the client's server.
    pub fn start(client: Arc<Mutex<ChatClient>>, plans: Vec<TurnPlan>, seed: u64) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            let mut violations = Vec::new();
            let mut probes = 0usize;
            while !token.is_cancelled() && !plans.is_empty() {
                let plan = &plans[rng.range(0, plans.len() as u64) as usize];
                let stranger = stranger_of(&plan.user, rng.next_u64());
                let current = client.lock().map(|c| c.clone()).ok();
                if let Some(current) = current {
                    violations.extend(probe_as_stranger(&current, plan, None, &stranger, false).await);
                    probes += 1;
                }
                tokio::select! {
                    () = token.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            (probes, violations)
        });
        Self { stop, task }
    }

    /// Stops probing; returns how many probes ran and the violations found.
    pub async fn finish(self) -> (usize, Vec<String>) {
        self.stop.cancel();
        self.task.await.unwrap_or_else(|_| (0, vec!["the isolation prober panicked".to_owned()]))
    }
}
