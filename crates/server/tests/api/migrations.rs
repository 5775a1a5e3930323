//! Migrations are safe when several server instances start at the same moment.

use futures::future::join_all;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::ServerProcess;

/// Number of migrations shipped in `migrations/`.
fn migration_count() -> i64 {
    server::MIGRATOR.iter().count() as i64
}

#[sqlx::test(migrations = false)]
async fn concurrent_migrations_in_one_process_apply_each_migration_once(_: PgPoolOptions, connect: PgConnectOptions) {
    let runs = (0..6).map(|_| {
        let options = connect.clone().options([("search_path", "chat")]);
        async move {
            let pool = PgPoolOptions::new().max_connections(2).connect_with(options).await.expect("pool");
            server::db::migrate(&pool).await
        }
    });

    let results = join_all(runs).await;

    for result in results {
        result.expect("every concurrent migration run succeeds");
    }
    let pool = PgPoolOptions::new().connect_with(connect).await.expect("pool");
    let applied: i64 =
        sqlx::query_scalar("select count(*) from chat._sqlx_migrations").fetch_one(&pool).await.expect("count");
    assert_eq!(applied, migration_count());
}

#[sqlx::test(migrations = false)]
async fn two_server_processes_starting_together_both_come_up(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: a fresh database with no schema at all.
    let url = connect.to_url_lossy().to_string();

    // Act: start two servers at the same instant.
    let first = ServerProcess::start(&url, &[]);
    let second = ServerProcess::start(&url, &[]);
    let addresses = [first.address(), second.address()];

    // Assert: both serve, and every migration was applied exactly once.
    let client = reqwest::Client::new();
    for address in &addresses {
        let health = client.get(format!("http://{address}/api/health")).send().await.expect("health");
        assert_eq!(health.status(), reqwest::StatusCode::OK);
    }
    let pool = PgPoolOptions::new().connect_with(connect).await.expect("pool");
    let applied: i64 = sqlx::query_scalar("select count(*) from chat._sqlx_migrations where success")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(applied, migration_count());
    drop((first, second));
}

#[sqlx::test(migrations = false)]
async fn the_local_default_creates_its_database_when_missing(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: the settings the server uses with no DATABASE_URL or PGHOST, on a database name not yet taken.
    let name = format!("chat_local_default_{}", uuid::Uuid::new_v4().simple());
    let mut config = server::config::Config::from_map(&crate::helpers::test_env()).expect("configuration");
    assert!(config.database.create_if_missing, "the local default creates its database");
    config.database.connect = connect.clone().database(&name);

    // Act: twice, as two starts would.
    let first =
        server::db::connect_and_migrate(&config.database, None, &Default::default()).await.expect("first start");
    first.close().await;
    let second =
        server::db::connect_and_migrate(&config.database, None, &Default::default()).await.expect("second start");

    // Assert: created once, migrated, usable.
    let applied: i64 =
        sqlx::query_scalar("select count(*) from chat._sqlx_migrations").fetch_one(&second).await.expect("count");
    assert_eq!(applied, migration_count());
    second.close().await;
    let admin = PgPoolOptions::new().connect_with(connect).await.expect("admin pool");
    sqlx::raw_sql(&format!("drop database {name} with (force)")).execute(&admin).await.expect("drop");
}

/// The first migration of conversation trees.
const TREE_MIGRATION: i64 = 20261209000001;

/// The migrations up to `last` (included).
fn migrations_until(last: i64) -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(server::MIGRATOR.iter().filter(|m| m.version <= last).cloned().collect()),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}

/// The previous version's statement for a turn (verbatim): a question and its streaming answer in chat `a`.
const PREVIOUS_VERSION_TURN: &str = r#"
    with position as (
        update chat.chats set last_seq = last_seq + 2, updated_at = now(), model = 'm'
        where chat_id = '00000000-0000-0000-0000-00000000000a'
        returning last_seq
    ), user_message as (
        insert into chat.messages (message_id, chat_id, seq, role, parts, status, client_id)
        select '00000000-0000-0000-0000-000000000006', '00000000-0000-0000-0000-00000000000a',
               position.last_seq - 1, 'user', '[{"type":"text","text":"old server"}]', 'complete', null
        from position
    )
    insert into chat.messages (message_id, chat_id, seq, role, parts, status, model, worker_id, heartbeat_at)
    select '00000000-0000-0000-0000-000000000007', '00000000-0000-0000-0000-00000000000a', position.last_seq,
           'assistant', '[]', 'streaming', 'm', 1, now()
    from position
