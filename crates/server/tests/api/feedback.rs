//! Feedback on answers: votes stored per answer and user, shown with the messages, and sent to (a fake) MLflow as
//! assessments on the answers' traces with the app's own token, retried when MLflow fails.

use std::time::{Duration, Instant};

use fake_databricks::FakeWorkspace;
use fake_databricks::mlflow::MlflowCall;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::config::EnvMap;
use shared::{Feedback, FeedbackSync, MessagePage, Rating};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp, TestResponse, test_env};

/// The app's own workspace token.
const APP_TOKEN: &str = "dapi-feedback-app";
/// The answer's MLflow trace.
const TRACE: &str = "tr-0123456789abcdef0123456789abcdef";

/// A fake workspace that knows the app's token.
async fn workspace() -> FakeWorkspace {
    let fake = FakeWorkspace::start().await;
    fake.workspace().add_pat(APP_TOKEN);
    fake
}

/// The app on the workspace with MLflow feedback sync on (by the experiment id) and fast retries.
fn sync_env(fake: &FakeWorkspace) -> EnvMap {
    test_env()
        .with("DATABRICKS_HOST", &fake.url())
        .with("DATABRICKS_TOKEN", APP_TOKEN)
        .with("MLFLOW_EXPERIMENT_ID", "4242")
        .with("MLFLOW_FEEDBACK_RETRY_MS", "100")
        .with("TITLE_GENERATION", "false")
}

/// A chat of `user` with one finished turn whose answer has `trace` (written directly: the test is about feedback).
struct Turn {
    chat_id: Uuid,
    question_id: Uuid,
    answer_id: Uuid,
}

async fn answered_chat(app: &TestApp, user: &str, trace: Option<&str>) -> Turn {
    let chat = app.create_chat(user, json!({"title": "feedback"})).await;
    let (question_id, answer_id) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        r#"insert into chat.messages (message_id, chat_id, seq, role, parts, status, model, trace_id) values
           ($1, $3, 1, 'user', '[{"type":"text","text":"When was it built?"}]', 'complete', null, null),
           ($2, $3, 2, 'assistant', '[{"type":"text","text":"In 1889."}]', 'complete', 'agent', $4)"#,
    )
    .bind(question_id)
    .bind(answer_id)
    .bind(chat.id)
    .bind(trace)
    .execute(&app.db)
    .await
    .expect("fixture turn");
    sqlx::query("update chat.chats set last_seq = 2 where chat_id = $1")
        .bind(chat.id)
        .execute(&app.db)
        .await
        .expect("seq");
    Turn { chat_id: chat.id, question_id, answer_id }
}

fn feedback_path(chat_id: Uuid, message_id: Uuid) -> String {
    format!("/api/chats/{chat_id}/messages/{message_id}/feedback")
}

impl Turn {
    fn path(&self) -> String {
        feedback_path(self.chat_id, self.answer_id)
    }
}

async fn vote(app: &TestApp, user: &str, path: &str, body: Value) -> TestResponse {
    app.json(user, Method::PUT, path, body).await
}

/// The messages of the chat as `user` reads them.
async fn messages(app: &TestApp, user: &str, chat_id: Uuid) -> MessagePage {
    let response = app.get(user, &format!("/api/chats/{chat_id}/messages")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json);
    response.parse()
}

/// The feedback shown on a message of the chat.
async fn shown_feedback(app: &TestApp, user: &str, chat_id: Uuid, message_id: Uuid) -> Option<Feedback> {
    let page = messages(app, user, chat_id).await;
    page.messages.into_iter().find(|m| m.id == message_id).expect("the message is listed").metadata.feedback
}

async fn feedback_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from chat.message_feedback").fetch_one(&app.db).await.expect("count")
}

/// Polls until `done` holds (at most 10 s).
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < deadline, "not in time: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assessment_path(id: &str) -> String {
    format!("/api/3.0/mlflow/traces/{TRACE}/assessments/{id}")
}

#[sqlx::test(migrations = false)]
async fn up_then_down_then_removed_is_one_assessment_created_updated_and_deleted(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let fake = workspace().await;
    let app = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let turn = answered_chat(&app, ALICE, Some(TRACE)).await;

    // Act
    let up = app
        .send(
            app.request(Some(ALICE), Method::PUT, &turn.path())
                .header("x-forwarded-access-token", "the-users-own-token")
                .json(&json!({"rating": "up", "comment": "  clear and right  "})),
        )
        .await;
    let up_again = vote(&app, ALICE, &turn.path(), json!({"rating": "up", "comment": "clear and right"})).await;
    let down = vote(&app, ALICE, &turn.path(), json!({"rating": "down", "comment": "wrong year"})).await;
    let removed = app.delete(ALICE, &turn.path()).await;
    let removed_again = app.delete(ALICE, &turn.path()).await;

    // Assert: the answers.
    assert_eq!(up.status, StatusCode::OK, "{}", up.json);
    let up: Feedback = up.parse();
    assert_eq!(
        (up.rating, up.comment.as_deref(), up.sync),
        (Rating::Up, Some("clear and right"), FeedbackSync::Synced)
    );
    assert_eq!(up_again.parse::<Feedback>(), up, "the same vote again changes nothing");
    let down: Feedback = down.parse();
    assert_eq!(
        (down.rating, down.comment.as_deref(), down.sync),
        (Rating::Down, Some("wrong year"), FeedbackSync::Synced)
    );
    assert!(down.updated_at > up.updated_at);
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(removed_again.status, StatusCode::NO_CONTENT, "removing nothing is fine");
    assert_eq!(shown_feedback(&app, ALICE, turn.chat_id, turn.answer_id).await, None);
    assert_eq!(feedback_rows(&app).await, 0);

    // Assert: exactly one creation, one update and one deletion, with the app's token.
    let mlflow = fake.mlflow();
    let calls = mlflow.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["POST", "PATCH", "DELETE"], "{calls:#?}");
    let [create, update, delete] = <[MlflowCall; 3]>::try_from(calls).expect("three calls");
    assert!(
        [&create, &update, &delete].iter().all(|c| c.authorization.as_deref() == Some("Bearer dapi-feedback-app")),
        "MLflow is called with the app's token, never the user's"
    );
    assert_eq!(create.path, format!("/api/3.0/mlflow/traces/{TRACE}/assessments"));
    assert_eq!(
        create.body,
        json!({"assessment": {
            "trace_id": TRACE, "assessment_name": "user_feedback",
            "source": {"source_type": "HUMAN", "source_id": ALICE},
            "feedback": {"value": true}, "rationale": "clear and right"}})
    );
    let id = update.path.rsplit('/').next().expect("assessment id").to_owned();
    assert!(id.starts_with("a-"), "{id}");
    assert_eq!(update.path, assessment_path(&id));
    assert_eq!(
        update.body,
        json!({"assessment": {"trace_id": TRACE, "assessment_name": "user_feedback",
                              "feedback": {"value": false}, "rationale": "wrong year"},
               "update_mask": "feedback,rationale"})
    );
    assert_eq!(delete.path, assessment_path(&id));
    assert!(mlflow.assessments().is_empty());
}