"#;

/// A database as the previous version left it: its migrations applied, chats and messages written its way.
async fn database_before_trees(connect: &PgConnectOptions) -> sqlx::PgPool {
    let pool =
        PgPoolOptions::new().connect_with(connect.clone().options([("search_path", "chat")])).await.expect("pool");
    sqlx::raw_sql("create schema chat").execute(&pool).await.expect("schema");
    migrations_until(TREE_MIGRATION - 1).run(&pool).await.expect("the previous schema");
    sqlx::raw_sql(
        r#"
        insert into chat.chats (chat_id, owner_id, title, last_seq) values
            ('00000000-0000-0000-0000-00000000000a', 'alice@example.com', 'Old chat', 5),
            ('00000000-0000-0000-0000-00000000000b', 'alice@example.com', 'Empty', 0);
        insert into chat.messages (message_id, chat_id, seq, role, parts, status) values
            ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', 1, 'user',
             '[{"type":"text","text":"first"}]', 'complete'),
            ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-00000000000a', 2, 'assistant',
             '[{"type":"text","text":"first answer"}]', 'complete'),
            ('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-00000000000a', 3, 'user',
             '[{"type":"text","text":"second"}]', 'complete'),
            ('00000000-0000-0000-0000-000000000004', '00000000-0000-0000-0000-00000000000a', 4, 'assistant',
             '[{"type":"text","text":"second answer"}]', 'stopped'),
            ('00000000-0000-0000-0000-000000000005', '00000000-0000-0000-0000-00000000000a', 5, 'user',
             '[{"type":"text","text":"third"}]', 'complete');
        insert into chat.message_feedback (message_id, user_id, rating, sync)
            values ('00000000-0000-0000-0000-000000000002', 'alice@example.com', 'up', 'off');
        "#,
    )
    .execute(&pool)
    .await
    .expect("data of the previous version");
    pool
}