#[sqlx::test(migrations = false)]
async fn feedback_is_shown_with_the_messages_and_survives_a_restart(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let fake = workspace().await;
    let app = TestApp::spawn_with(connect.clone(), sync_env(&fake)).await;
    let turn = answered_chat(&app, ALICE, Some(TRACE)).await;
    let stored: Feedback = vote(&app, ALICE, &turn.path(), json!({"rating": "up"})).await.parse();

    // Act: read it back, then restart the server and change the vote.
    let page = app.get(ALICE, &format!("/api/chats/{}/messages", turn.chat_id)).await;
    app.shutdown().await;
    let restarted = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let after_restart = shown_feedback(&restarted, ALICE, turn.chat_id, turn.answer_id).await;
    let changed = vote(&restarted, ALICE, &turn.path(), json!({"rating": "down"})).await;

    // Assert: the wire shape, snake_case like the rest of the metadata, on the answer only.
    let messages = page.json["messages"].as_array().expect("messages");
    assert!(messages[0]["metadata"].get("feedback").is_none(), "the question has no feedback: {}", messages[0]);
    let shown = &messages[1]["metadata"]["feedback"];
    assert_eq!(shown["rating"], "up");
    assert_eq!(shown["sync"], "synced");
    assert!(shown.get("comment").is_none(), "{shown}");
    assert!(shown["updated_at"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{shown}");
    assert_eq!(after_restart, Some(stored));
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.json);
    assert_eq!(changed.parse::<Feedback>().sync, FeedbackSync::Synced);
    let calls = fake.mlflow().calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let created = fake.mlflow().assessments();
    let id = created.keys().next().expect("one assessment");
    assert_eq!(calls[1].method, Method::PATCH, "the new process updates the stored assessment");
    assert_eq!(calls[1].path, assessment_path(id));
    assert_eq!(created[id]["feedback"]["value"], false);
}

#[sqlx::test(migrations = false)]
async fn a_vote_mlflow_cannot_take_yet_is_kept_pending_and_sent_later(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: MLflow answers the first two calls with 503 and 429.
    let fake = workspace().await;
    let app = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let turn = answered_chat(&app, ALICE, Some(TRACE)).await;
    fake.mlflow().fail_next(1, StatusCode::SERVICE_UNAVAILABLE);

    // Act
    let response = vote(&app, ALICE, &turn.path(), json!({"rating": "down", "comment": "outdated"})).await;
    fake.mlflow().fail_next(1, StatusCode::TOO_MANY_REQUESTS);
    let shown_at_once = shown_feedback(&app, ALICE, turn.chat_id, turn.answer_id).await;

    // Assert: kept at once, sent by the retries.
    assert_eq!(response.status, StatusCode::OK, "{}", response.json);
    let kept: Feedback = response.parse();
    assert_eq!((kept.rating, kept.sync), (Rating::Down, FeedbackSync::Pending));
    assert_eq!(shown_at_once.map(|f| f.sync), Some(FeedbackSync::Pending));
    eventually("the vote is synced", || async {
        shown_feedback(&app, ALICE, turn.chat_id, turn.answer_id).await.is_some_and(|f| f.sync == FeedbackSync::Synced)
    })
    .await;
    let posts = fake.mlflow().calls_with(Method::POST);
    assert_eq!(posts.len(), 3, "refused twice, then created once: {posts:#?}");
    let assessments = fake.mlflow().assessments();
    assert_eq!(assessments.len(), 1);
    let only = assessments.values().next().expect("one");
    assert_eq!((only["feedback"]["value"].clone(), only["rationale"].clone()), (json!(false), json!("outdated")));
}

#[sqlx::test(migrations = false)]
async fn a_removal_mlflow_cannot_take_yet_is_retried_until_the_assessment_is_gone(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: a synced vote, then MLflow down for the removal.
    let fake = workspace().await;
    let app = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let turn = answered_chat(&app, ALICE, Some(TRACE)).await;
    let stored: Feedback = vote(&app, ALICE, &turn.path(), json!({"rating": "up"})).await.parse();
    assert_eq!(stored.sync, FeedbackSync::Synced);
    fake.mlflow().fail_next(2, StatusCode::BAD_GATEWAY);

    // Act
    let removed = app.delete(ALICE, &turn.path()).await;

    // Assert: gone for the user at once; gone from MLflow once it answers again.
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(shown_feedback(&app, ALICE, turn.chat_id, turn.answer_id).await, None);
    eventually("the assessment is deleted", || async { fake.mlflow().assessments().is_empty() }).await;
    eventually("the tombstone is gone", || async { feedback_rows(&app).await == 0 }).await;
    assert_eq!(fake.mlflow().calls_with(Method::DELETE).len(), 3);
}

#[sqlx::test(migrations = false)]
async fn a_vote_mlflow_keeps_refusing_is_given_up_after_a_few_attempts(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: MLflow refuses everything with 403 (say, the app lost its permission on the experiment).
    let fake = workspace().await;
    let app = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let turn = answered_chat(&app, ALICE, Some(TRACE)).await;
    fake.mlflow().fail_next(1000, StatusCode::FORBIDDEN);

    // Act
    let response = vote(&app, ALICE, &turn.path(), json!({"rating": "up"})).await;

    // Assert: the vote is kept; after three refusals nothing more is sent.
    assert_eq!(response.parse::<Feedback>().sync, FeedbackSync::Pending);
    eventually("the vote is given up on", || async {
        shown_feedback(&app, ALICE, turn.chat_id, turn.answer_id).await.is_some_and(|f| f.sync == FeedbackSync::Failed)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fake.mlflow().calls().len(), 3);
    let shown = shown_feedback(&app, ALICE, turn.chat_id, turn.answer_id).await.expect("kept");
    assert_eq!(shown.rating, Rating::Up);
}

#[sqlx::test(migrations = false)]
async fn another_users_chat_or_message_is_not_found(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let fake = workspace().await;
    let app = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let alices = answered_chat(&app, ALICE, Some(TRACE)).await;
    let bobs = answered_chat(&app, BOB, Some(TRACE)).await;
    let body = json!({"rating": "down"});

    // Act
    let put_in_bobs_chat = vote(&app, ALICE, &bobs.path(), body.clone()).await;
    let delete_in_bobs_chat = app.delete(ALICE, &bobs.path()).await;
    let put_in_unknown_chat = vote(&app, ALICE, &feedback_path(Uuid::new_v4(), bobs.answer_id), body.clone()).await;
    let bobs_answer_in_alices_chat = feedback_path(alices.chat_id, bobs.answer_id);
    let put_bobs_answer = vote(&app, ALICE, &bobs_answer_in_alices_chat, body.clone()).await;
    let delete_bobs_answer = app.delete(ALICE, &bobs_answer_in_alices_chat).await;
    let put_unknown_answer = vote(&app, ALICE, &feedback_path(alices.chat_id, Uuid::new_v4()), body).await;

    // Assert: nothing tells Bob's chat from one that does not exist, and nothing was stored or sent.
    for response in [&put_in_bobs_chat, &delete_in_bobs_chat, &put_bobs_answer, &delete_bobs_answer] {
        response.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(put_in_bobs_chat.json, put_in_unknown_chat.json);
    assert_eq!(delete_in_bobs_chat.json, put_in_unknown_chat.json);
    assert_eq!(put_bobs_answer.json, put_unknown_answer.json);
    assert_eq!(delete_bobs_answer.json, put_unknown_answer.json);
    assert_eq!(feedback_rows(&app).await, 0);
    assert!(fake.mlflow().calls().is_empty());
}

#[sqlx::test(migrations = false)]
async fn bad_bodies_are_refused_and_change_nothing(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: a synced vote.
    let fake = workspace().await;
    let app = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let turn = answered_chat(&app, ALICE, Some(TRACE)).await;
    let before: Feedback = vote(&app, ALICE, &turn.path(), json!({"rating": "up", "comment": "keep"})).await.parse();

    // Act
    let bad_rating = vote(&app, ALICE, &turn.path(), json!({"rating": "sideways"})).await;
    let long_comment = vote(&app, ALICE, &turn.path(), json!({"rating": "down", "comment": "x".repeat(2001)})).await;
    let unknown_field = vote(&app, ALICE, &turn.path(), json!({"rating": "down", "stars": 1})).await;
    let no_rating = vote(&app, ALICE, &turn.path(), json!({"comment": "no rating"})).await;
    let nul_in_comment = vote(&app, ALICE, &turn.path(), json!({"rating": "down", "comment": "a\u{0}b"})).await;
    let not_json = app
        .send(
            app.request(Some(ALICE), Method::PUT, &turn.path())
                .header("content-type", "application/json")
                .body("rating=down"),
        )
        .await;
    let longest = vote(&app, ALICE, &turn.path(), json!({"rating": "down", "comment": "é".repeat(2000)})).await;

    // Assert
    for response in [&bad_rating, &long_comment, &unknown_field, &no_rating, &nul_in_comment, &not_json] {
        response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert!(
        bad_rating.json["error"]["message"].as_str().is_some_and(|m| m.contains("sideways")),
        "{}",
        bad_rating.json
    );
    assert!(
        long_comment.json["error"]["message"].as_str().is_some_and(|m| m.contains("2000")),
        "{}",
        long_comment.json
    );
    assert!(
        unknown_field.json["error"]["message"].as_str().is_some_and(|m| m.contains("stars")),
        "{}",
        unknown_field.json
    );
    assert_eq!(fake.mlflow().calls().len(), 2, "only the valid votes were sent");
    assert_eq!(longest.status, StatusCode::OK, "2,000 characters are allowed: {}", longest.json);
    let after: Feedback = longest.parse();
    assert_eq!(after.comment.map(|c| c.chars().count()), Some(2000));
    assert_eq!(before.comment.as_deref(), Some("keep"));
}

#[sqlx::test(migrations = false)]
async fn feedback_is_for_finished_answers(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: a finished turn, then a second question whose answer is still streaming.
    let app = TestApp::spawn(connect).await;
    let turn = answered_chat(&app, ALICE, None).await;
    let streaming_id = Uuid::new_v4();
    sqlx::query(
        r#"insert into chat.messages (message_id, chat_id, seq, role, parts, status, worker_id, heartbeat_at) values
           (gen_random_uuid(), $1, 3, 'user', '[{"type":"text","text":"And now?"}]', 'complete', null, null),
           ($2, $1, 4, 'assistant', '[]', 'streaming', 1, now())"#,
    )
    .bind(turn.chat_id)
    .bind(streaming_id)
    .execute(&app.db)
    .await
    .expect("fixture");

    // Act
    let on_question = vote(&app, ALICE, &feedback_path(turn.chat_id, turn.question_id), json!({"rating": "up"})).await;
    let delete_on_question = app.delete(ALICE, &feedback_path(turn.chat_id, turn.question_id)).await;
    let on_streaming = vote(&app, ALICE, &feedback_path(turn.chat_id, streaming_id), json!({"rating": "up"})).await;
    let bad_id =
        vote(&app, ALICE, &format!("/api/chats/{}/messages/nope/feedback", turn.chat_id), json!({"rating": "up"}))
            .await;

    // Assert
    on_question.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    delete_on_question.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    on_streaming.assert_error(StatusCode::CONFLICT, "conflict");
    bad_id.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(feedback_rows(&app).await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_chat_with_feedback_is_deleted(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let fake = workspace().await;
    let app = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let turn = answered_chat(&app, ALICE, Some(TRACE)).await;
    assert_eq!(vote(&app, ALICE, &turn.path(), json!({"rating": "up"})).await.status, StatusCode::OK);

    // Act
    let deleted = app.delete(ALICE, &format!("/api/chats/{}", turn.chat_id)).await;

    // Assert
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.json);
    assert_eq!(feedback_rows(&app).await, 0);
    app.get(ALICE, &format!("/api/chats/{}", turn.chat_id)).await.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrations = false)]
async fn without_sync_or_without_a_trace_votes_stay_in_the_app(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: an experiment is named, but the switch says no; and, with sync on, an answer without a trace.
    let fake = workspace().await;
    let switched_off = TestApp::spawn_with(connect.clone(), sync_env(&fake).with("MLFLOW_FEEDBACK", "false")).await;
    let traced = answered_chat(&switched_off, ALICE, Some(TRACE)).await;

    // Act
    let off = vote(&switched_off, ALICE, &traced.path(), json!({"rating": "down", "comment": "no"})).await;
    let config = switched_off.get(ALICE, "/api/config").await;
    let removed = switched_off.delete(ALICE, &traced.path()).await;
    switched_off.shutdown().await;
    let on = TestApp::spawn_with(connect, sync_env(&fake)).await;
    let untraced = answered_chat(&on, ALICE, None).await;
    let without_trace = vote(&on, ALICE, &untraced.path(), json!({"rating": "up"})).await;

    // Assert
    assert_eq!(off.parse::<Feedback>().sync, FeedbackSync::Off);
    assert_eq!(config.json["feedback"], json!({"mlflow": false}));
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(without_trace.parse::<Feedback>().sync, FeedbackSync::Off);
    assert_eq!(
        shown_feedback(&on, ALICE, untraced.chat_id, untraced.answer_id).await.map(|f| f.sync),
        Some(FeedbackSync::Off)
    );
    assert!(fake.mlflow().calls().is_empty(), "{:#?}", fake.mlflow().calls());
}

#[sqlx::test(migrations = false)]
async fn the_config_says_whether_votes_go_to_mlflow(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: on with a workspace; an experiment id without a workspace keeps it off.
    let fake = workspace().await;
    let with_workspace = TestApp::spawn_with(connect.clone(), sync_env(&fake)).await;
    let on = with_workspace.get(ALICE, "/api/config").await;
    with_workspace.shutdown().await;
    let without_workspace = TestApp::spawn_with(connect, test_env().with("MLFLOW_EXPERIMENT_ID", "4242")).await;

    // Act
    let off = without_workspace.get(ALICE, "/api/config").await;

    // Assert
    assert_eq!(on.status, StatusCode::OK);
    assert_eq!(on.json["feedback"], json!({"mlflow": true}));
    assert!(on.json["greeting"].is_string() && on.json["suggestions"].is_array(), "{}", on.json);
    assert_eq!(off.json["feedback"], json!({"mlflow": false}));
}

#[sqlx::test(migrations = false)]
async fn the_feedback_routes_are_described(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    let doc = app.get(ALICE, "/api/openapi.json").await.json;

    let path = &doc["paths"]["/api/chats/{chat_id}/messages/{message_id}/feedback"];
    let put = &path["put"];
    assert_eq!(
        put["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/FeedbackRequest"
    );
    assert_eq!(
        put["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Feedback"
    );
    for status in ["400", "404", "409", "415"] {
        assert!(put["responses"][status].is_object(), "PUT documents {status}: {put}");
    }
    assert!(path["delete"]["responses"]["204"].is_object(), "{path}");
    let request = &doc["components"]["schemas"]["FeedbackRequest"];
    assert_eq!(request["additionalProperties"], false, "{request}");
    assert_eq!(request["properties"]["comment"]["maxLength"], 2000, "{request}");
    let metadata = &doc["components"]["schemas"]["MessageMetadata"]["properties"];
    assert!(metadata["feedback"].is_object(), "{metadata}");
}