#[sqlx::test(migrations = false)]
async fn existing_chats_become_single_branches_with_every_message_kept(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let pool = database_before_trees(&connect).await;

    // Act
    server::db::migrate(&pool).await.expect("the tree migrations apply to existing data");

    // Assert: every message kept, each following the one before it, the newest one shown.
    let rows: Vec<(uuid::Uuid, i64, Option<uuid::Uuid>, Option<i32>)> =
        sqlx::query_as("select message_id, seq, parent_id, depth from chat.messages order by seq")
            .fetch_all(&pool)
            .await
            .expect("messages");
    assert_eq!(rows.len(), 5);
    for (i, (_, seq, parent, depth)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        assert_eq!(*parent, i.checked_sub(1).map(|p| rows[p].0), "message {seq} follows the one before it");
        assert_eq!(*depth, Some(i as i32 + 1));
    }
    let leaves: Vec<(String, Option<uuid::Uuid>)> =
        sqlx::query_as("select title, active_leaf from chat.chats order by title")
            .fetch_all(&pool)
            .await
            .expect("chats");
    assert_eq!(leaves, [("Empty".to_owned(), None), ("Old chat".to_owned(), Some(rows[4].0))]);

    // Assert: the app reads the old chat whole, with its vote, and continues it.
    let app = crate::helpers::TestApp::spawn_with_model(connect).await;
    let chat_id = uuid::Uuid::from_u128(0xa);
    let page: shared::MessagePage =
        app.get(crate::helpers::ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    let texts: Vec<String> = page.messages.iter().map(shared::UiMessage::text).collect();
    assert_eq!(texts, ["first", "first answer", "second", "second answer", "third"]);
    assert!(page.messages[1].metadata.feedback.is_some(), "votes stay with their answers");
    app.post_chat(crate::helpers::ALICE, serde_json::json!({"id": chat_id, "message": "fourth"})).await;
    let page: shared::MessagePage =
        app.get(crate::helpers::ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    assert_eq!(page.messages.len(), 7);
    assert_eq!(page.messages[5].metadata.parent_id, Some(rows[4].0));
    let sent = app.fake().requests().last().expect("a model request").body.clone();
    assert_eq!(sent["messages"].as_array().map(Vec::len), Some(5), "the whole old branch goes to the model: {sent}");
}

#[sqlx::test(migrations = false)]
async fn a_server_of_the_previous_version_still_writes_into_the_shown_branch(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: the new schema over old data.
    let pool = database_before_trees(&connect).await;
    server::db::migrate(&pool).await.expect("migrations");

    // Act: a turn written exactly as the previous version writes it, during a rolling deploy.
    sqlx::raw_sql(PREVIOUS_VERSION_TURN).execute(&pool).await.expect("the previous version's insert");

    // Assert: the question follows the chat's last message, the answer the question, and the chat shows them.
    let rows: Vec<(uuid::Uuid, Option<uuid::Uuid>, Option<i32>)> =
        sqlx::query_as("select message_id, parent_id, depth from chat.messages where seq > 4 order by seq")
            .fetch_all(&pool)
            .await
            .expect("messages");
    let id = uuid::Uuid::from_u128;
    assert_eq!(rows, [(id(5), Some(id(4)), Some(5)), (id(6), Some(id(5)), Some(6)), (id(7), Some(id(6)), Some(7))]);
    let leaf: Option<uuid::Uuid> = sqlx::query_scalar("select active_leaf from chat.chats where chat_id = $1")
        .bind(id(0xa))
        .fetch_one(&pool)
        .await
        .expect("leaf");
    assert_eq!(leaf, Some(id(7)));
}

#[sqlx::test(migrations = false)]
async fn a_turn_of_the_previous_version_written_before_the_backfill_ends_up_in_the_chain(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: the new columns exist, the backfill has not run yet.
    let pool = database_before_trees(&connect).await;
    migrations_until(TREE_MIGRATION).run(&pool).await.expect("the first step");

    // Act: the previous version writes a turn; then the remaining steps run.
    sqlx::raw_sql(PREVIOUS_VERSION_TURN).execute(&pool).await.expect("the previous version's insert");
    server::db::migrate(&pool).await.expect("the remaining steps");

    // Assert: one chain of seven messages, depths counting up, the newest shown.
    let rows: Vec<(i64, Option<i64>, Option<i32>)> = sqlx::query_as(
        "select m.seq, p.seq, m.depth from chat.messages m left join chat.messages p on p.message_id = m.parent_id
         where m.chat_id = '00000000-0000-0000-0000-00000000000a' order by m.seq",
    )
    .fetch_all(&pool)
    .await
    .expect("messages");
    let expected: Vec<(i64, Option<i64>, Option<i32>)> =
        (1..=7).map(|seq| (seq, (seq > 1).then_some(seq - 1), Some(seq as i32))).collect();
    assert_eq!(rows, expected);
}

#[sqlx::test(migrations = false)]
async fn an_index_build_that_did_not_finish_is_built_again(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: migrated, then the parents index left as an interrupted concurrent build leaves it (invalid, its
    // migration not recorded).
    let pool =
        PgPoolOptions::new().connect_with(connect.clone().options([("search_path", "chat")])).await.expect("pool");
    server::db::migrate(&pool).await.expect("migrations");
    sqlx::raw_sql(
        "update pg_index set indisvalid = false where indexrelid = 'chat.messages_parent_idx'::regclass;
         delete from chat._sqlx_migrations where version = 20261209000003;",
    )
    .execute(&pool)
    .await
    .expect("an unfinished build");

    // Act
    server::db::migrate(&pool).await.expect("the next start");

    // Assert
    let valid: bool =
        sqlx::query_scalar("select indisvalid from pg_index where indexrelid = 'chat.messages_parent_idx'::regclass")
            .fetch_one(&pool)
            .await
            .expect("the index exists");
    assert!(valid, "built again, whole");
}
